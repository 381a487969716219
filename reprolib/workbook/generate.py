"""Generate the reproduction notebooks of every target in ``reprolib/workbook/specs/*.yaml``.

Every table/figure notebook has the same shape (claim, parameters, the paper's numbers, our runs
side by side, a plot, the paper's claims checked against our runs, checks), so they are written
from the target specs rather than by hand; a target with ``kind`` cells of its own (analysis
figures, cost tables) gets them from :func:`analysis_cells` and the cost/time cells. Run it after
editing a spec::

    python -m reprolib notebook generate            # (re)write notebooks/<NNN>_<paper>_<item>.ipynb
    python -m reprolib notebook generate --check    # exit 1 if a notebook differs from its spec

The notebooks' outputs are produced by papermill (``make reproduce-<paper>-<item>``), never here.
"""
from __future__ import annotations

import argparse
import logging
from typing import Optional

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from reprolib import PROJECT_ROOT
from reprolib.paper import load_numbers
from reprolib.workbook.targets import TARGETS_DIR, Target, load_targets

__all__ = ["notebook_name", "cells", "build", "main"]

log = logging.getLogger(__name__)
ROOT = PROJECT_ROOT

PAPER_DIGIT = {"xreid": "1", "vld": "2", "cmft": "3"}
PAPER_NAME = {
    "xreid": "X-ReID (Yu et al., AAAI 2026)",
    "vld": "VLD (Li et al., *Video-Level Language-Driven VVI-ReID*, TIFS 2025)",
    "cmft": "CMFT (Mukhtar & Khan, 2025)",
}
PAPER_SHORT = {"xreid": "X-ReID", "vld": "VLD", "cmft": "CMFT"}
PARAMS = '''# Parameters (papermill injects values here; plain literals only)
profile = "embedded"      # "smoke" (CI) | "embedded" (miniature world, CPU) | "paper" (real data, GPU)
data_root = ""            # paper profile: HITSZ-VCM root, e.g. "/data/HITSZ-VCM" (else $REPROLIB_DATA)
bupt_root = ""            # paper profile: BUPTCampus root (else $REPROLIB_BUPT)
sysu_root = ""            # paper profile: SYSU-MM01 root (else $REPROLIB_SYSU)
regdb_root = ""           # paper profile: RegDB root (else $REPROLIB_REGDB)
device = "auto"           # "auto" | "cpu" | "cuda"
clip_weights = ""         # paper profile: CLIP ViT-B/16 weights file for CLIP rows (else $CLIP_WEIGHTS or the HF cache)
resnet_weights = ""       # paper profile: ResNet-50 weights file for CMFT's streams (else $RESNET50_WEIGHTS)
rehearsal = False         # paper profile on stand-ins (docs/rehearsal.md); outputs in results/rehearsal/
overrides = []            # extra config overrides for every run, as with --set'''

#: What the embedded profile's networks start from, per paper (CMFT's streams are ResNets, not CLIP).
EMBEDDED_BACKBONE = {"cmft": "ResNet-50 streams of base width 16 initialised from TinyResNet (ImageNet's stand-in)"}
PROFILE_NOTE = (
    "Under the `embedded` profile our numbers are measured on the SynthVCM miniature world with {backbone}; "
    "they stand beside the paper's numbers for orientation and for the *direction* of each ablation, "
    "**not** as a reproduction on real data. Under `smoke` (CI) only the rows marked for CI run, for a "
    "few steps: those numbers only prove that the pipeline works.")


def notebook_name(target: Target) -> str:
    """``2NN_vld_table3``: paper digit, then the item number padded to two digits (figures + 50)."""
    kind, num = ("fig", int(target.item[3:])) if target.item.startswith("fig") else ("table", int(target.item[5:]))
    return f"{PAPER_DIGIT[target.paper]}{num + (50 if kind == 'fig' else 0):02d}_{target.paper}_{target.item}"


