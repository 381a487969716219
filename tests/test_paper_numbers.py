"""Tests of reprolib.paper: the transcribed numbers against the seed texts, the schema and the API.

The seed-text checks read ``../shared/seeds`` (or ``$REPROLIB_SEEDS``) and are skipped when the
seeds are not there. Every table cell of ``numbers.csv`` is compared with its seed line; a
sample of cells is also typed here by hand, as a second, independent transcription.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from reprolib.paper import (
    ITEM_CAPTIONS,
    KEY_COLUMNS,
    METRICS,
    PAPERS,
    PaperNumbersError,
    item_label,
    list_items,
    load_numbers,
    paper_table,
    parse_setting,
    reported,
)

ROOT = Path(__file__).resolve().parents[1]
SEEDS_DIR = Path(os.environ.get("REPROLIB_SEEDS", ROOT.parent / "shared" / "seeds"))
SEED_PREFIX = {"xreid": "000_", "vld": "001_", "cmft": "002_"}
REFERENCES_HEADING = {"xreid": "## References", "vld": "REFERENCES", "cmft": "## References"}


def seed_text(paper: str) -> str:
    """The seed paper's text up to its reference list (skips the test when seeds are absent)."""
    files = sorted(SEEDS_DIR.glob(SEED_PREFIX[paper] + "*.txt")) if SEEDS_DIR.is_dir() else []
    if not files:
        pytest.skip(f"seed texts not found in {SEEDS_DIR}")
    text = files[0].read_text(encoding="utf-8")
    return text.split("\n" + REFERENCES_HEADING[paper] + "\n")[0]


# --------------------------------------------------------------------------------------
# Locating table rows in the seeds
# --------------------------------------------------------------------------------------

# (first header line prefix, its occurrence, header lines, leading non-value cells per line)
BLOCKS: dict[tuple[str, str], tuple[str, int, int, int]] = {
    ("xreid", "table1"): ("Method\tInfrared to Visible (I2V)", 0, 2, 1),
    ("xreid", "table2"): ("Method\tInfrared to Visible (I2V)", 1, 2, 1),
    ("xreid", "table3"): ("Method\tHITSZ-VCM\t", 0, 3, 1),
    ("xreid", "table4"): ("Ways\tHITSZ-VCM", 0, 3, 1),
    ("xreid", "table5"): ("\tComponents", 0, 3, 4),
    ("vld", "table1"): ("Methods\tReference\tType\tSeq_Len", 0, 2, 4),
    ("vld", "table2"): ("Methods\tReference\tType\tSeq_Len", 1, 2, 4),
    ("vld", "table3"): ("Component\t\t\tInfrared-to-Visible", 0, 2, 3),
    ("vld", "table4"): ("Methods\tIR-to-Vis\t\tVis-to-IR\t\tParams/M", 0, 2, 1),
    ("vld", "table5"): ("Component\t\t\t<i>Infrared-to-Visible", 0, 2, 3),
    ("vld", "table6"): ("Insertion layer\t", 0, 2, 1),
    ("vld", "table7"): ("Index\tText Prompt Template", 0, 2, 2),
    ("vld", "table8"): ("Methods\tVCM \\rightarrow BUPT", 0, 3, 1),
    ("vld", "table9"): ("Methods\tTraining time", 0, 2, 1),
    ("vld", "table10"): ("Methods\tParams/M\tFLOPs/G", 0, 1, 1),
    ("cmft", "table2"): ("Techniques\tRank-1\tRank-5", 0, 1, 1),
    ("cmft", "table3"): ("Techniques\tRank-1\tRank-5", 1, 1, 1),
    ("cmft", "table4"): ("Loss\tRank-1", 0, 1, 1),
    ("cmft", "table5"): ("Techniques\tRank-1\tRank-10", 0, 1, 1),
    ("cmft", "table6"): ("Method\tInfrared-Visible", 0, 2, 1),
    ("cmft", "table7"): ("Method\tAll-Search", 0, 2, 1),
    ("cmft", "table8"): ("Method\tVisible to Infrared", 0, 2, 1),
}


