"""The rehearsal CI subset: the paper profile on stand-ins, at paper resolution, on the CPU.

One row of every model family and every dataset layout the rehearsal world is written in
(HITSZ-VCM layout B, BUPTCampus with its official tail-drop evaluation, SYSU-MM01 with its ten
trials, RegDB), each trained for one or two steps from a stand-in weights file in another of the
real formats (OpenAI TorchScript, ``.safetensors``, an open_clip ``.bin``, a local open_clip folder,
torchvision's ResNet-50 file), then evaluated with its real protocol. The configs are the paper's:
model, resolution, sequence length, losses, samplers and protocol are checked to be unchanged.

Budget (measured on the 2-core CI machine, see docs/rehearsal.md): about 1 to 1.5 minutes per
ViT-B/16 row (one step of 2 x 1 x 2 clips of 6 frames at 288x144 is about 45 s), seconds for the
ResNet-50 rows; BUPTCampus (the largest rehearsal tree) is rehearsed with CMFT's ResNet-50 streams,
X-ReID on BUPTCampus alone took 193 s.
"""
from __future__ import annotations

import dataclasses
import json

import pytest

from reprolib.config import load_config

pytestmark = pytest.mark.rehearsal

#: (config, CLIP stand-in format or "resnet50", extra overrides): one row per family and layout.
ROWS = [
    ("baseline", "torchscript", ["train.epochs=1"]),                # HITSZ-VCM layout B
    ("vld", "safetensors", ["train.epochs=1"]),
    ("xreid", "bin", ["train.epochs=1"]),                           # CPC memories initialised
    ("clipreid", "local-dir", []),                                  # stage 1 then stage 2
    ("tfclip", "torchscript", ["train.epochs=1"]),
    ("cmft+bupt", "resnet50", ["train.epochs=1"]),                  # BUPTCampus, official tail drop
    ("cmft_sysu", "resnet50", []),                                  # SYSU-MM01 ten trials; stage switch
    ("cmft_regdb", "resnet50", ["train.epochs=1"]),                 # RegDB split 1
]
#: What a rehearsal may change; everything else of the paper config must be as on real data.
CHANGED = {"train.epochs", "train.iters_per_epoch", "train.log_every", "train.ckpt_every_iters", "train.eval_every",
           "data.num_ids", "data.num_pos", "data.num_workers", "data.test_batch_size", "data.root",
           "data.bupt_eval_batch", "sched.warmup_epochs", "sched.milestones", "sched.switch_epoch",
           "sched.first_warmup_epochs", "model.extra.stage1_epochs", "model.extra.stage1_batch",
           "model.extra.warm_epochs", "model.backbone.weights_path", "device"}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and k != "extra" or k == "extra" and isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


@pytest.fixture(scope="module")
def setup():
    from reprolib.experiments.rehearsal import prepare

    return prepare()


@pytest.mark.parametrize("name,fmt,extra", ROWS, ids=[r[0] for r in ROWS])
def test_rehearsal_row_trains_and_evaluates_at_paper_shapes(name, fmt, extra, setup, tmp_path, monkeypatch):
    import torch

    from reprolib.config import to_dict
    from reprolib.workbook.session import Workbook

    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path))
    torch.set_num_threads(2)
    weights = setup.resnet_weights if fmt == "resnet50" else setup.clip_files[fmt]
    key = "resnet_weights" if fmt == "resnet50" else "clip_weights"
    wb = Workbook("paper", device="cpu", overrides=extra, rehearsal=True)
    setattr(wb, key, weights)
    cfg = wb.config(name)
    assert cfg.profile == "paper" and cfg.model.backbone.weights_path == weights
    paper = _flat(to_dict(load_config(name, "paper")))
    ours = _flat(to_dict(cfg))
    changed = {k for k in paper if paper[k] != ours.get(k)}
    assert changed <= CHANGED, sorted(changed - CHANGED)
    assert ours["data.root"] == setup.roots[cfg.data.dataset]
    run = wb.run(name)
    assert run.path.parent == tmp_path / "rehearsal" / "runs"
    for d, m in run.metrics["eval"].items():
        assert m["num_valid"] > 0 and 0 <= m["mAP"] <= 100, (d, m)
    steps = [json.loads(ln) for ln in (run.path / "train_log.jsonl").read_text().splitlines()]
    assert len(steps) == cfg.train.epochs * cfg.train.iters_per_epoch
