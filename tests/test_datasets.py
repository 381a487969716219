"""HITSZ-VCM and BUPTCampus loaders, their validation, and ``data check``.

All counts below are worked out by hand from the fixture tables in ``fixtures_data.py``.
"""
import json
import logging
import os
import shutil

import pytest

from fixtures_data import (BUPT_GALLERY, BUPT_QUERY, VCM_TRAIN, bupt_frames, write_bupt_tree,
                           write_vcm_tree)
from reprolib.config import DataConfig
from reprolib.data.bupt import BUPTCampus, official_rgb_drop
from reprolib.data.check import main as check_main
from reprolib.data.check import run_check
from reprolib.data.datasets import build_dataset
from reprolib.data.errors import DatasetFormatError
from reprolib.data.hitsz_vcm import HITSZVCM, decode_vcm_name
from reprolib.data.types import Modality, Tracklet


def C(identities, tracklets, images):
    return {"identities": identities, "tracklets": tracklets, "images": images}


# --------------------------------------------------------------------------------------
# HITSZ-VCM
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, rel", [
    ("0001M1D2T1F7.jpg", "0001/ir/D2/7.jpg"),
    ("0503M2D12T3F25.jpg", "0503/rgb/D12/25.jpg"),
    ("0007M3D4T3F25.jpg", "0007/rgb/D4/25.jpg"),  # any modality digit but 1 is visible
])
def test_decode_vcm_name(name, rel):
    assert decode_vcm_name(name) == rel


@pytest.mark.parametrize("name", ["0001X1D2T1F7.jpg", "0001M1D2T1.jpg", "0001M1T1D2F7.jpg", "abc"])
def test_decode_vcm_name_rejects_malformed(name):
    with pytest.raises(ValueError, match="malformed HITSZ-VCM image name"):
        decode_vcm_name(name)


@pytest.mark.parametrize("layout", ["A", "B"])
def test_vcm_both_layouts_auto_detected(tmp_path, layout):
    root = write_vcm_tree(tmp_path / "vcm", layout=layout)
    ds = HITSZVCM(str(root))
    assert ds.layout == layout
    assert ds.stats["layout"] == layout
    base = root if layout == "A" else root / "Train"
    first = ds.train[0]  # row 1: IR, pid 7, cam 2, names F1, F6, ...
    assert first.paths[:2] == (str(base / "0007/ir/D2/1.jpg"), str(base / "0007/ir/D2/6.jpg"))
    assert (first.modality, first.raw_pid, first.camid, len(first)) == (Modality.IR, 7, 2, 12)
    assert first.source == "info/track_train_info.txt:1"
    assert all(os.path.isfile(p) for t in ds.train for p in t.paths)


def test_vcm_explicit_layout_mismatch_is_reported(tmp_path):
    root = write_vcm_tree(tmp_path / "vcm", layout="B")
    with pytest.raises(DatasetFormatError, match="layout 'A' was requested"):
        HITSZVCM(str(root), layout="A")


