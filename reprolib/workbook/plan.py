"""What each notebook costs before it runs: ``python -m reprolib plan <notebook>|all --profile paper``.

Per notebook and per run it trains: the steps of its schedule, the frames of one step, the training
FLOPs of one step and an estimated wall time; then totals per notebook and for the whole workbook. A
run that several notebooks share (the full X-ReID model in Tables 1, 3 and 5) is counted once in the
workbook total, at the first notebook that asks for it; runs already in the store are marked and not
counted.

How the numbers are made (no GPU needed, nothing trains):

* **FLOPs per step** = 6 x MACs per frame x frames per step: the MACs of one frame's forward pass are
  counted by the profiler (:func:`reprolib.experiments.costs.config_cost`, the ``full`` convention:
  every conv, linear, LayerNorm and the attention products), 2 FLOPs per MAC, and the backward pass
  taken as twice the forward. Frames per step = 2 modalities x ``data.num_ids`` x ``data.num_pos`` x
  ``data.seq_len``. The frozen text encoders, memory passes (X-ReID's CPC, TF-CLIP's memory,
  CLIP-ReID's cache) and the evaluation are not counted: the estimate is a lower bound of compute.
* **Time** = FLOPs / a *stated* sustained throughput (``--tflops``, default 100 TFLOP/s: about a tenth
  of an H100's dense bf16 peak, what small-batch ViT-B/16 training with a data loader sustains; an
  assumption, not a measurement). No calibration on a real device is stored yet; the output says so.
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from typing import Any, Optional, Sequence

import pandas as pd

__all__ = ["plan_target", "plan", "main", "DEFAULT_TFLOPS"]

log = logging.getLogger(__name__)

#: Assumed sustained training throughput (TFLOP/s) when no calibration exists (see the module docstring).
DEFAULT_TFLOPS = 100.0


@functools.lru_cache(maxsize=None)
def _macs_per_frame(config: str, profile: str, overrides: tuple[str, ...]) -> float:
    from reprolib.experiments.costs import config_cost

    return float(config_cost(config, profile, list(overrides))["gflops_full"]) * 1e9


def _identity(cfg: Any) -> str:
    from reprolib.config import config_hash

    return config_hash(cfg)


def _stored(cfg: Any) -> Optional[bool]:
    """Whether the store holds the finished run (``None``: it cannot be keyed here, e.g. no dataset)."""
    from reprolib.experiments.runstore import default_store, run_key, run_name

    try:
        key = run_key(cfg)
    except Exception:  # noqa: BLE001 - a dataset root not set: the key needs its index files
        return None
    return (default_store(cfg.profile) / run_name(cfg, key) / "metrics.json").exists()


def plan_target(paper: str, item: str, profile: str = "paper", tflops: float = DEFAULT_TFLOPS) -> pd.DataFrame:
    """One line per run a notebook trains (trial runs each on their own line).

    Returns:
        Columns ``notebook, row, config, run, stored, steps, frames/step, GFLOPs/step, est. hours``.
    """
    from reprolib.config import load_config
    from reprolib.workbook.targets import config_available, get_target

    target = get_target(paper, item)
    rows = []
    for spec in target.runnable(profile):
        if not config_available(spec.config):
            continue
        for extra in spec.trial_overrides(profile):
            overrides = (*target.overrides_for(spec, profile), *extra)
            cfg = load_config(spec.config, profile, list(overrides))
            d = cfg.data
            frames = 2 * d.num_ids * d.num_pos * d.seq_len
            steps = cfg.train.epochs * cfg.train.iters_per_epoch
            flops = 6.0 * _macs_per_frame(spec.config, profile, overrides) * frames
            rows.append({"notebook": f"{paper}_{item}", "row": spec.label, "config": spec.config,
                         "run": _identity(cfg), "stored": _stored(cfg), "steps": steps, "frames/step": frames,
                         "GFLOPs/step": flops / 1e9, "est. hours": steps * flops / (tflops * 1e12) / 3600})
    return pd.DataFrame(rows)


def plan(names: Sequence[str], profile: str = "paper", tflops: float = DEFAULT_TFLOPS) -> pd.DataFrame:
    """:func:`plan_target` of several notebooks; a run already planned by an earlier one is marked
    ``shared`` and not counted again in the totals."""
    frames = []
    seen: set[str] = set()
    for name in names:
        paper, _, item = name.partition("_")
        t = plan_target(paper, item, profile, tflops)
        if t.empty:
            continue
        t["shared"] = t["run"].isin(seen) | t["run"].duplicated()
        seen |= set(t["run"])
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _notebooks(which: str) -> list[str]:
    from reprolib.workbook.runner import discover

    keys = [nb.key for nb in discover() if nb.paper]
    if which == "all":
        return keys
    key = which.split("/")[-1].removesuffix(".ipynb")
    key = key.split("_", 1)[1] if key[:1].isdigit() else key
    if key not in keys:
        raise ValueError(f"plan: no table/figure notebook {which!r}; available: all, {', '.join(keys)}")
    return [key]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m reprolib plan <notebook>|all [--profile paper] [--tflops X] [--json]``."""
    p = argparse.ArgumentParser(prog="reprolib plan", description=__doc__.splitlines()[0])
    p.add_argument("notebook", help="a notebook (vld_table3, 203_vld_table3) or 'all'")
    p.add_argument("--profile", default="paper", choices=["smoke", "embedded", "paper"])
    p.add_argument("--tflops", type=float, default=DEFAULT_TFLOPS,
                   help="assumed sustained training throughput in TFLOP/s (default %(default)s; no calibration)")
    p.add_argument("--json", action="store_true", help="print the per-run table as JSON records")
    a = p.parse_args(argv)
    # the models are built with random weights only to count MACs: their loading chatter is noise here
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("reprolib.models").setLevel(logging.ERROR)
    table = plan(_notebooks(a.notebook), a.profile, a.tflops)
    if a.json:
        sys.stdout.write(json.dumps(table.to_dict("records"), indent=1) + "\n")
        return 0
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    print(f"plan, profile={a.profile}: training compute only (memory passes, text encoders and evaluation not "
          f"counted); time at an ASSUMED {a.tflops:g} TFLOP/s sustained, no device calibration stored")
    shown = table.drop(columns=["run"]).copy()
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    todo = table[~table["shared"] & (table["stored"] != True)]  # noqa: E712 - None means unknown
    per_nb = todo.groupby("notebook", sort=False)[["steps", "est. hours"]].sum()
    print("\nper notebook (runs not shared with an earlier notebook, not in the store):")
    print(per_nb.to_string(float_format=lambda v: f"{v:,.2f}"))
    print(f"\nworkbook: {len(todo)} runs to train, {todo['steps'].sum():,} steps, "
          f"{todo['est. hours'].sum():,.1f} h at {a.tflops:g} TFLOP/s")
    return 0
