"""A researcher's own method beside the three papers', under exactly the workbook's protocol.

The reference models are the rows of :data:`reprolib.experiments.spread.SPREAD_ROWS` (the common
baseline and each paper's final model), loaded from the run store with the seeds it holds: nothing
of them is retrained or re-keyed. The new method is any config (a YAML file whose ``model.name`` is
a registered family: built in, installed through the ``reprolib.models`` entry point, or a folder
on ``REPROLIB_FAMILY_PATH``; see ``docs/new_method.md``), trained with the same seeds into its own
store (:func:`method_store`).

Before anything trains, :func:`check_protocol` refuses a config whose test protocol differs from the
references' (dataset, length filter, test-clip sampling, directions, ranks, the BUPTCampus gallery mode):
numbers measured under another protocol are not comparable, whatever the table would show.

Example::

    wb = Workbook("embedded")
    runs = method_runs(wb, "my_method.yaml", seeds=(1, 2, 3))
    table = methods_table(runs)       # mean ± sample std over seeds, per direction and metric
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import pandas as pd

from reprolib.config import ExperimentConfig
from reprolib.experiments.runstore import Run, default_store, get_run
from reprolib.experiments.spread import SPREAD_ROWS, seed_runs, seed_table
from reprolib.workbook.targets import get_target

__all__ = ["PROTOCOL_KEYS", "check_protocol", "format_methods_table", "method_runs", "method_store", "methods_table"]

log = logging.getLogger(__name__)

#: The config keys that define the test protocol: which tracklets are tested, how test clips are
#: drawn from them and how the ranking is scored. A method's own input and scoring choices stay its
#: own, as they are in the papers: the clip length (CMFT tests 7 frames, the others 6), the image
#: size and the distance (VLD: inner product; X-ReID, CMFT: cosine).
PROTOCOL_KEYS: tuple[str, ...] = (
    "data.dataset", "data.layout", "data.min_seq_len", "data.test_sampling",
    "data.bupt_eval_mode", "data.bupt_eval_batch", "eval.directions", "eval.max_rank", "eval.dataset",
)


def _get(cfg: ExperimentConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def check_protocol(cfg: ExperimentConfig, reference: ExperimentConfig, where: str = "config") -> None:
    """Raise ``ValueError`` naming every :data:`PROTOCOL_KEYS` value in which ``cfg`` differs from
    ``reference`` (the value each has, and the ``--set`` that aligns it)."""
    diffs = [(k, _get(cfg, k), _get(reference, k)) for k in PROTOCOL_KEYS if _get(cfg, k) != _get(reference, k)]
    if diffs:
        lines = "; ".join(f"{k} is {mine!r}, the references use {theirs!r} (--set {k}={theirs})"
                          for k, mine, theirs in diffs)
        raise ValueError(f"{where}: not the workbook's test protocol: {lines}")


def method_runs(wb: Any, config: str, seeds: Sequence[int] = (1, 2, 3), name: Optional[str] = None,
                extra: Sequence[str] = (), references: Sequence[tuple[str, str, str]] = SPREAD_ROWS,
                train: bool = True, train_references: bool = False,
                store: Optional[Union[str, Path]] = None) -> dict[str, list[Run]]:
    """Runs of a new method and of the reference rows, seed by seed.

    Args:
        wb: the notebook's :class:`~reprolib.workbook.session.Workbook` (profile, data root, device).
        config: the method's config (YAML path or config name).
        seeds: the seeds to train the method with (each reference uses those of them the store holds).
        name: the method's label (default: the config's ``name``).
        extra: more ``key=value`` overrides of the method's config.
        references: ``(paper, item, row label)`` rows to compare with.
        train: train the method's missing runs.
        train_references: train missing reference runs too (default: use what the store holds, so a
            comparison never silently spends hours retraining the papers' models).
        store: run store of the method's runs (default: :func:`method_store`, beside the profile's
            store: a family from outside the package never mixes its runs with the papers').

    Returns:
        ``{label: [runs]}``, the references first.

    Raises:
        ValueError: the method's protocol differs from the references' (:func:`check_protocol`).
    """
    cfg = wb.config(config, *extra)
    label = name or cfg.name
    out: dict[str, list[Run]] = {}
    for paper, item, row in references:
        target = get_target(paper, item)
        spec = target.row(row)
        check_protocol(cfg, wb.config(spec.config, *target.overrides_for(spec, wb.profile)), where=config)
        runs = []
        for seed in seeds:
            try:
                runs += seed_runs(wb, paper, item, row, seeds=(seed,), train=train_references)
            except FileNotFoundError:
                log.info("%s %s: no run with seed %d in the store; compared with the seeds it has", paper, row, seed)
        if not runs:
            raise FileNotFoundError(f"{paper} {item} {row!r}: no run in the {wb.profile} store; render "
                                    f"`make reproduce-{paper}-{item}` first or pass train_references=True")
        out[f"{paper} {row}"] = runs
    where = Path(store) if store else method_store(wb.profile)
    out[label] = [get_run(wb.config(config, *extra, f"seed={s}"), store=where, train=train) for s in seeds]
    return out


def method_store(profile: str) -> Path:
    """``results/<profile>/methods``: the run store of methods compared with the papers (their families
    live outside the package, so tools that read the papers' store never meet a family they cannot load)."""
    return default_store(profile).parent / "methods"


def methods_table(runs: Mapping[str, Sequence[Run]], metrics: Sequence[str] = ("R1", "mAP", "mINP")) -> pd.DataFrame:
    """One row per method: ``seeds`` and ``<direction> <metric>`` as mean and sample standard
    deviation over the seeds (``std`` is NaN for a single seed), plus the run directories."""
    long = seed_table(runs, metrics=metrics)
    g = long.groupby(["model", "direction", "metric"], sort=False)["value"]
    stats = g.agg(mean="mean", std="std").reset_index()
    rows = []
    for model, part in stats.groupby("model", sort=False):
        row: dict[str, Any] = {"method": model, "seeds": len(runs[model])}
        for _, r in part.iterrows():
            row[f"{r['direction']} {r['metric']}"] = r["mean"]
            row[f"{r['direction']} {r['metric']} std"] = r["std"]
        row["runs"] = ", ".join(run.path.name for run in runs[model])
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def format_methods_table(table: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """:func:`methods_table` for reading: ``seeds`` and one ``"mean ± std"`` string per direction and
    metric (the mean alone for a single seed), columns grouped as ``(direction, metric)``."""
    out = pd.DataFrame(index=table.index)
    out[("", "seeds")] = table["seeds"]
    for col in (c for c in table.columns if c not in ("seeds", "runs") and not c.endswith(" std")):
        direction, metric = col.split(" ", 1)
        std = table[f"{col} std"]
        out[(direction, metric)] = [f"{m:.{digits}f}" if pd.isna(sd) else f"{m:.{digits}f} ± {sd:.{digits}f}"
                                    for m, sd in zip(table[col], std)]
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out

