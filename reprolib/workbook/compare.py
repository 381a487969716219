"""Paper-vs-ours tables: the reported numbers beside ours, with deltas and pending rows.

Every reproduction notebook ends in :func:`side_by_side`. Rows of the paper that we have not
produced (yet) show as ``pending``; rows we produced that the paper does not report show with an
empty paper column. The profile is part of every saved table, because an embedded number is a
measurement on the miniature world, never a claim about the real benchmark.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from reprolib.config import resolve_path
from reprolib.experiments.runstore import Run

METRICS = ("R1", "R5", "R10", "R20", "mAP", "mINP")
KEY = ["row", "dataset", "setting", "metric"]


def run_rows(run: Run, row: str, dataset: Optional[str] = None, extra_setting: str = "",
             metrics: Iterable[str] = METRICS) -> list[dict]:
    """Long-format rows (row, dataset, setting, metric, value) of one run's evaluation.

    Args:
        run: a finished run.
        row: the paper's row name this run reproduces (e.g. ``"B"``).
        dataset: dataset key for the table (default: the run's ``data.dataset``).
        extra_setting: appended to the setting, e.g. ``"seq_len=6"``.
        metrics: which metrics to take.
    """
    dataset = dataset or run.config.data.dataset
    out = []
    for direction, m in run.metrics["eval"].items():
        setting = f"direction={direction}" + (f";{extra_setting}" if extra_setting else "")
        for name in metrics:
            if name in m:
                out.append(dict(row=row, dataset=dataset, setting=setting, metric=name, value=float(m[name])))
    return out


def side_by_side(paper: str, item: str, ours: list[dict], metrics: Iterable[str] = ("R1", "mAP")) -> pd.DataFrame:
    """Join the paper's numbers of one table/figure with ours.

    Args:
        paper: ``xreid`` | ``vld`` | ``cmft``.
        item: e.g. ``table3``.
        ours: long rows from :func:`run_rows` (our datasets are matched to the paper's by
            the notebook: pass ``dataset`` as the paper's dataset key).
        metrics: metrics to keep.

    Returns:
        Columns ``row, dataset, setting, metric, paper, ours, delta, status`` where status is
        ``reproduced`` (both), ``pending`` (paper only) or ``ours only``.
    """
    from reprolib.paper import load_numbers

    p = load_numbers(paper)
    p = p[(p["item"] == item) & (p["metric"].isin(list(metrics)))][KEY + ["value"]].rename(columns={"value": "paper"})
    o = pd.DataFrame(ours, columns=KEY + ["value"]).rename(columns={"value": "ours"})
    o = o[o["metric"].isin(list(metrics))]
    t = p.merge(o, on=KEY, how="outer")
    t["delta"] = t["ours"] - t["paper"]
    t["status"] = "reproduced"
    t.loc[t["ours"].isna(), "status"] = "pending"
    t.loc[t["paper"].isna(), "status"] = "ours only"
    row_order = {r: i for i, r in enumerate(dict.fromkeys(list(p["row"]) + list(o["row"])))}
    t = t.sort_values(by=["row", "setting", "metric"], key=lambda s: s.map(row_order) if s.name == "row" else s)
    return t.reset_index(drop=True)


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """Display view: one line per (row, setting), columns ``<metric> paper|ours|delta``."""
    w = table.pivot_table(index=["row", "setting"], columns="metric", values=["paper", "ours", "delta"],
                          aggfunc="first", sort=False)
    w.columns = [f"{m} {k}" for k, m in w.columns]
    metrics = [m for m in METRICS if any(c.startswith(m + " ") for c in w.columns)]
    cols = [f"{m} {k}" for m in metrics for k in ("paper", "ours", "delta") if f"{m} {k}" in w.columns]
    return w[cols]


#: Set by :func:`reprolib.workbook.runner.run_notebook` while it renders: the tables and figures of the
#: render are written below this folder and published together with the rendered notebook, or
#: not at all if the render fails.
STAGING_ENV = "REPROLIB_RENDER_STAGING"


def results_dir(profile: str) -> Path:
    """``results/<profile>`` (``REPROLIB_RESULTS`` overrides ``results``); during a notebook render
    the render's staging folder (:data:`STAGING_ENV`) instead."""
    staging = os.environ.get(STAGING_ENV)
    if staging:
        return Path(staging) / profile
    base = os.environ.get("REPROLIB_RESULTS")
    return Path(base) / profile if base else resolve_path(f"results/{profile}")


def save_table(table: pd.DataFrame, paper: str, item: str, profile: str, meta: Optional[dict] = None) -> Path:
    """Write ``results/<profile>/tables/<paper>_<item>.csv`` and a JSON twin with provenance."""
    out = results_dir(profile) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{paper}_{item}.csv"
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    t = table.copy()
    t.insert(0, "profile", profile)
    t.to_csv(tmp, index=False, float_format="%.2f")
    os.replace(tmp, csv_path)
    js = {"paper": paper, "item": item, "profile": profile, **(meta or {}),
          "rows": json.loads(t.to_json(orient="records"))}
    tmp = csv_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(js, indent=1))
    os.replace(tmp, csv_path.with_suffix(".json"))
    return csv_path
