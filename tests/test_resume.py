"""Resume tests: an interrupted run, resumed from ``last.pt``, ends bit-identical to an
uninterrupted one (weights, per-step losses and final metrics).

* in-process, on the toy pipeline (dropout inside the model, so the RNG restore matters),
  interrupted once inside an epoch and once right after an epoch boundary;
* in a subprocess on the real smoke pipeline (synthetic HITSZ-VCM world, ``baseline`` model with
  a tiny random-init CLIP), SIGKILLed mid-epoch.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reprolib.engine import load_checkpoint

from _train_worker import RealWorker, ToyTrainer, toy_config

WORKER = Path(__file__).with_name("_train_worker.py")


class _Crash(RuntimeError):
    pass


class _CrashingTrainer(ToyTrainer):
    crash_at: int = 0

    def on_step_end(self, record: dict) -> None:
        if record["step"] == self.crash_at:
            raise _Crash(record["step"])


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("crash_at,resume_at", [(3, (0, 2, 2)), (5, (1, 0, 4))])
def test_toy_resume_is_bitwise_identical(tmp_path, crash_at, resume_at):
    cfg = toy_config(ckpt_every_iters=2)  # 3 epochs x 4 iterations; checkpoints every 2 steps
    reference = ToyTrainer(cfg, tmp_path / "full")
    ref_result = reference.fit()

    _CrashingTrainer.crash_at = crash_at
    with pytest.raises(_Crash):
        _CrashingTrainer(cfg, tmp_path / "cut").fit()
    progress = load_checkpoint(tmp_path / "cut" / "last.pt")["progress"]
    assert (progress["epoch"], progress["iteration"], progress["global_step"]) == resume_at
    torch.manual_seed(12345)  # disturb every RNG between the crash and the resume
    resumed = ToyTrainer(cfg, tmp_path / "cut")
    result = resumed.fit()

    for k, v in reference.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert result["eval"] == ref_result["eval"]
    assert result["global_step"] == ref_result["global_step"] == 12
    assert _log(tmp_path / "cut") == _log(tmp_path / "full")  # the cut-off step was logged once
    prov = json.loads((tmp_path / "cut" / "provenance.json").read_text())
    assert prov["resumed"][0]["resumed_from_step"] == resume_at[2]


def test_resume_refuses_a_changed_config(tmp_path):
    cfg = toy_config(epochs=1)
    ToyTrainer(cfg, tmp_path).fit()
    changed = toy_config(epochs=1)
    changed.optim.lr = 0.5
    with pytest.raises(ValueError, match=r"optim\.lr \(0\.05 -> 0\.5\)"):
        ToyTrainer(changed, tmp_path).fit()


# ----------------------------------------------------------------------------- real pipeline
@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    from reprolib.data.synthetic import write_world

    return write_world(tmp_path_factory.mktemp("world") / "synthvcm", scale="smoke", seed=0, fmt="vcm",
                       workers=0, progress=False)


def _overrides(data_root: Path) -> list[str]:
    return [f"data.root={data_root}", "device=cpu", "train.iters_per_epoch=4", "train.ckpt_every_iters=2",
            "model.backbone.stride=8"]  # stride: until the smoke profile sets it


def _train_in_process(run_dir: Path, data_root: Path) -> None:
    """The real smoke pipeline in this process, single-threaded like the worker."""
    from reprolib.config import load_config
    from reprolib.engine import train_experiment

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise comparisons need the worker's thread count
    try:
        train_experiment(load_config("baseline", profile="smoke", overrides=_overrides(data_root)), run_dir,
                         trainer_cls=RealWorker)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_sigkilled_run_resumes_to_identical_metrics(tmp_path, smoke_root):
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    cmd = [sys.executable, str(WORKER), "--pipeline", "real", "--run-dir", str(cut_dir), "--kill-at-step", "3",
           *(a for o in _overrides(smoke_root) for a in ("--set", o))]
    cut = subprocess.Popen(cmd, env={**os.environ, "CI": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)  # 2 epochs x 4 iterations, checkpoints every 2 steps
    _train_in_process(full_dir, smoke_root)  # the uninterrupted reference, meanwhile
    deadline = time.monotonic() + 120
    while not (cut_dir / "killme").exists():
        assert cut.poll() is None, cut.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the worker never reached step 3"
        time.sleep(0.1)
    os.kill(cut.pid, signal.SIGKILL)  # killed after step 3, whose checkpoint was never written
    cut.communicate()
    assert cut.returncode == -signal.SIGKILL
    assert not (cut_dir / "metrics.json").exists()
    assert load_checkpoint(cut_dir / "last.pt")["progress"] == {"epoch": 0, "iteration": 2, "global_step": 2}

    _train_in_process(cut_dir, smoke_root)  # resumes from last.pt
    m_full = json.loads((full_dir / "metrics.json").read_text())
    m_cut = json.loads((cut_dir / "metrics.json").read_text())
    assert m_cut["eval"] == m_full["eval"]  # exact float equality, every direction and metric
    assert set(m_full["eval"]) == {"ir2rgb", "rgb2ir"}
    assert m_cut["global_step"] == m_full["global_step"] == 8 and m_cut["num_processes"] == 1
    assert (cut_dir / "rank0.sha256").read_text() == (full_dir / "rank0.sha256").read_text()
    assert _log(cut_dir) == _log(full_dir)  # every step's loss components, bit for bit


def test_a_finished_run_keeps_its_model_not_its_optimiser_state(tmp_path):
    from reprolib.engine import train_experiment
    from reprolib.utils.io import atomic_torch_save

    cfg = toy_config(epochs=1)
    first = train_experiment(cfg, tmp_path, trainer_cls=ToyTrainer)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["finished"] is True and "optimizer" not in ckpt
    assert ckpt["model"] and ckpt["rng"] and ckpt["progress"]["epoch"] == cfg.train.epochs
    # metrics.json lost: the run is evaluated again from its model, with no training step
    (tmp_path / "metrics.json").unlink()
    again = train_experiment(cfg, tmp_path, trainer_cls=ToyTrainer)
    assert again["eval"] == first["eval"] and again["global_step"] == first["global_step"]
    # a finished checkpoint cannot continue training (its Adam moments are gone)
    ckpt["progress"]["epoch"] = 0
    atomic_torch_save(ckpt, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="cannot continue training"):
        ToyTrainer(cfg, tmp_path).fit()
