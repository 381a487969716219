"""The checks every generated table/figure notebook ends with, as one library call.

:func:`check_target` is what the notebooks' last cell runs (it was a 17-line cell copied into each
notebook): the rows that should have run did, every metric is a percentage, every paper cell of a
row we ran has a number of ours, the headline row is above chance under the embedded profile, and
the side-by-side table is written under ``results/<profile>/tables/`` (``Workbook.save_table``; the
cell prints its path, as the notebooks always did).
"""
from __future__ import annotations

from typing import Any, Optional

from reprolib.workbook.session import above_chance
from reprolib.workbook.targets import Reproduction, Target, missing_cells

__all__ = ["check_target"]


def check_target(target: Target, rep: Reproduction, wb: Any, profile: str, headline: Optional[str] = None) -> None:
    """Check what a target notebook produced and write its table.

    Args:
        target: the notebook's target.
        rep: :func:`~reprolib.workbook.targets.reproduce`'s result.
        wb: the notebook's :class:`~reprolib.workbook.session.Workbook`.
        profile: the notebook's profile.
        headline: the row that must be clearly above chance (embedded profile only; training is
            meaningful beyond the smoke profile), or ``None``.

    Raises:
        AssertionError: a row that should have run did not, a metric outside [0, 100], a paper cell
            of a row we ran without a number of ours, or the headline row at chance.
    """
    ran = [r.label for r in target.runnable(profile)]
    assert set(rep.runs) == set(ran), f"rows that should have run: {sorted(set(ran) - set(rep.runs))}"
    for label, run in rep.runs.items():
        for d, m in run.metrics["eval"].items():
            assert 0 <= m["mAP"] <= 100 and 0 <= m["R1"] <= 100, (label, d)
    assert missing_cells(target, rep).empty, "a paper cell of a row we ran has no number of ours"
    label = headline
    if profile == "embedded" and label in rep.runs:
        ds = wb.dataset(target.row(label).config, *target.overrides_for(target.row(label), profile))
        for d in rep.runs[label].metrics["eval"]:
            assert above_chance(rep.runs[label].metrics["eval"][d], ds.eval_sets[d]), f"{label} is at chance ({d})"
    path = wb.save_table(rep.table, target.paper, target.item,
                         meta={"runs": {k: v.path.name for k, v in rep.runs.items()}})
    print("table written to", path.relative_to(path.parents[2]))  # the notebook's visible record