def test_vcm_exact_counts_and_filter_after_split(tmp_path):
    ds = HITSZVCM(str(write_vcm_tree(tmp_path / "vcm")))
    s = ds.stats
    assert s["splits"]["train"] == {
        "before_filter": {"all": C(3, 7, 86), "ir": C(3, 4, 49), "rgb": C(3, 3, 37)},
        "after_filter": {"all": C(3, 6, 75), "ir": C(3, 3, 38), "rgb": C(3, 3, 37)},
    }
    assert s["splits"]["test"] == {
        "before_filter": {"all": C(2, 7, 83), "ir": C(2, 3, 35), "rgb": C(2, 4, 48)},
        "after_filter": {"all": C(2, 5, 61), "ir": C(2, 2, 24), "rgb": C(2, 3, 37)},
    }
    assert s["eval_sets"]["ir2rgb"] == {
        "rule": "vcm",
        "query": {"before_filter": C(2, 3, 35), "after_filter": C(2, 2, 24)},
        "gallery": {"before_filter": C(2, 4, 48), "after_filter": C(2, 3, 37)},
    }
    assert s["eval_sets"]["rgb2ir"]["query"] == s["eval_sets"]["ir2rgb"]["gallery"]
    assert s["eval_sets"]["rgb2ir"]["gallery"] == s["eval_sets"]["ir2rgb"]["query"]
    assert (s["num_train_pids"], s["num_cameras"], s["paired"]) == (3, 6, False)
    assert s["options"] == {"layout": "B", "min_seq_len": 12}
    assert s["warnings"] == [] and s["query_idx_lines"] == 1
    # The 11-frame query row 6 is dropped after the split, not moved to the gallery.
    ir2rgb = ds.eval_sets["ir2rgb"]
    assert [t.source for t in ir2rgb.query] == ["info/track_test_info.txt:4",
                                                "info/track_test_info.txt:1"]  # file order
    assert [t.source for t in ir2rgb.gallery] == [f"info/track_test_info.txt:{i}" for i in (2, 3, 7)]
    rgb2ir = ds.eval_sets["rgb2ir"]
    assert rgb2ir.query == ir2rgb.gallery and rgb2ir.gallery == ir2rgb.query
    assert {e.rule for e in ds.eval_sets.values()} == {"vcm"}


def test_vcm_min_seq_len_is_configurable(tmp_path):
    ds = HITSZVCM(str(write_vcm_tree(tmp_path / "vcm")), min_seq_len=11)
    assert len(ds.train) == len(VCM_TRAIN)
    assert len(ds.eval_sets["ir2rgb"].query) == 3 and len(ds.eval_sets["ir2rgb"].gallery) == 4


def test_vcm_labels_sorted_test_pids_and_camids_raw(tmp_path):
    ds = HITSZVCM(str(write_vcm_tree(tmp_path / "vcm")))
    assert {t.raw_pid: t.pid for t in ds.train} == {3: 0, 7: 1, 12: 2}
    assert [t.camid for t in ds.train] == [2, 2, 1, 3, 4, 5]  # row 5 filtered; camids raw
    q = ds.eval_sets["ir2rgb"].query
    assert [(t.pid, t.raw_pid, t.camid) for t in q] == [(502, 502, 1), (501, 501, 2)]


def test_vcm_query_with_same_camera_positive_is_kept_in_gallery(tmp_path):
    """The IR query of pid 501 (camid 2) and its RGB gallery item (camid 2) both survive;
    the evaluator's VCM rule, not the loader, removes the pair."""
    ds = HITSZVCM(str(write_vcm_tree(tmp_path / "vcm")))
    ir2rgb = ds.eval_sets["ir2rgb"]
    q501 = [t for t in ir2rgb.query if t.pid == 501]
    same_cam = [t for t in ir2rgb.gallery if t.pid == 501 and t.camid == q501[0].camid]
    assert len(q501) == 1 and len(same_cam) == 1
    assert q501[0].modality == Modality.IR and same_cam[0].modality == Modality.RGB


def test_vcm_query_idx_over_several_lines_warns_and_reads_all(tmp_path, caplog):
    one = HITSZVCM(str(write_vcm_tree(tmp_path / "one")))
    with caplog.at_level(logging.WARNING, logger="reprolib.data.hitsz_vcm"):
        many = HITSZVCM(str(write_vcm_tree(tmp_path / "many", query_idx_lines=2)))
    assert "query_IDX.txt has 2 lines" in caplog.text
    assert many.stats["query_idx_lines"] == 2 and len(many.stats["warnings"]) == 1
    assert ([t.source for t in many.eval_sets["ir2rgb"].query]
            == [t.source for t in one.eval_sets["ir2rgb"].query])


