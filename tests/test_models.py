"""CLIP visual encoder, heads and the baseline model (docs/decisions/vld.md#baseline-parameters; docs/decisions/xreid.md#backbone)."""
from __future__ import annotations

import math

import pytest
import torch

from reprolib.config import BackboneConfig, LossConfig, ModelConfig, OptimConfig
from reprolib.models import CLIPVisualEncoder, TINYCLIP_ARCH, create_clip_visual, create_model, list_models
from reprolib.models.clip_backbone import resize_pos_embed
from reprolib.models.heads import BNNeck, IDClassifier

H, W = 64, 32  # TinyCLIP input, patch 8 -> 8x4 grid


def tiny_backbone(**kw) -> BackboneConfig:
    return BackboneConfig(**{"arch": TINYCLIP_ARCH, "pretrained": "none", "stride": 8, **kw})


def tiny_model(loss_cfg: LossConfig | None = None, num_cameras: int = 4, **model_kw):
    backbone = model_kw.pop("backbone", tiny_backbone())
    cfg = ModelConfig(name="baseline", backbone=backbone, **model_kw)
    torch.manual_seed(0)
    return create_model(cfg, num_classes=5, num_cameras=num_cameras, image_size=(H, W), loss_cfg=loss_cfg)


def train_batch(b: int = 4, t: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"rgb": torch.randn(b, t, 3, H, W, generator=g), "ir": torch.randn(b, t, 3, H, W, generator=g),
            "label": torch.tensor([0, 0, 1, 1][:b]), "camid_rgb": torch.tensor([0, 1, 0, 1][:b]),
            "camid_ir": torch.tensor([2, 3, 2, 3][:b])}


# -- ViT-B/16 at 288x144 (the paper backbone, random init) ---------------------------------


def test_vit_b16_grid_and_vld_parameter_count():
    enc = create_clip_visual(BackboneConfig(pretrained="none"), image_size=(288, 144))
    assert isinstance(enc, CLIPVisualEncoder) and enc.grid_size == (18, 9)
    assert tuple(enc.vit.positional_embedding.shape) == (163, 768)
    assert (enc.width, enc.output_dim, enc.num_blocks) == (768, 512, 12)
    # VLD Table "Params": the visual encoder alone with the 163-token table (docs/decisions/vld.md#baseline-parameters)
    assert sum(p.numel() for p in enc.parameters()) == 86_166_528
    assert enc.vit.conv1.weight.numel() == 589_824
    assert type(enc.blocks[0].mlp.gelu).__name__ == "QuickGELU"


# -- positional embedding ------------------------------------------------------------------


def _bilinear_1d(values: list[float], n_out: int) -> list[float]:
    """Bilinear (align_corners=False) resampling along one axis, written out by hand."""
    n_in, out = len(values), []
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        w = src - i0
        out.append((1 - w) * values[i0] + w * values[i1])
    return out


def test_resize_pos_embed_is_bilinear_row_major_and_keeps_cls():
    old, new, dim = (14, 14), (18, 9), 2
    rows = torch.arange(14.0).pow(2)  # quadratic along rows: bicubic would give other values
    grid = torch.zeros(14, 14, dim)
    grid[..., 0] = rows.view(14, 1)  # channel 0 varies with the row only
    grid[..., 1] = rows.view(1, 14)  # channel 1 varies with the column only
    pos = torch.cat([torch.tensor([[7.0, -7.0]]), grid.reshape(-1, dim)])  # (197, 2)
    out = resize_pos_embed(pos, old, new)
    assert out.shape == (1 + 18 * 9, dim)
    assert out[0].tolist() == [7.0, -7.0]
    patches = out[1:].view(18, 9, dim)  # row-major
    expected_rows = torch.tensor(_bilinear_1d(rows.tolist(), 18))
    expected_cols = torch.tensor(_bilinear_1d(rows.tolist(), 9))
    torch.testing.assert_close(patches[..., 0], expected_rows.view(18, 1).expand(18, 9))
    torch.testing.assert_close(patches[..., 1], expected_cols.view(1, 9).expand(18, 9))
    assert not torch.allclose(resize_pos_embed(pos, old, new, mode="bicubic"), out)


