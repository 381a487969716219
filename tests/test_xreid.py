"""Tests of the X-ReID family: SII's channel exchange (eq. 5 vs the released cascade), LII's frame
pairing, the CPC hard-sample update and CPCL, CMCL and CII's degenerate variant, the block
parameter count, all eight SII/LII/CII combinations at TinyCLIP size, memory extraction by the
epoch hook, parameter groups, configs and a smoke training run."""
from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from reprolib.config import BackboneConfig, DataConfig, LossConfig, ModelConfig, OptimConfig, load_config
from reprolib.data.types import Modality, Tracklet
from reprolib.models import create_clip_model
from reprolib.models.xreid.cmcl import cmcl_loss
from reprolib.models.xreid import (CrossAttentionBlock, CrossModalityPrototypes, LongTermInteraction,
                                   PrototypeMemory, ReadoutAttentionBlock, ShortTermInteraction, XReID, XReIDExtra,
                                   channel_shift, cpcl_loss, cross_attention_block_params, fuse_branches,
                                   lii_partner_frames)

T = 2  # clip length of the model tests
SIZE = (32, 16)  # a 4x2 TinyCLIP grid
NUM_CLASSES = 5
RGB, IR = int(Modality.RGB), int(Modality.IR)


# ----------------------------------------------------------------------------- SII / LII
def _ramp(t: int, d: int) -> torch.Tensor:
    """(1, T, 1, D) patches whose value names the frame and channel: 100 * t + c."""
    return (100 * torch.arange(t).view(1, t, 1, 1) + torch.arange(d).view(1, 1, 1, d)).float()


def test_channel_shift_is_eq5_and_differs_from_released_cascade():
    x = _ramp(4, 8)  # fold = 2: channels 0-1 from t-1, 2-3 from t+1, 4-7 own
    before = x.clone()
    out = channel_shift(x, stride=1)
    expected = torch.tensor([[0, 1, 102, 103, 4, 5, 6, 7],  # frame 0: no t-1, copies its own quarter
                             [0, 1, 202, 203, 104, 105, 106, 107],
                             [100, 101, 302, 303, 204, 205, 206, 207],
                             [200, 201, 302, 303, 304, 305, 306, 307]]).float()  # frame 3: no t+1
    torch.testing.assert_close(out[0, :, 0], expected, rtol=0, atol=0)
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # out of place
    # the released in-place copy on an aliasing view cascades forward in time (D10): emulate it
    cascade = x.clone()
    for t in range(1, 4):
        cascade[:, t, :, :2] = cascade[:, t - 1, :, :2]  # reads the already-overwritten previous frame
    cascade[:, :3, :, 2:4] = x[:, 1:, :, 2:4]
    released = channel_shift(x, stride=1, as_released=True)
    torch.testing.assert_close(released, cascade, rtol=0, atol=0)
    assert (released[0, 2:, 0, :2] == torch.tensor([0.0, 1.0])).all()  # frame 0's quarter everywhere
    assert not torch.equal(released, out)
    # stride S: partners t -/+ S, frames without one copy themselves
    s2 = channel_shift(_ramp(4, 8), stride=2)[0, :, 0]
    assert s2[:, 0].tolist() == [0, 100, 0, 100] and s2[:, 2].tolist() == [202, 302, 202, 302]


def test_sii_queries_shifted_patches_of_its_own_frame():
    torch.manual_seed(0)
    sii = ShortTermInteraction(dim=8, heads=2, depth=2, stride=1)
    cls, patches = torch.randn(2, 3, 8), torch.randn(2, 3, 5, 8)
    out = sii(cls, patches)
    keys = channel_shift(patches, 1)
    for t in range(3):
        ref = sii.blocks[1](sii.blocks[0](cls[:, t], keys[:, t]), keys[:, t])  # second block queries with the first
        torch.testing.assert_close(out[:, t], ref)


def test_lii_pairs_cls_with_patches_s_frames_later():
    assert lii_partner_frames(4, 2).tolist() == [2, 3, 0, 1]  # eq. 7: z_{t-2}^cls <-> z_t^p, wrapping
    assert lii_partner_frames(4, 0).tolist() == [0, 1, 2, 3]  # S = 0: no exchange (Figure 5)
    assert lii_partner_frames(4, -1).tolist() == [3, 0, 1, 2]  # the unreleased code's rotation
    torch.manual_seed(0)
    lii = LongTermInteraction(dim=8, heads=2, stride=2)
    cls, patches = torch.randn(2, 4, 8), torch.randn(2, 4, 5, 8)
    out = lii(cls, patches)
    for tau, partner in enumerate([2, 3, 0, 1]):
        torch.testing.assert_close(out[:, tau], lii.blocks[0](cls[:, tau], patches[:, partner]))  # unshifted
    assert not torch.allclose(out[:, 0], lii.blocks[0](cls[:, 0], patches[:, 0]))