def _dirs(dataset: str, metrics: str, dirs: tuple[str, str] = ("ir2rgb", "rgb2ir"), **keys: str) -> list:
    return [(dataset, {"direction": d, **keys}, m) for d in dirs for m in metrics.split()]


def _plain(dataset: str, metrics: str, setting: dict | None = None) -> list:
    return [(dataset, setting, m) for m in metrics.split()]


# The printed columns of each table, left to right: (dataset, setting keys, metric); a setting
# of None means the cell has no setting (Params, FLOPs, time).
SPECS: dict[tuple[str, str], list] = {
    ("xreid", "table1"): _dirs("hitsz-vcm", "R1 R5 R20 mAP"),
    ("xreid", "table2"): _dirs("bupt", "R1 R5 R20 mAP"),
    ("xreid", "table3"): _dirs("hitsz-vcm", "R1 mAP") + _dirs("bupt", "R1 mAP"),
    ("xreid", "table4"): _dirs("hitsz-vcm", "R1 mAP"),
    ("xreid", "table5"): _dirs("hitsz-vcm", "R1 mAP"),
    ("vld", "table1"): _dirs("hitsz-vcm", "R1 R5 R10 mAP"),
    ("vld", "table2"): _dirs("bupt", "R1 R5 R10 mAP"),
    ("vld", "table3"): _dirs("hitsz-vcm", "R1 mAP"),
    ("vld", "table4"): _dirs("hitsz-vcm", "R1 mAP") + _plain("hitsz-vcm", "params_M gflops"),
    ("vld", "table5"): _dirs("hitsz-vcm", "R1 mAP"),
    ("vld", "table6"): _dirs("hitsz-vcm", "R1 mAP"),
    ("vld", "table7"): _dirs("hitsz-vcm", "R1 mAP"),
    ("vld", "table8"): _dirs("bupt", "R1 mAP", train="hitsz-vcm")
    + _dirs("hitsz-vcm", "R1 mAP", train="bupt"),
    ("vld", "table9"): _plain("hitsz-vcm", "time_h") + _dirs("hitsz-vcm", "R1 mAP"),
    ("vld", "table10"): _plain("", "params_M gflops"),
    ("cmft", "table2"): _plain("hitsz-vcm", "R1 R5 R10 mAP mINP", {"direction": "ir2rgb"})
    + _plain("hitsz-vcm", "params_M gflops"),
    ("cmft", "table3"): _plain("hitsz-vcm", "R1 R5 R10 mAP mINP", {"direction": "ir2rgb"})
    + _plain("hitsz-vcm", "params_M gflops"),
    ("cmft", "table4"): _plain("hitsz-vcm", "R1 R5 R10 mAP mINP", {"direction": "ir2rgb"}),
    ("cmft", "table5"): _plain("hitsz-vcm", "R1 R10 mAP mINP", {"direction": "ir2rgb"}),
    ("cmft", "table6"): _dirs("hitsz-vcm", "R1 R5 R10 R20 mAP"),
    ("cmft", "table7"): _plain("sysu-mm01", "R1 R10 R20 mAP mINP", {"mode": "all-search"})
    + _plain("sysu-mm01", "R1 R10 R20 mAP mINP", {"mode": "indoor-search"}),
    ("cmft", "table8"): _dirs("regdb", "R1 R10 R20 mAP", dirs=("v2t", "t2v")),
}
# Rows printed only as check marks; the CSV names them as the text does.
MARK_LABELS = {
    ("vld", "table3"): {"✓\t✗\t✗": "B", "✓\t✓\t✗": "B+IMLP", "✓\t✗\t✓": "B+STP",
                        "✓\t✓\t✓": "B+IMLP+STP"},
    ("vld", "table5"): {"✓\t✗\t✗": "B+IMLP", "✓\t✓\t✗": "B+IMLP+STH",
                        "✓\t✓\t✓": "B+IMLP+STH+STA"},
}