def intro(target: Target) -> str:
    rows = "\n".join(
        f"| {r.label} | " + (f"`{r.config}`" if r.config else "—") + " | "
        + (" ".join(f"`{o}`" for o in r.overrides) or "") + " | " + ("yes" if r.smoke else "") + " | " + r.note + " |"
        for r in target.rows)
    note = f"\n\n**The miniature and this target.** {target.note}" if target.note else ""
    return (f"# {target.title}\n\n**The paper's claim** — {PAPER_NAME[target.paper]}: {target.claim}\n\n"
            f"**The rows and the runs that reproduce them** (configs in `reprolib/configs/`, spec in "
            f"`reprolib/workbook/specs/{target.paper}.yaml`):\n\n"
            f"| row | config | overrides | in CI | note |\n|---|---|---|---|---|\n{rows}{note}\n\n"
            + PROFILE_NOTE.format(backbone=EMBEDDED_BACKBONE.get(target.paper, "TinyCLIP")))


SETUP = '''import logging

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from reprolib import viz
from reprolib.paper import paper_table
from reprolib.workbook.checks import check_target
from reprolib.workbook.compare import wide
from reprolib.workbook.session import Workbook
from reprolib.workbook.targets import chance_table, cost_table, get_target, reproduce, row_status, time_table

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", force=True)
logging.getLogger("reprolib").setLevel(logging.INFO)   # our progress; third-party chatter stays quiet
wb = Workbook(profile, data_root=data_root, device=device, clip_weights=clip_weights, overrides=overrides,
              bupt_root=bupt_root, sysu_root=sysu_root, regdb_root=regdb_root,
              resnet_weights=resnet_weights, rehearsal=rehearsal)
target = get_target({paper!r}, {item!r})
display(Markdown(f"**Profile:** {{wb.label()}}"))'''

CHECKS = '''# Checks on what this notebook produced (reprolib.workbook.checks.check_target), then the table is written
check_target(target, rep, wb, profile, headline={headline!r})'''



PLOT_NOTE_BARS = ("## Paper vs ours\n\nHatched: the paper's numbers on the real benchmark; solid: ours on the "
                  "selected profile, each panel on its own scale.")
PLOT_NOTE_SWEEP = ("## Ours across the sweep\n\nOne panel per swept hyper-parameter and metric, both directions; the dotted "
                   "line marks the paper's choice. Where the paper gives numbers, its curve is drawn on a second "
                   "axis (its own scale).")


def paper_cells(target: Target) -> list:
    """The "paper's numbers" cells: the table, or what to compare when the paper gives only a plot."""
    cells = load_numbers(target.paper)
    cells = cells[cells["item"] == target.item]
    if cells["value"].notna().any():
        return [new_markdown_cell("## The paper's numbers"),
                new_code_cell(f"paper_table({target.paper!r}, {target.item!r})")]
    sources = list(dict.fromkeys(cells["source"]))
    what = f"{sources[0]} as a plot" if len(sources) == 1 else f"{', '.join(sources)} as plots"
    compare = ("What can be compared is the shape: whether our curves peak at the paper's choice (the dotted "
               "line below) and how flat they are around it." if is_sweep(target) else
               "Compare our figure below with the paper's by eye.")
    return [new_markdown_cell(
        f"## The paper's numbers\n\nThe paper gives {what} only: none of the values is in the text "
        f"(`reprolib/paper/numbers.csv` lists its settings with empty values). {compare}")]


def is_sweep(target: Target) -> bool:
    """A figure whose rows sweep one hyper-parameter (plotted as curves rather than bars)."""
    return target.item.startswith("fig") and target.kind == "ablation"