def test_block_parameter_counts():
    assert cross_attention_block_params(768) == 7_087_104
    assert sum(p.numel() for p in CrossAttentionBlock(768, 12).parameters()) == 7_087_104
    assert sum(p.numel() for p in ShortTermInteraction(768, 12, depth=2).parameters()) == 14_174_208
    assert sum(p.numel() for p in ReadoutAttentionBlock(768, 12).parameters()) == 7_085_568  # CII, qkv no bias


def test_cross_attention_block_values_are_not_normalised():
    torch.manual_seed(0)
    block = CrossAttentionBlock(8, 2)
    q, y = torch.randn(3, 8), torch.randn(3, 5, 8)
    with torch.no_grad():
        block.norm_k.weight.mul_(0)  # keys constant -> uniform attention -> mean of W_v Y, unnormalised
        manual = q + block.proj(block.v(y).mean(dim=1))
        torch.testing.assert_close(block(q, y), manual + block.ffn(block.norm_ffn(manual)))


# ----------------------------------------------------------------------------- CPC
def _unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


@pytest.mark.parametrize("source, hardest_deg", [("other", 40.0), ("pooled", 80.0), ("same", 80.0)])
def test_cpc_update_takes_least_similar_sample_of_the_source(source, hardest_deg):
    cpc = CrossModalityPrototypes(num_classes=2, dim=2, update_source=source, momentum=0.2)
    feats = torch.tensor([_unit(d) for d in (80.0, 10.0, 40.0, 0.0)]) * 3.0  # norms are irrelevant
    labels = torch.tensor([0, 0, 0, 1])
    modality = torch.tensor([RGB, IR, IR, RGB])
    cpc.initialize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1, 0, 1]),
                   torch.tensor([RGB, RGB, IR, IR]))
    cpc.train()
    cpc(feats, labels, modality)
    new = cpc.memories["rgb"].features[0]
    expected = F.normalize(0.2 * torch.tensor([1.0, 0.0]) + 0.8 * torch.tensor(_unit(hardest_deg)), dim=0)
    torch.testing.assert_close(new, expected)
    assert math.isclose(float(new.norm()), 1.0, rel_tol=1e-6)
    # the IR memory's label-0 row takes its hardest sample from its own source set
    ir_src = {"other": 80.0, "pooled": 80.0, "same": 40.0}[source]
    torch.testing.assert_close(cpc.memories["ir"].features[0],
                               F.normalize(0.2 * torch.tensor([1.0, 0.0]) + 0.8 * torch.tensor(_unit(ir_src)), dim=0))


def test_cpc_loss_uses_pre_update_memory_and_contrast_modes():
    torch.manual_seed(0)
    feats, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    modality = torch.tensor([RGB] * 3 + [IR] * 3)
    for contrast in ("both", "own"):
        cpc = CrossModalityPrototypes(3, 4, contrast=contrast)
        cpc.initialize(torch.randn(6, 4), labels, modality)
        mem = {k: m.features.clone() for k, m in cpc.memories.items()}
        losses = cpc.train()(feats, labels, modality)
        rgb = slice(None) if contrast == "both" else slice(0, 3)
        ir = slice(None) if contrast == "both" else slice(3, 6)
        torch.testing.assert_close(losses["cpcl_vis"], cpcl_loss(feats[rgb], labels[rgb], mem["rgb"]))
        torch.testing.assert_close(losses["cpcl_ir"], cpcl_loss(feats[ir], labels[ir], mem["ir"]))
        assert not torch.equal(cpc.memories["rgb"].features, mem["rgb"])  # then updated in place
    with pytest.raises(RuntimeError, match="memories are empty"):
        CrossModalityPrototypes(3, 4)(feats, labels, modality)
    with pytest.raises(ValueError, match="update_source"):
        CrossModalityPrototypes(3, 4, memory="single", update_source="other")


