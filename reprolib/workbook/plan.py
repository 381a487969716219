"""What each notebook costs before it runs: ``python -m reprolib plan <notebook>|all --profile paper``.

Per notebook and per run it trains: the steps of its schedule, the frames of one step, the training
FLOPs of one step, an estimated wall time and, from a calibration, the peak memory; then totals per
notebook and for the whole workbook. A run that several notebooks share (the full X-ReID model in
Tables 1, 3 and 5) is counted once, at the first notebook that asks for it (``--order`` prints the
render order this implies and what each notebook reuses); runs already in the store are marked and
not counted.

How the numbers are made (nothing trains, no GPU needed):

* **FLOPs per step** = 6 x MACs per frame x frames per step: the MACs of one frame's forward pass
  (the ``full`` convention of :mod:`reprolib.utils.macs`: every conv, linear, LayerNorm and the
  attention products), 2 FLOPs per MAC, and the backward pass taken as twice the forward. Frames per
  step = 2 modalities x ``data.num_ids`` x ``data.num_pos`` x ``data.seq_len``. The MACs are counted
  once per distinct model (:func:`reprolib.experiments.calibrate.macs_per_frame`: shapes traced on
  ``meta`` tensors, seconds for the whole workbook). The frozen text encoders, memory passes (X-ReID's
  CPC, TF-CLIP's memory, CLIP-ReID's cache) and the evaluation are not counted.
* **Time and memory** come from a **calibration** of the device when one exists (``plan --calibrate``
  on the device writes ``results/calibration/<device>.json``; :mod:`reprolib.experiments.calibrate`):
  each run's FLOPs at the throughput its family sustained there, and the family's measured peak
  memory. ``--calibration FILE`` uses another device's file. Without one, time = FLOPs / a *stated*
  sustained throughput (``--tflops``, default 100 TFLOP/s: about a tenth of an H100's dense bf16 peak,
  what small-batch ViT-B/16 training with a data loader sustains; an assumption, not a measurement),
  memory is not estimated, and the output says so.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Optional, Sequence

import pandas as pd

__all__ = ["plan_target", "plan", "notebook_summary", "render_order", "source_line", "markdown", "main",
           "DEFAULT_TFLOPS", "MARKDOWN_BEGIN", "MARKDOWN_END"]

log = logging.getLogger(__name__)

#: Assumed sustained training throughput (TFLOP/s) when no calibration exists (see the module docstring).
DEFAULT_TFLOPS = 100.0
#: The markers around the generated table in README.md (``plan all --markdown`` prints them too).
MARKDOWN_BEGIN = "<!-- plan:begin -->"
MARKDOWN_END = "<!-- plan:end -->"
GIB = 2 ** 30


#: Configs :func:`plan_target` resolved, so that counting their MACs does not load them again.
_CONFIGS: dict[tuple, Any] = {}


def _macs_per_frame(config: str, profile: str, overrides: tuple[str, ...]) -> float:
    """MACs of one frame's forward pass (cached per distinct model: :func:`~reprolib.experiments.calibrate.macs_per_frame`)."""
    from reprolib.experiments.calibrate import macs_per_frame

    return macs_per_frame(config, profile, overrides, cfg=_CONFIGS.pop((config, profile, overrides), None))


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


def _family_rate(family: str, calibration: Optional[dict], tflops: float) -> tuple[float, Optional[float], str]:
    """``(TFLOP/s, peak GiB or None, source)`` of a family: measured in the calibration, else assumed."""
    rec = (calibration or {}).get("families", {}).get(family)
    if rec is None:
        return tflops, None, "assumed"
    peak = rec.get("peak_memory_bytes")
    return float(rec["tflops"]), (peak / GIB if peak is not None else None), "calibrated"


