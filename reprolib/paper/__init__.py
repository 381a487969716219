"""The three papers' reported numbers as tidy data.

Every number printed in a table of X-ReID, VLD or CMFT (and every number the text gives for a
figure) is one row of ``numbers.csv`` in this folder, in long format::

    paper, item, row, dataset, setting, metric, value, given_in_text, source, note

Figures whose values are not given in the text appear with an empty ``value`` and
``given_in_text=false``, so that every table and every figure of the papers has rows. See
``README.md`` for the conventions (setting keys, metric names, row naming).

Example::

    >>> from reprolib.paper import load_numbers, paper_table, list_items
    >>> paper_table("vld", "table1", direction="ir2rgb", seq_len=6)        # rows x metrics
    >>> paper_table("xreid", "table3")                                     # by dataset/setting
    >>> reported("cmft", "table6", "CMFT (ours)", "R1", direction="ir2rgb")
    69.88
"""
from __future__ import annotations

import functools
import logging
import math
import re
from pathlib import Path
from typing import Any, Optional, Union

import pandas as pd

__all__ = [
    "DATASETS",
    "METRICS",
    "NUMBERS_CSV",
    "PAPERS",
    "PaperNumbersError",
    "item_label",
    "list_items",
    "load_numbers",
    "paper_table",
    "parse_setting",
    "reported",
]

logger = logging.getLogger(__name__)

NUMBERS_CSV = Path(__file__).with_name("numbers.csv")

PAPERS: tuple[str, ...] = ("xreid", "vld", "cmft")
COLUMNS: tuple[str, ...] = (
    "paper", "item", "row", "dataset", "setting", "metric", "value", "given_in_text", "source", "note",
)
KEY_COLUMNS: tuple[str, ...] = ("paper", "item", "row", "dataset", "setting", "metric")
# Display order of the metrics; "qualitative" marks a figure without numeric content.
METRICS: tuple[str, ...] = (
    "R1", "R5", "R10", "R20", "mAP", "mINP", "params_M", "gflops", "time_h",
    "precision", "recall", "f1", "accuracy", "fps", "qualitative",
)
# "" = the cell is not tied to a dataset (e.g. VLD Table X, computational cost).
DATASETS: tuple[str, ...] = ("hitsz-vcm", "bupt", "sysu-mm01", "regdb", "")

_ITEM_RE = re.compile(r"^(table|fig)([1-9][0-9]*)$")
_SETTING_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")