def norm_label(label: str) -> str:
    """Row label without citations and markup, for matching CSV rows to seed lines."""
    s = re.sub(r"<[^>]+>", "", label).strip()
    s = re.sub(r"\s*\([^()]*\d{4}[a-z]?\)$", "", s)  # X-ReID: "DDAG (Ye et al. 2020)"
    s = re.sub(r"†?\s*\[\d{1,3}\]$", "", s)  # VLD: "CLIP-ReID† [28]"
    s = re.sub(r"\s+[A-Z][\w-]*( and [A-Z][\w-]*)?( et al\.)? \[\d{4}[a-z]?\]$", "", s)  # CMFT
    return re.sub(r"[\s$_{}\\†]", "", s).lower()


def cell_value(cell: str) -> float:
    """A printed cell as a float: NaN for '-' or blank; '68.1(+1.1)' -> 68.1; '8.39M' -> 8.39."""
    s = re.sub(r"<[^>]+>", "", cell).strip()
    if s in ("", "-"):
        return math.nan
    m = re.fullmatch(r"(?:\\approx\s*)?([0-9]+(?:\.[0-9]+)?)\s*(?:\([+-][0-9.]+\))?\s*(?:M|G| hours)?", s)
    assert m, f"unexpected cell {cell!r}"
    return float(m.group(1))


def table_block(paper: str, item: str) -> tuple[list[str], list[list[str]]]:
    """Returns (data lines' labels, data lines' cells) of a table in the seed."""
    marker, occurrence, n_header, _ = BLOCKS[(paper, item)]
    lines = seed_text(paper).splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(marker)]
    assert len(starts) > occurrence, f"{paper} {item}: header {marker!r} not found"
    i = starts[occurrence]
    block = []
    while i < len(lines) and "\t" in lines[i]:
        block.append(lines[i])
        i += 1
    data = [line.split("\t") for line in block[n_header:]]
    marks = MARK_LABELS.get((paper, item))
    labels = [norm_label(marks["\t".join(c[:3])] if marks else c[0]) for c in data]
    return labels, data


def same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) < 1e-9


# --------------------------------------------------------------------------------------
# Every table cell against the seed
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("paper,item", sorted(BLOCKS))
def test_every_table_cell_matches_the_seed_line(paper: str, item: str) -> None:
    labels, data = table_block(paper, item)
    lead = BLOCKS[(paper, item)][3]
    df = load_numbers(paper)
    df = df[df["item"] == item]
    assert not df.empty
    matched: set[int] = set()
    for row, cells in df.groupby("row", sort=False):
        idx = [k for k, lab in enumerate(labels) if lab == norm_label(row)]
        assert idx, f"{paper} {item}: row {row!r} not found in the seed table"
        matched.update(idx)
        printed = [cell_value(c) for k in idx for c in data[k][lead:]]
        stored = cells["value"].tolist()
        assert len(printed) == len(stored), \
            f"{paper} {item} {row!r}: {len(stored)} cells stored, {len(printed)} printed"
        spec = SPECS[(paper, item)]
        cols = zip(cells["dataset"], cells["setting"], cells["metric"])
        for j, (p, s, (dataset, setting, metric)) in enumerate(zip(printed, stored, cols)):
            want_dataset, want_setting, want_metric = spec[j % len(spec)]
            where = f"{paper} {item} {row!r} cell {j} ({dataset}, {setting}, {metric})"
            assert (dataset, metric) == (want_dataset, want_metric), \
                f"{where}: column is {spec[j % len(spec)]}"
            parsed = parse_setting(setting)
            if want_setting is None:
                assert parsed == {}, where
            else:
                assert want_setting.items() <= parsed.items(), f"{where}: column is {want_setting}"
            assert same(p, s), f"{where}: stored {s}, printed {p}"
    missing = [data[k][0] for k in range(len(data)) if k not in matched]
    assert not missing, f"{paper} {item}: seed rows missing from numbers.csv: {missing}"