def plan_target(paper: str, item: str, profile: str = "paper", tflops: float = DEFAULT_TFLOPS,
                calibration: Optional[dict] = None) -> pd.DataFrame:
    """One line per run a notebook trains (trial runs each on their own line).

    Args:
        paper, item: the notebook (``xreid``, ``table3``).
        profile: whose configs.
        tflops: the assumed throughput of families without a calibration.
        calibration: a calibration (:func:`reprolib.experiments.calibrate.load_calibration`) or ``None``.

    Returns:
        Columns ``notebook, row, config, family, run, stored, steps, frames/step, GFLOPs/step, TFLOP/s,
        source`` (``calibrated`` | ``assumed``), ``est. hours, peak GiB`` (``NaN`` without a calibration).
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
            _CONFIGS[(spec.config, profile, overrides)] = cfg
            d = cfg.data
            frames = 2 * d.num_ids * d.num_pos * d.seq_len
            steps = cfg.train.epochs * cfg.train.iters_per_epoch
            flops = 6.0 * _macs_per_frame(spec.config, profile, overrides) * frames
            rate, peak, source = _family_rate(cfg.model.name, calibration, tflops)
            rows.append({"notebook": f"{paper}_{item}", "row": spec.label, "config": spec.config,
                         "family": cfg.model.name, "run": _identity(cfg), "stored": _stored(cfg), "steps": steps,
                         "frames/step": frames, "GFLOPs/step": flops / 1e9, "TFLOP/s": rate, "source": source,
                         "est. hours": steps * flops / (rate * 1e12) / 3600,
                         "peak GiB": float("nan") if peak is None else peak})
    _CONFIGS.clear()
    return pd.DataFrame(rows)


def plan(names: Sequence[str], profile: str = "paper", tflops: float = DEFAULT_TFLOPS,
         calibration: Optional[dict] = None) -> pd.DataFrame:
    """:func:`plan_target` of several notebooks, in the order given; a run already planned by an earlier
    one is marked ``shared`` (and ``trained_in`` names that notebook) and not counted again in the totals."""
    frames = []
    first: dict[str, str] = {}
    for name in names:
        paper, _, item = name.partition("_")
        t = plan_target(paper, item, profile, tflops, calibration)
        if t.empty:
            continue
        t["shared"] = t["run"].isin(first.keys()) | t["run"].duplicated()
        t["trained_in"] = [first.get(r, name) for r in t["run"]]
        for r in t["run"]:
            first.setdefault(r, name)
        frames.append(t)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _to_train(table: pd.DataFrame) -> pd.DataFrame:
    return table[~table["shared"] & (table["stored"] != True)]  # noqa: E712 - None means unknown


def notebook_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per notebook, in the table's order: ``runs`` it trains (not shared with an earlier notebook, not in
    the store), their ``steps``, ``hours``, the largest ``peak GiB`` among them, and ``reuses``: the
    earlier notebooks whose runs it loads (their runs train there, once)."""
    out = []
    todo = _to_train(table)
    for nb, rows in table.groupby("notebook", sort=False):
        mine = todo[todo["notebook"] == nb]
        reused = rows[rows["shared"] & (rows["trained_in"] != nb)]
        out.append({"notebook": nb, "runs": int(mine["run"].nunique()), "steps": int(mine["steps"].sum()),
                    "hours": float(mine["est. hours"].sum()),
                    "peak GiB": float(mine["peak GiB"].max()) if len(mine) else float("nan"),
                    "reuses": ", ".join(dict.fromkeys(reused["trained_in"]))})
    return pd.DataFrame(out, columns=["notebook", "runs", "steps", "hours", "peak GiB", "reuses"])


def render_order(table: pd.DataFrame) -> list[str]:
    """The notebooks in an order where every notebook comes after each one whose runs it reuses (the
    table's order, which is how :func:`plan` decides who trains a shared run; checked here).

    Raises:
        AssertionError: a notebook reuses a run of a later one (a bug in :func:`plan`).
    """
    order = list(dict.fromkeys(table["notebook"])) if len(table) else []
    where = {nb: i for i, nb in enumerate(order)}
    for nb, src in zip(table["notebook"], table["trained_in"]):
        assert where[src] <= where[nb], f"{nb} reuses a run that {src} trains, but renders first"
    return order


def source_line(calibration: Optional[dict], tflops: float = DEFAULT_TFLOPS,
                families: Sequence[str] = ()) -> str:
    """Where the time and memory figures come from, in one sentence (the plan's header)."""
    if calibration is None:
        return (f"time at an ASSUMED {tflops:g} TFLOP/s sustained (FLOPs / throughput): no calibration of this "
                f"device (`python -m reprolib plan --calibrate` on the GPU writes one); peak memory not estimated")
    fams = calibration.get("families", {})
    missing = [f for f in families if f not in fams]
    kind = "GPU" if calibration.get("device_type") == "cuda" else "HOST (CPU) memory, not GPU"
    text = (f"time and peak memory ({kind}) MEASURED on {calibration['device']} (calibration "
            f"{_rel(calibration.get('path', '?'))}, {calibration.get('date', '?')[:10]}, torch {calibration.get('torch', '?')}"
            f"{'; ' + calibration['note'] if calibration.get('note') else ''})")
    if missing:
        text += f"; {', '.join(missing)} not calibrated: at an ASSUMED {tflops:g} TFLOP/s, memory not estimated"
    return text


