"""Benchmark: training time per step of experiment configs, measured side by side.

A run's ``train_time_s`` is the wall-clock of the whole schedule on whatever machine trained it,
under whatever else that machine was doing; two runs trained on different days (or concurrently)
are not comparable. VLD Table IX compares training times between methods, so this measures them
under identical conditions instead: each config is trained in turn, in the same process and with
the same number of threads, for its profile's full schedule of epochs but only ``iters`` steps per
epoch (every per-epoch hook still runs: CPC's and TF-CLIP's memory extraction, CLIP-ReID's stage
switch). The full schedule's time is then projected from the measurements::

    projected = sum over epochs e of (hook_e + iters_per_epoch * median step time of epoch e)

A step's time is the interval between the ends of two consecutive optimiser steps of the same
epoch: data loading, forward, backward and the optimiser update (checkpointing and evaluation are
not part of it). Nothing is written to the run store.

Run: ``python -m reprolib bench train baseline vld clipreid tfclip --profile embedded --iters 8``.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from typing import Optional, Sequence

import torch

__all__ = ["time_training", "run_benchmark", "main"]

logger = logging.getLogger(__name__)


def time_training(config: str, profile: str = "embedded", overrides: Sequence[str] = (), iters: int = 8,
                  threads: Optional[int] = None) -> dict:
    """Train ``config`` for its full epoch schedule with ``iters`` steps per epoch and project the time
    of the profile's real schedule.

    Args:
        config: config name or path.
        profile: ``smoke`` | ``embedded`` | ``paper``.
        overrides: ``key=value`` overrides (as a target row's).
        iters: steps timed per epoch (at least 2: a step's time is the gap between two steps).
        threads: torch intra-op threads (``None``: unchanged).

    Returns:
        ``{"config", "profile", "epochs", "iters_per_epoch", "timed_iters", "step_s" (median over
        all timed steps), "step_s_per_epoch", "hook_s" (all epoch-start hooks), "projected_s",
        "measured_s", "threads", "device"}`` (seconds).

    Raises:
        ValueError: ``iters`` < 2.
    """
    from reprolib.config import load_config
    from reprolib.engine.trainer import Trainer
    from reprolib.experiments.runstore import ensure_world

    if iters < 2:
        raise ValueError(f"bench train: iters must be >= 2 (a step is timed as the gap between two), got {iters}")
    if threads:
        torch.set_num_threads(threads)
    full = load_config(config, profile, list(overrides))
    cfg = load_config(config, profile, [*overrides, f"train.iters_per_epoch={iters}", "train.eval_every=0",
                                        "train.log_every=0"])
    ensure_world(cfg)
    marks: dict[int, list[float]] = defaultdict(list)
    hooks: dict[int, float] = {}

    class _TimedTrainer(Trainer):
        def on_step_end(self, record: dict) -> None:
            marks[record["epoch"]].append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="reprolib-bench-train-") as tmp:
        trainer = _TimedTrainer(cfg, tmp)
        hook = getattr(trainer.model, "on_epoch_start", None)
        if hook is not None:
            def timed_hook(epoch: int, tr) -> None:
                t0 = time.perf_counter()
                hook(epoch, tr)
                hooks[epoch] = time.perf_counter() - t0
            trainer.model.on_epoch_start = timed_hook  # instance attribute: the trainer calls this one
        t0 = time.perf_counter()
        trainer.train()
        measured = time.perf_counter() - t0
        device = str(trainer.device)
    per_epoch = {e: statistics.median(b - a for a, b in zip(m, m[1:])) for e, m in sorted(marks.items())}
    steps = [b - a for m in marks.values() for a, b in zip(m, m[1:])]
    hook_s = sum(hooks.values())
    projected = hook_s + sum(full.train.iters_per_epoch * s for s in per_epoch.values())
    out = {"config": config, "overrides": list(overrides), "profile": profile, "epochs": full.train.epochs,
           "iters_per_epoch": full.train.iters_per_epoch, "timed_iters": iters, "step_s": statistics.median(steps),
           "step_s_per_epoch": per_epoch, "hook_s": hook_s, "projected_s": projected, "measured_s": measured,
           "threads": torch.get_num_threads(), "device": device}
    logger.info("bench train %s (%s): %.3f s/step, hooks %.1f s, projected %.1f min for %d x %d steps", config,
                profile, out["step_s"], hook_s, projected / 60, full.train.epochs, full.train.iters_per_epoch)
    return out


def run_benchmark(configs: Sequence[str], profile: str = "embedded", iters: int = 8,
                  threads: Optional[int] = None) -> list[dict]:
    """:func:`time_training` of every config in turn (same process, same threads)."""
    return [time_training(c, profile, iters=iters, threads=threads) for c in configs]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``CONFIG... --profile --iters --threads``; prints JSON."""
    parser = argparse.ArgumentParser(prog="reprolib bench train", description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="+", help="config names or paths")
    parser.add_argument("--profile", default="embedded", choices=("smoke", "embedded", "paper"))
    parser.add_argument("--iters", type=int, default=8, help="steps timed per epoch (default 8)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: unchanged)")
    ns = parser.parse_args(argv)
    json.dump(run_benchmark(ns.configs, ns.profile, ns.iters, ns.threads), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