def target_cells(target: Target) -> dict[str, list]:
    """The cells every kind of target notebook shares, by section (:func:`cells` assembles them)."""
    metrics = ", ".join(repr(m) for m in target.metrics)
    chosen = dict(c.with_row.split("=", 1) for c in target.claims if "=" in c.with_row)  # the paper's picks
    plot = (f'''fig = viz.sweep_plot(rep.table, metrics=({metrics},), chosen={chosen!r}, directions=target.directions,
                     title="{PAPER_SHORT[target.paper]} {target.item} — ours: " + wb.out_profile)
wb.save_figure(fig, "{target.paper}_{target.item}_sweep")
display(fig)
plt.close(fig)''' if is_sweep(target) else
            f'''fig = viz.paper_vs_ours_panels(rep.table, metrics=({metrics},), rows=[r.row for r in target.rows if r.config],
                               title=f"{PAPER_SHORT[target.paper]} {target.item} — ours: {{wb.out_profile}} profile")
wb.save_figure(fig, "{target.paper}_{target.item}")
display(fig)
plt.close(fig)''')
    return {
        "head": [new_markdown_cell(intro(target)),
                 new_code_cell(PARAMS, metadata={"tags": ["parameters"]}),
                 new_code_cell(SETUP.format(paper=target.paper, item=target.item)),
                 *paper_cells(target)],
        "runs": [new_markdown_cell("## Our runs\n\nEach row is one config asked from the run store (trained once, "
                                   "then loaded). `pending` rows are not run under this profile or belong to "
                                   "another issue."),
                 new_code_cell("rep = reproduce(target, wb)\nwide(rep.table).round(2)"),
                 new_code_cell("row_status(target, rep, profile)"),
                 new_markdown_cell("What random rankings score on the same test sets (chance level, and the best of "
                                   "200 random rankings: a row of ours below that bar is indistinguishable from "
                                   "chance)."),
                 new_code_cell("chance_table(target, rep, wb).round(2)")],
        "plot": [new_markdown_cell(PLOT_NOTE_SWEEP if is_sweep(target) else PLOT_NOTE_BARS),
                 new_code_cell(plot)] if any(r.config for r in target.rows) else [],
        "claims": [new_markdown_cell("## Does each component help in our runs?\n\n`ours` is `helps` when every gain "
                                     "(both directions, every metric) is positive, `does not help` when none is, "
                                     "else `mixed`."),
                   new_code_cell("rep.claims")],
        "checks": [new_code_cell(CHECKS.format(headline=target.headline or None))],
    }


COST_CELLS = [
    new_markdown_cell("## Our counts\n\nEach row's model is built with the paper profile's architecture and input "
                      "size (288x144) and random weights, and one clip goes through `extract()`: parameters of the "
                      "modules that run (training-only parts such as the ID classifiers, the prompt learner and "
                      "the frozen text encoder are not counted, as in the paper), and MACs per frame under the "
                      "paper's convention (convolution, linear and LayerNorm; attention products excluded) and the "
                      "full one. No data and no training: this table is exact under every profile."),
    new_code_cell("cost = cost_table(target)\ncost.round(3)"),
    new_code_cell('''fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for ax, (metric, unit) in zip(axes, (("params_M", "parameters (M)"), ("gflops", "GFLOPs per frame"))):
    x = range(len(cost))
    ax.bar([i - 0.2 for i in x], cost[f"paper {metric}"], 0.4, hatch="//", color="#bbbbbb", edgecolor="#555555",
           label="paper")
    ax.bar([i + 0.2 for i in x], cost.get(f"ours {metric}"), 0.4, color="#4575b4", label="ours (exact count)")
    ax.set_xticks(list(x), cost.index, fontsize=7)
    ax.set_ylabel(unit)
    ax.legend(fontsize=7)
fig.suptitle(target.title, fontsize=9)
fig.tight_layout()
wb.save_figure(fig, f"{target.paper}_{target.item}_cost")
display(fig)
plt.close(fig)'''),
    new_code_cell('''# Checks: our counts reproduce the paper's numbers of the rows marked exact (to its printed precision)
exact = [r.label for r in target.rows if r.exact]       # rows whose numbers must reproduce exactly
assert len(exact) >= 2 and cost.loc[exact, "ours params_M"].notna().all()
for row, r in cost.loc[exact].iterrows():
    assert round(r["ours params_M"], 2) == r["paper params_M"], (row, r["ours params_M"], r["paper params_M"])
    assert round(r["ours gflops"], 2) == r["paper gflops"], (row, r["ours gflops"], r["paper gflops"])
path = wb.save_table(cost.reset_index(), target.paper, target.item)
print("table written to", path.relative_to(path.parents[2]))'''),
]