def _rel(path: str) -> str:
    """``path`` relative to the project root when it lies inside it (how the README names it)."""
    from pathlib import Path

    from reprolib import PROJECT_ROOT

    p = Path(path)
    try:
        return str(p.resolve().relative_to(PROJECT_ROOT.resolve())) if p.is_absolute() else str(p)
    except ValueError:
        return str(p)


def _fmt_gib(v: float) -> str:
    return "n/a" if pd.isna(v) else f"{v:,.1f}"


def markdown(table: pd.DataFrame, calibration: Optional[dict], tflops: float = DEFAULT_TFLOPS,
             command: str = "python -m reprolib plan all --profile paper --markdown") -> str:
    """The budget table of README.md: one line per notebook in render order (runs, steps, GPU hours,
    peak memory, what it reuses) and the workbook's total, between :data:`MARKDOWN_BEGIN` and
    :data:`MARKDOWN_END`, with the source of the numbers and the command that regenerates it."""
    summary = notebook_summary(table)
    order = render_order(table)
    todo = _to_train(table)
    fams = sorted(set(table["family"])) if len(table) else []
    mem = "peak GPU memory (GiB)" if (calibration or {}).get("device_type") == "cuda" else \
        ("peak memory (GiB)" if calibration else "peak GPU memory")
    lines = [MARKDOWN_BEGIN,
             f"Generated by `{command}`"
             + (f" `--calibration {_rel(calibration['path'])}`" if calibration else "") + "; do not edit by hand.",
             f"Source: {source_line(calibration, tflops, fams)}.", "",
             f"| # | notebook | runs to train | steps | GPU hours | {mem} | reuses the runs of |",
             "|---:|---|---:|---:|---:|---:|---|"]
    for i, nb in enumerate(order, 1):
        r = summary[summary["notebook"] == nb].iloc[0]
        peak = _fmt_gib(r["peak GiB"]) if calibration else "not measured"
        lines.append(f"| {i} | {nb} | {r['runs']} | {r['steps']:,} | {r['hours']:,.1f} | {peak} | {r['reuses'] or '-'} |")
    peak_all = _fmt_gib(todo["peak GiB"].max()) if calibration and len(todo) else ("not measured" if not calibration else "n/a")
    lines.append(f"| | **workbook** | **{todo['run'].nunique()}** | **{int(todo['steps'].sum()):,}** | "
                 f"**{todo['est. hours'].sum():,.1f}** | {peak_all} | |")
    lines.append(MARKDOWN_END)
    return "\n".join(lines) + "\n"


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


def _calibrate(a: argparse.Namespace) -> int:
    from reprolib.experiments.calibrate import FAMILIES, calibrate

    families = a.families or list(FAMILIES)
    cal, path = calibrate(families, steps=a.steps, batch=a.batch, device=a.device, out=a.calibration,
                          threads=a.threads)
    print(f"calibration of {cal['device']} ({cal['device_type']}, torch {cal['torch']}, {cal['threads']} threads) "
          f"written to {path}\n{cal['note']}")
    rows = [{"family": f, "batch": f"{r['num_ids']}x{r['num_pos']} ({r['batch']})", "frames/step": r["frames_per_step"],
             "measured s/step": r["measured_step_s"], "s/step at paper batch": r["step_s"],
             "scaled": r["scaled"], "frames/s": r["frames_per_s"], "TFLOP/s": r["tflops"],
             "peak GiB": r["peak_memory_bytes"] / GIB, "amp": r["amp"], "wall s": r.get("wall_s", float("nan"))}
            for f, r in cal["families"].items() if f in families]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:,.3f}"))
    print("peak memory: " + cal["families"][families[0]]["memory_kind"])
    return 0