def test_vcm_any_whitespace_parses_like_single_spaces(tmp_path):
    plain = HITSZVCM(str(write_vcm_tree(tmp_path / "plain")))
    messy_root = write_vcm_tree(tmp_path / "messy", separator=" \t ")
    info = messy_root / "info"
    for name in ("track_train_info.txt", "track_test_info.txt", "query_IDX.txt"):
        with open(info / name, "a") as f:
            f.write("\n  \n")  # trailing blank lines
    messy = HITSZVCM(str(messy_root))

    def strip(ts):
        return [(t.pid, t.camid, t.modality, [os.path.relpath(p, r) for p in t.paths], t.source)
                for t, r in ((t, ts[1]) for t in ts[0])]

    assert strip((plain.train, plain.root)) == strip((messy.train, messy.root))
    for d in ("ir2rgb", "rgb2ir"):
        for part in ("query", "gallery"):
            assert (strip((getattr(plain.eval_sets[d], part), plain.root))
                    == strip((getattr(messy.eval_sets[d], part), messy.root)))


def test_vcm_rgb_query_is_an_error(tmp_path):
    root = write_vcm_tree(tmp_path / "vcm", query_idx=(4, 1, 6, 2))  # row 2 is RGB
    with pytest.raises(DatasetFormatError) as e:
        HITSZVCM(str(root))
    assert e.value.problems == ["info/query_IDX.txt: row 2 selects info/track_test_info.txt:2, "
                                "a visible row (modality 2); queries must be infrared (modality 1)"]


def test_vcm_ir_row_outside_query_is_an_error(tmp_path):
    root = write_vcm_tree(tmp_path / "vcm", query_idx=(4, 1))  # IR row 6 falls in the gallery
    with pytest.raises(DatasetFormatError, match=r"track_test_info.txt:6: infrared row"):
        HITSZVCM(str(root))


def test_vcm_training_identity_without_a_modality_is_an_error(tmp_path):
    # pid 3's only IR row that is long enough (row 3) is shortened to 11 frames.
    train = list(VCM_TRAIN)
    train[2] = (1, 11, 3, 1)
    root = write_vcm_tree(tmp_path / "vcm", train=train)
    with pytest.raises(DatasetFormatError, match=r"pid 3 \(no ir\)") as e:
        HITSZVCM(str(root))
    assert len(e.value.problems) == 1
    assert len(HITSZVCM(str(root), min_seq_len=11).train) == len(train)


def test_vcm_broken_tree_lists_every_problem_in_one_error(tmp_path):
    root = write_vcm_tree(tmp_path / "vcm")
    info = root / "info"
    (info / "query_IDX.txt").unlink()
    (info / "test_name.txt").unlink()
    with open(info / "track_train_info.txt", "a") as f:
        f.write("1 2 x 7 2\n")  # row 8: not an integer
        f.write("2 80 95 7 2\n")  # row 9: past the end of train_name.txt (87 lines)
    with open(info / "train_name.txt", "a") as f:
        f.write("garbage.jpg\n")  # line 87
    (root / "Train/0012/ir/D4/6.jpg").unlink()  # 2nd frame of row 6

    with pytest.raises(DatasetFormatError) as e:
        HITSZVCM(str(root))
    problems = e.value.problems
    expected = [
        "info/test_name.txt is missing",
        "info/query_IDX.txt is missing",
        "info/train_name.txt:87: malformed image name 'garbage.jpg'",
        "info/track_train_info.txt:8: expected 5 integers",
        "info/track_train_info.txt:9: lines 80..95 point past the end of info/train_name.txt (87 lines)",
        "info/track_train_info.txt:6: 1 of 14 frame images are missing on disk, e.g. Train/0012/ir/D4/6.jpg",
    ]
    assert len(problems) == len(expected)
    for fragment in expected:
        assert any(fragment in p for p in problems), fragment
    message = str(e.value)
    assert "(6 problems)" in message and "A correct tree looks like this:" in message
    assert isinstance(e.value, ValueError)