def test_cpcl_value_and_gradcheck():
    torch.manual_seed(0)
    protos = F.normalize(torch.randn(5, 3, dtype=torch.float64), dim=1)
    feats = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 3, 3, 1])
    x = F.normalize(feats, dim=1)
    manual = -(torch.log_softmax(x @ protos.t() / 0.05, dim=1)[torch.arange(4), labels]).mean()
    torch.testing.assert_close(cpcl_loss(feats, labels, protos, 0.05), manual)
    assert torch.autograd.gradcheck(lambda f: cpcl_loss(f, labels, protos, 0.05), (feats,))
    assert torch.autograd.gradcheck(lambda f: cpcl_loss(f, labels, protos, 0.05, "batch"), (feats,))
    only = torch.log_softmax((x @ protos.t() / 0.05)[:, [0, 1, 3]], dim=1)  # identities of the batch
    torch.testing.assert_close(cpcl_loss(feats, labels, protos, 0.05, "batch"),
                               -only[torch.arange(4), torch.tensor([0, 2, 2, 1])].mean())


def test_prototype_memory_initialisation_is_normalised_label_mean():
    mem = PrototypeMemory(3, 2)
    mem.initialize(torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 5.0]]), torch.tensor([0, 0, 2]))
    torch.testing.assert_close(mem.features, torch.tensor([[0.5 ** 0.5, 0.5 ** 0.5], [0.0, 0.0], [0.0, 1.0]]))


# ----------------------------------------------------------------------------- CMCL / CII
def test_cmcl_is_zero_exactly_when_features_agree():
    torch.manual_seed(0)
    a = torch.randn(4, 6)
    assert float(cmcl_loss(a, a.clone())) == 0.0
    b = a.clone()
    b[2, 5] += 0.5
    assert math.isclose(float(cmcl_loss(a, b)), 0.25 / 4, rel_tol=1e-6)  # sum over channels, mean over PK
    assert float(cmcl_loss(a, 3.0 * a, normalize=True)) < 1e-10 < float(cmcl_loss(a, 3.0 * a))
    target, other = torch.randn(4, 6, requires_grad=True), torch.randn(4, 6, requires_grad=True)
    cmcl_loss(target, other, stop_grad=True).backward()
    assert target.grad is None and other.grad.abs().sum() > 0


def test_literal_residual_cii_has_an_input_independent_zero_and_the_default_does_not():
    """The literal CII block (residual, O_bar among the keys) reaches CMCL = 0 for every input
    once its two output layers are zero; the default readout then still measures ||O_bar - c||^2."""
    torch.manual_seed(0)
    o_bar, patches = torch.randn(3, 8, requires_grad=True), torch.randn(3, 5, 8)
    losses = {}
    for literal in (True, False):
        block = ReadoutAttentionBlock(8, 2, attend_self=literal, residual=literal)
        with torch.no_grad():
            for layer in (block.proj, block.ffn[2]):
                layer.weight.zero_()
                layer.bias.zero_()
        losses[literal] = cmcl_loss(o_bar, block(o_bar, patches))
    assert float(losses[True]) == 0.0
    (grad,) = torch.autograd.grad(losses[True], o_bar)
    assert not grad.any()  # collapsed: CMCL no longer shapes O_bar
    torch.testing.assert_close(losses[False], o_bar.detach().pow(2).sum(dim=1).mean())


def test_fuse_branches():
    s, ll = torch.ones(2, 3), 3 * torch.ones(2, 3)
    torch.testing.assert_close(fuse_branches(s, ll), 2 * torch.ones(2, 3))
    assert fuse_branches(s, ll, "concat").shape == (2, 6)
    assert fuse_branches(None, ll) is ll and fuse_branches(None, None) is None


# ----------------------------------------------------------------------------- the family
@pytest.fixture(scope="module")
def tinyclip():
    model, _ = create_clip_model("TinyCLIP-ViT-8", "tinyclip")
    return model


def _model(tinyclip, **extra) -> XReID:
    torch.manual_seed(0)
    cfg = ModelConfig(name="xreid", backbone=BackboneConfig(arch="TinyCLIP-ViT-8", pretrained="tinyclip", sie=True,
                                                            freeze_patch_embed=True), feature="cls", extra=extra)
    return XReID(cfg, NUM_CLASSES, num_cameras=3, image_size=SIZE,
                 loss_cfg=LossConfig(id_weight=0.25, triplet="batch_hard"), clip_model=copy.deepcopy(tinyclip))


def _batch(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"rgb": torch.randn(b, T, 3, *SIZE, generator=g), "ir": torch.randn(b, T, 3, *SIZE, generator=g),
            "label": torch.arange(b), "camid_rgb": torch.zeros(b, dtype=torch.long),
            "camid_ir": torch.ones(b, dtype=torch.long)}