# One-line summaries of each item's caption (the seeds' wording, shortened).
ITEM_CAPTIONS: dict[tuple[str, str], str] = {
    ("xreid", "table1"): "SOTA comparison on HITSZ-VCM (I2V/V2I: R1, R5, R20, mAP)",
    ("xreid", "table2"): "SOTA comparison on BUPTCampus (I2V/V2I: R1, R5, R20, mAP)",
    ("xreid", "table3"): "Component ablation (Baseline=PCL, +CPC, +MII) on HITSZ-VCM and BUPTCampus",
    ("xreid", "table4"): "Ways of transferring CLIP knowledge (CPC analysis) on HITSZ-VCM",
    ("xreid", "table5"): "Ablation of MII components SII/LII/CII on HITSZ-VCM",
    ("xreid", "fig1"): "Illustration of the motivations",
    ("xreid", "fig2"): "X-ReID framework (CPC and MII)",
    ("xreid", "fig3"): "Illustration of MII (SII, LII, CII)",
    ("xreid", "fig4"): "Impact of the time stride S in SII (HITSZ-VCM, I2V)",
    ("xreid", "fig5"): "Impact of the time stride S in LII (HITSZ-VCM, I2V)",
    ("vld", "table1"): "SOTA comparison on HITSZ-VCM (R@1, R@5, R@10, mAP; seq. length 6/10)",
    ("vld", "table2"): "SOTA comparison on BUPTCampus (R@1, R@5, R@10, mAP; seq. length 6/10)",
    ("vld", "table3"): "Ablation of B / IMLP / STP on HITSZ-VCM",
    ("vld", "table4"): "Temporal fusion methods (TAP, Conv1D, Transf, Transf_cls, STP) with Params and FLOPs",
    ("vld", "table5"): "Ablation of STP: STH and STA",
    ("vld", "table6"): "Insertion layer of the STH (0-10)",
    ("vld", "table7"): "Prompt template design",
    ("vld", "table8"): "Cross-dataset evaluation VCM->BUPT and BUPT->VCM",
    ("vld", "table9"): "Training time and performance",
    ("vld", "table10"): "Computational cost (Params/M, FLOPs/G)",
    ("vld", "fig1"): "Modality-shared video-level language describes sequences",
    ("vld", "fig2"): "Core motivations (CLIP-ReID vs VLD)",
    ("vld", "fig3"): "VLD framework (IMLP and STP)",
    ("vld", "fig4"): "Illustration of the STH",
    ("vld", "fig5"): "Illustration of the STA",
    ("vld", "fig6"): "Rank-1 and mAP for lambda1, lambda2, lambda3 on HITSZ-VCM",
    ("vld", "fig7"): "Intra-/inter-class distance distributions (CLIP-ReID vs VLD)",
    ("vld", "fig8"): "CAM focus regions (Baseline, CLIP-ReID, TF-CLIP, VLD)",
    ("vld", "fig9"): "Retrieval results (baseline vs VLD, top 6)",
    ("cmft", "table1"): "Person detectors (Faster R-CNN, YOLOv5, YOLOv7), day/night, HITSZ-VCM visible part",
    ("cmft", "table2"): "Cross-modality fusion techniques with Params and FLOPs",
    ("cmft", "table3"): "Multi-scale fusion levels (CMFT_S6..S2) with Params and FLOPs",
    ("cmft", "table4"): "Cross-modality loss functions",
    ("cmft", "table5"): "MSRL and MDL variants",
    ("cmft", "table6"): "SOTA comparison on HITSZ-VCM (R1, R5, R10, R20, mAP)",
    ("cmft", "table7"): "SOTA comparison on SYSU-MM01 (all-search, indoor-search)",
    ("cmft", "table8"): "SOTA comparison on RegDB (visible->infrared, infrared->visible)",
    ("cmft", "fig1"): "Superiority of video-based cross-modal reID",
    ("cmft", "fig2"): "Three multimodal fusion methods",
    ("cmft", "fig3"): "CMFT architecture",
    ("cmft", "fig4"): "Design of the CCF module",
    ("cmft", "fig5"): "MSRL illustration",
    ("cmft", "fig6"): "Loss weight lambda1 on HITSZ-VCM",
    ("cmft", "fig7"): "Loss weight lambda2 on HITSZ-VCM",
    ("cmft", "fig8"): "Qualitative results across tracklet lengths n",
    ("cmft", "fig9"): "Ablation of the tracklet length on HITSZ-VCM (numbers quoted in Sec. 4.3.7)",
}

Scalar = Union[str, int, float]


class PaperNumbersError(ValueError):
    """Raised when ``numbers.csv`` violates the schema, or a query names an unknown item/key."""


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


def _coerce(text: str) -> Scalar:
    """Returns ``text`` as an int or float when it is one, else unchanged."""
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def parse_setting(setting: str) -> dict[str, Scalar]:
    """Parses a ``key=value;key=value`` setting string into a dict.

    Numeric values become ``int`` or ``float``; the empty string gives ``{}``.

    Args:
        setting: e.g. ``"direction=ir2rgb;seq_len=6"``.

    Returns:
        e.g. ``{"direction": "ir2rgb", "seq_len": 6}``.

    Raises:
        PaperNumbersError: if a part is not ``key=value``, a key is not an identifier, or a
            key repeats.
    """
    out: dict[str, Scalar] = {}
    if setting is None or (isinstance(setting, float) and math.isnan(setting)) or setting == "":
        return out
    for part in str(setting).split(";"):
        key, sep, value = part.partition("=")
        if not sep or not _SETTING_KEY_RE.match(key) or value == "":
            raise PaperNumbersError(f"setting {setting!r}: part {part!r} is not 'key=value'")
        if key in out:
            raise PaperNumbersError(f"setting {setting!r}: key {key!r} repeats")
        out[key] = _coerce(value)
    return out


def _format_setting(setting: dict[str, Scalar]) -> str:
    return ";".join(f"{k}={v}" for k, v in setting.items())


# --------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------