def test_vcm_missing_root(tmp_path):
    with pytest.raises(DatasetFormatError, match="root directory does not exist"):
        HITSZVCM(str(tmp_path / "nowhere"))


# --------------------------------------------------------------------------------------
# BUPTCampus
# --------------------------------------------------------------------------------------


def test_bupt_exact_counts_official_drop(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="reprolib.data.bupt"):
        ds = BUPTCampus(str(write_bupt_tree(tmp_path / "bupt")), eval_batch=4)
    s = ds.stats
    assert s["splits"]["train"]["after_filter"] == {
        "all": C(3, 10, 36), "ir": C(3, 5, 18), "rgb": C(3, 5, 18)}
    assert s["splits"]["auxiliary"]["after_filter"] == {
        "all": C(2, 4, 10), "ir": C(2, 2, 5), "rgb": C(2, 2, 5)}
    # query: 6 RGB, 6 mod 4 = 2 -> the last two RGB lines (104, 105) are dropped.
    assert s["splits"]["query"] == {
        "before_filter": {"all": C(9, 9, 27), "ir": C(3, 3, 9), "rgb": C(6, 6, 18)},
        "after_filter": {"all": C(7, 7, 21), "ir": C(3, 3, 9), "rgb": C(4, 4, 12)},
    }
    # gallery: 8 RGB, 8 mod 4 = 0 -> nothing dropped (the official [:-0] would drop all 8).
    assert s["splits"]["gallery"]["after_filter"] == s["splits"]["gallery"]["before_filter"] == {
        "all": C(8, 16, 32), "ir": C(8, 8, 16), "rgb": C(8, 8, 16)}
    assert s["dropped"] == {"query_rgb": 2, "gallery_rgb": 0}
    assert s["eval_sets"]["ir2rgb"] == {
        "rule": "bupt",
        "query": {"before_filter": C(3, 3, 9), "after_filter": C(3, 3, 9)},
        "gallery": {"before_filter": C(8, 8, 16), "after_filter": C(8, 8, 16)},
    }
    assert s["eval_sets"]["rgb2ir"]["query"] == {"before_filter": C(6, 6, 18),
                                                 "after_filter": C(4, 4, 12)}
    assert (s["num_train_pids"], s["num_auxiliary_pids"], s["num_cameras"], s["paired"]) == (3, 2, 6, True)
    assert s["single_camera_train_identities"] == 1  # identity 10
    assert len(s["warnings"]) == 1 and "gallery.txt: 8 RGB tracklets" in s["warnings"][0]
    assert "would drop ALL" in caplog.text
    assert [t.pid for t in ds.eval_sets["rgb2ir"].query] == [100, 101, 102, 103]
    assert [t.pid for t in ds.query] == [100, 106, 101, 102, 107, 103, 108]


def test_bupt_drop_rule_other_residues(tmp_path):
    root = str(write_bupt_tree(tmp_path / "bupt"))
    ds = BUPTCampus(root, eval_batch=3)  # query 6 RGB mod 3 = 0; gallery 8 RGB mod 3 = 2
    assert ds.stats["dropped"] == {"query_rgb": 0, "gallery_rgb": 2}
    assert [t.pid for t in ds.eval_sets["ir2rgb"].gallery] == list(range(100, 106))
    assert [t.pid for t in ds.eval_sets["rgb2ir"].gallery] == list(range(100, 108))  # IR kept
    full = BUPTCampus(root, eval_mode="full", eval_batch=3)
    assert full.stats["dropped"] == {"query_rgb": 0, "gallery_rgb": 0} and full.stats["warnings"] == []
    assert len(full.eval_sets["rgb2ir"].query) == 6 and len(full.eval_sets["ir2rgb"].gallery) == 8