TIME_CELLS = [
    new_markdown_cell("## Training time\n\n`ours train min`: the measured wall-clock of each run's optimisation "
                      "steps as it was trained (evaluation excluded), on the machine named in `hardware`; runs "
                      "trained on different days or beside other jobs are not comparable with each other. So every "
                      "row is also timed here, side by side in one process (`python -m reprolib bench train`: the "
                      "profile's full epoch schedule with a few steps per epoch, every per-epoch hook included, "
                      "projected to the full schedule). `ours relative` is each row's projected time over VLD's "
                      "(the last row): the number that can be compared with the paper's ratios."),
    new_code_cell("times = time_table(target, rep, wb, bench_iters=3 if profile == \"smoke\" else 10)\ntimes.round(3)"),
    new_code_cell('''ratios = times[["paper time_h", "ours relative"]].dropna(how="all").copy()
ratios["paper relative"] = ratios["paper time_h"] / times["paper time_h"].iloc[-1]
ax = ratios[["paper relative", "ours relative"]].plot.bar(figsize=(6, 3), color=["#bbbbbb", "#4575b4"], rot=0)
ax.axhline(1.0, color="k", lw=0.6)
ax.set_ylabel("training time / VLD's")
ax.set_title(f"{target.title} — ours: {profile} profile", fontsize=9)
fig = ax.figure
fig.tight_layout()
wb.save_figure(fig, f"{target.paper}_{target.item}_time")
display(fig)
plt.close(fig)
# Checks: every row that ran was also timed side by side
assert times.loc[list(rep.runs), "bench projected min"].gt(0).all()'''),
]


def analysis_cells(target: Target) -> list:
    """Figure-specific cells of VLD Figures 7-9 (after the runs and the paper-vs-ours table)."""
    if target.item == "fig7":
        return [
            new_markdown_cell("## Distance distributions\n\nCosine distances of intra-class (same identity) and "
                              "inter-class pairs; delta = mean(inter) - mean(intra), larger is better separated."),
            new_code_cell('''from reprolib.experiments.analysis import distance_distributions
from reprolib.viz.distances import paper_deltas, plot_distance_distributions

limit = 64 if profile == "smoke" else None             # training tracklets per model for the text part
results = {}
for label, run in rep.runs.items():
    cfg, dataset, model, dev = wb.model(run)
    results[label] = distance_distributions(model, dataset, cfg, dev, max_train_tracklets=limit)
pair = ("B+IMLP", "VLD") if {"B+IMLP", "VLD"} <= set(results) else None
fig = plot_distance_distributions(results, wb.out / "figures" / f"{target.paper}_{target.item}.png", paper_pair=pair,
                                  title=f"VLD Fig. 7 — ours: {profile} profile")
display(fig)'''),
            new_code_cell('''import pandas as pd

deltas = pd.DataFrame({label: {"cross-modality delta": r["cross"]["delta"],
                               "text-visual delta": (r["text"] or {}).get("delta")} for label, r in results.items()}).T
if pair:
    display(pd.Series(paper_deltas(results, *pair), name="paper's deltas (B+IMLP stands for CLIP-ReID)"))
deltas'''),
            new_code_cell('''# Checks
assert set(results) == set(rep.runs)
for label, r in results.items():
    assert len(r["cross"]["intra"]) > 0 and len(r["cross"]["inter"]) > 0
assert results["B"]["text"] is None                      # the baseline has no text branch
assert results["VLD"]["text"] is not None'''),
        ]
    if target.item == "fig8":
        return [
            new_markdown_cell("## Class activation maps\n\nOne test identity seen by both modalities; rows: the "
                              "frames, then each model's Grad-CAM."),
            new_code_cell('''from reprolib.viz.cam import cross_modal_cams, plot_cam_strips

es = wb.dataset(target.row("B").config).eval_sets["ir2rgb"]
ir = es.query[0]
rgb = next(t for t in es.gallery if t.pid == ir.pid)
cams = {}
for label, run in rep.runs.items():
    cfg, dataset, model, dev = wb.model(run)
    cams[label] = cross_modal_cams(model.cpu(), rgb, ir, cfg.data)
fig = plot_cam_strips(cams["B"]["frames_rgb"], cams["B"]["frames_ir"], {k: v for k, v in cams.items()},
                      wb.out / "figures" / f"{target.paper}_{target.item}.png",
                      title=f"VLD Fig. 8, identity {ir.pid} — ours: {profile} profile")
display(fig)'''),
            new_code_cell('''# Checks
import numpy as np

for label, c in cams.items():
    for m in ("rgb", "ir"):
        assert c[m].shape[0] == cfg.data.seq_len and np.isfinite(c[m]).all() and c[m].max() <= 1 + 1e-6'''),
        ]
    if target.item == "fig9":
        return [
            new_markdown_cell("## Retrieval\n\nTop-6 gallery tracklets of a few queries (green: same identity). The "
                              "queries are those where VLD gains most over the baseline: see the note above."),
            new_code_cell('''from reprolib.viz.retrieval import contrast_queries, plot_retrieval_grid

eval_sets = wb.dataset(target.row("B").config).eval_sets
directions = ("ir2rgb", "rgb2ir")
rankings = {label: {d: wb.ranking(run, d) for d in directions} for label, run in rep.runs.items()}
queries = {d: contrast_queries(rankings["B"][d], rankings["VLD"][d], eval_sets[d], n=2) for d in directions}
fig = plot_retrieval_grid(rankings, eval_sets, queries, wb.out / "figures" / f"{target.paper}_{target.item}.png",
                          title=f"VLD Fig. 9 — ours: {profile} profile")
display(fig)'''),
            new_code_cell('''# Checks
for d in directions:
    assert rankings["B"][d].shape == rankings["VLD"][d].shape
    assert rankings["B"][d].shape[0] == len(eval_sets[d].query)
    assert len(queries[d]) == 2'''),
        ]
    raise ValueError(f"no analysis cells for {target.paper} {target.item}")