def _load(a: argparse.Namespace) -> Optional[dict]:
    from reprolib.experiments.calibrate import load_calibration, present_calibration

    if a.no_calibration:
        return None
    if a.calibration:
        return load_calibration(a.calibration)
    return present_calibration()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m reprolib plan <notebook>|all [--profile paper] [--calibration FILE | --no-calibration]
    [--tflops X] [--order | --markdown | --json]`` and ``python -m reprolib plan --calibrate [--families ...]
    [--steps N] [--batch paper|rehearsal]``."""
    p = argparse.ArgumentParser(prog="reprolib plan", description=__doc__.splitlines()[0])
    p.add_argument("notebook", nargs="?", help="a notebook (vld_table3, 203_vld_table3) or 'all'")
    p.add_argument("--profile", default="paper", choices=["smoke", "embedded", "paper"])
    p.add_argument("--tflops", type=float, default=DEFAULT_TFLOPS,
                   help="assumed sustained training throughput in TFLOP/s of families without a calibration "
                        "(default %(default)s)")
    p.add_argument("--calibration", metavar="FILE",
                   help="the calibration to use (default: results/calibration/<this device>.json if it exists); "
                        "with --calibrate: where to write it")
    p.add_argument("--no-calibration", action="store_true", help="ignore any calibration: FLOPs at --tflops")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the per-run table as JSON records")
    out.add_argument("--order", action="store_true",
                     help="print the render order (a shared run trains in the first notebook) and what each reuses")
    out.add_argument("--markdown", action="store_true", help="print the README's budget table")
    cal = p.add_argument_group("calibration (on the device; python -m reprolib plan --calibrate)")
    cal.add_argument("--calibrate", action="store_true",
                     help="time real training steps of each family on this device, measure peak memory, save "
                          "results/calibration/<device>.json")
    cal.add_argument("--families", nargs="+", metavar="FAMILY",
                     help="families to calibrate (default: baseline vld xreid clipreid tfclip cmft)")
    cal.add_argument("--steps", type=int, default=3, help="steps per epoch, two epochs, the last timed (default 3)")
    cal.add_argument("--batch", default="paper", choices=["paper", "rehearsal"],
                     help="paper: the config's batch; rehearsal: 2 x 1 identities, time scaled per frame")
    cal.add_argument("--device", default="auto", help="auto (the GPU if any, else cpu), cuda, cpu")
    cal.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: unchanged)")
    a = p.parse_args(argv)
    # the models are built with random weights: their loading chatter is noise here
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("reprolib.models").setLevel(logging.ERROR)
    if a.calibrate:
        if a.notebook:
            p.error("--calibrate takes no notebook")
        logging.getLogger("reprolib.experiments.calibrate").setLevel(logging.INFO)
        return _calibrate(a)
    if not a.notebook:
        p.error("give a notebook or 'all' (or --calibrate)")
    calibration = _load(a)
    table = plan(_notebooks(a.notebook), a.profile, a.tflops, calibration)
    if a.json:
        sys.stdout.write(json.dumps(table.to_dict("records"), indent=1, default=str) + "\n")
        return 0
    if a.markdown:
        sys.stdout.write(markdown(table, calibration, a.tflops))
        return 0
    summary = notebook_summary(table)
    if a.order:
        print("render order (a run shared by several notebooks trains in the first; the later ones load it):")
        for i, nb in enumerate(render_order(table), 1):
            r = summary[summary["notebook"] == nb].iloc[0]
            reuse = f"; reuses runs of {r['reuses']}" if r["reuses"] else ""
            print(f"{i:3d}. {nb:<16} trains {r['runs']:3d} runs, {r['hours']:7,.1f} h{reuse}")
        return 0
    pd.set_option("display.width", 220)
    pd.set_option("display.max_rows", 500)
    fams = sorted(set(table["family"])) if len(table) else []
    print(f"plan, profile={a.profile}: training compute only (memory passes, text encoders and evaluation not "
          f"counted); {source_line(calibration, a.tflops, fams)}")
    shown = table.drop(columns=["run", "trained_in"]).copy()
    if calibration is None:
        shown = shown.drop(columns=["peak GiB", "TFLOP/s", "source"])
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    print("\nper notebook (runs not shared with an earlier notebook, not in the store):")
    cols = ["notebook", "runs", "steps", "hours", *(["peak GiB"] if calibration else []), "reuses"]
    print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    todo = _to_train(table)
    rate = (f"the calibrated throughput ({a.tflops:g} TFLOP/s where a family is not calibrated)" if calibration
            else f"an assumed {a.tflops:g} TFLOP/s")
    print(f"\nworkbook: {todo['run'].nunique()} runs to train, {int(todo['steps'].sum()):,} steps, "
          f"{todo['est. hours'].sum():,.1f} h at {rate}")
    return 0
