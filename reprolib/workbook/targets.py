"""Reproduction targets as data: which runs each ``make reproduce-<paper>-<item>`` notebook asks for.

A *target* is one table or figure of a paper. Its rows map the paper's row labels (as they are
spelt in ``reprolib/paper/numbers.csv``) to a config and overrides; its *claims* say which
comparisons the paper makes ("IMLP helps": B+IMLP vs B), so the notebook can say whether our
runs agree. The specs live in ``reprolib/workbook/specs/<paper>.yaml`` (configs as data,
like the model configs), and :func:`reproduce` turns one into runs, a paper-vs-ours table and
verdicts. Every reproduction notebook is the same few cells around these two functions.

Example::

    target = get_target("vld", "table3")
    rep = reproduce(target, wb)                 # wb: a notebook's Workbook
    rep.table                                   # paper | ours | delta | status per cell
    rep.claims                                  # component, paper's direction, ours

Under the ``smoke`` profile only the rows marked ``smoke: true`` run (CI time); the others show
as ``pending`` exactly like rows whose model has not been implemented.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import yaml

from reprolib.config import ConfigError, from_dict

log = logging.getLogger(__name__)

__all__ = ["RowSpec", "ClaimSpec", "Target", "Reproduction", "load_targets", "get_target", "list_targets",
           "reproduce", "row_status", "missing_cells", "chance_table", "time_table", "cost_table", "verdict"]

TARGETS_DIR = Path(__file__).with_name("specs")
DIRECTIONS = ("ir2rgb", "rgb2ir")
MINIATURE_PROFILES = ("smoke", "embedded")
KINDS = ("ablation", "time", "cost", "analysis")


@dataclass(frozen=True)
class RowSpec:
    """One row of a target: a paper row label and the run that reproduces it.

    Attributes:
        row: the paper's row label (``numbers.csv`` ``row``), or a label of ours.
        label: unique name of this row within the target (default ``row``; sweeps need it, as
            every point of a paper figure has the same ``row`` and a different ``setting``).
        config: config name in ``reprolib/configs``; ``None`` for a row we do not run
            (another paper's method: shown with the paper's numbers only).
        overrides: ``key=value`` overrides on top of the config (sweeps, ablation switches);
            ``{profile}`` in a value is replaced by the profile (``eval.root=data/synthbupt-{profile}``).
        miniature_overrides: used instead of ``overrides`` under the smoke and embedded profiles
            when the miniature cannot express the paper's setting literally (TinyCLIP has 4 blocks,
            not 12: VLD Table VI); empty: ``overrides`` everywhere.
        miniature: whether the row runs under the smoke and embedded profiles at all.
        setting: extra setting keys of this row, e.g. ``"lambda1=0.08"`` (joined to the direction
            exactly as ``numbers.csv`` spells the setting).
        dataset: the paper's dataset key for this row (``hitsz-vcm``, ``bupt``, ...).
        smoke: also run under the smoke profile (CI); other rows show as pending there.
        note: shown beside the row (why it is pending, what it stands for).
        select: a dotted path inside each direction's metrics to read instead of the top level
            (``modes.indoor``: SYSU-MM01's indoor-search numbers of the same run).
        trials: train once per trial with ``data.regdb_trial=<t>`` and report the mean over the
            runs (RegDB's ten splits); ``miniature_trials`` replaces it under smoke/embedded.
        exact: the paper's number must be reproduced exactly (cost targets: VLD Table X).
    """

    row: str
    label: str = ""
    config: Optional[str] = None
    overrides: tuple[str, ...] = ()
    miniature_overrides: tuple[str, ...] = ()
    miniature: bool = True
    setting: str = ""
    dataset: str = "hitsz-vcm"
    smoke: bool = False
    note: str = ""
    select: str = ""
    trials: tuple[int, ...] = ()
    miniature_trials: tuple[int, ...] = ()
    exact: bool = False

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.row)

    def trials_for(self, profile: str) -> tuple[int, ...]:
        """The trials whose runs this row averages under ``profile`` (empty: a single run)."""
        return self.miniature_trials if (profile in MINIATURE_PROFILES and self.miniature_trials) else self.trials

    def trial_overrides(self, profile: str) -> list[tuple[str, ...]]:
        """The extra overrides of each run behind this row under ``profile``: one
        ``data.regdb_trial=<t>`` per trial, or a single empty tuple for a single-run row."""
        return [(f"data.regdb_trial={t}",) for t in self.trials_for(profile)] or [()]


@dataclass(frozen=True)
class ClaimSpec:
    """A comparison the paper makes: ``with_row`` beats ``without_row`` (or not).

    Attributes:
        component: what is being tested, e.g. ``"IMLP"``.
        with_row: the row with the component (a ``RowSpec.label``).
        without_row: the row without it.
        paper: the paper's direction, ``"helps"`` or ``"does not help"``.
    """

    component: str
    with_row: str
    without_row: str
    paper: str = "helps"


@dataclass(frozen=True)
class Target:
    """One table or figure to reproduce.

    Attributes:
        paper: ``xreid`` | ``vld`` | ``cmft``.
        item: ``table3``, ``fig6``, ... (``numbers.csv`` ``item``).
        title: notebook title.
        claim: the paper's claim, in a sentence or two (markdown).
        rows: the rows, in display order.
        claims: comparisons to check.
        metrics: metrics shown beside the paper's.
        note: what the miniature can and cannot say about this target (markdown).
        headline: the row whose embedded-profile run must beat every one of 200 random rankings
            (the notebook asserts it); empty: no such check.
        kind: ``ablation`` (rows of runs beside the paper's), ``time`` (plus measured training
            time: VLD Table IX), ``cost`` (parameters and FLOPs, no training: VLD Table X) or
            ``analysis`` (figures computed from trained runs: VLD Figures 7-9).
        directions: how the paper names our directions in its settings, e.g. ``{ir2rgb: t2v,
            rgb2ir: v2t}`` (RegDB) or ``{ir2rgb: ""}`` (a setting without a direction: SYSU-MM01,
            CMFT's sweeps); a direction left out keeps its name (and shows as ``ours only``).
    """

    paper: str
    item: str
    title: str
    claim: str = ""
    rows: tuple[RowSpec, ...] = ()
    claims: tuple[ClaimSpec, ...] = ()
    metrics: tuple[str, ...] = ("R1", "mAP")
    note: str = ""
    headline: str = ""
    kind: str = "ablation"
    directions: dict = field(default_factory=dict)

    def row(self, label: str) -> RowSpec:
        """The row spec labelled ``label`` (KeyError naming the target's rows)."""
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(f"{self.paper} {self.item}: no row {label!r}; rows are {[r.label for r in self.rows]}")

    def overrides_for(self, spec: RowSpec, profile: str) -> tuple[str, ...]:
        """The overrides ``spec`` runs with under ``profile`` (see :class:`RowSpec`)."""
        chosen = spec.miniature_overrides if (profile in MINIATURE_PROFILES and spec.miniature_overrides) \
            else spec.overrides
        return tuple(o.replace("{profile}", profile) for o in chosen)

    def runnable(self, profile: str) -> tuple[RowSpec, ...]:
        """Rows that run under ``profile`` (all rows with a config; under smoke only ``smoke`` ones)."""
        miniature = profile in MINIATURE_PROFILES
        return tuple(r for r in self.rows if r.config is not None and (r.miniature or not miniature)
                     and (profile != "smoke" or r.smoke))


def _target_from_dict(paper: str, item: str, d: dict) -> Target:
    where = f"reprolib/workbook/specs/{paper}.yaml:{item}"
    d = dict(d)
    tuples = ("overrides", "miniature_overrides", "trials", "miniature_trials")
    rows = tuple(from_dict(RowSpec, {**r, **{k: tuple(r.get(k, ())) for k in tuples}}, f"{where}.rows")
                 for r in d.pop("rows", ()))
    claims = tuple(from_dict(ClaimSpec, c, f"{where}.claims") for c in d.pop("claims", ()))
    t = from_dict(Target, {**d, "paper": paper, "item": item, "rows": (), "claims": (),
                           "metrics": tuple(d.get("metrics", ("R1", "mAP"))), "directions": {}}, where)
    t = Target(**{**t.__dict__, "directions": dict(d.get("directions") or {})})
    if t.kind not in KINDS:
        raise ConfigError(f"{where}.kind: expected one of {KINDS}, got {t.kind!r}")
    t = Target(**{**t.__dict__, "rows": rows, "claims": claims})
    labels = [r.label for r in rows]
    if t.headline and t.headline not in labels:
        raise ConfigError(f"{where}.headline: {t.headline!r} is not one of the rows {labels}")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: duplicate row labels {labels}")
    for c in claims:
        for lab in (c.with_row, c.without_row):
            if lab not in labels:
                raise ConfigError(f"{where}: claim {c.component!r} names row {lab!r}, which is not one of {labels}")
    return t


@functools.lru_cache(maxsize=None)
def load_targets(paper: str) -> dict[str, Target]:
    """All targets of ``paper`` from ``specs/<paper>.yaml``, by item."""
    path = TARGETS_DIR / f"{paper}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no target specs for paper {paper!r}: expected {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    return {item: _target_from_dict(paper, item, spec) for item, spec in raw.items()}


def get_target(paper: str, item: str) -> Target:
    """The target ``item`` of ``paper`` (KeyError listing the paper's targets)."""
    targets = load_targets(paper)
    if item not in targets:
        raise KeyError(f"{paper}: no target {item!r}; targets are {sorted(targets)}")
    return targets[item]


def list_targets() -> list[tuple[str, str]]:
    """``(paper, item)`` of every target spec, in file order."""
    return [(p.stem, item) for p in sorted(TARGETS_DIR.glob("*.yaml")) for item in load_targets(p.stem)]


@dataclass
class Reproduction:
    """What :func:`reproduce` returns.

    Attributes:
        target: the spec.
        runs: row label (``RowSpec.label``) -> finished ``Run``.
        table: long paper-vs-ours table (:func:`reprolib.workbook.compare.side_by_side`).
        claims: one line per claim: ``component, comparison, paper, ours`` (+ the gains).
    """

    target: Target
    runs: dict[str, Any]
    table: pd.DataFrame
    claims: pd.DataFrame = field(default_factory=pd.DataFrame)

    def metric(self, row: str, direction: str, metric: str) -> float:
        """Our value of ``metric`` for ``row`` in ``direction`` (KeyError if the row did not run)."""
        return float(self.runs[row].metrics["eval"][direction][metric])


def verdict(gains: list[float]) -> str:
    """``helps`` if every gain is positive, ``does not help`` if none is, else ``mixed``."""
    if not gains:
        return "pending"
    return "helps" if min(gains) > 0 else ("mixed" if max(gains) > 0 else "does not help")


def _claims_frame(target: Target, runs: dict[str, Any]) -> pd.DataFrame:
    out = []
    for c in target.claims:
        line = dict(component=c.component, comparison=f"{c.with_row} vs {c.without_row}", paper=c.paper)
        if c.with_row in runs and c.without_row in runs:
            a, b = runs[c.with_row].metrics["eval"], runs[c.without_row].metrics["eval"]
            gains = {f"{d} {m}": float(a[d][m]) - float(b[d][m])
                     for d in DIRECTIONS if d in a and d in b for m in target.metrics}
            line.update(ours=verdict(list(gains.values())), **{f"gain {k}": v for k, v in gains.items()})
        else:
            line["ours"] = "pending"
        line["agrees"] = (None if line["ours"] == "pending" else line["ours"] == c.paper)
        out.append(line)
    return pd.DataFrame(out)


def _paper_setting(row: dict, directions: dict) -> dict:
    """Rename the direction of a long row's setting as the paper spells it (``Target.directions``)."""
    parts = row["setting"].split(";")
    direction = parts[0].split("=", 1)[1]
    if direction not in directions:
        return row
    name = directions[direction]
    return {**row, "setting": ";".join(([f"direction={name}"] if name else []) + parts[1:])}


def config_available(name: str) -> bool:
    """Whether every part of a config name (``a`` or ``a+b``) exists in ``reprolib/configs``."""
    from reprolib.config import CONFIG_DIR

    return all((CONFIG_DIR / f"{part.strip()}.yaml").is_file() for part in name.split("+"))


def _select(metrics: dict, path: str) -> dict:
    for key in path.split("."):
        metrics = metrics[key]
    return metrics


def _row_run(spec: RowSpec, target: Target, wb: Any, overrides: tuple[str, ...], train: bool) -> Any:
    """The run of one row: one run, or the trial mean of one run per trial; ``select`` applied."""
    import dataclasses

    from reprolib.engine.evaluator import aggregate_trial_runs

    trials = spec.trials_for(wb.profile)
    if trials:
        per_trial = [wb.run(spec.config, *overrides, *extra, train=train) for extra in spec.trial_overrides(wb.profile)]
        run = dataclasses.replace(per_trial[0], metrics={
            **per_trial[0].metrics, "eval": aggregate_trial_runs([r.metrics["eval"] for r in per_trial], trials),
            "train_time_s": sum(r.metrics["train_time_s"] for r in per_trial),
            "trial_runs": [r.path.name for r in per_trial]})  # the mean's provenance (row_status)
    else:
        run = wb.run(spec.config, *overrides, train=train)
    if spec.select:
        run = dataclasses.replace(run, metrics={**run.metrics, "eval": {
            d: {**m, **_select(m, spec.select)} for d, m in run.metrics["eval"].items()}})
    return run


def reproduce(target: Target, wb: Any, train: bool = True) -> Reproduction:
    """Run (or load) every runnable row of ``target`` and compare with the paper.

    Args:
        target: the spec.
        wb: the notebook's :class:`reprolib.workbook.session.Workbook` (profile, overrides).
        train: train missing runs (``False``: only load finished ones; missing rows are pending).

    Returns:
        A :class:`Reproduction`.
    """
    from reprolib.workbook.compare import run_rows, side_by_side

    runs: dict[str, Any] = {}
    rows = target.runnable(wb.profile)
    if train and hasattr(wb, "preflight"):  # every problem of every row before the first one trains
        wb.preflight([(spec.config, (*target.overrides_for(spec, wb.profile), *extra)) for spec in rows
                      if config_available(spec.config) for extra in spec.trial_overrides(wb.profile)],
                     f"{target.paper} {target.item}")
    for i, spec in enumerate(rows, 1):
        if not config_available(spec.config):
            log.warning("%s %s: row %r needs config %r, which does not exist yet: pending", target.paper,
                        target.item, spec.label, spec.config)
            continue
        overrides = target.overrides_for(spec, wb.profile)
        log.info("%s %s: row %d/%d %r (%s %s)", target.paper, target.item, i, len(rows), spec.label, spec.config,
                 " ".join(overrides))
        try:
            runs[spec.label] = _row_run(spec, target, wb, overrides, train)
        except FileNotFoundError:
            log.info("  not run yet: %s", spec.label)
    ours = [_paper_setting(r, target.directions) for spec in target.rows if spec.label in runs
            for r in run_rows(runs[spec.label], spec.row, dataset=spec.dataset, extra_setting=spec.setting,
                              metrics=target.metrics)]
    table = side_by_side(target.paper, target.item, ours, metrics=target.metrics)
    return Reproduction(target, runs, table, _claims_frame(target, runs))


def missing_cells(target: Target, rep: Reproduction) -> pd.DataFrame:
    """Paper cells that a run of ours should fill but does not (the notebooks assert it is empty):
    same paper row, same setting apart from the direction, a number in the paper, none of ours."""
    def extra(setting: str) -> str:
        return ";".join(kv for kv in str(setting).split(";") if kv and not kv.startswith("direction="))

    ran = {(target.row(label).row, target.row(label).dataset, target.row(label).setting) for label in rep.runs}
    t = rep.table
    keys = list(zip(t["row"], t["dataset"], [extra(s) for s in t["setting"]]))
    mask = pd.Series([k in ran for k in keys], index=t.index) & t["paper"].notna() & t["ours"].isna()
    return t[mask]


def chance_table(target: Target, rep: Reproduction, wb: Any, trials: int = 200) -> pd.DataFrame:
    """What random rankings score on the test sets of the rows that ran: the mean (chance level)
    and the best of ``trials`` (the bar for p < 1/trials), per dataset and direction.

    Read it beside our numbers: in the miniature, a difference between two rows that both sit near
    chance says nothing about the component."""
    from reprolib.workbook.session import chance_trials

    out, seen = [], set()
    for label in rep.runs:
        spec = target.row(label)
        overrides = target.overrides_for(spec, wb.profile)
        dataset = wb.dataset(spec.config, *overrides)
        if dataset.name in seen:
            continue
        seen.add(dataset.name)
        for direction, eval_set in dataset.eval_sets.items():
            t = chance_trials(eval_set, trials)
            out.append({"dataset": dataset.name, "direction": direction, "chance R1": t["R1"].mean(),
                        "chance mAP": t["mAP"].mean(), f"best of {trials} mAP": t["mAP"].max()})
    return pd.DataFrame(out)


def row_status(target: Target, rep: Reproduction, profile: str) -> pd.DataFrame:
    """One line per row: the run behind it under ``profile``, or why there is none."""
    out = []
    for spec in target.rows:
        if spec.label in rep.runs:
            run = rep.runs[spec.label]
            status = f"ran ({', '.join(run.metrics.get('trial_runs') or [run.path.name])})"
        elif spec.config is None:
            status = "paper only"
        elif not config_available(spec.config):
            status = f"pending: config {spec.config!r} not implemented yet"
        elif profile in MINIATURE_PROFILES and not spec.miniature:
            status = "pending: not expressible in the miniature"
        elif profile == "smoke" and not spec.smoke:
            status = "pending: not run under smoke (CI)"
        else:
            status = "pending: not run yet"
        out.append(dict(row=spec.label, config=spec.config or "", overrides=" ".join(target.overrides_for(spec, profile)),
                        status=status, note=spec.note))
    return pd.DataFrame(out).set_index("row")


def _reported(target: Target, spec: RowSpec, metric: str) -> float:
    """The paper's number for a row, NaN for a row of ours that the paper's table does not have."""
    from reprolib.paper import reported

    try:
        return reported(target.paper, target.item, spec.row, metric)
    except (KeyError, ValueError):
        return float("nan")


def time_table(target: Target, rep: Reproduction, wb: Any = None, bench_iters: int = 0) -> pd.DataFrame:
    """Training time of every run of ``rep`` beside the paper's hours (VLD Table IX).

    ``ours train min`` is the wall-clock of each run's optimisation steps as it was trained
    (``train_time_s`` in ``metrics.json``, evaluation excluded), with the hardware from
    ``provenance.json``. Runs trained on different days, or beside other jobs, are not comparable,
    so with ``bench_iters > 0`` every row is also timed side by side in this process by
    :func:`reprolib.bench.train.time_training` (``bench s/step``; ``bench projected min``: the
    profile's full schedule, per-epoch hooks included), and ``ours relative`` (each row's time over
    the last row's: VLD's) comes from those controlled measurements. The paper's hours are its
    full schedules on its GPUs, so only the ratios between rows are comparable.

    Args:
        target: the spec (kind ``time``).
        rep: its reproduction (the runs).
        wb: the notebook's Workbook (profile and overrides of the controlled timing).
        bench_iters: steps timed per epoch by the controlled timing (0: none).
    """
    import json

    out = []
    for spec in target.rows:
        line = {"row": spec.label, "paper time_h": _reported(target, spec, "time_h")}
        if spec.label in rep.runs:
            run = rep.runs[spec.label]
            prov = json.loads((run.path / "provenance.json").read_text())
            hw = prov.get("hardware", {})
            device = ", ".join(hw.get("gpus") or []) or f"{hw.get('cpu', 'CPU')} ({hw.get('torch_threads')} threads)"
            line.update({"ours train min": run.metrics["train_time_s"] / 60, "steps": run.metrics["global_step"],
                         "ours s/step": run.metrics["train_time_s"] / max(1, run.metrics["global_step"]),
                         "hardware": device})
            if bench_iters > 0 and wb is not None:
                from reprolib.bench.train import time_training

                row = target.overrides_for(spec, wb.profile)
                overrides = wb.overrides_for(spec.config, *row) if hasattr(wb, "overrides_for") else [*wb.overrides, *row]
                timed = time_training(spec.config, wb.profile, overrides, iters=bench_iters)
                line.update({"bench s/step": timed["step_s"], "bench projected min": timed["projected_s"] / 60,
                             "bench hardware": f"{timed['device']} ({timed['threads']} threads)"})
        out.append(line)
    table = pd.DataFrame(out).set_index("row")
    basis = "bench projected min" if "bench projected min" in table else "ours train min"
    if basis in table and table[basis].notna().any():
        table["ours relative"] = table[basis] / table[basis].dropna().iloc[-1]
    return table


def cost_table(target: Target, profile: str = "paper") -> pd.DataFrame:
    """Test-path parameters and FLOPs per frame of every row with a config, beside the paper's
    (VLD Table X). Counted on ``profile``'s architecture with random weights: no data, no training.

    ``ours gflops`` follows the paper's accounting (:data:`reprolib.experiments.costs.PAPER_FLOP_EXCLUSIONS`:
    VLD left STA out of its 14.08 G); ``ours gflops (all modules)`` counts everything under the same
    MAC convention and ``ours gflops (full)`` adds the attention products.
    """
    from reprolib.experiments.costs import config_cost

    out = []
    for spec in target.rows:
        line: dict[str, Any] = {"row": spec.label}
        for metric in ("params_M", "gflops"):
            line[f"paper {metric}"] = _reported(target, spec, metric)
        if spec.config is not None and config_available(spec.config):
            cost = config_cost(spec.config, profile, target.overrides_for(spec, profile))
            line.update({"ours params_M": cost["params_M"], "ours gflops": cost["gflops_paper_accounting"],
                         "ours gflops (all modules)": cost["gflops"], "ours gflops (full)": cost["gflops_full"]})
        out.append(line)
    return pd.DataFrame(out).set_index("row")