def cells(target: Target) -> list:
    """Every cell of a target's notebook, by its kind."""
    c = target_cells(target)
    if not any(r.config for r in target.rows):  # the paper's numbers only: nothing of ours to compare
        return c["head"] + [new_markdown_cell("## Why there are no runs of ours\n\nNo row of this table can run "
                                              "on the released data (each row's note says why)."),
                            new_code_cell("rep = reproduce(target, wb)\nrow_status(target, rep, profile)"),
                            *c["checks"]]
    if target.kind == "cost":
        return c["head"] + COST_CELLS
    if target.kind == "time":
        return c["head"] + c["runs"] + TIME_CELLS + c["plot"] + c["claims"] + c["checks"]
    if target.kind == "analysis":
        return c["head"] + c["runs"] + analysis_cells(target) + c["checks"]
    return c["head"] + c["runs"] + c["plot"] + c["claims"] + c["checks"]


def build(target: Target) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = cells(target)
    nb.metadata["kernelspec"] = {"name": "reprolib", "display_name": "Python (reprolib)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m reprolib notebook generate [--check] [--paper P]``: (re)write the target notebooks."""
    ap = argparse.ArgumentParser(prog="reprolib notebook generate", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a notebook's source differs from its spec")
    ap.add_argument("--paper", choices=sorted(PAPER_DIGIT), help="only this paper's targets")
    args = ap.parse_args(argv)
    stale = []
    for paper in sorted(PAPER_DIGIT):
        if args.paper and paper != args.paper or not (TARGETS_DIR / f"{paper}.yaml").exists():
            continue
        for target in load_targets(paper).values():
            path = ROOT / "notebooks" / f"{notebook_name(target)}.ipynb"
            nb = build(target)
            old = nbformat.read(path, as_version=4) if path.exists() else None
            if old is not None and [c.source for c in old.cells] == [c.source for c in nb.cells]:
                continue                                  # up to date: leave the file (and its mtime) alone
            if args.check:
                stale.append(path.name)
                continue
            for i, cell in enumerate(nb.cells):          # stable ids: a regenerated notebook diffs by content only
                cell.id = f"{path.stem[:3]}-{i:02d}"
            nbformat.write(nb, path)
            log.info("wrote %s", path.relative_to(ROOT))
    if stale:
        log.error("notebooks out of date with their specs (run python -m reprolib notebook generate): %s",
                  ", ".join(stale))
        return 1
    return 0