def test_overlapping_stride_grid_and_too_large_stride_rejected():
    enc = create_clip_visual(tiny_backbone(stride=0), image_size=(H, W))  # 0: the patch size
    assert enc.grid_size == (8, 4)
    enc = create_clip_visual(tiny_backbone(stride=4), image_size=(H, W))
    assert enc.grid_size == ((H - 8) // 4 + 1, (W - 8) // 4 + 1)
    assert enc(torch.randn(1, 3, H, W))["tokens"].shape[1] == 1 + 15 * 7
    with pytest.raises(ValueError, match="model.backbone.stride=16"):
        create_clip_visual(tiny_backbone(stride=16), image_size=(H, W))


# -- encoder behaviour -------------------------------------------------------------------


def test_tiny_encoder_matches_open_clip_forward_and_block_split():
    torch.manual_seed(0)
    enc = create_clip_visual(tiny_backbone(), image_size=(H, W)).eval()
    x = torch.randn(3, 3, H, W)
    with torch.no_grad():
        out = enc(x)
        torch.testing.assert_close(out["proj"], enc.vit(x))  # open_clip's own pooled + projected output
        tokens = enc.embed(x)
        split = enc.forward_blocks(enc.forward_blocks(tokens, 0, 2), 2)
        full = enc.forward_blocks(tokens)
        torch.testing.assert_close(split, full)
        torch.testing.assert_close(enc.head(full)["cls"], out["cls"])
        penultimate = enc.forward_blocks(tokens, 0, enc.num_blocks - 1)[:, 0]
        torch.testing.assert_close(out["penultimate_cls"], penultimate)
    assert out["tokens"].shape == (3, 1 + 8 * 4, enc.width)
    assert enc.cam_target_layer is enc.blocks[-1].ln_1


def test_forward_blocks_accepts_inserted_tokens():
    enc = create_clip_visual(tiny_backbone(), image_size=(H, W)).eval()
    tokens = enc.embed(torch.randn(2, 3, H, W))
    hub = torch.randn(2, 6, enc.width)
    with torch.no_grad():
        out = enc.forward_blocks(torch.cat([tokens, hub], dim=1), 1)
    assert out.shape == (2, tokens.shape[1] + 6, enc.width)


def test_sie_changes_cls_only_and_only_when_camids_differ():
    enc = create_clip_visual(tiny_backbone(sie=True, sie_coef=1.5), image_size=(H, W), num_cameras=3).eval()
    assert tuple(enc.camera_embed.shape) == (3, enc.width)
    frame = torch.randn(1, 3, H, W)
    x = frame.expand(2, -1, -1, -1)  # two identical frames
    with torch.no_grad():
        same = enc.embed(x, torch.tensor([1, 1]))
        diff = enc.embed(x, torch.tensor([1, 2]))
        none = enc.embed(x)
    torch.testing.assert_close(same[0], same[1])
    assert not torch.allclose(diff[0, 0], diff[1, 0])  # [CLS] differs
    torch.testing.assert_close(diff[0, 1:], diff[1, 1:])  # patch tokens do not
    torch.testing.assert_close(diff[0], same[0])
    assert not torch.allclose(none[0, 0], same[0, 0])
    torch.testing.assert_close(none[0, 1:], same[0, 1:])
    with pytest.raises(ValueError, match="camera table of 3 rows"):
        enc.embed(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="num_cameras >= 1"):
        create_clip_visual(tiny_backbone(sie=True), image_size=(H, W), num_cameras=0)


def test_no_sie_table_without_sie():
    enc = create_clip_visual(tiny_backbone(), image_size=(H, W), num_cameras=12)
    assert enc.camera_embed is None


def test_frozen_patch_embed():
    model = tiny_model(backbone=tiny_backbone(freeze_patch_embed=True))
    conv = model.visual.vit.conv1.weight
    assert conv.requires_grad is False
    grouped = {id(p) for g in model.param_groups(OptimConfig()) for p in g["params"]}
    assert id(conv) not in grouped


def test_wrong_input_size_is_explained():
    enc = create_clip_visual(tiny_backbone(), image_size=(H, W))
    with pytest.raises(ValueError, match="image_size"):
        enc(torch.randn(1, 3, 32, 32))


# -- heads -------------------------------------------------------------------------------


def test_bnneck_and_classifier_init():
    bn = BNNeck(16)
    assert bn.bias.requires_grad is False and torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert BNNeck(16, bias_trainable=True).bias.requires_grad is True
    torch.manual_seed(0)
    clf = IDClassifier(512, 500)
    assert clf.bias is None
    assert abs(clf.weight.std().item() - 0.001) < 1e-4


# -- baseline ------------------------------------------------------------------------------


def test_registry_lists_baseline_and_rejects_unknown_names():
    assert "baseline" in list_models()
    with pytest.raises(KeyError, match="Did you mean 'baseline'"):
        create_model(ModelConfig(name="baselin"), 5, 4)


@pytest.mark.parametrize("feature,dim", [("proj", 128), ("cls", 160)])
def test_baseline_runs_a_tiny_video(feature, dim):
    model = tiny_model(feature=feature).eval()
    x = torch.randn(2, 3, 3, H, W)  # (B, T, C, H, W)
    with torch.no_grad():
        feats = model.forward_features(x, torch.tensor([0, 1]))
        out = model.extract(x, torch.tensor([0, 1]))
    assert feats["frame"].shape == (2, 3, dim)
    assert feats["tokens"].shape == (6, 33, 160)
    torch.testing.assert_close(feats["feat"], feats["frame"].mean(dim=1))
    torch.testing.assert_close(out, feats["feat"])  # VLD: pre-BN test feature


def test_baseline_bn_test_feature_and_dense_extract():
    model = tiny_model(extra={"test_feature": "bn"}).eval()
    clips = torch.randn(2, 3, 2, 3, H, W)  # (B, C_clips, T, C, H, W)
    with torch.no_grad():
        dense = model.extract(clips)
        per_clip = torch.stack([model.extract(clips[:, c]) for c in range(3)], dim=1)
        bn = model.forward_features(clips[:, 0])["bn_feat"]
    torch.testing.assert_close(dense, per_clip.mean(dim=1))
    torch.testing.assert_close(per_clip[:, 0], bn)


def test_baseline_extra_is_validated():
    with pytest.raises(ValueError, match="model.extra.test_feature"):
        tiny_model(extra={"test_fature": "bn"})
    with pytest.raises(ValueError, match="model.feature"):
        tiny_model(feature="mean")


@pytest.mark.parametrize("metric,key", [("wrt", "wrt"), ("batch_hard", "triplet")])
def test_baseline_forward_train_losses_and_gradients(metric, key):
    loss_cfg = LossConfig(id_weight=0.5, triplet=metric, triplet_weight=2.0)
    model = tiny_model(loss_cfg).train()
    losses = model.forward_train(train_batch())
    assert set(losses) == {"id", key}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    # weights are applied: id = 0.5 * CE, and CE at init (classifier std 0.001) is about log(5)
    assert losses["id"].item() == pytest.approx(0.5 * math.log(5), rel=0.05)
    sum(losses.values()).backward()
    for name in ("visual.vit.conv1.weight", "visual.vit.transformer.resblocks.0.attn.in_proj_weight",
                 "classifier.weight", "neck.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_baseline_drops_zero_weight_terms():
    model = tiny_model(LossConfig(triplet="none"))
    assert set(model.forward_train(train_batch())) == {"id"}


def test_param_groups_follow_vld_rule():
    model = tiny_model()
    optim = OptimConfig(lr=2.5e-5, head_lr_mult=25.0, bias_lr_mult=25.0, weight_decay=1e-4, bias_weight_decay=1e-4)
    groups = {g["name"]: g for g in model.param_groups(optim)}
    lr_of = {id(p): g["lr"] for g in groups.values() for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["visual.vit.conv1.weight"])] == pytest.approx(2.5e-5)
    assert lr_of[id(named["visual.vit.transformer.resblocks.0.attn.in_proj_bias"])] == pytest.approx(6.25e-4)
    assert lr_of[id(named["visual.vit.ln_pre.bias"])] == pytest.approx(6.25e-4)
    assert lr_of[id(named["classifier.weight"])] == pytest.approx(6.25e-4)
    assert lr_of[id(named["neck.bias"])] == pytest.approx(6.25e-4)  # 25x, not 625x
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(len(g["params"]) for g in groups.values()) == len(trainable)
    model_frozen_bn = tiny_model(extra={"bn_bias_trainable": False})
    assert id(model_frozen_bn.neck.bias) not in {id(p) for g in model_frozen_bn.param_groups(optim)
                                                 for p in g["params"]}