def _validate(df: pd.DataFrame, path: Path) -> list[str]:
    """Returns every schema problem of the raw (all-string) table, naming the CSV line."""
    problems: list[str] = []

    def bad(i: int, msg: str) -> None:
        problems.append(f"{path.name} line {i + 2}: {msg}")

    for i, r in enumerate(df.itertuples(index=False)):
        if r.paper not in PAPERS:
            bad(i, f"paper {r.paper!r} not in {PAPERS}")
        if not _ITEM_RE.match(r.item):
            bad(i, f"item {r.item!r} is not 'table<N>' or 'fig<N>'")
        if r.metric not in METRICS:
            bad(i, f"metric {r.metric!r} not in {METRICS}")
        if r.dataset not in DATASETS:
            bad(i, f"dataset {r.dataset!r} not in {DATASETS}")
        if r.given_in_text not in ("true", "false"):
            bad(i, f"given_in_text {r.given_in_text!r} is not 'true' or 'false'")
        if not r.row:
            bad(i, "empty row name")
        if not r.source:
            bad(i, "empty source")
        if r.value != "":
            try:
                if not math.isfinite(float(r.value)):
                    bad(i, f"value {r.value!r} is not finite")
            except ValueError:
                bad(i, f"value {r.value!r} is not a number")
            if r.metric == "qualitative":
                bad(i, "a 'qualitative' row must have an empty value")
        try:
            parse_setting(r.setting)
        except PaperNumbersError as err:
            bad(i, str(err))
    dup = df.duplicated(list(KEY_COLUMNS), keep=False)
    for i in dup[dup].index:
        bad(int(i), "duplicate key " + ", ".join(f"{c}={df.at[i, c]!r}" for c in KEY_COLUMNS))
    present = set(zip(df["paper"], df["item"]))
    for key in sorted(set(ITEM_CAPTIONS) - present):
        problems.append(f"{path.name}: item {key} has a caption but no rows")
    for key in sorted(present - set(ITEM_CAPTIONS)):
        problems.append(f"{path.name}: item {key} has rows but no entry in ITEM_CAPTIONS")
    return problems