def test_official_rgb_drop_keeps_file_order_and_ir():
    def t(m, pid):
        return Tracklet(("x",), pid, 0, m, raw_pid=pid)

    items = [t(Modality.RGB, 1), t(Modality.IR, 2), t(Modality.RGB, 3), t(Modality.RGB, 4),
             t(Modality.IR, 5)]
    kept, n = official_rgb_drop(items, 2)
    assert n == 1 and [x.pid for x in kept] == [1, 2, 3, 5]
    kept, n = official_rgb_drop(items, 3)  # remainder 0: nothing dropped
    assert n == 0 and kept == items


def test_bupt_pairs_and_labels(tmp_path):
    root = write_bupt_tree(tmp_path / "bupt")
    ds = BUPTCampus(str(root))
    rgb, ir = ds.train_by_modality(Modality.RGB), ds.train_by_modality(Modality.IR)
    assert [t.pair_id for t in rgb] == [t.pair_id for t in ir] == [0, 1, 2, 3, 4]
    assert all(len(a) == len(b) and a.pid == b.pid and a.camid == b.camid for a, b in zip(rgb, ir))
    assert {t.raw_pid: t.pid for t in ds.train} == {1: 0, 2: 1, 10: 2}
    assert [t.camid for t in rgb] == [0, 1, 2, 3, 4]  # LS3 G25 CQ1 W4 TSG1
    assert rgb[0].paths == tuple(str(root / "DATA" / p) for p in bupt_frames("2", "RGB", "LS3", "1", 3))
    assert ir[0].paths[0].endswith("DATA/2/IR/LS3/2_IR_LS3_1_1000.jpg")
    string = BUPTCampus(str(root), label_order="official_string")
    assert {t.raw_pid: t.pid for t in string.train} == {1: 0, 10: 1, 2: 2}
    assert {t.raw_pid: t.pid for t in ds.auxiliary} == {20: 0, 21: 1}
    assert [t.pair_id for t in ds.auxiliary] == [0, 0, 1, 1]


def test_bupt_test_records(tmp_path):
    ds = BUPTCampus(str(write_bupt_tree(tmp_path / "bupt")), eval_mode="full")
    q = ds.eval_sets["ir2rgb"].query
    assert [(t.pid, t.camid, t.modality, t.source) for t in q] == [
        (106, 1, Modality.IR, "query.txt:2"), (107, 4, Modality.IR, "query.txt:5"),
        (108, 2, Modality.IR, "query.txt:9")]
    assert len(ds.query) == len(BUPT_QUERY) and len(ds.gallery) == len(BUPT_GALLERY)
    assert {e.rule for e in ds.eval_sets.values()} == {"bupt"}


def test_bupt_root_may_be_the_data_folder(tmp_path):
    root = write_bupt_tree(tmp_path / "bupt")
    ds = BUPTCampus(str(root / "DATA"))
    assert ds.root == str(root) and len(ds.train) == 10


def test_bupt_broken_tree_lists_every_problem_in_one_error(tmp_path):
    root = write_bupt_tree(tmp_path / "bupt")
    (root / "gallery.txt").unlink()
    with open(root / "query.txt", "a") as f:
        f.write("100 RGB XX9 1\n")  # line 10: unknown camera
    with open(root / "train.txt", "a") as f:
        f.write("5 RGB/IR LS3\n")  # line 6: 3 fields
        f.write("2 RGB/IR TSG2 7\n")  # line 7: not in data_paths.json (both halves)
    paths = json.loads((root / "data_paths.json").read_text())
    paths["1"]["IR"]["CQ1"]["1"].pop()  # train.txt:3 pair becomes 3 RGB vs 2 IR
    (root / "data_paths.json").write_text(json.dumps(paths))
    (root / "DATA" / bupt_frames("101", "RGB", "CQ1", "1", 3)[1]).unlink()  # query.txt:3

    with pytest.raises(DatasetFormatError) as e:
        BUPTCampus(str(root))
    problems = e.value.problems
    expected = [
        "gallery.txt is missing",
        "query.txt:10: unknown camera 'XX9' (expected one of LS3, G25, CQ1, W4, TSG1, TSG2)",
        "train.txt:6: expected 4 fields",
        "train.txt:7: data_paths.json has no entry ['2']['RGB']['TSG2'] (needed for 2 RGB TSG2 7)",
        "train.txt:7: data_paths.json has no entry ['2']['IR']['TSG2'] (needed for 2 IR TSG2 7)",
        "train.txt:3: pair pid 1 camera CQ1 tracklet 1 has 3 RGB but 2 IR frames",
        "query.txt:3 (RGB): 1 of 3 frame images are missing on disk, e.g. DATA/101/RGB/CQ1/",
    ]
    assert len(problems) == len(expected)
    for fragment in expected:
        assert any(fragment in p for p in problems), fragment
    assert "A correct tree looks like this:" in str(e.value)