def _fill_memories(model: XReID) -> None:
    g = torch.Generator().manual_seed(2)
    labels = torch.arange(NUM_CLASSES).repeat(2)
    modality = torch.tensor([RGB] * NUM_CLASSES + [IR] * NUM_CLASSES)
    model.cpc.initialize(torch.randn(2 * NUM_CLASSES, model.cpc.memories["rgb"].features.shape[1], generator=g),
                         labels, modality)


@pytest.mark.parametrize("sii, lii, cii", [(s, lo, c) for s in (False, True) for lo in (False, True)
                                           for c in (False, True)])
def test_all_table5_combinations_train_and_extract(tinyclip, sii, lii, cii):
    model = _model(tinyclip, sii=sii, lii=lii, cii=cii)
    _fill_memories(model)
    losses = model.train().forward_train(_batch())
    branches = [n for n, on in (("sii", sii), ("lii", lii)) if on]
    expected = {"id", "id_frame", "triplet", "triplet_proj", "cpcl_vis", "cpcl_ir"}
    expected |= {f"{k}_{n}" if k != "id_frame" else f"id_{n}_frame" for n in branches
                 for k in ("id", "triplet", "id_frame")}
    assert set(losses) == expected | ({"cmcl"} if cii else set())
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in ("mii.sii.blocks.0.q.weight", "mii.lii.blocks.0.q.weight", "mii.cii.blocks.all.qkv.weight"):
        present = name in dict(model.named_parameters())
        assert present == {"sii": sii, "lii": lii, "cii": cii}[name.split(".")[1]]
        if present:
            assert dict(model.named_parameters())[name].grad.abs().sum() > 0
    width, out_dim = model.visual.width, model.visual.output_dim
    assert model.eval().extract(_batch()["rgb"]).shape == (2, width + out_dim + (width if branches else 0))


def test_mii_is_detached_from_the_backbone_and_counts(tinyclip):
    model = _model(tinyclip)
    _fill_memories(model)
    assert model.num_parameters("mii.sii.blocks.0.") == cross_attention_block_params(model.visual.width)
    assert model.num_parameters("mii.lii.") == cross_attention_block_params(model.visual.width)
    losses = model.train().forward_train(_batch())
    (losses["id_sii"] + losses["cmcl"] + losses["triplet_lii"]).backward()
    assert all(p.grad is None for n, p in model.named_parameters() if n.startswith("visual."))  # D18
    assert model.mii.sii.blocks[0].q.weight.grad is not None


def test_extract_is_bn_feat_bn_proj_and_fused_branches(tinyclip):
    model = _model(tinyclip).eval()
    x = _batch()["rgb"]
    feats = model.forward_features(x)
    o_s = model.head_sii.bn(feats["sii"].mean(dim=1))
    o_l = model.head_lii.bn(feats["lii"].mean(dim=1))
    torch.testing.assert_close(model.extract(x), torch.cat([feats["bn_feat"], feats["bn_proj"], (o_s + o_l) / 2], 1))