@functools.lru_cache(maxsize=4)
def _load(path: str) -> pd.DataFrame:
    path_ = Path(path)
    if not path_.is_file():
        raise PaperNumbersError(f"{path_} not found (it ships with reprolib.paper)")
    raw = pd.read_csv(path_, dtype=str, keep_default_na=False, encoding="utf-8")
    missing = [c for c in COLUMNS if c not in raw.columns]
    extra = [c for c in raw.columns if c not in COLUMNS]
    if missing or extra:
        raise PaperNumbersError(
            f"{path_}: expected columns {list(COLUMNS)}; missing {missing}, unexpected {extra}")
    raw = raw[list(COLUMNS)]
    problems = _validate(raw, path_)
    if problems:
        raise PaperNumbersError(f"{path_}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    df = raw.copy()
    df["value"] = pd.to_numeric(df["value"].replace("", float("nan")), errors="raise").astype("float64")
    df["given_in_text"] = df["given_in_text"] == "true"
    logger.debug("loaded %d reported numbers from %s", len(df), path_)
    return df


def load_numbers(paper: Optional[str] = None, path: Optional[Union[str, Path]] = None) -> pd.DataFrame:
    """Loads and validates the reported numbers.

    Validation: the columns, paper/metric/dataset values from the allowed sets, numeric values,
    parseable settings, no duplicate ``(paper, item, row, dataset, setting, metric)`` keys, and
    every item having a caption summary.

    Args:
        paper: ``"xreid"``, ``"vld"`` or ``"cmft"``; ``None`` for all three.
        path: another CSV with the same schema (default: the packaged ``numbers.csv``).

    Returns:
        A fresh DataFrame with columns ``paper, item, row, dataset, setting, metric, value
        (float, NaN when not reported), given_in_text (bool), source, note``, in the papers'
        printed order.

    Raises:
        PaperNumbersError: on an unknown paper or a schema violation (every problem is listed
            with its CSV line).
    """
    df = _load(str(Path(path) if path is not None else NUMBERS_CSV))
    if paper is not None:
        _check_paper(paper)
        df = df[df["paper"] == paper]
    return df.reset_index(drop=True).copy()


def _check_paper(paper: str) -> None:
    if paper not in PAPERS:
        raise PaperNumbersError(f"unknown paper {paper!r}; expected one of {PAPERS}")


# --------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------


def item_label(paper: str, item: str) -> str:
    """Returns the paper's own label of an item: ``("vld", "table3") -> "Table III"``."""
    _check_paper(paper)
    m = _ITEM_RE.match(item)
    if not m:
        raise PaperNumbersError(f"item {item!r} is not 'table<N>' or 'fig<N>'")
    kind, num = m.group(1), int(m.group(2))
    if kind == "fig":
        return f"Fig. {num}"
    return f"Table {_ROMAN[num - 1]}" if paper == "vld" else f"Table {num}"


def list_items(paper: Optional[str] = None) -> pd.DataFrame:
    """Lists the tables and figures of the papers.

    Args:
        paper: restrict to one paper; ``None`` for all.

    Returns:
        DataFrame with columns ``paper, item, source`` (the paper's label, e.g. ``"Table III"``),
        ``caption`` (one-line summary), ``n_rows`` and ``n_values`` (rows with a number).
    """
    df = load_numbers(paper)
    grouped = df.groupby(["paper", "item"], sort=False)
    out = grouped.agg(n_rows=("value", "size"), n_values=("value", "count")).reset_index()
    out.insert(2, "source", [item_label(p, i) for p, i in zip(out["paper"], out["item"])])
    out.insert(3, "caption", [ITEM_CAPTIONS[(p, i)] for p, i in zip(out["paper"], out["item"])])
    return out


def _as_set(value: Any) -> set:
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    return {_coerce(str(v)) for v in values}


def _filter(df: pd.DataFrame, filters: dict[str, Any]) -> tuple[pd.DataFrame, set[str]]:
    """Applies column filters and setting-key filters; returns the rows and the used keys."""
    used_keys: set[str] = set()
    parsed = df["setting"].map(parse_setting)
    mask = pd.Series(True, index=df.index)
    for key, wanted in filters.items():
        allowed = _as_set(wanted)
        if key in ("row", "dataset", "setting", "metric"):
            mask &= df[key].map(lambda v: _coerce(v) in allowed or v in allowed)
        elif key in ("paper", "item", "value", "note", "source", "given_in_text"):
            raise PaperNumbersError(f"cannot filter paper_table on column {key!r}")
        else:
            if not parsed.map(lambda s: key in s).any():
                known = sorted({k for s in parsed for k in s} | {"row", "dataset", "setting", "metric"})
                raise PaperNumbersError(
                    f"filter {key!r} is neither a column nor a setting key here; known: {known}")
            used_keys.add(key)
            # Cells that do not depend on the key (e.g. Params without a direction) are kept.
            mask &= parsed.map(lambda s: key not in s or s[key] in allowed)
    return df[mask], used_keys


def _row_attributes(rows: pd.Series, settings: pd.Series, hidden: set[str]) -> list[str]:
    """Returns the setting keys present in every cell whose value is fixed by the row name."""
    keys = [k for k in dict.fromkeys(k for s in settings for k in s) if k not in hidden]
    out = []
    for key in keys:
        if settings.map(lambda s: key in s).all():
            values = settings.map(lambda s: s[key])
            if values.groupby(rows.values).nunique().max() == 1 and values.nunique() > 1:
                out.append(key)
    return out


def paper_table(paper: str, item: str, rows_by: Optional[str] = None, **filters: Any) -> pd.DataFrame:
    """Returns one table or figure of a paper as a display-ready pivot (rows x metrics).

    Filters select cells: ``row``, ``dataset``, ``setting`` and ``metric`` filter the columns
    of the same name; any other keyword filters a setting key (``direction="ir2rgb"``,
    ``seq_len=6``, ``mode="all-search"``). A filter value may be a list. Cells whose setting
    lacks a filtered key are kept (e.g. Params/FLOPs, which have no direction), and the
    filtered keys are dropped from the column labels.

    Args:
        paper: ``"xreid"``, ``"vld"`` or ``"cmft"``.
        item: ``"table3"``, ``"fig9"``, ... (``list_items()`` lists them).
        rows_by: a setting key to put on the rows instead of the columns, for sweeps
            (``paper_table("cmft", "fig9", rows_by="seq_len")``) and VLD's Tables I/II
            (``rows_by="seq_len"``); cells without that key are dropped.
        **filters: see above.

    Returns:
        DataFrame indexed by the printed row names in the paper's order (or by ``rows_by``,
        or both when several row names remain), plus any setting key that the row fixes
        (e.g. X-ReID Table 5's ``SII``/``LII``/``CII`` flags). Columns are the metrics when they do not
        repeat across datasets/settings, else a MultiIndex over the varying levels of
        ``dataset`` and ``setting`` plus ``metric``. Cells are floats, NaN when not reported.

    Raises:
        PaperNumbersError: for an unknown paper/item or filter key, or when nothing matches.
    """
    df = load_numbers(paper)
    df = df[df["item"] == item]
    if df.empty:
        known = list_items(paper)["item"].tolist()
        raise PaperNumbersError(f"{paper} has no item {item!r}; known: {known}")
    df, hidden = _filter(df, filters)
    if df.empty:
        raise PaperNumbersError(f"{paper} {item}: no cell matches the filters {filters}")
    df = df.copy()
    settings = df["setting"].map(parse_setting)
    index = ["row"]
    if rows_by is not None:
        has_key = settings.map(lambda s: rows_by in s)
        if not has_key.any():
            raise PaperNumbersError(f"{paper} {item}: rows_by={rows_by!r} is not a setting key here")
        df, settings = df[has_key].copy(), settings[has_key]
        df[rows_by] = settings.map(lambda s: s[rows_by])
        hidden = hidden | {rows_by}
        index = ["row", rows_by] if df["row"].nunique() > 1 else [rows_by]
    for key in _row_attributes(df["row"], settings, hidden):
        # A key fixed by the row (X-ReID Table 5's SII/LII/CII flags) describes the row.
        values = settings.map(lambda s: s[key])
        if not (values.astype(str) == df["row"]).all():
            df[key] = values
            index.append(key)
        hidden = hidden | {key}
    df["setting"] = settings.map(lambda s: _format_setting({k: v for k, v in s.items() if k not in hidden}))
    levels = [c for c in ("dataset", "setting") if df[c].nunique() > 1]
    if levels and (df.groupby("metric")[levels].nunique() <= 1).all(axis=None):
        levels = []  # every metric sits under one dataset/setting: the levels add nothing
    rank = {m: i for i, m in enumerate(METRICS)}
    groups = list(dict.fromkeys(zip(*(df[c] for c in levels)))) if levels else [()]
    present = set(zip(*(df[c] for c in levels + ["metric"])))
    order = [(*g, m) for g in groups for m in sorted({k[-1] for k in present if k[:-1] == g}, key=rank.get)]
    table = df.set_index(index + levels + ["metric"])["value"].unstack(levels + ["metric"])
    if levels:
        table = table.reindex(columns=pd.MultiIndex.from_tuples(order, names=levels + ["metric"]))
    else:
        table = table.reindex(columns=[k[-1] for k in order])
        table.columns.name = "metric"
    row_order = list(dict.fromkeys(zip(*(df[c] for c in index))))
    table = table.reindex(pd.MultiIndex.from_tuples(row_order, names=index) if len(index) > 1
                          else pd.Index([r[0] for r in row_order], name=index[0]))
    return table


def reported(paper: str, item: str, row: str, metric: str, dataset: Optional[str] = None,
             **setting: Any) -> float:
    """Returns one reported number (NaN when the paper prints '-' or leaves the cell blank).

    Args:
        paper: ``"xreid"``, ``"vld"`` or ``"cmft"``.
        item: e.g. ``"table1"``.
        row: the printed row name, e.g. ``"our"``.
        metric: e.g. ``"mAP"``.
        dataset: needed only when the item covers several datasets.
        **setting: the setting keys that identify the cell, e.g. ``direction="ir2rgb"``.

    Raises:
        PaperNumbersError: unless exactly one cell matches.
    """
    df = load_numbers(paper)
    df = df[(df["item"] == item) & (df["row"] == row) & (df["metric"] == metric)]
    if dataset is not None:
        df = df[df["dataset"] == dataset]
    want = {k: _coerce(str(v)) for k, v in setting.items()}
    df = df[df["setting"].map(lambda s: all(parse_setting(s).get(k) == v for k, v in want.items()))]
    if len(df) != 1:
        raise PaperNumbersError(
            f"{paper} {item} row={row!r} metric={metric!r} dataset={dataset!r} setting={want}: "
            f"{len(df)} cells match, expected exactly 1" +
            ("" if df.empty else f" (settings: {sorted(set(df['setting']))})"))
    return float(df["value"].iloc[0])

