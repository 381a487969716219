"""Unit tests of the training engine: schedulers, optimiser factory, NaN guard, checkpoints,
provenance, AMP resolution and feature extraction."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from reprolib.config import ExperimentConfig, OptimConfig, SchedulerConfig, load_config, to_dict
from reprolib.engine import (NonFiniteLossError, WarmupCosineLR, WarmupMultiStepLR, build_optimizer,
                             build_scheduler, check_finite, extract_features, load_checkpoint, resolve_amp,
                             save_checkpoint, write_provenance)
from reprolib.engine.checkpoint import Progress
from reprolib.utils import atomic_write_json, get_rng_state, read_json, set_rng_state

from _train_worker import ToyModel, ToyTrainer, toy_config


def _optimizer(*lrs: float) -> torch.optim.Optimizer:
    return torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs], lr=lrs[0])


# ----------------------------------------------------------------------------- schedulers
def test_warmup_multistep_matches_xreid_schedule():
    # X-ReID (docs/decisions/xreid.md#learning-rate-schedule): 5e-6 base, 10x group, warmup 0.1 -> 1 over 10 epochs,
    # x0.1 at 0-based epochs 30 and 50.
    sched = WarmupMultiStepLR(_optimizer(5e-6, 5e-5), milestones=(30, 50), gamma=0.1, warmup_factor=0.1,
                              warmup_epochs=10)
    expected = {0: 0.1, 1: 0.19, 9: 0.91, 10: 1.0, 29: 1.0, 30: 0.1, 49: 0.1, 50: 0.01, 59: 0.01}
    for epoch, factor in expected.items():
        base, head = sched.step(epoch)
        assert base == pytest.approx(5e-6 * factor, rel=1e-12), epoch
        assert head == pytest.approx(5e-5 * factor, rel=1e-12), epoch
    assert [g["lr"] for g in sched.optimizer.param_groups] == sched.get_last_lr()


def test_cosine_matches_vld_table():
    # VLD (docs/decisions/vld.md#v5-learning-rate-schedule): timm CosineLRScheduler(t_initial=24, warmup_t=3,
    # warmup_lr_init=lr_min=2.5e-7), base 2.5e-5 and a 25x group, warmup_prefix=False.
    sched = WarmupCosineLR(_optimizer(2.5e-5, 6.25e-4), t_initial=24, lr_min=2.5e-7, warmup_epochs=3)
    table = {0: (2.5e-7, 2.5e-7), 1: (8.5e-6, 2.085e-4), 2: (1.675e-5, 4.167e-4), 3: (2.406e-5, 6.012e-4),
             12: (1.263e-5, 3.126e-4), 23: (3.56e-7, 2.92e-6)}
    for epoch, (base, head) in table.items():
        got = sched.step(epoch)
        assert got[0] == pytest.approx(base, rel=2e-3), epoch  # the table has 4 significant digits
        assert got[1] == pytest.approx(head, rel=2e-3), epoch
    # exact formulas
    assert sched.lr_at(1)[0] == pytest.approx(2.5e-7 + (2.5e-5 - 2.5e-7) / 3, rel=1e-12)
    assert sched.lr_at(3)[0] == pytest.approx(2.5e-7 + 0.5 * (2.5e-5 - 2.5e-7) * (1 + math.cos(math.pi * 3 / 24)),
                                              rel=1e-12)
    assert sched.lr_at(24) == [2.5e-7, 2.5e-7]  # past t_initial: lr_min (cycle_limit=1)


def test_cosine_warmup_lr_init_differs_from_lr_min():
    sched = WarmupCosineLR(_optimizer(1.0), t_initial=10, lr_min=0.0, warmup_epochs=2, warmup_lr_init=0.5)
    assert sched.lr_at(0) == [0.5] and sched.lr_at(1) == [0.75]
    assert sched.lr_at(5)[0] == pytest.approx(0.5)  # cos(pi/2): halfway


def test_build_scheduler_and_state_dict_round_trip():
    opt = _optimizer(1e-3, 2e-3)
    sched = build_scheduler(opt, SchedulerConfig(name="warmup_multistep", warmup_epochs=2, warmup_factor=0.5,
                                                 milestones=(3,), gamma=0.5), epochs=5)
    sched.step(3)
    state = sched.state_dict()
    opt2 = _optimizer(1e-3, 2e-3)
    sched2 = build_scheduler(opt2, SchedulerConfig(name="warmup_multistep", warmup_epochs=2, warmup_factor=0.5,
                                                   milestones=(3,), gamma=0.5), epochs=5)
    sched2.load_state_dict(state)
    assert [g["lr"] for g in opt2.param_groups] == [5e-4, 1e-3]
    assert isinstance(build_scheduler(_optimizer(1.0), SchedulerConfig(name="cosine"), 4), WarmupCosineLR)
    with pytest.raises(ValueError, match="sched.name"):
        build_scheduler(opt, SchedulerConfig(name="poly"), epochs=5)


# ----------------------------------------------------------------------------- optimiser
@pytest.mark.parametrize("name,cls", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                      ("sgd", torch.optim.SGD)])
def test_build_optimizer_keeps_groups_and_drops_frozen(name, cls):
    model = ToyModel()
    model.body.bias.requires_grad_(False)
    opt = build_optimizer(model, OptimConfig(name=name, lr=0.1, head_lr_mult=3.0))
    assert isinstance(opt, cls)
    assert [g["name"] for g in opt.param_groups] == ["body", "head"]
    assert [g["lr"] for g in opt.param_groups] == [0.1, pytest.approx(0.3)]
    assert all(p is not model.body.bias for g in opt.param_groups for p in g["params"])
    with pytest.raises(ValueError, match="optim.name"):
        build_optimizer(model, OptimConfig(name="lamb"))


# ----------------------------------------------------------------------------- NaN guard
def test_check_finite_names_step_and_component():
    check_finite({"id": 1.0, "wrt": 0.5}, step=7, epoch=0, iteration=6)
    with pytest.raises(NonFiniteLossError, match=r"step 7 .*'wrt' = nan"):
        check_finite({"id": 1.0, "wrt": float("nan")}, step=7, epoch=0, iteration=6)


def test_trainer_stops_at_the_non_finite_step(tmp_path):
    # the toy model's 'reg' component becomes NaN at its 6th forward = step 6 (epoch 1, iteration 1)
    trainer = ToyTrainer(toy_config(), tmp_path, model=ToyModel(nan_at_call=6))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=r"step 6 \(epoch 1, iteration 1\): 'reg' = nan"):
        trainer.train()
    assert trainer.progress.global_step == 5
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())  # no NaN step taken
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5]
    assert set(log[0]["losses"]) == {"mse", "reg"}
    assert log[0]["total"] == pytest.approx(log[0]["losses"]["mse"] + log[0]["losses"]["reg"])


def test_trainer_logs_scheduled_lr_per_epoch(tmp_path):
    cfg = toy_config(epochs=3, iters_per_epoch=2)
    trainer = ToyTrainer(cfg, tmp_path)
    trainer.train()
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    # warmup_multistep: warmup 1 epoch from 0.01, milestone at epoch 2 with gamma 0.1
    assert [r["lr"] for r in log] == pytest.approx([0.05 * 0.01] * 2 + [0.05] * 2 + [0.005] * 2)
    assert [r["epoch"] for r in log] == [0, 0, 1, 1, 2, 2]
    assert trainer.progress == Progress(epoch=3, iteration=0, global_step=6)


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_weights_only(tmp_path):
    torch.manual_seed(0)
    model = ToyModel()
    cfg = OptimConfig(name="adamw", lr=1e-2)
    opt = build_optimizer(model, cfg)
    sched = WarmupCosineLR(opt, t_initial=4, lr_min=1e-5, warmup_epochs=1)
    sched.step(2)
    loss = sum(model.forward_train({"x": torch.randn(4, 8), "y": torch.randn(4, 2)}).values())
    loss.backward()
    opt.step()
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    rng = get_rng_state()
    path = save_checkpoint(tmp_path / "last.pt", model=model, optimizer=opt, scheduler=sched,
                           scaler=torch.amp.GradScaler("cpu", enabled=False),
                           progress=Progress(1, 2, 6), rng=[rng], sampler=[{"epoch": 1, "position": 2}],
                           config_hash="abc", extra={"train_time_s": 1.5})
    expected = (random.random(), float(np.random.rand()), torch.rand(3))

    raw = torch.load(path, weights_only=True)  # the weights-only unpickler accepts every entry
    assert raw["progress"] == {"epoch": 1, "iteration": 2, "global_step": 6}
    ckpt = load_checkpoint(path)
    model2 = ToyModel()
    opt2 = build_optimizer(model2, cfg)
    sched2 = WarmupCosineLR(opt2, t_initial=4, lr_min=1e-5, warmup_epochs=1)
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, model2.state_dict()[k])
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], opt2.state_dict()["state"][0]["exp_avg"])
    assert sched2.last_epoch == 2 and sched2.get_last_lr() == sched.get_last_lr()
    assert ckpt["sampler"] == [{"epoch": 1, "position": 2}] and ckpt["train_time_s"] == 1.5

    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    set_rng_state(ckpt["rng"][0])
    got = (random.random(), float(np.random.rand()), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


class _Opaque:
    pass


def test_load_checkpoint_refuses_arbitrary_objects(tmp_path):
    torch.save({"format": 1, "model": {}, "payload": _Opaque()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"evil\.pt.*pickled Python objects.*never unpickled"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_atomic_write_json_leaves_no_temporary(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 0.1 + 0.2})
    assert read_json(tmp_path / "m.json") == {"a": 0.1 + 0.2}  # bit-exact float round trip
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


# ----------------------------------------------------------------------------- provenance
def test_provenance_contents(tmp_path):
    cfg = ExperimentConfig(name="prov", seed=11)
    cfg.train.epochs = 5
    record = write_provenance(tmp_path, cfg, world_size=2, extra={"config_hash": "h"})
    reloaded = load_config(str(tmp_path / "config.yaml"), expand_env=False)
    assert to_dict(reloaded) == to_dict(cfg)
    prov = read_json(tmp_path / "provenance.json")
    assert prov == json.loads(json.dumps(record))
    assert prov["packages"]["torch"] == torch.__version__.split("+")[0] or prov["packages"]["torch"] == torch.__version__
    assert prov["packages"]["numpy"] == np.__version__
    assert set(prov["packages"]) >= {"torch", "torchvision", "open_clip", "numpy"}
    assert prov["world_size"] == 2 and prov["config_hash"] == "h"
    assert prov["hardware"]["cpu_cores"] >= 1 and prov["hardware"]["cpu"]
    assert isinstance(prov["hardware"]["gpus"], list)
    assert set(prov["git"]) == {"sha", "dirty"}
    for key in ("python", "hostname", "command", "start_time"):
        assert prov[key]
    write_provenance(tmp_path, cfg, world_size=1)  # a resume keeps the first record
    prov2 = read_json(tmp_path / "provenance.json")
    assert prov2["start_time"] == prov["start_time"] and prov2["resumed"][0]["world_size"] == 1


# ----------------------------------------------------------------------------- AMP, evaluation
def test_resolve_amp():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_amp("auto", cpu).dtype is None
    assert resolve_amp("auto", cuda).dtype is torch.bfloat16 and not resolve_amp("auto", cuda).use_scaler
    assert resolve_amp("fp16", cuda).use_scaler
    with pytest.raises(ValueError, match="fp16"):
        resolve_amp("fp16", cpu)


class _MeanModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def extract(self, x, camid=None, modality=None):
        return self.w * x.mean(dim=(1, 3)).flatten(1) + modality[:, None].float()  # (B, H*W)


def test_extract_features_concatenates_batches_and_flips():
    x = torch.randn(3, 4, 3, 2, 2)  # (B, T, 3, H, W)
    meta = {"pid": torch.tensor([5, 6, 7]), "camid": torch.tensor([1, 2, 3]), "modality": torch.tensor([1, 2, 2])}
    batches = [{k: v[:2] for k, v in {"frames": x, **meta}.items()}, {k: v[2:] for k, v in {"frames": x, **meta}.items()}]
    model = _MeanModel()
    feats, pids, camids = extract_features(model, batches, torch.device("cpu"))
    assert torch.allclose(feats, model.extract(x, modality=meta["modality"]))
    assert pids.tolist() == [5, 6, 7] and camids.tolist() == [1, 2, 3]
    assert not model.training
    flipped, _, _ = extract_features(model, batches, torch.device("cpu"), flip=True)
    expected = 0.5 * (model.extract(x, modality=meta["modality"]) + model.extract(x.flip(-1), modality=meta["modality"]))
    assert torch.allclose(flipped, expected) and not torch.allclose(flipped, feats)


def test_staged_schedule_runs_a_cosine_then_restarts_with_warmup_and_steps():
    import math

    import torch

    from reprolib.config import SchedulerConfig
    from reprolib.engine.schedulers import build_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = SchedulerConfig(name="cosine_then_multistep", switch_epoch=4, first_warmup_epochs=1, warmup_lr_init=0.1,
                          min_lr=0.0, warmup_epochs=2, warmup_factor=0.5, milestones=(3,), gamma=0.1)
    sched = build_scheduler(opt, cfg, epochs=10)
    lrs = [sched.lr_at(e)[0] for e in range(10)]
    assert lrs[0] == pytest.approx(0.1)                                  # first-stage warmup start
    assert lrs[2] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 4)))  # cosine over the 4 first epochs
    assert lrs[4] == pytest.approx(0.5) and lrs[5] == pytest.approx(0.75)  # second stage: warmup from x0.5
    assert lrs[6] == pytest.approx(1.0) and lrs[7] == pytest.approx(0.1)   # peak, then x0.1 at stage epoch 3
    with pytest.raises(ValueError, match="switch_epoch"):
        build_scheduler(opt, SchedulerConfig(name="cosine_then_multistep", switch_epoch=10), epochs=10)