def test_cmft_table1_detector_cells_match_the_seed() -> None:
    lines = seed_text("cmft").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Matrix\tFaster R-CNN"))
    metric_of = {"Precision": "precision", "Recall": "recall", "F1-Scores": "f1",
                 "Accuracy": "accuracy", "FPS": "fps"}
    df = load_numbers("cmft")
    df = df[df["item"] == "table1"]
    n = 0
    for line in lines[start + 2:start + 7]:
        cells = line.split("\t")
        metric = metric_of[cells[0]]
        columns = [(d, c) for d in ("Faster R-CNN", "YOLOv5", "YOLOv7") for c in ("day", "night")]
        for k, (det, cond) in enumerate(columns):
            cell = (df["row"] == det) & (df["metric"] == metric) & (df["setting"] == f"condition={cond}")
            got = df[cell]["value"]
            assert got.tolist() == [float(cells[1 + k])], (det, cond, metric)
            n += 1
    assert n == len(df) == 30


def test_setting_keys_that_come_from_table_columns_match_the_seed() -> None:
    # VLD Tables I/II: the Seq_Len column.
    for item in ("table1", "table2"):
        labels, data = table_block("vld", item)
        df = load_numbers("vld")
        df = df[df["item"] == item]
        for row, cells in df.groupby("row", sort=False):
            printed = [int(data[k][3]) for k, lab in enumerate(labels) if lab == norm_label(row)]
            stored = list(dict.fromkeys(parse_setting(s)["seq_len"] for s in cells["setting"]))
            assert stored == printed, (item, row)
    # X-ReID Table 5: the SII/LII/CII check marks.
    labels, data = table_block("xreid", "table5")
    df = load_numbers("xreid")
    for cells in data:
        for s in df[(df["item"] == "table5") & (df["row"] == cells[0])]["setting"]:
            flags = parse_setting(s)
            assert [flags["SII"], flags["LII"], flags["CII"]] == [int(c == "✓") for c in cells[1:4]]


# --------------------------------------------------------------------------------------
# A hand-typed sample (independent of the extraction) against the CSV and the seed
# --------------------------------------------------------------------------------------

