"""CMFT family: temporal shift, TSM ResNet streams and weights, CCF cascade, model (docs/decisions/cmft.md#design)."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
import torchvision

from reprolib.models.cmft.losses import CMFT_LOSSES
from reprolib.config import LossConfig, ModelConfig, BackboneConfig, load_config
from reprolib.data.types import Modality
from reprolib.models import WeightsNotFoundError, create_model
from reprolib.models.cmft import resnet as cmft_resnet
from reprolib.models.cmft.ccf import CCF, CCFCascade, ScoreFusion, build_fusion
from reprolib.models.cmft.options import CCFOptions
from reprolib.models.cmft.profile import cmft_profile
from reprolib.models.cmft.resnet import TSMResNet, build_tsm_resnet, stage_specs
from reprolib.models.cmft.tsm import TemporalShift, temporal_shift
from reprolib.paper import load_numbers

H, W, T = 64, 32, 2
NARROW = "resnet50-w16"
LOSS = LossConfig(triplet="none", triplet_margin=0.1)


def cmft_model(num_classes: int = 3, **extra) -> torch.nn.Module:
    cfg = ModelConfig(name="cmft", backbone=BackboneConfig(arch=NARROW, pretrained="none"), extra=extra)
    torch.manual_seed(0)
    return create_model(cfg, num_classes=num_classes, num_cameras=2, image_size=(H, W), loss_cfg=LOSS)


def pair_batch(b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"rgb": torch.randn(b, T, 3, H, W, generator=g), "ir": torch.randn(b, T, 3, H, W, generator=g),
            "label": torch.tensor([0, 0, 1, 1][:b]), "camid_rgb": torch.zeros(b, dtype=torch.long),
            "camid_ir": torch.ones(b, dtype=torch.long)}


# -- temporal shift ------------------------------------------------------------------------


def test_shift_moves_one_eighth_of_channels_each_way_with_zero_padding():
    b, t, c = 2, 4, 16  # fold = 2
    x = torch.arange(b * t * c, dtype=torch.float).view(b * t, c, 1, 1) + 1.0  # no zeros in the input
    out = temporal_shift(x, t, 8).view(b, t, c)
    src = x.view(b, t, c)
    for i in range(t):
        future = src[:, i + 1, 0:2] if i + 1 < t else torch.zeros(b, 2)
        past = src[:, i - 1, 2:4] if i > 0 else torch.zeros(b, 2)
        assert torch.equal(out[:, i, 0:2], future)  # frame t <- t+1
        assert torch.equal(out[:, i, 2:4], past)  # frame t <- t-1
        assert torch.equal(out[:, i, 4:], src[:, i, 4:])  # 3/4 unchanged
    assert int((out == 0).sum()) == 2 * b * 2  # only the two boundary frames' moved folds are zeros


def test_shift_is_identity_for_one_frame_and_rejects_ragged_batches():
    x = torch.randn(3, 16, 2, 2)
    assert temporal_shift(x, 1) is x
    with pytest.raises(ValueError, match="multiple of the clip length"):
        temporal_shift(torch.randn(5, 16, 1, 1), 2)


def test_shift_wraps_the_residual_branch_of_every_bottleneck_conv1():
    stream = TSMResNet(base_width=16).eval()
    wrapped = [n for n, m in stream.named_modules() if isinstance(m, TemporalShift)]
    assert wrapped == [f"layer{i}.{j}.conv1" for i, n in enumerate((3, 4, 6, 3), 1) for j in range(n)]
    block = stream.layer1[0]  # has a projection shortcut
    block.conv1.n_segment = 3
    x = torch.randn(2 * 3, 16, 8, 4)
    with torch.no_grad():
        branch = block.bn1(block.conv1.net(temporal_shift(x, 3)))  # shift only before conv1
        branch = block.bn3(block.conv3(F.relu(block.bn2(block.conv2(F.relu(branch))))))
        expected = F.relu(branch + block.downsample(x))  # the shortcut sees the unshifted x
        assert torch.allclose(block(x), expected, atol=1e-5)
        block.conv1.n_segment = 1
        assert not torch.allclose(block(x), expected, atol=1e-3)  # so the shift did act


def test_single_frame_stream_equals_plain_resnet():
    torch.manual_seed(0)
    shifted = TSMResNet(base_width=16).eval()
    plain = TSMResNet(base_width=16, shift=False).eval()
    plain.load_torchvision_state_dict({k.replace(".conv1.net.", ".conv1."): v for k, v in shifted.state_dict().items()})
    x1 = torch.randn(2, 1, 3, H, W)
    x2 = torch.randn(2, 2, 3, H, W)
    with torch.no_grad():
        assert torch.allclose(shifted(x1)["conv6"], plain(x1)["conv6"])
        assert not torch.allclose(shifted(x2)["conv6"], plain(x2)["conv6"], atol=1e-4)


def test_zero_init_residual_starts_every_bottleneck_as_the_identity():
    torch.manual_seed(0)
    zero = TSMResNet(base_width=8, zero_init_residual=True).eval()
    plain = TSMResNet(base_width=8).eval()
    block_zero, block_plain = zero.layer2[1], plain.layer2[1]  # no downsample: out = relu(x + F(x))
    x = torch.rand(2 * T, block_zero.conv1.net.in_channels, 8, 4)  # (N*T, C, h, w), non-negative
    with torch.no_grad():
        assert torch.equal(block_zero(x), x)
        assert not torch.allclose(block_plain(x), x)
    assert all(float(b.bn3.weight.abs().sum()) == 0 for layer in (zero.layer1, zero.layer4) for b in layer)
    # loaded weights replace the initialisation
    zero.load_torchvision_state_dict({k.replace(".conv1.net.", ".conv1."): v for k, v in plain.state_dict().items()})
    assert torch.equal(zero.layer2[1].bn3.weight, plain.layer2[1].bn3.weight)


# -- streams and weights -------------------------------------------------------------------


def test_full_width_stream_is_torchvision_resnet50_with_last_stride_one():
    ours = TSMResNet(base_width=64)
    ref = {k: v.shape for k, v in torchvision.models.resnet50().state_dict().items() if not k.startswith("fc.")}
    mine = {k.replace(".conv1.net.", ".conv1."): v.shape for k, v in ours.state_dict().items()}
    assert mine == ref
    assert [s.channels for s in ours.specs] == [64, 256, 512, 1024, 2048]
    narrow = TSMResNet(base_width=16).eval()
    with torch.no_grad():
        taps = narrow(torch.randn(1, T, 3, H, W), taps=("conv2", "conv3", "conv4", "conv5", "conv6"))
    shapes = {k: tuple(v.shape) for k, v in taps.items()}
    assert shapes == {"conv2": (T, 16, 16, 8), "conv3": (T, 64, 16, 8), "conv4": (T, 128, 8, 4),
                      "conv5": (T, 256, 4, 2), "conv6": (T, 512, 4, 2)}  # layer4 keeps layer3's grid
    assert all(s.grid(H, W) == shapes[s.name][2:] for s in narrow.specs)


def test_weights_file_is_loaded_strictly(tmp_path):
    torch.manual_seed(3)
    source = TSMResNet(base_width=16, shift=False)
    path = tmp_path / "narrow.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    stream = build_tsm_resnet(NARROW, pretrained=str(path))  # an explicit file, for any width
    assert torch.equal(stream.layer2[1].conv1.net.weight, source.layer2[1].conv1.weight)
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(RuntimeError, match="does not fit"):
        build_tsm_resnet(NARROW, pretrained="imagenet", weights_path=str(path))


def test_missing_resnet_weights_fail_fast_with_instructions(monkeypatch, tmp_path):
    monkeypatch.delenv("RESNET50_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torchvision cache

    def not_built(*args, **kwargs):
        raise AssertionError("the network was built before the weights were resolved")

    monkeypatch.setattr(cmft_resnet, "TSMResNet", not_built)
    cfg = ModelConfig(name="cmft", backbone=BackboneConfig(arch="resnet50", pretrained="imagenet"))
    with pytest.raises(WeightsNotFoundError) as err:
        create_model(cfg, num_classes=3, num_cameras=2, loss_cfg=LOSS)
    msg = str(err.value)
    assert "RESNET50_WEIGHTS" in msg and "model.backbone.weights_path" in msg and "resnet50-0676ba61.pth" in msg
    monkeypatch.setenv("RESNET50_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsNotFoundError, match=r"\$RESNET50_WEIGHTS="):
        create_model(cfg, num_classes=3, num_cameras=2, loss_cfg=LOSS)


# -- CCF -----------------------------------------------------------------------------------


def narrow_taps(m: int = 3, seed: int = 0) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(seed)
    return tuple({s.name: torch.randn(m, s.channels, *s.grid(H, W), generator=g) for s in stage_specs(16)}
                 for _ in range(2))


def test_ccf_shapes_through_the_s2_cascade():
    cascade = CCFCascade(stage_specs(16), "S2")
    assert cascade.taps == ("conv2", "conv3", "conv4", "conv5", "conv6")
    seen = {}
    for name, ccf in cascade.stages.items():
        ccf.register_forward_hook(lambda mod, args, out, name=name: seen.__setitem__(name, tuple(out.shape)))
    out = cascade(*narrow_taps())
    # (M, N_s, 2 C_s); the final CCF reduces 512 -> 256 before attention, so 2 d = 512
    assert seen == {"conv2": (3, 128, 32), "conv3": (3, 128, 128), "conv4": (3, 32, 256),
                    "conv5": (3, 8, 512), "conv6": (3, 8, 512)}
    assert out.shape == (3, 8, 512) and cascade.out_dim == 512
    assert cascade.stages["conv3"].repeat == 2  # 2 C_2 = 32 -> C_3 = 64
    single = CCFCascade(stage_specs(16), "S6F")
    assert single(*narrow_taps()).shape == (3, 8, 256) and single.taps == ("conv6",)


def test_ccf_stage_follows_equations_4_to_6():
    torch.manual_seed(0)
    spec3, spec4 = stage_specs(16)[1], stage_specs(16)[2]
    ccf = CCF(spec4, prev_dim=2 * spec3.channels, dual=True, reduce_to=None, options=CCFOptions()).eval()
    taps_r, taps_i = narrow_taps(m=2)
    prev = torch.randn(2, 16 * 8, 128)  # F^3 on conv3's 16x8 grid
    with torch.no_grad():
        got = ccf(taps_r["conv4"], taps_i["conv4"], prev, (16, 8))
        g = F.avg_pool2d(prev.transpose(1, 2).reshape(2, 128, 16, 8), 2).flatten(2).transpose(1, 2)  # (2, 32, 128)
        z1 = taps_r["conv4"].flatten(2).transpose(1, 2) * g  # eq. 6
        z2 = taps_i["conv4"].flatten(2).transpose(1, 2) * g
        a, b = ccf.branch_rgb[0], ccf.branch_ir[0]
        z12 = a.norm(a.attn(z1, z2, z2)[0] + z1)  # eq. 5, RGB queries
        z21 = b.norm(b.attn(z2, z1, z1)[0] + z2)  # eq. 5, IR queries
        u = torch.cat([z12, z21], dim=-1)
        assert torch.allclose(got, ccf.fuse_norm(ccf.fuse(u) + u), atol=1e-5)  # eq. 4


def test_score_fusions_are_normalised_posteriors():
    lr, li = torch.randn(3, 5), torch.randn(3, 5)
    pr, pi = lr.softmax(1), li.softmax(1)
    avg = ScoreFusion("average")(lr, li).exp()
    mul = ScoreFusion("product")(lr, li).exp()
    assert torch.allclose(avg, (pr + pi) / 2, atol=1e-6)
    assert torch.allclose(mul, pr * pi / (pr * pi).sum(1, keepdim=True), atol=1e-6)
    assert build_fusion("concat", stage_specs(16)).fc.in_features == 2 * 512


@pytest.mark.parametrize("variant, exact, paper_row", [("S6F", 8_394_752, "CMFT_S6F"), ("S2", 33_395_328, "CMFT_S2")])
def test_fusion_parameter_counts_reproduce_the_paper(variant, exact, paper_row):
    numbers = load_numbers("cmft")
    paper = numbers[(numbers["row"] == paper_row) & (numbers["metric"] == "params_M")]["value"].item()
    params = cmft_profile(variant, flops=False)["params"]
    assert params == exact
    assert round(params / 1e6, 2) == paper  # 8.39 M and 33.40 M


def test_s6f_macs_per_frame_pair_match_the_hand_count():
    n, c, d = 16 * 8, 2048, 1024  # Conv6 tokens at 256x128 with last stride 1
    prof = cmft_profile("S6F")
    paper_convention = 2 * n * c * d + 4 * n * d * d + 4 * n * d  # FC pair, MHA projections, affine-free LN
    assert prof["flops"] == paper_convention
    assert prof["flops_full"] == paper_convention + 2 * n * n * d  # + q.k^T and attn.v


def test_fusion_parameter_counts_of_the_options():
    assert cmft_profile("S2", options=CCFOptions(align="linear"), flops=False)["params"] == 33_395_328 + 128 * 256 + 256
    affine = cmft_profile("S6F", options=CCFOptions(single_branch_ln_affine=True), flops=False)["params"]
    assert affine == 8_394_752 + 2 * 1024
    assert cmft_profile("D6F", flops=False)["params"] == cmft_profile("S6", flops=False)["params"] == 16_797_696


# -- model ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["S5", "S6F", "S2", "score_mul", "concat"])
def test_forward_train_gives_finite_losses_and_gradients(variant):
    model = cmft_model(variant=variant).train()
    losses = model.forward_train(pair_batch())
    assert set(losses) == {"id", "cross"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    for name in ("stream_rgb.layer4.2.conv3.weight", "stream_ir.layer4.2.conv3.weight", "classifier.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    fusion_grads = [p.grad for p in model.fusion.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in fusion_grads)
    if variant in ("S5", "S2"):  # the earliest CCF reaches the loss through the eq. 6 modulation
        first = next(iter(model.fusion.stages.values()))
        assert first.fuse.weight.grad.abs().sum() > 0


def test_features_dict_and_shared_heads():
    model = cmft_model(variant="S5").train()
    features, logits = model.train_features(pair_batch())
    assert {k: tuple(v.shape) for k, v in features.items()} == {
        "rgb": (4, 512), "ir": (4, 512), "fused": (4, 512), "labels": (4,),
        "rgb_bn": (4, 512), "ir_bn": (4, 512), "fused_bn": (4, 512)}
    assert model.classifier_fused is None and logits["fused"].shape == (4, 3)  # 2 d = C_6: shared classifier
    s6f = cmft_model(variant="S6F")
    assert s6f.classifier_fused.in_features == 256  # S6F's 1024-d-like fused feature: its own classifier
    score, _ = cmft_model(variant="score_avg").train_features(pair_batch())
    assert "fused" not in score


def test_progressive_stage_switch_selects_the_configured_losses():
    model = cmft_model(warm_epochs=2, losses={"stage1": {"cross": 1.0}, "stage2": {"cross": 0.0}})
    model.on_epoch_start(1, None)
    assert set(model.forward_train(pair_batch())) == {"id", "cross"}
    model.on_epoch_start(2, None)
    assert int(model.stage) == 2 and "stage" in model.state_dict()
    assert set(model.forward_train(pair_batch())) == {"id"}


def test_losses_plug_in_by_name_from_the_cmft_loss_table(monkeypatch):
    seen = {}

    def fake(features, scale=1.0):
        seen.update(keys=set(features), scale=scale)
        return scale * (features["rgb"] - features["ir"]).pow(2).mean()

    monkeypatch.setitem(CMFT_LOSSES, "fake", fake)
    model = cmft_model(losses={"stage1": {"fake": 0.5}}, loss_options={"fake": {"scale": 2.0}})
    losses = model.forward_train(pair_batch())
    assert set(losses) == {"id", "fake"} and seen["scale"] == 2.0
    assert seen["keys"] == {"rgb", "ir", "fused", "labels", "rgb_bn", "ir_bn", "fused_bn"}
    with pytest.raises(ValueError, match=r"model.extra.losses.stage2: unknown CMFT loss 'nope'"):
        cmft_model(losses={"stage2": {"nope": 0.3}})


def test_p1_routes_each_clip_through_its_own_stream_and_p2_fuses():
    model = cmft_model().eval()
    w_rgb, w_ir = model.stream_rgb.conv1.weight, model.stream_ir.conv1.weight
    assert torch.equal(w_rgb, w_ir) and w_rgb.data_ptr() != w_ir.data_ptr()  # same init, independent weights
    x = pair_batch()["rgb"]
    rgb, ir = int(Modality.RGB), int(Modality.IR)
    with torch.no_grad():
        w_ir.neg_()  # make the streams differ, so that routing is visible
        mixed = model.extract(x, None, torch.tensor([rgb, ir, rgb, ir]))
        all_rgb = model.extract(x, None, torch.full((4,), rgb))
        all_ir = model.extract(x, None, torch.full((4,), ir))
        assert torch.allclose(mixed[0::2], all_rgb[0::2], atol=1e-5)
        assert torch.allclose(mixed[1::2], all_ir[1::2], atol=1e-5)
        assert not torch.allclose(all_rgb, all_ir, atol=1e-4)
    with pytest.raises(ValueError, match="modality codes"):
        model.extract(x)
    p2 = cmft_model(eval_protocol="p2").eval()
    with torch.no_grad():
        assert p2.extract(x).shape == (4, 512)


def test_config_profiles_and_validation():
    for profile in ("smoke", "embedded", "paper"):
        cfg = load_config("cmft", profile=profile)
        assert cfg.model.name == "cmft" and cfg.loss.triplet == "none"
    assert load_config("cmft", profile="smoke").model.backbone.arch == NARROW
    paper = load_config("cmft", profile="paper")
    assert paper.model.backbone.arch == "resnet50" and (paper.data.height, paper.data.width) == (256, 128)
    with pytest.raises(ValueError, match="model.extra.variant"):
        cmft_model(variant="S7")
    with pytest.raises(ValueError, match="model.extra.eval_protocol"):
        cmft_model(variant="score_avg", eval_protocol="p2")
    with pytest.raises(ValueError, match="model.backbone.arch"):
        create_model(ModelConfig(name="cmft", backbone=BackboneConfig(arch="resnet18", pretrained="none")),
                     num_classes=3, num_cameras=2, loss_cfg=LOSS)
    with pytest.raises(ValueError, match="loss.triplet"):
        create_model(ModelConfig(name="cmft", backbone=BackboneConfig(arch=NARROW, pretrained="none")),
                     num_classes=3, num_cameras=2, loss_cfg=LossConfig())
