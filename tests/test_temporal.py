"""Tests of VLD Table IV's temporal heads (reprolib.models.vld.temporal) and their wiring into the vld family:
shapes, the paper's parameter counts, MACs, depthwise Conv1D, frame-order (in)sensitivity, configs."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from reprolib.config import BackboneConfig, ModelConfig, OptimConfig, load_config
from reprolib.models import create_clip_model
from reprolib.models.vld.options import TEMPORAL_HEADS
from reprolib.models.vld.temporal import (
    Conv1DHead, TAPHead, TransfClsHead, TransfHead, build_temporal_head, temporal_head_flops,
    temporal_head_params,
)
from reprolib.models.vld import VLD, VLDExtra

DIM = 32  # small feature width for the head tests (8 heads of 4)


def _frames(b: int, t: int, dim: int = DIM, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, dim, generator=torch.Generator().manual_seed(seed))  # (B, T, D)


def _meta_params(module_fn) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in module_fn().parameters())


# ----------------------------------------------------------------------------- heads
@pytest.mark.parametrize("t", [6, 10])
@pytest.mark.parametrize("name", TEMPORAL_HEADS)
def test_output_shape(name, t):
    torch.manual_seed(0)
    head = build_temporal_head(name, DIM, seq_len=t)
    out = head(_frames(3, t))
    assert out.shape == (3, DIM) and torch.isfinite(out).all()


def test_factory_and_input_errors():
    with pytest.raises(ValueError, match="model.extra.temporal_head: the vld family supports tap, conv1d"):
        build_temporal_head("lstm", DIM, 6)
    with pytest.raises(ValueError, match="seq_len"):
        build_temporal_head("transf_cls", DIM, None)
    with pytest.raises(ValueError, match="heads do not divide"):
        build_temporal_head("transf", 30, 6)
    with pytest.raises(ValueError, match="data.seq_len=6 frames, got 5"):
        build_temporal_head("transf_cls", DIM, 6)(_frames(2, 5))
    with pytest.raises(ValueError, match=r"\(B, T, 32\)"):
        build_temporal_head("conv1d", DIM, 6)(_frames(2, 6, dim=16))
    assert isinstance(build_temporal_head("tap", DIM, None), TAPHead)


def test_paper_parameter_counts_at_512():
    # VLD Table IV deltas over TAP (docs/decisions/vld.md#v22-table-iv-temporal-heads): +0.04 M, +18.91 M, +18.96 M
    assert temporal_head_params("tap") == 0
    assert temporal_head_params("conv1d") == 40_960  # 77*512 (allocated, unused) + 3*512
    assert temporal_head_params("transf") == 6 * 3_152_384 == 18_914_304  # blocks only
    assert temporal_head_params("transf_cls") == 18_958_848
    assert temporal_head_params("transf_cls", seq_len=10) == 18_958_848 + 4 * 512  # (T + 1) x D positions
    # what the modules themselves hold: only what their forward uses
    assert _meta_params(lambda: TransfHead(512)) == 18_914_304 + 77 * 512  # + the used frame positions
    assert _meta_params(lambda: TransfHead(512, frame_position=False)) == 18_914_304
    with torch.device("meta"):
        block = TransfHead(512).transformer.resblocks[0]
    assert sum(p.numel() for p in block.parameters()) == 3_152_384
    assert _meta_params(lambda: Conv1DHead(512)) == 3 * 512
    assert _meta_params(lambda: TransfClsHead(512, 6)) == 18_958_848 - 77 * 512


def test_macs_paper_convention():
    d, t = 512, 6
    ln = 5 * d  # LayerNorm x5 per token
    block = 4 * d * d + 2 * d * 4 * d + 2 * ln  # q, k, v, out + MLP + 2 LN, per token
    assert temporal_head_flops("tap", d, t) == 0
    assert temporal_head_flops("conv1d", d, t) == t * d * 3  # depthwise, k = 3
    assert temporal_head_flops("transf", d, t) == 6 * t * block == 113_430_528  # 0.019 G per frame
    assert temporal_head_flops("transf_cls", d, t) == 6 * (t + 1) * block + (t + 1) * ln
    # the full convention adds q.k^T and attn.v: 2 * L^2 * D per layer
    assert temporal_head_flops("transf", d, t, "full") - temporal_head_flops("transf", d, t) == 6 * 2 * t * t * d


def test_conv1d_is_depthwise_over_time():
    torch.manual_seed(0)
    head = Conv1DHead(DIM)
    torch.nn.init.normal_(head.conv.weight)
    x = _frames(2, 6)
    changed = x.clone()
    changed[:, 2, 5] += 1.0  # one channel of one frame
    diff = (head(changed) - head(x)).abs()  # (B, D)
    assert diff[:, 5].min() > 1e-4 and diff[:, torch.arange(DIM) != 5].max() == 0
    # ActionCLIP's view reshape (as_released) mixes frames into channels: no longer depthwise
    released = Conv1DHead(DIM, as_released=True)
    released.conv.weight.data.copy_(head.conv.weight)
    leak = (released(changed) - released(x)).abs()
    assert leak[:, torch.arange(DIM) != 5].max() > 1e-4


def test_conv1d_starts_as_a_temporal_shift():
    head, x = Conv1DHead(DIM), _frames(2, 6)
    out = head(x)  # f = mean_t(z_t + shift(z)_t)
    q = DIM // 4
    torch.testing.assert_close(out[:, q:3 * q], 2 * x[:, :, q:3 * q].mean(1))  # identity taps
    torch.testing.assert_close(out[:, :q], (x[:, :, :q].sum(1) + x[:, :-1, :q].sum(1)) / 6)  # frame t-1
    torch.testing.assert_close(out[:, 3 * q:], (x[:, :, 3 * q:].sum(1) + x[:, 1:, 3 * q:].sum(1)) / 6)  # t+1


def test_frame_order_reaches_the_output_only_through_positions():
    torch.manual_seed(0)
    x, perm = _frames(2, 6), torch.tensor([3, 0, 5, 1, 4, 2])
    tap = TAPHead()
    torch.testing.assert_close(tap(x[:, perm]), tap(x))
    cls_head = TransfClsHead(DIM, 6).eval()  # eval: no dropout
    with torch.no_grad():
        assert (cls_head(x[:, perm]) - cls_head(x)).abs().max() > 1e-3
        cls_head.pos_embed.zero_()
        torch.testing.assert_close(cls_head(x[:, perm]), cls_head(x), rtol=1e-5, atol=1e-5)
    transf = TransfHead(DIM)
    with torch.no_grad():
        assert (transf(x[:, perm]) - transf(x)).abs().max() > 1e-4
        no_pos = TransfHead(DIM, frame_position=False)
        torch.testing.assert_close(no_pos(x[:, perm]), no_pos(x), rtol=1e-5, atol=1e-5)


def test_transf_outer_residual_and_cls_output():
    torch.manual_seed(0)
    x = _frames(2, 6)
    transf = TransfHead(DIM, frame_position=False)
    with torch.no_grad():
        for block in transf.transformer.resblocks:  # zero residual branches: the blocks become identities
            block.attn.out_proj.weight.zero_()
            block.mlp.c_proj.weight.zero_()
        torch.testing.assert_close(transf(x), 2 * x.mean(1))  # blocks(z) + z, averaged
    cls_head = TransfClsHead(DIM, 6).eval()
    with torch.no_grad():
        ref = cls_head(x)
        cls_head.cls_token.add_(1.0)
        assert (cls_head(x) - ref).abs().max() > 1e-3  # the feature is the [cls] slot's output


# ----------------------------------------------------------------------------- VLD wiring
T, SIZE, NUM_CLASSES = 2, (32, 16), 3


@pytest.fixture(scope="module")
def tinyclip():
    model, _ = create_clip_model("TinyCLIP-ViT-8", "tinyclip")
    return model


def _vld(tinyclip, **extra) -> VLD:
    torch.manual_seed(0)
    cfg = ModelConfig(name="vld", backbone=BackboneConfig(arch="TinyCLIP-ViT-8", pretrained="tinyclip"),
                      feature="cls", extra={"use_stp": False, **extra})
    return VLD(cfg, NUM_CLASSES, num_cameras=2, image_size=SIZE, clip_model=copy.deepcopy(tinyclip), seq_len=T)


def _batch(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"rgb": torch.randn(b, T, 3, *SIZE, generator=g), "ir": torch.randn(b, T, 3, *SIZE, generator=g),
            "label": torch.arange(b), "camid_rgb": torch.zeros(b, dtype=torch.long),
            "camid_ir": torch.ones(b, dtype=torch.long)}


@pytest.mark.parametrize("name", TEMPORAL_HEADS)
def test_vld_trains_with_each_temporal_head(tinyclip, name):
    model = _vld(tinyclip, temporal_head=name)
    losses = model.forward_train(_batch())
    assert set(losses) == {"id", "wrt", "id_proj", "wrt_last", "wrt_proj", "v2t"}
    assert all(v.dim() == 0 and math.isfinite(float(v.detach())) for v in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in model.temporal_head.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads) and (len(grads) > 0) == (name != "tap")
    assert model.extract(_batch()["rgb"]).shape == (2, model.visual.width)  # test feature: f_cls (768 branch)


def test_head_replaces_tap_on_f_proj_only(tinyclip):
    tap, conv = _vld(tinyclip).eval(), _vld(tinyclip, temporal_head="conv1d").eval()
    missing = conv.load_state_dict(tap.state_dict(), strict=False).missing_keys
    assert missing == ["temporal_head.conv.weight"]
    x = _batch()["rgb"]
    with torch.no_grad():
        ref, got = tap.forward_features(x), conv.forward_features(x)
        for key in ("feat", "last", "bn_feat"):  # the 768-d branch keeps TAP
            torch.testing.assert_close(got[key], ref[key], rtol=0, atol=0)
        assert (got["proj"] - ref["proj"]).abs().max() > 1e-4
        conv.temporal_head.conv.weight.zero_()  # residual only: the head reduces to TAP of the same z_proj
        torch.testing.assert_close(conv.forward_features(x)["proj"], ref["proj"])


def test_temporal_head_weights_follow_vlds_lr_rule(tinyclip):
    model = _vld(tinyclip, temporal_head="transf")
    groups = {g["name"]: {id(p) for p in g["params"]} for g in model.param_groups(OptimConfig(head_lr_mult=25.0))}
    named = dict(model.named_parameters())
    assert id(named["temporal_head.transformer.resblocks.0.mlp.c_fc.weight"]) in groups["backbone"]
    assert id(named["temporal_head.frame_position"]) in groups["backbone"]
    assert id(named["temporal_head.transformer.resblocks.0.mlp.c_fc.bias"]) in groups["backbone_bias"]


def test_extra_validation_and_seq_len(tinyclip):
    with pytest.raises(ValueError, match="model.extra.temporal_head: the vld family supports"):
        VLDExtra.from_dict({"temporal_head": "stp"})
    with pytest.raises(ValueError, match="pools f_proj"):
        VLDExtra.from_dict({"temporal_head": "transf", "use_imlp": False, "clipreid_extra_terms": False})
    cfg = ModelConfig(name="vld", backbone=BackboneConfig(arch="TinyCLIP-ViT-8", pretrained="tinyclip"),
                      feature="cls", extra={"use_stp": False, "temporal_head": "transf_cls"})
    with pytest.raises(ValueError, match="seq_len"):
        VLD(cfg, NUM_CLASSES, 2, image_size=SIZE, clip_model=copy.deepcopy(tinyclip))


def test_configs_are_table_iv_rows():
    imlp = load_config("vld_imlp", profile="paper")
    assert imlp.model.extra.get("temporal_head", "tap") == "tap"  # row TAP = B+IMLP
    for name, head in [("vld_temporal_conv1d", "conv1d"), ("vld_temporal_transf", "transf"),
                       ("vld_temporal_transf_cls", "transf_cls")]:
        cfg = load_config(name, profile="paper")
        extra = VLDExtra.from_dict(cfg.model.extra)
        assert cfg.name == name and cfg.model.name == "vld" and extra.temporal_head == head
        assert (extra.use_imlp, extra.use_stp) == (True, False)  # on top of B+IMLP
        assert {k: v for k, v in cfg.model.extra.items() if k not in ("temporal_head", "conv1d_as_released",
                                                                       "transf_frame_position")} == imlp.model.extra
        assert cfg.optim == imlp.optim and cfg.loss == imlp.loss and cfg.data == imlp.data
