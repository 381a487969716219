"""Tests of the VLD family: IMLP prompts and the truncated text encoder, STH/STA, the loss terms,
the reduction to the baseline, parameter groups and counts, and a smoke training run."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from reprolib.bench.text import build_text_tower
from reprolib.config import BackboneConfig, LossConfig, ModelConfig, OptimConfig, load_config
from reprolib.models import create_clip_model
from reprolib.models.baseline import CLIPBaseline
from reprolib.models.prompts import FrozenTextEncoder, PromptLearner, resolve_template, tokenize_template
from reprolib.models.vld.stp import SpatialTemporalAggregation, SpatialTemporalHub, SpatialTemporalPrompting
from reprolib.models.vld import VLD, VLDExtra

T = 3  # clip length of the model tests
SIZE = (32, 16)  # small frames: a 4x2 TinyCLIP grid
NUM_CLASSES = 5


@pytest.fixture(scope="module")
def tinyclip():
    """The shipped TinyCLIP (4 blocks, text context 32); tests deep-copy it before use."""
    model, _ = create_clip_model("TinyCLIP-ViT-8", "tinyclip")
    return model


def _model_cfg(**extra) -> ModelConfig:
    return ModelConfig(name="vld", backbone=BackboneConfig(arch="TinyCLIP-ViT-8", pretrained="tinyclip"),
                       feature="cls", extra={"hub_layer": 1, **extra})


def _vld(tinyclip, seq_len: int = T, loss_cfg=None, **extra) -> VLD:
    torch.manual_seed(0)
    return VLD(_model_cfg(**extra), NUM_CLASSES, num_cameras=3, image_size=SIZE, loss_cfg=loss_cfg,
               clip_model=copy.deepcopy(tinyclip), seq_len=seq_len)


def _batch(b: int = 4, t: int = T) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"rgb": torch.randn(b, t, 3, *SIZE, generator=g), "ir": torch.randn(b, t, 3, *SIZE, generator=g),
            "label": torch.tensor([0, 0, 3, 3][:b]), "camid_rgb": torch.zeros(b, dtype=torch.long),
            "camid_ir": torch.ones(b, dtype=torch.long)}


# ----------------------------------------------------------------------------- IMLP
def _encoders_agree(tower, num_prompts: int) -> None:
    torch.manual_seed(0)
    learner = PromptLearner(tower.token_embedding, num_prompts, tower.context_length)
    learner.ctx.data.normal_(std=0.5)  # well away from the template, per identity
    eot = learner.eot_index()
    full, truncated = FrozenTextEncoder(tower, truncate=False), FrozenTextEncoder(tower, truncate=True)
    with torch.no_grad():
        prompts = learner()  # (C, L, d_text)
        ref, fast = full(prompts, eot), truncated(prompts, eot)
        assert fast.shape == (num_prompts, tower.text_projection.shape[1])
        assert learner.eot_position + 1 < tower.context_length  # truncation really drops tokens
        torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)
        # sensitivity: the features do depend on the ctx tokens, and (causality) not on the padding
        changed = prompts.clone()  # (random noise: a uniform shift would be removed by the LayerNorms)
        changed[:, learner.eot_position + 1:] += torch.randn_like(changed[:, learner.eot_position + 1:])
        torch.testing.assert_close(full(changed, eot), ref, rtol=0, atol=1e-5)
        changed[:, learner.ctx_start] += torch.randn_like(changed[:, learner.ctx_start])
        assert (full(changed, eot) - ref).abs().max() > 1e-3


def test_truncated_text_encoder_equals_full_context_tinyclip(tinyclip):
    _encoders_agree(copy.deepcopy(tinyclip), num_prompts=7)


def test_truncated_text_encoder_equals_full_context_vit_b16():
    tower = build_text_tower("ViT-B-16-quickgelu")  # random init, context 77, 12 layers
    assert tower.context_length == 77
    _encoders_agree(tower, num_prompts=3)


@pytest.mark.parametrize("index, ctx_start, eot", [(1, 1, 7), (2, 2, 8), (3, 2, 14), (4, 2, 15)])
def test_prompt_splicing_places_ctx_at_the_x_tokens(tinyclip, index, ctx_start, eot):
    # token counts of the four Table VII templates (docs/decisions/vld.md#prompt-template-and-tokens): 8, 9, 15, 16
    emb = tinyclip.token_embedding
    learner = PromptLearner(emb, 3, tinyclip.context_length, template=index, n_ctx=4)
    assert (learner.ctx_start, learner.eot_position) == (ctx_start, eot)
    ids, _, _ = tokenize_template(resolve_template(index), 4, tinyclip.context_length)
    x_id = int(ids[ctx_start])
    assert ids[ctx_start:ctx_start + 4].tolist() == [x_id] * 4 and x_id not in ids[:ctx_start].tolist()
    prompts = learner()  # (3, 32, 64)
    assert prompts.shape == (3, tinyclip.context_length, emb.weight.shape[1])
    with torch.no_grad():
        template = emb(ids)  # (32, 64)
    for c in range(3):
        assert torch.equal(prompts[c, ctx_start:ctx_start + 4], learner.ctx[c])
        assert torch.equal(prompts[c, :ctx_start], template[:ctx_start])
        assert torch.equal(prompts[c, ctx_start + 4:], template[ctx_start + 4:])
    assert learner.eot_index().tolist() == [eot] * 3


def test_prompt_template_errors(tinyclip):
    with pytest.raises(ValueError, match="Table VII"):
        resolve_template(5)
    with pytest.raises(ValueError, match="ctx"):
        resolve_template("a person")
    with pytest.raises(ValueError, match="context holds 32"):
        PromptLearner(tinyclip.token_embedding, 2, 32, template="A {ctx} " + "very " * 30 + "tall person.")


# ----------------------------------------------------------------------------- STH / STA
def test_hub_insert_and_transpose_semantics():
    b, t, length, d = 2, 3, 5, 4
    sth = SpatialTemporalHub(t, d, start_layer=1, num_blocks=4)
    tokens = torch.randn(b * t, length, d)
    with_hub = sth.insert(tokens)  # (6, 8, 4)
    assert with_hub.shape == (b * t, length + t, d)
    assert torch.equal(with_hub[:, :length], tokens)
    hub = with_hub[:, length:].reshape(b, t, t, d)  # (clip, frame, slot, D)
    for clip in range(b):
        assert torch.equal(hub[clip], sth.weight.data)  # frame t holds row t of H
    swapped = sth.transpose(with_hub)
    assert torch.equal(swapped[:, :length], tokens)
    hub_t = swapped[:, length:].reshape(b, t, t, d)
    for frame in range(t):
        for slot in range(t):  # frame t, slot k now holds what frame k held in slot t
            assert torch.equal(hub_t[:, frame, slot], hub[:, slot, frame])
    assert torch.equal(sth.transpose(swapped), with_hub)
    body, hub_tokens = sth.split(swapped)
    assert body.shape == (b * t, length, d) and hub_tokens.shape == (b * t, t, d)


def test_hub_transpose_schedule_and_validation():
    paper = SpatialTemporalHub(6, 8, start_layer=9, num_blocks=12)
    assert [blk for blk in range(12) if paper.transposes_before(blk)] == [10, 11]
    s0 = SpatialTemporalHub(6, 8, start_layer=0, num_blocks=12)
    assert [blk for blk in range(12) if s0.transposes_before(blk)] == list(range(1, 12))
    quirk = SpatialTemporalHub(6, 8, start_layer=0, num_blocks=12, as_released=True)
    assert [blk for blk in range(12) if quirk.transposes_before(blk)] == list(range(1, 11))  # no 11
    assert SpatialTemporalHub(6, 8, 5, 12, as_released=True).transposes_before(11)  # quirk only at s = 0
    for bad in (-1, 11):
        with pytest.raises(ValueError, match="hub_layer"):
            SpatialTemporalHub(6, 8, bad, 12)


def test_hub_travels_through_the_blocks_with_transposes(tinyclip):
    model = _vld(tinyclip, use_imlp=False)
    visual, s = model.visual, model.extra.hub_layer
    seen: dict[int, tuple] = {}
    hooks = [blk.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, (i[0].detach(), o.detach())))
             for k, blk in enumerate(visual.blocks)]
    try:
        feats = model.forward_features(_batch()["rgb"])
    finally:
        for h in hooks:
            h.remove()
    length = visual.num_tokens
    assert [seen[k][0].shape[1] for k in range(visual.num_blocks)] == [length] * s + [length + T] * (4 - s)
    for k in range(s + 1, visual.num_blocks):  # block k's hub input = transpose of block k-1's hub output
        assert torch.equal(seen[k][0], model.stp.sth.transpose(seen[k - 1][1]))
    hub_in = seen[s][0][:, length:].reshape(4, T, T, -1)
    assert torch.equal(hub_in[1], model.stp.sth.weight.data)
    assert feats["tokens"].shape == (4 * T, length, visual.width)  # hub tokens removed
    assert feats["hub"].shape == (4, visual.width) and feats["feat"].shape == (4, visual.width)


def test_sta_shape_permutation_invariance_and_dependence_on_hub():
    torch.manual_seed(0)
    norm = torch.nn.LayerNorm(16)
    sta = SpatialTemporalAggregation(16, 4)
    cls, hub = torch.randn(2, 3, 16), torch.randn(2, 9, 16)
    out = sta(cls, hub, norm)
    assert out.shape == (2, 3, 16)
    torch.testing.assert_close(sta(cls, hub[:, torch.randperm(9)], norm), out)  # no positional encoding
    assert (sta(cls, hub + torch.randn_like(hub), norm) - out).abs().max() > 1e-3


def test_f_hub_depends_on_the_hub(tinyclip):
    model = _vld(tinyclip, use_imlp=False).eval()
    x = _batch()["rgb"]
    with torch.no_grad():
        before = model.forward_features(x)
        model.stp.sth.weight.add_(torch.randn_like(model.stp.sth.weight))
        after = model.forward_features(x)
    assert (after["hub"] - before["hub"]).abs().max() > 1e-3
    assert (after["feat"] - before["feat"]).abs().max() > 1e-4  # the hub also reaches every [CLS]


def test_stp_parameter_count_matches_the_paper():
    # docs/decisions/vld.md#stp-parameters: H 6*6*768 + MHA_sta 2,362,368 = 2,390,016 (+2.39M); T = 10: +2.44M
    stp = SpatialTemporalPrompting(6, 768, 12, start_layer=9, num_blocks=12)
    assert sum(p.numel() for p in stp.parameters()) == 2_390_016
    assert sum(p.numel() for p in SpatialTemporalPrompting(10, 768, 12, 9, 12).parameters()) == 2_439_168
    assert sum(p.numel() for p in stp.sta.attn.parameters()) == 2_362_368


def test_model_parameter_delta_is_stp_plus_its_head(tinyclip):
    full, plain = _vld(tinyclip, use_imlp=False), _vld(tinyclip, use_imlp=False, use_stp=False)
    d, heads = full.visual.width, full.visual.blocks[0].attn.num_heads
    stp = T * T * d + 4 * d * d + 4 * d  # H + MHA (in_proj, out_proj, biases)
    head = 2 * d + d * NUM_CLASSES  # neck_hub (BN weight, bias) + classifier_hub
    assert heads == 4 and full.num_parameters("stp.") == stp
    assert full.num_parameters() - plain.num_parameters() == stp + head


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize("extra_terms, expected", [
    (True, {"id", "wrt", "id_proj", "wrt_last", "wrt_proj", "v2t", "id_hub", "wrt_hub"}),
    (False, {"id", "wrt", "v2t", "id_hub", "wrt_hub"}),
])
def test_forward_train_terms_and_gradients(tinyclip, extra_terms, expected):
    model = _vld(tinyclip, clipreid_extra_terms=extra_terms)
    losses = model.forward_train(_batch())
    assert set(losses) == expected
    assert all(v.dim() == 0 and math.isfinite(float(v.detach())) for v in losses.values())
    sum(losses.values()).backward()
    assert model.prompt_learner.ctx.grad is not None and model.prompt_learner.ctx.grad.abs().sum() > 0
    assert model.stp.sth.weight.grad is not None and model.stp.sth.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.text_encoder.parameters())
    # L_v2t's softmax runs over all C prototypes: every identity's context is trained, not only 0 and 3
    assert all(model.prompt_learner.ctx.grad[c].abs().sum() > 0 for c in range(NUM_CLASSES))


def test_v2t_uses_raw_dot_product_and_lambda1(tinyclip):
    model = _vld(tinyclip, use_stp=False, clipreid_extra_terms=False, lambda1=0.5).eval()
    batch = _batch()
    with torch.no_grad():
        losses = model.forward_train(batch)
        f_proj = model.forward_features(torch.cat([batch["rgb"], batch["ir"]]))["proj"]  # (8, d)
        text = model.text_features()  # (C, d)
        labels = torch.cat([batch["label"], batch["label"]])
        expected = 0.5 * torch.nn.functional.cross_entropy(f_proj @ text.t(), labels)
    torch.testing.assert_close(losses["v2t"], expected)
    cosine = _vld(tinyclip, use_stp=False, v2t_similarity="cosine", v2t_scale=10.0)
    logits = cosine.v2t_logits(torch.randn(2, text.shape[1]), text)
    assert logits.abs().max() <= 10.0 + 1e-4


def test_without_imlp_and_stp_the_losses_equal_the_baseline(tinyclip):
    loss_cfg = LossConfig()
    base_cfg = ModelConfig(name="baseline", backbone=BackboneConfig(arch="TinyCLIP-ViT-8", pretrained="tinyclip"),
                           feature="cls")
    baseline = CLIPBaseline(base_cfg, NUM_CLASSES, 3, image_size=SIZE, loss_cfg=loss_cfg,
                            clip_model=copy.deepcopy(tinyclip))
    vld = _vld(tinyclip, loss_cfg=loss_cfg, use_imlp=False, use_stp=False, clipreid_extra_terms=False)
    vld.load_state_dict(baseline.state_dict(), strict=True)  # same parameter names, nothing extra
    batch = _batch()
    ref, got = baseline.forward_train(batch), vld.forward_train(batch)
    assert set(got) == set(ref) == {"id", "wrt"}
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=0)
    torch.testing.assert_close(vld.extract(batch["rgb"]), baseline.extract(batch["rgb"]))


def test_test_feature_is_cls_and_hub_concatenated(tinyclip):
    model = _vld(tinyclip, use_imlp=False).eval()
    x = _batch()["rgb"]
    with torch.no_grad():
        feats, test = model.forward_features(x), model.extract(x)
        dense = model.extract(torch.stack([x, x], dim=1))  # (B, 2 clips, T, ...)
    assert test.shape == (4, 2 * model.visual.width)
    torch.testing.assert_close(test, torch.cat([feats["feat"], feats["hub"]], dim=1))
    torch.testing.assert_close(dense, test, rtol=1e-5, atol=1e-5)
    imlp_only = _vld(tinyclip, use_stp=False).eval()
    assert imlp_only.extract(x).shape == (4, imlp_only.visual.width)


def test_param_groups_follow_vld_lr_rule(tinyclip):
    model = _vld(tinyclip)
    optim = OptimConfig(lr=2.5e-5, head_lr_mult=25.0, bias_lr_mult=25.0)
    groups = {g["name"]: g for g in model.param_groups(optim)}
    ids = {name: {id(p) for p in g["params"]} for name, g in groups.items()}
    named = dict(model.named_parameters())
    where = {n: next((g for g, members in ids.items() if id(p) in members), None) for n, p in named.items()}
    assert where["prompt_learner.ctx"] == "head" and groups["head"]["lr"] == pytest.approx(6.25e-4)
    assert where["classifier_hub.weight"] == "head" and where["neck_hub.weight"] == "head"
    assert where["stp.sth.weight"] == "backbone" and where["stp.sta.attn.in_proj_weight"] == "backbone"
    assert where["stp.sta.attn.in_proj_bias"] == "backbone_bias"
    assert groups["backbone_bias"]["lr"] == pytest.approx(6.25e-4)
    assert groups["backbone"]["lr"] == pytest.approx(2.5e-5)
    assert all(where[n] is None for n in named if n.startswith("text_encoder."))


# ----------------------------------------------------------------------------- config
def test_extra_validation_names_the_key(tinyclip):
    with pytest.raises(ValueError, match="did you mean 'model.extra.hub_layer'"):
        VLDExtra.from_dict({"hub_layers": 9})
    with pytest.raises(ValueError, match="model.extra.use_imlp: expected true/false"):
        VLDExtra.from_dict({"use_imlp": 1})
    with pytest.raises(ValueError, match="needs f_H"):
        VLDExtra.from_dict({"use_stp": False, "test_feature": "cls_hub"})
    with pytest.raises(ValueError, match="seq_len"):
        VLD(_model_cfg(), NUM_CLASSES, 3, image_size=SIZE, clip_model=copy.deepcopy(tinyclip))
    with pytest.raises(ValueError, match="hub_layer=9"):  # the paper's block does not exist in TinyCLIP
        _vld(tinyclip, hub_layer=9)


def test_configs_are_table_iii_rows():
    full, imlp, stp = (load_config(n, profile="paper") for n in ("vld", "vld_imlp", "vld_stp"))
    assert full.model.name == imlp.model.name == stp.model.name == "vld"
    assert (full.model.extra["use_imlp"], full.model.extra["use_stp"]) == (True, True)
    assert (imlp.model.extra["use_imlp"], imlp.model.extra["use_stp"]) == (True, False)
    assert (stp.model.extra["use_imlp"], stp.model.extra["use_stp"]) == (False, True)
    assert full.model.extra["hub_layer"] == 9 and load_config("vld", profile="smoke").model.extra["hub_layer"] == 1
    assert full.eval.distance == "inner" and full.optim.head_lr_mult == 25.0 and full.optim.lr == 2.5e-5
    for cfg in (full, imlp, stp):
        VLDExtra.from_dict(cfg.model.extra)


# ----------------------------------------------------------------------------- smoke training
@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    from reprolib.data.synthetic import write_world

    return write_world(tmp_path_factory.mktemp("world") / "synthvcm", scale="smoke", seed=0, fmt="vcm",
                       workers=0, progress=False)


def test_smoke_training_run(tmp_path, smoke_root):
    from reprolib.engine import train_experiment

    cfg = load_config("vld", profile="smoke", overrides=[f"data.root={smoke_root}", "device=cpu", "train.epochs=1",
                                                         "train.iters_per_epoch=2"])
    result = train_experiment(cfg, tmp_path / "run")  # the engine passes data.seq_len to the family
    assert result["global_step"] == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [len(rec["losses"]) for rec in log if "losses" in rec] == [8, 8]  # every term, every step
    assert all(math.isfinite(rec["total"]) for rec in log if "total" in rec)
    assert set(result["eval"]) == {"ir2rgb", "rgb2ir"}
