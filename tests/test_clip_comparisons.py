"""Tests of the CLIP comparison families: CLIP-ReID (two stages in one run, prompt banks, the
SupCon loss, the resumable stage-1 cache) and TF-CLIP (CLIP-Memory, SSP, TMD), at TinyCLIP size,
plus a smoke training run of each."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from reprolib.config import BackboneConfig, LossConfig, ModelConfig, OptimConfig, load_config
from reprolib.data.types import Modality
from reprolib.engine.optim import build_optimizer
from reprolib.models import create_clip_model
from reprolib.models.clipreid import CLIPReID, CLIPReIDExtra, FeatureCache, supcon_loss
from reprolib.models.prompts import bank_index
from reprolib.models.tfclip import (TFCLIP, SequenceSpecificPrompt, TemporalMemoryDiffusion, TFCLIPExtra,
                                    class_means, ssp_params, tmd_params)

T = 2
SIZE = (32, 16)  # a 4x2 TinyCLIP grid
NUM_CLASSES = 5
RGB, IR = int(Modality.RGB), int(Modality.IR)


# ----------------------------------------------------------------------------- pieces
def test_supcon_loss_matches_its_definition():
    torch.manual_seed(0)
    a, c = torch.randn(4, 3), torch.randn(5, 3)
    ya, yc = torch.tensor([0, 1, 1, 2]), torch.tensor([1, 0, 2, 1, 0])
    log_prob = (a @ c.t() / 0.5).log_softmax(dim=1)
    expected = -torch.stack([log_prob[i, yc == ya[i]].mean() for i in range(4)]).mean()
    torch.testing.assert_close(supcon_loss(a, c, ya, yc, temperature=0.5), expected)
    assert not torch.allclose(supcon_loss(c, a, yc, ya), supcon_loss(a, c, ya, yc))  # two directions
    with pytest.raises(ValueError, match="positive"):
        supcon_loss(a, c, torch.tensor([0, 1, 1, 3]), yc)


def test_bank_index():
    modality = torch.tensor([RGB, IR, IR, RGB])
    assert bank_index(modality, "per_modality").tolist() == [0, 1, 1, 0]  # BANK_NAMES: ("rgb", "ir")
    assert bank_index(modality, "shared").tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="RGB"):
        bank_index(torch.tensor([RGB, 0]), "per_modality")


def test_feature_cache_passes_and_resume():
    cache = FeatureCache(2)
    feats = torch.arange(10.0).view(5, 2)
    cache.fill(feats, torch.arange(5), torch.tensor([RGB, IR] * 2 + [RGB]))
    torch.manual_seed(0)
    seen = torch.cat([cache.next_batch(2)[1] for _ in range(2)])  # floor(5 / 2) = 2 batches per pass
    assert sorted(seen.tolist()) == sorted(set(seen.tolist())) and len(seen) == 4  # no repeat within a pass
    state = copy.deepcopy(cache.state_dict())
    rng = torch.get_rng_state()
    after = [cache.next_batch(2)[1].tolist() for _ in range(3)]  # crosses into a new pass
    restored = FeatureCache(2)  # empty buffers: resized on load
    restored.load_state_dict(state)
    torch.set_rng_state(rng)
    assert [restored.next_batch(2)[1].tolist() for _ in range(3)] == after
    restored.clear()
    assert len(restored) == 0 and restored.state_dict()["features"].shape == (0, 2)


def test_class_means_are_unnormalised():
    feats = torch.tensor([[1.0, 0.0], [3.0, 4.0], [2.0, 2.0]])
    torch.testing.assert_close(class_means(feats, torch.tensor([0, 0, 2]), 3),
                               torch.tensor([[2.0, 2.0], [0.0, 0.0], [2.0, 2.0]]))


def test_ssp_and_tmd_shapes_counts_and_dependencies():
    assert ssp_params(512) == 9_193_984 == sum(p.numel() for p in SequenceSpecificPrompt(512).parameters())
    assert tmd_params(768) == 10_042_368 == sum(p.numel() for p in TemporalMemoryDiffusion(768, 12).parameters())
    torch.manual_seed(0)
    ssp = SequenceSpecificPrompt(16, layers=2, heads=2).eval()
    memory, visual = torch.randn(3, 7, 16), torch.randn(3, 9, 16)
    out = ssp(memory, visual)
    assert out.shape == (3, 7, 16)
    assert not torch.allclose(ssp(memory + torch.randn(3, 7, 16), visual), out)  # the residual depends on M
    assert not torch.allclose(ssp(memory, torch.randn(3, 9, 16)), out)  # ... and on the video
    tmd = TemporalMemoryDiffusion(16, 2)
    tokens = torch.randn(2, 3, 5, 16)  # (B, T, L, D)
    frames = tmd(tokens)
    assert frames.shape == (2, 3, 16)
    other = tokens.clone()
    other[:, 2] += 1.0  # change frame 2 only
    changed = tmd(other)
    assert not torch.allclose(changed[:, 0], frames[:, 0])  # the message tokens diffuse across frames
    torch.testing.assert_close(changed[1:], tmd(other[1:]))  # clips are independent


# ----------------------------------------------------------------------------- the families
@pytest.fixture(scope="module")
def tinyclip():
    model, _ = create_clip_model("TinyCLIP-ViT-8", "tinyclip")
    return model


def _cfg(name: str, **extra) -> ModelConfig:
    return ModelConfig(name=name, backbone=BackboneConfig(arch="TinyCLIP-ViT-8", pretrained="tinyclip", sie=True),
                       feature="cls", extra=extra)


def _loss() -> LossConfig:
    return LossConfig(id_weight=0.25, label_smoothing=0.1, triplet="batch_hard")


def _clipreid(tinyclip, **extra) -> CLIPReID:
    torch.manual_seed(0)
    return CLIPReID(_cfg("clipreid", **extra), NUM_CLASSES, num_cameras=3, image_size=SIZE, loss_cfg=_loss(),
                    clip_model=copy.deepcopy(tinyclip))


def _tfclip(tinyclip, **extra) -> TFCLIP:
    torch.manual_seed(0)
    return TFCLIP(_cfg("tfclip", **extra), NUM_CLASSES, num_cameras=3, image_size=SIZE, loss_cfg=_loss(),
                  clip_model=copy.deepcopy(tinyclip))


def _batch(b: int = 2) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"rgb": torch.randn(b, T, 3, *SIZE, generator=g), "ir": torch.randn(b, T, 3, *SIZE, generator=g),
            "label": torch.arange(b), "camid_rgb": torch.zeros(b, dtype=torch.long),
            "camid_ir": torch.ones(b, dtype=torch.long)}


def _fill_cache(model: CLIPReID, modality: list[int]) -> None:
    g = torch.Generator().manual_seed(2)
    n = len(modality)
    model.feature_cache.fill(torch.randn(n, model.visual.output_dim, generator=g), torch.arange(n) % NUM_CLASSES,
                             torch.tensor(modality))


def _grads(model: torch.nn.Module, prefix: str) -> list:
    return [p.grad for n, p in model.named_parameters() if n.startswith(prefix) and p.requires_grad]


def test_clipreid_stages_touch_only_their_parameters(tinyclip):
    model = _clipreid(tinyclip, stage1_batch=6).train()
    _fill_cache(model, [RGB, IR] * 4)
    optimizer = build_optimizer(model, OptimConfig(name="adam", lr=1e-3, bias_lr_mult=2.0, head_lr_mult=1.0))
    visual_before = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("visual.")}
    ctx_before = model.prompt_learner["shared"].ctx.detach().clone()
    # stage 1: the batch is ignored, only the prompt contexts learn
    losses = model.forward_train(_batch())
    assert set(losses) == {"supcon_i2t", "supcon_t2i"} and all(torch.isfinite(v) for v in losses.values())
    optimizer.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    assert all(g is None for g in _grads(model, "visual.") + _grads(model, "classifier") + _grads(model, "bn_"))
    assert model.prompt_learner["shared"].ctx.grad.abs().sum() > 0
    optimizer.step()
    assert all(torch.equal(p, visual_before[n]) for n, p in model.named_parameters() if n.startswith("visual."))
    assert not torch.equal(model.prompt_learner["shared"].ctx, ctx_before)
    # the switch: text features of all identities fixed, cache freed
    model.finish_prompt_learning()
    assert int(model.stage) == 2 and len(model.feature_cache) == 0
    with torch.no_grad():
        torch.testing.assert_close(model.text_features[0], model.text_features_of("shared"))
    ctx_stage1 = model.prompt_learner["shared"].ctx.detach().clone()
    losses = model.forward_train(_batch())
    assert set(losses) == {"id", "id_proj", "triplet_last", "triplet", "triplet_proj", "i2t"}
    assert all(torch.isfinite(v) for v in losses.values())
    optimizer.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    assert model.prompt_learner["shared"].ctx.grad is None
    assert all(g is not None for g in _grads(model, "visual.vit.transformer."))
    optimizer.step()
    assert torch.equal(model.prompt_learner["shared"].ctx, ctx_stage1)  # Adam skipped it (no decay, no momentum)
    assert model.eval().extract(_batch()["rgb"]).shape == (2, model.visual.width + model.visual.output_dim)


def test_clipreid_per_modality_banks_pick_the_clip_modality(tinyclip):
    model = _clipreid(tinyclip, prompt_banks="per_modality", stage1_batch=4).train()
    assert set(model.prompt_learner) == {"rgb", "ir"}
    assert model.prompt_learner["ir"].template == "An infrared video of a {ctx} person."
    _fill_cache(model, [RGB] * 4)  # a stage-1 batch of visible features only
    sum(model.forward_train(_batch()).values()).backward()
    assert model.prompt_learner["rgb"].ctx.grad.abs().sum() > 0 and model.prompt_learner["ir"].ctx.grad is None
    model.finish_prompt_learning()
    with torch.no_grad():
        model.text_features[0].normal_()  # make the two banks clearly different
        model.text_features[1].normal_()
    batch = _batch()
    model.eval()  # BN statistics fixed so both forwards see the same features
    with torch.no_grad():
        feats = model.forward_features(torch.cat([batch["rgb"], batch["ir"]]),
                                       torch.cat([batch["camid_rgb"], batch["camid_ir"]]))
        labels = batch["label"].repeat(2)
        own = torch.cat([feats["proj"][:2] @ model.text_features[0].t(), feats["proj"][2:] @ model.text_features[1].t()])
        swapped = torch.cat([feats["proj"][:2] @ model.text_features[1].t(),
                             feats["proj"][2:] @ model.text_features[0].t()])
        i2t = model.forward_train(batch)["i2t"]
    torch.testing.assert_close(i2t, model.id_loss(own, labels))
    assert not torch.allclose(i2t, model.id_loss(swapped, labels))


def test_clipreid_param_groups_and_validation(tinyclip):
    model = _clipreid(tinyclip, stage1_lr=3.5e-4)
    groups = {g["name"]: g for g in model.param_groups(OptimConfig(name="adam", lr=5e-6, bias_lr_mult=2.0,
                                                                    head_lr_mult=1.0))}
    assert groups["prompt"]["params"] == [model.prompt_learner["shared"].ctx]
    assert math.isclose(groups["prompt"]["lr"], 3.5e-4) and math.isclose(groups["backbone_bias"]["lr"], 1e-5)
    assert not any(p is model.text_encoder.positional_embedding for g in groups.values() for p in g["params"])
    with pytest.raises(ValueError, match="model.extra.prompt_banks"):
        CLIPReIDExtra.from_dict({"prompt_banks": "two"})
    with pytest.raises(ValueError, match="model.extra.prompt_template_ir"):
        CLIPReIDExtra.from_dict({"prompt_template_ir": "infrared person"})
    with pytest.raises(RuntimeError, match="cache is empty"):
        model.train().forward_train(_batch())


@pytest.mark.parametrize("banks", ["shared", "per_modality"])
def test_tfclip_trains_and_ssp_reads_the_memory(tinyclip, banks):
    model = _tfclip(tinyclip, memory_banks=banks)
    with pytest.raises(RuntimeError, match="memory is empty"):
        model.train().forward_train(_batch())
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(4 * NUM_CLASSES, model.visual.output_dim, generator=g)
    labels, modality = torch.arange(NUM_CLASSES).repeat(4), torch.tensor([RGB, IR]).repeat_interleave(2 * NUM_CLASSES)
    model.set_memory(feats, labels, modality)
    if banks == "per_modality":
        torch.testing.assert_close(model.memory[1], class_means(feats[modality == IR], labels[modality == IR], 5))
    else:
        torch.testing.assert_close(model.memory[0], class_means(feats, labels, NUM_CLASSES))
    losses = model.train().forward_train(_batch())
    assert set(losses) == {"id", "id_proj", "id_tmd", "id_tmd_frame", "triplet", "triplet_proj", "triplet_tmd",
                           "i2t"}
    assert all(torch.isfinite(v) for v in losses.values())
    (losses["id_tmd"] + losses["triplet_tmd"]).backward(retain_graph=True)  # TMD reads detached tokens
    assert all(g is None for g in _grads(model, "visual.")) and model.tmd.message_fc.weight.grad is not None
    losses["i2t"].backward()
    assert model.ssp.layers[0].cross_attn.q.weight.grad.abs().sum() > 0
    assert model.visual.vit.proj.grad.abs().sum() > 0  # SSP's tokens are not detached
    model.eval()
    x = _batch()
    with torch.no_grad():
        f = model.forward_features(x["rgb"])
        mod = torch.full((2,), RGB)
        before = model.memory_logits(f["proj"], f["visual"], mod)
        model.memory.mul_(2.0)
        after = model.memory_logits(f["proj"], f["visual"], mod)
        ssp_delta = model.ssp(model.memory[bank_index(mod, banks)], f["visual"])
        ssp_half = model.ssp(model.memory[bank_index(mod, banks)] / 2, f["visual"])
    assert not torch.allclose(after, 2 * before) and not torch.allclose(ssp_delta, ssp_half)
    assert model.extract(x["rgb"]).shape == (2, 2 * model.visual.width + model.visual.output_dim)


def test_tfclip_param_groups_and_validation(tinyclip):
    model = _tfclip(tinyclip)
    groups = model.param_groups(OptimConfig(name="adam", lr=5e-6, bias_lr_mult=2.0, head_lr_mult=10.0))
    mult = {id(p): g["lr_mult"] for g in groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert mult[id(params["classifier_tmd.weight"])] == 10.0
    assert mult[id(params["classifier.weight"])] == 1.0 and mult[id(params["ssp.layers.0.self_attn.q.weight"])] == 1.0
    assert mult[id(params["tmd.message_fc.bias"])] == 2.0
    with pytest.raises(ValueError, match="model.extra.memory_refresh"):
        TFCLIPExtra.from_dict({"memory_refresh": "always"})


def test_configs_validate():
    for profile in ("smoke", "embedded", "paper"):
        c, t = load_config("clipreid", profile=profile), load_config("tfclip", profile=profile)
        assert CLIPReIDExtra.from_dict(c.model.extra).stage1_epochs < c.train.epochs
        TFCLIPExtra.from_dict(t.model.extra)
    c, t = load_config("clipreid", profile="paper"), load_config("tfclip", profile="paper")
    assert (c.model.extra["prompt_banks"], c.train.epochs, c.sched.milestones) == ("per_modality", 121, (30, 50))
    assert c.sched.name == "cosine_then_multistep" and c.sched.switch_epoch == c.model.extra["stage1_epochs"] == 61
    assert (t.data.height, t.data.width, t.data.seq_len, t.train.epochs, t.sched.milestones) == (256, 128, 8, 80,
                                                                                                   (30, 50, 70))


# ----------------------------------------------------------------------------- smoke runs
@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    from reprolib.data.synthetic import write_world

    return write_world(tmp_path_factory.mktemp("world") / "synthvcm", scale="smoke", seed=0, fmt="vcm",
                       workers=0, progress=False)


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]


def test_clipreid_smoke_run_switches_stage(tmp_path, smoke_root):
    from reprolib.engine import train_experiment

    cfg = load_config("clipreid", profile="smoke", overrides=[f"data.root={smoke_root}", "device=cpu",
                                                              "train.iters_per_epoch=2"])
    result = train_experiment(cfg, tmp_path / "run")
    assert result["global_step"] == 4 and set(result["eval"]) == {"ir2rgb", "rgb2ir"}
    steps = [rec for rec in _log(tmp_path / "run") if "losses" in rec]
    assert all(set(r["losses"]) == {"supcon_i2t", "supcon_t2i"} for r in steps if r["epoch"] == 0)
    assert all("i2t" in r["losses"] and "id" in r["losses"] for r in steps if r["epoch"] == 1)
    assert all(math.isfinite(r["total"]) for r in steps)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert int(state["stage"]) == 2 and state["feature_cache.features"].shape[0] == 0
    assert state["text_features"].abs().sum() > 0


def test_tfclip_smoke_run(tmp_path, smoke_root):
    from reprolib.engine import train_experiment

    cfg = load_config("tfclip", profile="smoke", overrides=[f"data.root={smoke_root}", "device=cpu", "train.epochs=1",
                                                            "train.iters_per_epoch=2"])
    result = train_experiment(cfg, tmp_path / "run")
    assert result["global_step"] == 2 and set(result["eval"]) == {"ir2rgb", "rgb2ir"}
    assert all("i2t" in r["losses"] and math.isfinite(r["total"]) for r in _log(tmp_path / "run") if "losses" in r)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert bool(state["memory_ready"]) and state["memory"].abs().sum() > 0