# (paper, item, row, dataset, setting, metric, value as printed)
SAMPLE = [
    ("xreid", "table1", "DDAG", "hitsz-vcm", "direction=ir2rgb", "R1", "54.6"),
    ("xreid", "table1", "HD-GI", "hitsz-vcm", "direction=rgb2ir", "mAP", "60.2"),
    ("xreid", "table1", "Ours", "hitsz-vcm", "direction=rgb2ir", "R20", "93.7"),
    ("xreid", "table1", "CST", "hitsz-vcm", "direction=ir2rgb", "R5", "81.1"),
    ("xreid", "table2", "VLD", "bupt", "direction=rgb2ir", "mAP", "64.1"),
    ("xreid", "table2", "AuxNet", "bupt", "direction=ir2rgb", "R20", "90.4"),
    ("xreid", "table2", "Ours", "bupt", "direction=ir2rgb", "mAP", "68.5"),
    ("xreid", "table3", "+ CPC", "bupt", "direction=rgb2ir", "R1", "64.4"),
    ("xreid", "table4", "Cross-modal Update", "hitsz-vcm", "direction=ir2rgb", "mAP", "55.4"),
    ("xreid", "table5", "7", "hitsz-vcm", "direction=rgb2ir;SII=1;LII=1;CII=0", "R1", "75.5"),
    ("vld", "table1", "SEFL", "hitsz-vcm", "direction=rgb2ir;seq_len=6", "R10", "86.1"),
    ("vld", "table1", "our", "hitsz-vcm", "direction=ir2rgb;seq_len=10", "mAP", "61.8"),
    ("vld", "table1", "AuxNet", "hitsz-vcm", "direction=rgb2ir;seq_len=6", "R1", "54.6"),
    ("vld", "table2", "AlignGAN", "bupt", "direction=ir2rgb;seq_len=10", "R10", "57.7"),
    ("vld", "table2", "TF-CLIP", "bupt", "direction=ir2rgb;seq_len=6", "mAP", "51.9"),
    ("vld", "table2", "our", "bupt", "direction=rgb2ir;seq_len=6", "R10", "87.9"),
    ("vld", "table3", "B", "hitsz-vcm", "direction=rgb2ir", "mAP", "49.3"),
    ("vld", "table4", "Transf", "hitsz-vcm", "", "params_M", "105.08"),
    ("vld", "table4", "STP", "hitsz-vcm", "", "gflops", "14.08"),
    ("vld", "table5", "B+IMLP+STH", "hitsz-vcm", "direction=rgb2ir", "mAP", "54.2"),
    ("vld", "table6", "4", "hitsz-vcm", "direction=rgb2ir;insertion_layer=4", "R1", "72.1"),
    ("vld", "table7", "3", "hitsz-vcm", "direction=rgb2ir;template=3", "mAP", "58.1"),
    ("vld", "table8", "our", "hitsz-vcm", "direction=rgb2ir;train=bupt", "R1", "44.8"),
    ("vld", "table9", "TF-CLIP", "hitsz-vcm", "", "time_h", "5.3"),
    ("vld", "table10", "MITML", "", "", "params_M", "159.12"),
    ("cmft", "table1", "YOLOv7", "hitsz-vcm", "condition=night", "recall", "0.936"),
    ("cmft", "table2", "CMFT_S6F", "hitsz-vcm", "", "params_M", "8.39"),
    ("cmft", "table3", "CMFT_S2", "hitsz-vcm", "", "gflops", "13.5"),
    ("cmft", "table3", "CMFT_S4", "hitsz-vcm", "direction=ir2rgb", "mINP", "43.52"),
    ("cmft", "table4", "WRT", "hitsz-vcm", "direction=ir2rgb", "R10", "87.76"),
    ("cmft", "table5", "DCL_all", "hitsz-vcm", "direction=ir2rgb", "mINP", "42.46"),
    ("cmft", "table6", "SGIEL", "hitsz-vcm", "direction=rgb2ir", "R10", "86.11"),
    ("cmft", "table6", "CMFT (ours)", "hitsz-vcm", "direction=rgb2ir", "R20", "97.90"),
    ("cmft", "table7", "SPOT", "sysu-mm01", "mode=indoor-search", "mINP", "70.48"),
    ("cmft", "table7", "DEEN", "sysu-mm01", "mode=all-search", "R1", "74.7"),
    ("cmft", "table8", "DAF", "regdb", "direction=t2v", "mAP", "81.95"),
    ("cmft", "table8", "Xmodal", "regdb", "direction=t2v", "R1", "72.43"),
    ("cmft", "fig9", "CMFT", "hitsz-vcm", "direction=ir2rgb;seq_len=4", "R1", "59.57"),
]


@pytest.mark.parametrize("paper,item,row,dataset,setting,metric,printed", SAMPLE)
def test_sample_cells(paper, item, row, dataset, setting, metric, printed) -> None:
    df = load_numbers(paper)
    hit = df[(df["item"] == item) & (df["row"] == row) & (df["dataset"] == dataset)
             & (df["setting"] == setting) & (df["metric"] == metric)]
    assert len(hit) == 1, (paper, item, row, setting, metric)
    assert hit["value"].iloc[0] == float(printed)
    assert bool(hit["given_in_text"].iloc[0])
    text = seed_text(paper)
    if (paper, item) in BLOCKS:
        labels, data = table_block(paper, item)
        lines = ["\t".join(data[k]) for k, lab in enumerate(labels) if lab == norm_label(row)]
        assert any(re.search(rf"(^|[\s>(]){re.escape(printed)}([\s<(M%G]|$)", line) for line in lines), \
            f"{printed} not on the seed line of {row!r}"
    else:
        assert re.search(rf"\b{re.escape(printed)}\b", text), f"{printed} not in the {paper} seed"


