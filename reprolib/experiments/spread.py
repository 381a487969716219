"""Run-to-run spread: one row trained with several seeds, and which claims' gains exceed it.

Every verdict of the workbook compares two single runs. Training is deterministic for a given
seed but moves when the seed does (initialisation of the new layers, sampler order, augmentation
draws), so a gain smaller than what a change of seed alone produces is not evidence that the
component helps. This module measures that spread for a few rows (:data:`SPREAD_ROWS`, by default
the final model of each paper and the common baseline) and reads every claim of the workbook
against it. It backs the notebook ``02_seed_spread``.

Example::

    runs = {f"{p} {label}": seed_runs(wb, p, item, label, seeds=(1, 2, 3)) for p, item, label in SPREAD_ROWS}
    long = seed_table(runs)
    floor = noise_floor(spread_summary(long))                    # largest seed range, mAP
    robust = claims_against_spread([reproduce(t, wb, train=False) for t in targets], floor)
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from reprolib.experiments.runstore import Run
from reprolib.workbook.targets import DIRECTIONS, MINIATURE_PROFILES, get_target

log = logging.getLogger(__name__)

#: ``(paper, item, row label)`` of the rows whose seed spread is measured: the common baseline and
#: the final model of each paper, each as its main component table runs it.
SPREAD_ROWS: tuple[tuple[str, str, str], ...] = (
    ("vld", "table3", "B"),
    ("vld", "table3", "B+IMLP+STP"),
    ("xreid", "table3", "+ MII (VCM)"),
    ("cmft", "table3", "CMFT_S5"),
)


def seed_runs(wb: Any, paper: str, item: str, label: str, seeds: Sequence[int], train: bool = True) -> list[Run]:
    """The runs of one target row with each seed (``seed=<n>`` added to the row's overrides).

    The row's own run is the one whose seed is the config's (1 everywhere), so asking for seed 1
    loads the run the paper's table already shows.

    Args:
        wb: the notebook's :class:`reprolib.workbook.session.Workbook` (profile, overrides).
        paper, item, label: the row, as in ``reprolib/workbook/specs/<paper>.yaml``.
        seeds: the seeds, e.g. ``(1, 2, 3)``.
        train: train missing runs (``False``: a missing run raises ``FileNotFoundError``).

    Returns:
        One finished run per seed, in the order of ``seeds``.

    Raises:
        ValueError: the row averages trials or selects a sub-metric (its spread would mix two
            sources of variation), or does not run under the notebook's profile.
    """
    target = get_target(paper, item)
    spec = target.row(label)
    if spec.trials_for(wb.profile) or spec.select:
        raise ValueError(f"{paper}.{item} row {label!r} averages trials or selects a metric; "
                         "its seed spread is not defined here (pick a single-run row)")
    if spec not in target.runnable(wb.profile):
        raise ValueError(f"{paper}.{item} row {label!r} does not run under the {wb.profile!r} profile")
    overrides = target.overrides_for(spec, wb.profile)
    return [wb.run(spec.config, *overrides, f"seed={s}", train=train) for s in seeds]


def seed_table(runs: Mapping[str, Sequence[Run]], metrics: Sequence[str] = ("R1", "mAP")) -> pd.DataFrame:
    """Long table of every seed's metrics: columns ``model, seed, direction, metric, value, run``."""
    out = []
    for model, model_runs in runs.items():
        for run in model_runs:
            for direction, m in run.metrics["eval"].items():
                out += [dict(model=model, seed=int(run.config.seed), direction=direction, metric=name,
                             value=float(m[name]), run=run.path.name) for name in metrics if name in m]
    return pd.DataFrame(out, columns=["model", "seed", "direction", "metric", "value", "run"])


def spread_summary(long: pd.DataFrame) -> pd.DataFrame:
    """Per ``(model, direction, metric)``: number of seeds, mean, sample std, min, max and range."""
    g = long.groupby(["model", "direction", "metric"], sort=False)["value"]
    out = g.agg(seeds="count", mean="mean", std="std", min="min", max="max")
    out["range"] = out["max"] - out["min"]
    return out


def noise_floor(summary: pd.DataFrame, metric: str = "mAP") -> float:
    """The largest seed range of ``metric`` over the measured models and directions (NaN with
    fewer than two seeds): the smallest gain a single-run comparison must exceed to say more than
    what a change of seed alone produces. With three seeds it underestimates the true spread."""
    rows = summary.xs(metric, level="metric")
    rows = rows[rows["seeds"] >= 2]
    return float(rows["range"].max()) if len(rows) else float("nan")


def claims_against_spread(reps: Iterable[Any], floor: float, metric: str = "mAP") -> pd.DataFrame:
    """Every claim of the given reproductions, re-read with a noise floor.

    A claim's gains (``with_row`` minus ``without_row``) in ``metric`` are taken per direction. It is
    *beyond the spread* when every one of them has the same sign and exceeds ``floor`` in magnitude;
    only then does it get a verdict (``helps`` | ``does not help``), otherwise ``within spread``.

    Args:
        reps: :class:`reprolib.workbook.targets.Reproduction` objects (pending claims are skipped).
        floor: the noise floor in points of ``metric`` (:func:`noise_floor`).
        metric: the metric whose gains are read.

    Returns:
        One line per claim: ``paper, item, component, paper verdict, ours`` (the single-run verdict
        over every metric), ``gain <direction>`` columns, ``smallest |gain|``, ``beyond spread``
        (bool), ``ours beyond spread`` and ``agrees beyond spread`` (``None`` when within the spread).
    """
    out = []
    for rep in reps:
        claims = rep.claims
        if claims.empty:
            continue
        for _, c in claims[claims["ours"] != "pending"].iterrows():
            gains = {d: float(c[f"gain {d} {metric}"]) for d in DIRECTIONS if f"gain {d} {metric}" in c
                     and pd.notna(c[f"gain {d} {metric}"])}
            if not gains:
                continue
            values = np.array(list(gains.values()))
            beyond = bool((np.all(values > 0) or np.all(values < 0)) and np.abs(values).min() > floor)
            ours = ("helps" if values[0] > 0 else "does not help") if beyond else "within spread"
            out.append({"paper": rep.target.paper, "item": rep.target.item, "component": c["component"],
                        "paper verdict": c["paper"], "ours": c["ours"],
                        **{f"gain {d}": v for d, v in gains.items()},
                        "smallest |gain|": float(np.abs(values).min()), "beyond spread": beyond,
                        "ours beyond spread": ours,
                        "agrees beyond spread": (ours == c["paper"]) if beyond else None})
    return pd.DataFrame(out)


def spread_profile_note(profile: str) -> str:
    """What the spread of ``profile`` can say (shown under the notebook's tables)."""
    if profile == "smoke":
        return "smoke profile: a few training steps; the spread says nothing (CI checks the code path only)"
    if profile in MINIATURE_PROFILES:
        return (f"{profile} profile: the spread of training on the miniature world, the noise floor of every "
                "embedded verdict; not the spread on the real benchmarks")
    return "paper profile: the spread on the real benchmark"