def test_param_groups_follow_released_rules(tinyclip):
    model = _model(tinyclip)
    groups = model.param_groups(OptimConfig(name="adam", lr=5e-6, head_lr_mult=10.0, bias_lr_mult=2.0))
    mult = {id(p): g["lr_mult"] for g in groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert mult[id(params["visual.vit.transformer.resblocks.0.attn.in_proj_weight"])] == 1.0
    assert mult[id(params["visual.vit.transformer.resblocks.0.attn.in_proj_bias"])] == 2.0
    assert mult[id(params["classifier.weight"])] == 10.0
    assert mult[id(params["mii.sii.blocks.0.q.weight"])] == 10.0
    assert mult[id(params["mii.sii.blocks.0.proj.bias"])] == 20.0
    assert mult[id(params["head_sii.classifier.weight"])] == 100.0
    assert mult[id(params["head_lii.bn.weight"])] == 10.0
    assert id(params["visual.vit.conv1.weight"]) not in mult and id(params["bn_feat.bias"]) not in mult  # frozen
    assert math.isclose(next(g["lr"] for g in groups if g["name"] == "mii_classifier"), 5e-4)


def _write_frames(root: Path, name: str, colour: tuple[int, int, int], n: int = 3) -> tuple[str, ...]:
    paths = []
    for i in range(n):
        p = root / f"{name}_{i}.png"
        arr = np.zeros((8, 4, 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8)
        arr[: 2 + i] = 255 - arr[: 2 + i]  # frames differ inside a tracklet
        Image.fromarray(arr).save(p)
        paths.append(str(p))
    return tuple(paths)


def test_on_epoch_start_fills_memories_in_eval_mode_without_sie(tinyclip, tmp_path):
    model = _model(tinyclip, memory_refresh="once")
    rng = np.random.default_rng(0)
    train = [Tracklet(_write_frames(tmp_path, f"{pid}_{m}_{k}", tuple(int(v) for v in rng.integers(0, 255, 3))),
                      pid=pid, camid=k, modality=Modality(m))
             for pid in range(NUM_CLASSES) for m in (RGB, IR) for k in range(2)]
    data_cfg = DataConfig(height=SIZE[0], width=SIZE[1], seq_len=T, test_batch_size=7)
    from reprolib.data.video import build_test_loader

    trainer = SimpleNamespace(dataset=SimpleNamespace(train=train), cfg=SimpleNamespace(data=data_cfg),
                              device=torch.device("cpu"), amp=SimpleNamespace(dtype=None),
                              tracklet_loader=lambda tracks, sampling: build_test_loader(
                                  list(tracks), replace(data_cfg, test_sampling=sampling)))
    model.train()
    model.on_epoch_start(0, trainer)
    assert model.training and bool(model.cpc.initialized)
    model.eval()
    with torch.no_grad():
        for name, code in (("rgb", RGB), ("ir", IR)):
            tracks = [t for t in train if int(t.modality) == code]
            batch = next(iter(build_test_loader(tracks, DataConfig(height=SIZE[0], width=SIZE[1], seq_len=T,
                                                                   test_batch_size=len(tracks)))))
            feats = model.memory_features(batch["frames"])  # eval mode, no SIE
            expected = F.normalize(feats.view(NUM_CLASSES, 2, -1).mean(dim=1), dim=1)
            torch.testing.assert_close(model.cpc.memories[name].features, expected, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(model.cpc.memories["rgb"].features, model.cpc.memories["ir"].features)
    state = model.state_dict()
    assert {"cpc.initialized", "cpc.memories.rgb.features", "cpc.memories.ir.features"} <= set(state)
    before = model.cpc.memories["rgb"].features.clone()
    model.cpc.memories["rgb"].features.mul_(-1)
    model.on_epoch_start(1, trainer)  # "once": kept (and restored from a checkpoint on resume)
    torch.testing.assert_close(model.cpc.memories["rgb"].features, -before)
    model.extra = XReIDExtra.from_dict({"memory_refresh": "epoch"})
    model.on_epoch_start(1, trainer)  # "epoch": re-extracted
    torch.testing.assert_close(model.cpc.memories["rgb"].features, before, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- configs and a run
def test_configs_and_extra_validation():
    full, cpc, base = (load_config(n, profile="paper") for n in ("xreid", "xreid_cpc", "xreid_baseline"))
    for cfg in (full, cpc, base):
        XReIDExtra.from_dict(cfg.model.extra)
    assert full.model.extra["sii"] and not cpc.model.extra["sii"] and base.model.extra["update_source"] == "same"
    assert (full.optim.name, full.optim.lr, full.sched.milestones, full.train.epochs, full.train.iters_per_epoch,
            full.data.seq_len, full.data.num_ids, full.data.num_pos) == ("adam", 5e-6, (30, 50), 60, 300, 10, 4, 2)
    with pytest.raises(ValueError, match="model.extra.update_source"):
        XReIDExtra.from_dict({"memory": "single"})
    with pytest.raises(ValueError, match="model.extra.fusion"):
        XReIDExtra.from_dict({"fusion": "sum"})


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    from reprolib.data.synthetic import write_world

    return write_world(tmp_path_factory.mktemp("world") / "synthvcm", scale="smoke", seed=0, fmt="vcm",
                       workers=0, progress=False)


def test_smoke_training_run_refreshes_memories(tmp_path, smoke_root):
    from reprolib.engine import train_experiment

    cfg = load_config("xreid", profile="smoke", overrides=[f"data.root={smoke_root}", "device=cpu", "train.epochs=1",
                                                           "train.iters_per_epoch=2"])
    result = train_experiment(cfg, tmp_path / "run")
    assert result["global_step"] == 2 and set(result["eval"]) == {"ir2rgb", "rgb2ir"}
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert all({"cpcl_vis", "cpcl_ir", "cmcl"} <= set(rec["losses"]) for rec in log if "losses" in rec)
    assert all(math.isfinite(rec["total"]) for rec in log if "total" in rec)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert bool(state["cpc.initialized"])
    torch.testing.assert_close(state["cpc.memories.ir.features"].norm(dim=1),
                               torch.ones(state["cpc.memories.ir.features"].shape[0]))