def test_cmft_fig9_numbers_are_quoted_in_section_4_3_7() -> None:
    text = seed_text("cmft")
    section = text[text.index("#### 4.3.7."):text.index("#### 4.4.")]
    df = load_numbers("cmft")
    fig9 = df[df["item"] == "fig9"]
    assert len(fig9) == 15
    for value in fig9["value"]:
        assert f"{value:.2f}%" in section


# --------------------------------------------------------------------------------------
# Schema and coverage
# --------------------------------------------------------------------------------------


def test_schema_keys_metrics_and_types() -> None:
    df = load_numbers()
    assert not df.duplicated(list(KEY_COLUMNS)).any()
    assert set(df["metric"]) <= set(METRICS)
    assert set(df["paper"]) == set(PAPERS)
    assert df["value"].dtype == "float64" and df["given_in_text"].dtype == bool
    for s in df["setting"]:
        parse_setting(s)
    # Only figure cells may be missing from the text.
    assert df.loc[~df["given_in_text"], "item"].str.startswith("fig").all()
    assert df.loc[df["metric"] == "qualitative", "value"].isna().all()
    # HITSZ-VCM / BUPT / RegDB retrieval cells carry a direction (except sweeps' extra keys).
    is_retrieval = df["metric"].isin(["R1", "R5", "R10", "R20", "mAP", "mINP"])
    retrieval = df[is_retrieval & (df["dataset"] != "sysu-mm01")]
    assert retrieval["setting"].map(lambda s: parse_setting(s).get("direction")).isin(
        ["ir2rgb", "rgb2ir", "v2t", "t2v"]).all()


def _items_named_in_text(paper: str) -> set[str]:
    text = seed_text(paper)
    items = set()
    for m in re.finditer(r"\b(?:Table|TABLE|Tab\.)\s?([0-9]+|[IVX]+)\b", text):
        num = m.group(1)
        if not num.isdigit():
            num = str(("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X").index(num) + 1)
        items.add(f"table{num}")
    for m in re.finditer(r"\b(?:Fig\.|Figure|Fig)\s?([0-9]+)", text):
        items.add(f"fig{m.group(1)}")
    return items


@pytest.mark.parametrize("paper", PAPERS)
def test_every_table_and_figure_of_the_paper_is_present(paper: str) -> None:
    named = _items_named_in_text(paper)
    stored = set(load_numbers(paper)["item"])
    assert named == stored, f"named but missing: {named - stored}; stored but not named: {stored - named}"
    expected = {"xreid": (5, 5), "vld": (10, 9), "cmft": (8, 9)}[paper]
    assert (sum(i.startswith("table") for i in stored), sum(i.startswith("fig") for i in stored)) == expected


def test_printed_deltas_agree_with_the_values() -> None:
    df = load_numbers()
    checked = 0
    for r in df[df["note"].str.contains("delta=")].itertuples():
        m = re.search(r"delta=([+-][0-9.]+) vs ([^;]+)", r.note)
        ref = df[(df["paper"] == r.paper) & (df["item"] == r.item) & (df["row"] == m.group(2))
                 & (df["setting"] == r.setting) & (df["metric"] == r.metric) & (df["dataset"] == r.dataset)]
        assert len(ref) == 1, r
        assert abs(r.value - ref["value"].iloc[0] - float(m.group(1))) < 0.051, r
        checked += 1
    assert checked == 12 + 24 + 8 + 6  # VLD Tables III, IV, V, X


def test_row_counts_per_table() -> None:
    counts = load_numbers().groupby(["paper", "item"]).size()
    # rows x cells of the printed tables
    assert counts[("xreid", "table1")] == 15 * 8 and counts[("xreid", "table2")] == 17 * 8
    assert counts[("vld", "table1")] == 15 * 8 and counts[("vld", "table2")] == 14 * 8
    assert counts[("cmft", "table6")] == 9 * 10 and counts[("cmft", "table7")] == 10 * 10
    assert counts[("cmft", "table8")] == 8 * 8