def test_bupt_wrong_modality_in_train(tmp_path):
    root = write_bupt_tree(tmp_path / "bupt")
    with open(root / "train_auxiliary.txt", "a") as f:
        f.write("22 RGB LS3 1\n")
    with pytest.raises(DatasetFormatError, match=r"train_auxiliary.txt:3: modality must be 'RGB/IR'"):
        BUPTCampus(str(root))


# --------------------------------------------------------------------------------------
# Factory and data check
# --------------------------------------------------------------------------------------


def test_build_dataset_maps_config_fields(tmp_path):
    vcm_root = write_vcm_tree(tmp_path / "vcm", layout="A")
    ds = build_dataset(DataConfig(dataset="hitsz-vcm", root=str(vcm_root), layout="A", min_seq_len=11))
    assert isinstance(ds, HITSZVCM) and ds.layout == "A" and len(ds.train) == len(VCM_TRAIN)
    bupt_root = write_bupt_tree(tmp_path / "bupt")
    ds = build_dataset(DataConfig(dataset="bupt", root=str(bupt_root), bupt_eval_mode="official",
                                  bupt_eval_batch=4))
    assert isinstance(ds, BUPTCampus) and ds.stats["dropped"]["query_rgb"] == 2
    with pytest.raises(ValueError, match="unknown data.dataset 'sysu'"):
        build_dataset(DataConfig(dataset="sysu", root=str(tmp_path)))


def test_run_check_returns_json_summary(tmp_path):
    summary = run_check("hitsz-vcm", str(write_vcm_tree(tmp_path / "vcm")), min_seq_len=11)
    assert json.loads(json.dumps(summary)) == summary
    assert set(summary) == {"dataset", "root", "options", "num_train_pids", "num_cameras", "paired",
                            "splits", "eval_sets", "warnings", "layout", "query_idx_lines", "decode"}
    assert summary["decode"]["checked"] is False and summary["decode"]["frames"] > 0
    assert summary["splits"]["train"]["after_filter"]["all"] == C(3, 7, 86)
    with pytest.raises(ValueError, match="invalid option for dataset 'hitsz-vcm'"):
        run_check("hitsz-vcm", str(tmp_path / "vcm"), eval_mode="full")


def test_check_main_prints_summary_or_error(tmp_path, capsys):
    root = write_bupt_tree(tmp_path / "bupt")
    assert check_main(["bupt", str(root), "--bupt-eval-mode", "full"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"] == "bupt" and out["splits"]["query"]["after_filter"]["all"] == C(9, 9, 27)

    shutil.rmtree(root / "DATA" / "100")
    (root / "query.txt").unlink()
    assert check_main(["bupt", str(root)]) == 1
    err = capsys.readouterr().err
    assert "query.txt is missing" in err and "gallery.txt:1 (RGB)" in err

    with pytest.raises(SystemExit) as e:
        check_main(["hitsz-vcm", str(root), "--bupt-eval-mode", "full"])
    assert e.value.code == 2
    assert "--bupt-eval-mode do(es) not apply to dataset 'hitsz-vcm'" in capsys.readouterr().err
