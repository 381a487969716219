"""``bench train``: the side-by-side training-time measurement behind VLD Table IX."""
from __future__ import annotations

import pytest

from reprolib.bench.train import time_training
from reprolib.config import load_config


def test_time_training_times_every_epoch_and_the_epoch_hooks(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path / "results"))
    full = load_config("xreid", "smoke")
    out = time_training("xreid", "smoke", iters=2)
    assert out["epochs"] == full.train.epochs and out["iters_per_epoch"] == full.train.iters_per_epoch
    assert sorted(out["step_s_per_epoch"]) == list(range(full.train.epochs))  # every epoch ran and was timed
    assert all(s > 0 for s in out["step_s_per_epoch"].values())
    assert out["hook_s"] > 0  # X-ReID re-extracts its CPC memories at every epoch start: timed through the wrapper
    # the projection uses the profile's steps per epoch, not the timed ones
    steps = sum(full.train.iters_per_epoch * s for s in out["step_s_per_epoch"].values())
    assert out["projected_s"] == pytest.approx(out["hook_s"] + steps)
    assert not (tmp_path / "results").exists()  # nothing goes to the run store


def test_time_training_needs_two_steps_per_epoch():
    with pytest.raises(ValueError, match="iters must be >= 2"):
        time_training("baseline", "smoke", iters=1)
