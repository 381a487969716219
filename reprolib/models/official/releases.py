"""What each family's released checkpoints are, and which reported numbers to set beside ours.

``make eval-released PAPER=<family> WEIGHTS=FILE`` (notebook ``95_eval_released``) imports a
released checkpoint with ``python -m reprolib weights import`` and evaluates it with our loaders
and evaluator; this module says, per family and config, which numbers of the papers
(``reprolib/paper/numbers.csv``) that evaluation is compared with, and how directly:

* ``release``: the paper's own numbers for the model it released (VLD Table I / Table II, T = 6).
  Our evaluation of the file should match them up to the test-clip sampling;
* ``reference``: numbers of the same method trained on the same dataset by a paper's authors, but
  not of this file (CLIP-ReID and TF-CLIP release image / RGB-video models of other datasets; the
  VVI papers trained them on HITSZ-VCM themselves). Context, not a target;
* ``variant``: numbers of a model that differs from what the file holds (X-ReID's full model,
  while its code trains CPC + SII; no X-ReID weights are released).

Torch-free (the notebook and the tests read it without building anything).

Example::

    release = get_release("vld", "vld_bupt")
    table = comparison_table(release, {"ir2rgb": {"R1": 64.0, ...}, "rgb2ir": {...}})
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

__all__ = ["PaperRow", "Release", "RELEASES", "get_release", "paper_numbers", "comparison_table", "RELATIONS",
           "METRICS", "DIRECTIONS"]

#: How a paper row relates to the evaluated file (see the module docstring).
RELATIONS = ("release", "reference", "variant")
#: Columns of the comparison (a paper that does not report one leaves it empty).
METRICS = ("R1", "R5", "R10", "R20", "mAP")
DIRECTIONS = ("ir2rgb", "rgb2ir")


@dataclass(frozen=True)
class PaperRow:
    """Reported numbers of one row of a paper's table (``reprolib/paper/numbers.csv``).

    Attributes:
        paper: ``xreid`` | ``vld`` | ``cmft``.
        item: ``table1`` ...
        row: the printed row name.
        dataset: the paper's dataset key.
        setting: setting keys besides the direction (``{"seq_len": 6}``).
        label: shown in the comparison.
        relation: one of :data:`RELATIONS`.
    """

    paper: str
    item: str
    row: str
    dataset: str
    label: str
    relation: str
    setting: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Release:
    """A family's released (or saved-by-the-official-code) checkpoint for one config.

    Attributes:
        family: our family (``weights import <family>``).
        config: the config the release is imported into.
        dataset: the dataset it is evaluated on (its root parameter: ``data_root`` / ``bupt_root``).
        what: one line on what the official files are.
        rows: the paper numbers set beside ours.
        import_overrides: ``--set`` strings a real release needs with this config (input size).
        identity_heads: ``load`` or ``fresh`` for a real release (``fresh`` when it was trained on
            another dataset).
    """

    family: str
    config: str
    dataset: str
    what: str
    rows: tuple[PaperRow, ...] = ()
    import_overrides: tuple[str, ...] = ()
    identity_heads: str = "load"


_T6 = (("seq_len", 6),)

RELEASES: dict[tuple[str, str], Release] = {(r.family, r.config): r for r in (
    Release("vld", "vld", "hitsz-vcm", "VLD's HITSZ-VCM release (Visuang/VLD; T = 6, 288x144)",
            rows=(PaperRow("vld", "table1", "our", "hitsz-vcm", "VLD paper, Table I (T = 6): this release",
                           "release", _T6),)),
    Release("vld", "vld_bupt", "bupt", "VLD's BUPTCampus release (Visuang/VLD; T = 6, 288x144)",
            rows=(PaperRow("vld", "table2", "our", "bupt", "VLD paper, Table II (T = 6): this release",
                           "release", _T6),)),
    Release("xreid", "xreid", "hitsz-vcm",
            "no released weights: a checkpoint saved by AsuradaYuci/X-ReID's training code (CPC + SII)",
            rows=(PaperRow("xreid", "table5", "2", "hitsz-vcm", "X-ReID paper, Table 5 row 2 (CPC + SII: what the "
                                                                 "official code trains)", "variant",
                           (("SII", 1), ("LII", 0), ("CII", 0))),
                  PaperRow("xreid", "table1", "Ours", "hitsz-vcm", "X-ReID paper, Table 1 (full model, not in the "
                                                                   "official code)", "variant"))),
    Release("clipreid", "clipreid", "hitsz-vcm",
            "CLIP-ReID's releases are image ReID models (Market-1501, MSMT17; 256x128)",
            rows=(PaperRow("vld", "table1", "CLIP-ReID", "hitsz-vcm", "VLD paper, Table I (T = 6): CLIP-ReID trained "
                                                                      "on HITSZ-VCM by the VLD authors", "reference",
                           _T6),
                  PaperRow("xreid", "table1", "CLIP-ReID", "hitsz-vcm", "X-ReID paper, Table 1: CLIP-ReID trained on "
                                                                        "HITSZ-VCM", "reference")),
            import_overrides=("data.height=256", "data.width=128"), identity_heads="fresh"),
    Release("tfclip", "tfclip", "hitsz-vcm",
            "TF-CLIP's releases are RGB video ReID models (MARS, LS-VID, iLIDS-VID; 256x128)",
            rows=(PaperRow("vld", "table1", "TF-CLIP", "hitsz-vcm", "VLD paper, Table I (T = 6): TF-CLIP trained on "
                                                                    "HITSZ-VCM by the VLD authors", "reference", _T6),
                  PaperRow("xreid", "table1", "TF-CLIP", "hitsz-vcm", "X-ReID paper, Table 1: TF-CLIP trained on "
                                                                      "HITSZ-VCM", "reference")),
            identity_heads="fresh"),
)}


def get_release(family: str, config: Optional[str] = None) -> Release:
    """The release of ``family`` imported into ``config`` (default: the family's first config).

    Raises:
        KeyError: no release for that family and config; the message lists the known ones.
    """
    for (fam, cfg), release in RELEASES.items():
        if fam == family and (not config or cfg == config):
            return release
    known = ", ".join(f"{f} (config {c})" for f, c in RELEASES)
    raise KeyError(f"no released checkpoint described for family {family!r}"
                   f"{f' with config {config!r}' if config else ''}; known: {known}")


def paper_numbers(row: PaperRow) -> dict[str, dict[str, float]]:
    """``{direction: {metric: value}}`` of a paper row (metrics the paper does not report are absent)."""
    import math

    from reprolib.paper import PaperNumbersError, reported

    out: dict[str, dict[str, float]] = {}
    for direction in DIRECTIONS:
        for metric in METRICS:
            try:
                value = reported(row.paper, row.item, row.row, metric, dataset=row.dataset, direction=direction,
                                 **dict(row.setting))
            except PaperNumbersError:
                continue
            if not math.isnan(value):
                out.setdefault(direction, {})[metric] = value
    return out


def comparison_table(release: Release, ours: Mapping[str, Mapping[str, float]], label: str = "ours",
                     deltas: bool = True) -> Any:
    """Our evaluation of the file beside the release's paper rows, and our difference to each.

    Args:
        release: the :class:`Release`.
        ours: ``{direction: {metric: value}}`` (``metrics.json``'s ``eval``; percent).
        label: the name of our row.
        deltas: add the difference rows; only meaningful when ours is the real file on the real test
            set (a stand-in on a miniature world or a rehearsal is no estimate of the paper's number).

    Returns:
        A DataFrame indexed by ``(row, relation)`` with ``(direction, metric)`` columns; after each
        paper row, with ``deltas``, a ``delta`` row (ours minus the paper's, where both exist).
    """
    import pandas as pd

    columns = pd.MultiIndex.from_product([DIRECTIONS, METRICS], names=["direction", "metric"])
    rows, index = [], []

    def add(name: str, relation: str, values: Mapping[str, Mapping[str, float]]) -> None:
        index.append((name, relation))
        rows.append([values.get(d, {}).get(m, float("nan")) for d, m in columns])

    add(label, "ours", ours)
    for prow in release.rows:
        theirs = paper_numbers(prow)
        add(prow.label, prow.relation, theirs)
        if deltas:
            add(f"  {label} - paper", "delta", {d: {m: float(ours[d][m]) - v for m, v in theirs.get(d, {}).items()
                                                     if d in ours and m in ours[d]} for d in DIRECTIONS})
    table = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["row", "relation"]), columns=columns)
    return table.dropna(axis=1, how="all").round(2)