# --------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------


def test_parse_setting() -> None:
    assert parse_setting("") == {}
    assert parse_setting("direction=ir2rgb;seq_len=6;lambda3=1.0") == {
        "direction": "ir2rgb", "seq_len": 6, "lambda3": 1.0}
    for bad in ("direction", "a=1;a=2", "=3", "a=1;;b=2"):
        with pytest.raises(PaperNumbersError):
            parse_setting(bad)


def test_paper_table_pivots_and_filters() -> None:
    t = paper_table("vld", "table1", direction="ir2rgb", seq_len=6)
    assert list(t.columns) == ["R1", "R5", "R10", "mAP"]
    assert t.index[0] == "Lba" and t.index[-1] == "our" and len(t) == 14
    assert t.loc["our", "mAP"] == 60.2 and math.isnan(t.loc["AuxNet", "R5"])

    t = paper_table("vld", "table4", direction="rgb2ir")  # Params/FLOPs have no direction: kept
    assert list(t.columns) == ["R1", "mAP", "params_M", "gflops"]
    assert t.loc["STP"].tolist() == [74.6, 58.6, 88.56, 14.08]

    t = paper_table("xreid", "table3")
    assert t.columns.names == ["dataset", "setting", "metric"]
    assert t.loc["+ MII", ("bupt", "direction=rgb2ir", "mAP")] == 65.9

    t = paper_table("cmft", "fig9", rows_by="seq_len")
    assert list(t.index) == list(range(1, 10)) and t.loc[3, "R1"] == 53.22

    t = paper_table("xreid", "table5")  # the row fixes SII/LII/CII: they go to the index
    assert t.index.names == ["row", "SII", "LII", "CII"]
    assert t.loc[("8", 1, 1, 1), ("direction=ir2rgb", "R1")] == 73.4


def test_paper_table_errors() -> None:
    with pytest.raises(PaperNumbersError, match="no item"):
        paper_table("vld", "table11")
    with pytest.raises(PaperNumbersError, match="unknown paper"):
        paper_table("reid", "table1")
    with pytest.raises(PaperNumbersError, match="neither a column nor a setting key"):
        paper_table("vld", "table1", dirction="ir2rgb")
    with pytest.raises(PaperNumbersError, match="no cell matches"):
        paper_table("vld", "table1", direction="v2t")


def test_reported_and_list_items() -> None:
    assert reported("vld", "table1", "our", "mAP", direction="rgb2ir", seq_len=10) == 60.0
    assert reported("xreid", "table3", "Baseline", "R1", dataset="bupt", direction="ir2rgb") == 61.2
    assert math.isnan(reported("cmft", "table6", "SGIEL", "R20", direction="ir2rgb"))
    with pytest.raises(PaperNumbersError, match="2 cells match"):
        reported("vld", "table1", "our", "mAP", direction="rgb2ir")
    items = list_items()
    assert len(items) == len(ITEM_CAPTIONS) == 46
    vld3 = items[(items["paper"] == "vld") & (items["item"] == "table3")].iloc[0]
    assert vld3["source"] == "Table III" and vld3["n_values"] == 16
    assert item_label("cmft", "fig9") == "Fig. 9"


def test_validation_names_the_line_and_problem(tmp_path: Path) -> None:
    good = load_numbers()
    raw = pd.read_csv(ROOT / "reprolib" / "paper" / "numbers.csv", dtype=str, keep_default_na=False)
    bad = raw.copy()
    bad.loc[3, "metric"] = "Rank1"
    bad.loc[5, "value"] = "7O.1"
    bad = pd.concat([bad, bad.iloc[[10]]], ignore_index=True)  # duplicate key
    path = tmp_path / "numbers.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(PaperNumbersError) as err:
        load_numbers(path=path)
    msg = str(err.value)
    assert "line 5: metric 'Rank1'" in msg
    assert "line 7: value '7O.1' is not a number" in msg
    assert "duplicate key" in msg
    assert len(good) == len(raw)
