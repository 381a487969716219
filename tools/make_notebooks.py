"""Generate the reproduction notebooks of every target in ``reprolib/experiments/targets/*.yaml``.

Every table/figure notebook has the same shape (claim, parameters, the paper's numbers, our runs
side by side, a plot, the paper's claims checked against our runs, checks), so they are written
from the target specs rather than by hand; a target with ``kind`` cells of its own (analysis
figures, cost tables) gets them from :data:`EXTRA_CELLS`. Run it after editing a spec::

    .venv/bin/python tools/make_notebooks.py            # (re)write notebooks/<NNN>_<paper>_<item>.ipynb
    .venv/bin/python tools/make_notebooks.py --check    # exit 1 if a notebook differs from its spec

The notebooks' outputs are produced by papermill (``make reproduce-<paper>-<item>``), never here.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reprolib.experiments.targets import Target, load_targets  # noqa: E402

PAPER_DIGIT = {"xreid": "1", "vld": "2", "cmft": "3"}
PAPER_NAME = {
    "xreid": "X-ReID (Chen et al., 2025)",
    "vld": "VLD (Li et al., *Video-Level Language-Driven VVI-ReID*, TIFS 2025)",
    "cmft": "CMFT (Mukhtar & Khan, 2025)",
}
PARAMS = '''# Parameters (papermill injects values here; plain literals only)
profile = "embedded"      # "smoke" (CI) | "embedded" (miniature world, CPU) | "paper" (real data, GPU)
data_root = ""            # paper profile: dataset root, e.g. "/data/HITSZ-VCM"
device = "auto"           # "auto" | "cpu" | "cuda"
clip_weights = ""         # paper profile: CLIP ViT-B/16 weights file (else $CLIP_WEIGHTS or the HF cache)
overrides = []            # extra config overrides for every run, as with --set'''

PROFILE_NOTE = (
    "Under the `embedded` profile our numbers are measured on the SynthVCM miniature world with TinyCLIP; "
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
    return (f"# {target.title}\n\n**The paper's claim** ({PAPER_NAME[target.paper]}): {target.claim}\n\n"
            f"**The rows and the runs that reproduce them** (configs in `reprolib/configs/`, spec in "
            f"`reprolib/experiments/targets/{target.paper}.yaml`):\n\n"
            f"| row | config | overrides | in CI | note |\n|---|---|---|---|---|\n{rows}{note}\n\n{PROFILE_NOTE}")


SETUP = '''import logging

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from reprolib import viz
from reprolib.experiments.compare import wide
from reprolib.experiments.targets import get_target, reproduce, row_status
from reprolib.experiments.workbook import Workbook, above_chance
from reprolib.paper import paper_table

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
wb = Workbook(profile, data_root=data_root, device=device, clip_weights=clip_weights, overrides=overrides)
target = get_target({paper!r}, {item!r})
display(Markdown(f"**Profile:** {{wb.label()}}"))'''

CHECKS = '''# Checks on what this notebook produced
ran = [r.label for r in target.runnable(profile)]
assert set(rep.runs) == set(ran), f"rows that should have run: {{sorted(set(ran) - set(rep.runs))}}"
for label, run in rep.runs.items():
    for d, m in run.metrics["eval"].items():
        assert 0 <= m["mAP"] <= 100 and 0 <= m["R1"] <= 100, (label, d)
reproduced = rep.table[rep.table["status"] == "reproduced"]
assert len(reproduced) > 0 or not {has_paper_cells}, "no row of ours matches a row of the paper"
if profile == "embedded":                              # training is meaningful beyond the smoke profile
    label = {headline!r}
    ds = wb.dataset(target.row(label).config, *target.overrides_for(target.row(label), profile))
    for d in rep.runs[label].metrics["eval"]:
        assert above_chance(rep.runs[label].metrics["eval"][d], ds.eval_sets[d]), f"{{label}} is at chance ({{d}})"
path = wb.save_table(rep.table, target.paper, target.item,
                     meta={{"runs": {{k: v.path.name for k, v in rep.runs.items()}}}})
print("table written to", path.relative_to(path.parents[2]))'''


def target_cells(target: Target) -> list:
    smoke_rows = [r.label for r in target.rows if r.smoke and r.config]
    headline = smoke_rows[-1] if smoke_rows else next(r.label for r in target.rows if r.config)
    metrics = ", ".join(repr(m) for m in target.metrics)
    plot = (f'''for metric in ({metrics},):
    fig = viz.paper_vs_ours_panels(rep.table, metric=metric, title=f"{target.paper.upper()} {target.item}, {{metric}} — ours: {{profile}} profile")
    wb.save_figure(fig, f"{target.paper}_{target.item}_{{metric}}")
    display(fig)
    plt.close(fig)''' if not target.item.startswith("fig") else
            f'''fig = viz.sweep_plot(rep.table, metrics=({metrics},), title="{target.paper.upper()} {target.item} — ours: " + profile)
wb.save_figure(fig, "{target.paper}_{target.item}_sweep")
display(fig)
plt.close(fig)''')
    return [
        new_markdown_cell(intro(target)),
        new_code_cell(PARAMS, metadata={"tags": ["parameters"]}),
        new_code_cell(SETUP.format(paper=target.paper, item=target.item)),
        new_markdown_cell("## The paper's numbers"),
        new_code_cell(f"paper_table({target.paper!r}, {target.item!r})"),
        new_markdown_cell("## Our runs\n\nEach row is one config asked from the run store (trained once, then "
                          "loaded). `pending` rows are not run under this profile or belong to another issue."),
        new_code_cell("rep = reproduce(target, wb)\nwide(rep.table).round(2)"),
        new_code_cell("row_status(target, rep, profile)"),
        new_markdown_cell("## Paper vs ours\n\nHatched: the paper's numbers on the real benchmark; solid: ours on "
                          "the selected profile."),
        new_code_cell(plot),
        new_markdown_cell("## Does each component help in our runs?\n\n`ours` is `helps` when every gain (both "
                          "directions, every metric) is positive, `does not help` when none is, else `mixed`."),
        new_code_cell("rep.claims"),
        new_code_cell(CHECKS.format(has_paper_cells=any(r.config for r in target.rows), headline=headline)),
    ]


def build(target: Target) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = target_cells(target)
    nb.metadata["kernelspec"] = {"name": "reprolib", "display_name": "Python (reprolib)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a notebook's source differs from its spec")
    ap.add_argument("--paper", choices=sorted(PAPER_DIGIT), help="only this paper's targets")
    args = ap.parse_args(argv)
    stale = []
    for paper in sorted(PAPER_DIGIT):
        if args.paper and paper != args.paper or not (ROOT / "reprolib/experiments/targets" / f"{paper}.yaml").exists():
            continue
        for target in load_targets(paper).values():
            path = ROOT / "notebooks" / f"{notebook_name(target)}.ipynb"
            nb = build(target)
            if args.check:
                old = nbformat.read(path, as_version=4) if path.exists() else None
                if old is None or [c.source for c in old.cells] != [c.source for c in nb.cells]:
                    stale.append(path.name)
                continue
            nbformat.write(nb, path)
            print("wrote", path.relative_to(ROOT))
    if stale:
        print("notebooks out of date with their specs (run tools/make_notebooks.py):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
