"""SYSU-MM01 and RegDB: miniature layouts, loaders, the SYSU rule and the trial protocol."""
from __future__ import annotations

import os
import random
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reprolib.data.errors import DatasetFormatError
from reprolib.data.regdb import RegDB, available_trials
from reprolib.data.synthetic import WorldSpec, build_world, write_world
from reprolib.data.synthetic.writers import WRITERS
from reprolib.data.synthetic.writers_image import SYSU_CAMERA_OF, RegDBWriter, SYSUWriter
from reprolib.data.sysu import GALLERY_CAMERAS, SYSUMM01, sample_single_shot
from reprolib.data.types import Modality
from reprolib.metrics import EvalResult, evaluate
from reprolib.metrics.sysu_rule import evaluate_sysu, sysu_removal_mask
from reprolib.metrics.trials import REGDB_TRIALS, SYSU_TRIALS, TrialSummary, run_trials, summarize_trials

#: A few identities, one 12-frame tracklet per camera, 32x16 frames: ~0.7 s per layout.
TINY = WorldSpec(name="tiny-image", num_train_ids=4, num_test_ids=3, num_aux_ids=1, num_cameras=4,
                 cams_per_modality=(1, 2), tracklets_per_camera=(1, 1), length_range=(12, 12),
                 short_length_range=(3, 3), short_fraction=0.0, occlusion_prob=0.0, height=32, width=16)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("image-layouts")
    return {fmt: write_world(base / fmt, TINY, seed=0, fmt=fmt, progress=False) for fmt in ("sysu", "regdb")}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --------------------------------------------------------------------------------------
# SYSU-MM01 layout and loader
# --------------------------------------------------------------------------------------


def _sysu_expected(world):
    """Images per (pid, SYSU camera) from the world's plan (independent of the loader)."""
    per_folder: dict[tuple[int, int], int] = defaultdict(int)
    for plan in world.tracklets:
        (modality,) = plan.modalities
        per_folder[(plan.pid, SYSU_CAMERA_OF[modality][plan.camera])] += plan.length
    return per_folder


def test_image_formats_are_registered():
    assert isinstance(WRITERS["sysu"], SYSUWriter) and isinstance(WRITERS["regdb"], RegDBWriter)


def test_sysu_layout_files(layouts):
    root = layouts["sysu"]
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("cam")) == [f"cam{c}" for c in range(1, 7)]
    ids = {s: (root / "exp" / f"{s}_id.txt").read_text() for s in ("train", "val", "test")}
    assert ids == {"train": "1,2,3\n", "val": "4\n", "test": "5,6,7\n"}
    ir = next((root / "cam3").rglob("*.jpg"))
    rgb = next((root / "cam1").rglob("*.jpg"))
    ir_px, rgb_px = (np.asarray(Image.open(p), dtype=np.int16) for p in (ir, rgb))
    assert ir_px.shape == (32, 16, 3)
    assert np.abs(ir_px[..., 0] - ir_px[..., 1]).max() <= 8  # infrared is grey (up to JPEG noise)
    assert np.abs(rgb_px[..., 0] - rgb_px[..., 2]).max() > 8  # visible has colour


def test_sysu_loader_counts_match_the_plan(layouts):
    world = build_world(TINY, 0, paired=False, num_cameras=4)
    per_folder = _sysu_expected(world)
    train_pids, test_pids = [1, 2, 3, 4], [5, 6, 7]
    ds = SYSUMM01(layouts["sysu"])

    def n_images(pids, cams):
        return sum(n for (pid, cam), n in per_folder.items() if pid in pids and cam in cams)

    assert ds.num_train_pids == 4 and ds.num_cameras == 7 and ds.name == "sysu-mm01"
    assert len(ds.train_by_modality(Modality.RGB)) == n_images(train_pids, (1, 2, 4, 5))
    assert len(ds.train_by_modality(Modality.IR)) == n_images(train_pids, (3, 6))
    assert sorted({t.pid for t in ds.train}) == [0, 1, 2, 3]
    assert all(t.pid == t.raw_pid - 1 for t in ds.train)  # sorted relabelling of pids 1..4
    assert len(ds.query) == n_images(test_pids, (3, 6))
    assert all(t.modality == Modality.IR and t.camid in (3, 6) and t.pid == t.raw_pid for t in ds.query)
    for mode, cams in GALLERY_CAMERAS.items():
        assert len(ds.gallery_pool(mode)) == n_images(test_pids, cams)
        folders = {k for k in per_folder if k[0] in test_pids and k[1] in cams}
        assert len(ds.gallery(0, mode)) == len(folders)
        assert ds.stats["gallery_pool"][mode]["images"] == n_images(test_pids, cams)
    assert all(len(t) == 1 and os.path.isfile(t.paths[0]) for t in ds.train + ds.query)
    es = ds.eval_sets["ir2rgb"]
    assert list(ds.eval_sets) == ["ir2rgb"] and es.rule == "sysu" and es.query is ds.query
    assert es.gallery == ds.gallery(0, "all")


def test_sysu_query_order_is_official(layouts):
    ds = SYSUMM01(layouts["sysu"])
    keys = [(t.raw_pid, t.camid, os.path.basename(t.paths[0])) for t in ds.query]
    assert keys == sorted(keys)  # sorted pids, camera 3 then 6, sorted file names


def _official_gallery(root: Path, trial: int, cams) -> list[str]:
    """DDAG's process_gallery_sysu, re-implemented on the global ``random`` module."""
    ids = [int(x) for x in (root / "exp" / "test_id.txt").read_text().splitlines()[0].split(",")]
    random.seed(trial)
    out = []
    for pid in sorted("%04d" % x for x in ids):
        for cam in cams:
            folder = root / f"cam{cam}" / pid
            if folder.is_dir():
                out.append(random.choice(sorted(str(folder / f) for f in os.listdir(folder))))
    return out


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_sysu_single_shot_gallery_is_the_official_seeded_draw(layouts, mode):
    root = layouts["sysu"]
    ds, again = SYSUMM01(root), SYSUMM01(root, mode=mode, trial=7)
    state = random.getstate()
    galleries = {t: ds.gallery(t, mode) for t in SYSU_TRIALS}
    assert random.getstate() == state  # the global generator is left alone
    for t, gallery in galleries.items():
        keys = [(g.raw_pid, g.camid) for g in gallery]
        assert len(keys) == len(set(keys))  # one image per (identity, camera)
        assert all(g.modality == Modality.RGB and g.camid in GALLERY_CAMERAS[mode] for g in gallery)
        assert [g.paths[0] for g in gallery] == _official_gallery(root, t, GALLERY_CAMERAS[mode])
        assert gallery == ds.gallery(t, mode)  # deterministic per trial
        pool = ds.gallery_pool(mode)
        assert [pool[i] for i in ds.gallery_indices(t, mode)] == gallery
    assert len({tuple(g.paths[0] for g in gal) for gal in galleries.values()}) > 1  # trials differ
    assert again.eval_sets["ir2rgb"].gallery == galleries[7]


def test_sample_single_shot_picks_within_each_folder():
    picks = sample_single_shot([1, 5, 3], seed=0)
    assert picks[0] == 0 and 0 <= picks[1] < 5 and 0 <= picks[2] < 3
    assert picks == sample_single_shot([1, 5, 3], seed=0)


def test_sysu_broken_tree_lists_every_problem_in_one_error(layouts, tmp_path):
    root = _copy(layouts["sysu"], tmp_path / "sysu")
    (root / "exp" / "val_id.txt").unlink()
    (root / "exp" / "test_id.txt").write_text("5,6,x,7,1\n")
    shutil.rmtree(root / "cam4")
    emptied = sorted((root / "cam3").iterdir())[0]
    for f in emptied.iterdir():
        f.unlink()
    with pytest.raises(DatasetFormatError) as info:
        SYSUMM01(root)
    err = info.value
    assert len(err.problems) == 5, err.problems
    text = str(err)
    for needle in ("exp/val_id.txt is missing", "exp/test_id.txt:1: expected comma-separated integer pids, got 'x'",
                   "cam4/ (directory) is missing", "listed more than once across train/val/test",
                   f"cam3/{emptied.name}", "A correct tree looks like this:"):
        assert needle in text


def test_sysu_training_identity_without_infrared_is_an_error(layouts, tmp_path):
    root = _copy(layouts["sysu"], tmp_path / "sysu")
    for cam in (3, 6):
        shutil.rmtree(root / f"cam{cam}" / "0001", ignore_errors=True)
    with pytest.raises(DatasetFormatError, match=r"pid 1 \(no infrared\)"):
        SYSUMM01(root)


def test_sysu_missing_root_and_bad_mode(tmp_path):
    with pytest.raises(DatasetFormatError, match="root directory does not exist"):
        SYSUMM01(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="mode must be one of"):
        SYSUMM01(tmp_path, mode="outdoor")


# --------------------------------------------------------------------------------------
# The SYSU-MM01 rule
#
# Gallery (index: pid, cam):  g0: 1,2   g1: 1,1   g2: 2,2   g3: 2,4   g4: 3,1
# Queries (pid, cam, distances to g0..g4, ranking):
#   q0: 1,3 [.1 .4 .2 .5 .3] g0 g2 g4 g1 g3 -> cam-2 items g0 (its own pid) and g2 (another
#       pid) removed; kept g4 g1 g3, hits [0 1 0]: AP 1/2, INP 1/2, first rank 2, unique rank 2
#   q1: 1,6 [.4 .3 .1 .2 .5] g2 g3 g1 g0 g4 -> nothing removed (camera 6);
#       hits [0 0 1 1 0]: AP (1/3 + 2/4)/2 = 5/12, INP 2/4, first rank 3, unique rank 2 ({2} before)
#   q2: 2,3 [.5 .4 .1 .3 .2] g2 g4 g3 g1 g0 -> g2 (its own pid, cam 2), g0 removed;
#       kept g4 g3 g1, hits [0 1 0]: AP 1/2, INP 1/2, first rank 2, unique rank 2
#   q3: 9,3 -> pid 9 absent: skipped
#   q4: 3,3 [.1 .2 .3 .4 .5] g0 g1 g2 g3 g4 -> g0, g2 removed; kept g1 g3 g4, hits [0 0 1]:
#       AP 1/3, INP 1/3, first rank 3, unique rank 3
# Identity-unique CMC: ranks 2, 2, 2, 3 -> [0, 3/4, 1, ...]; standard: 2, 3, 2, 3 -> [0, 1/2, 1, ...]
# mAP = (1/2 + 5/12 + 1/2 + 1/3)/4 = 7/16; mINP = (1/2 + 1/2 + 1/2 + 1/3)/4 = 11/24.
# --------------------------------------------------------------------------------------
G_PIDS = np.array([1, 1, 2, 2, 3])
G_CAMS = np.array([2, 1, 2, 4, 1])
Q_PIDS = np.array([1, 1, 2, 9, 3])
Q_CAMS = np.array([3, 6, 3, 3, 3])
DIST = np.array([
    [0.1, 0.4, 0.2, 0.5, 0.3],
    [0.4, 0.3, 0.1, 0.2, 0.5],
    [0.5, 0.4, 0.1, 0.3, 0.2],
    [0.1, 0.2, 0.3, 0.4, 0.5],
    [0.1, 0.2, 0.3, 0.4, 0.5],
])


def test_sysu_camera_rule_removes_camera_2_for_camera_3_queries_only():
    removed = sysu_removal_mask(Q_CAMS, G_CAMS)
    expected_row = [True, False, True, False, False]  # every camera-2 item, whatever its pid
    np.testing.assert_array_equal(removed, [expected_row, [False] * 5, expected_row, expected_row, expected_row])


def test_sysu_rule_golden_case():
    res = evaluate_sysu(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5)
    assert res.num_valid == 4
    np.testing.assert_allclose(res.cmc, [0, 0.75, 1, 1, 1])
    np.testing.assert_allclose(res.ap, [1 / 2, 5 / 12, 1 / 2, np.nan, 1 / 3])
    assert res.mAP == pytest.approx(7 / 16)
    assert res.mINP == pytest.approx(11 / 24)
    std = evaluate_sysu(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5, cmc="standard")
    np.testing.assert_allclose(std.cmc, [0, 0.5, 1, 1, 1])
    assert std.mAP == res.mAP
    # Without the rule (camera-6 queries everywhere) q2 keeps its camera-2 positive g2 at rank 1:
    # hits [1 0 1 0 0], AP (1 + 2/3)/2.
    no_rule = evaluate_sysu(DIST, Q_PIDS, G_PIDS, np.full(5, 6), G_CAMS, max_rank=5)
    assert no_rule.ap[2] == pytest.approx(5 / 6)


def _official_sysu(dist, q_pids, g_pids, q_cams, g_cams, max_rank):
    """The official eval_sysu algorithm, one query at a time (CMC rows padded, stable ties)."""
    order = np.argsort(dist, axis=1, kind="stable")
    cmc_rows, aps, inps = [], [], []
    for i in range(len(q_pids)):
        keep = ~((q_cams[i] == 3) & (g_cams[order[i]] == 2))
        ranked = g_pids[order[i]][keep]
        _, first = np.unique(ranked, return_index=True)
        row = (ranked[np.sort(first)] == q_pids[i]).cumsum()[:max_rank]
        cmc_rows.append(np.pad(row, (0, max_rank - len(row)), mode="edge"))
        match = (ranked == q_pids[i]).astype(int)
        if not match.any():
            continue
        cum = match.cumsum()
        aps.append((cum / np.arange(1, len(cum) + 1) * match).sum() / match.sum())
        inps.append(match.sum() / (np.flatnonzero(match).max() + 1))
    return np.sum(cmc_rows, axis=0) / len(aps), np.mean(aps), np.mean(inps)


def test_sysu_rule_matches_the_official_algorithm_on_random_data():
    rng = np.random.default_rng(0)
    g_pids, g_cams = rng.integers(0, 12, 60), rng.choice([1, 2, 4, 5], 60)
    q_pids, q_cams = rng.integers(0, 14, 40), rng.choice([3, 6], 40)
    dist = rng.random((40, 60))
    res = evaluate_sysu(dist, q_pids, g_pids, q_cams, g_cams, max_rank=20)
    cmc, m_ap, m_inp = _official_sysu(dist, q_pids, g_pids, q_cams, g_cams, 20)
    np.testing.assert_allclose(res.cmc, cmc)
    assert res.mAP == pytest.approx(m_ap) and res.mINP == pytest.approx(m_inp)


def test_sysu_rule_without_camera_3_and_standard_cmc_equals_the_shared_metric():
    rng = np.random.default_rng(1)
    g_pids, q_pids = rng.integers(0, 8, 30), rng.integers(0, 9, 25)
    dist = rng.random((25, 30))
    ours = evaluate_sysu(dist, q_pids, g_pids, np.full(25, 6), rng.choice([1, 2], 30), cmc="standard")
    shared = evaluate(dist, q_pids, g_pids, rule="bupt")
    np.testing.assert_allclose(ours.cmc, shared.cmc)
    np.testing.assert_allclose(ours.ap, shared.ap)
    assert ours.mINP == pytest.approx(shared.mINP)


def test_sysu_rule_errors():
    with pytest.raises(ValueError, match="unknown cmc"):
        evaluate_sysu(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, cmc="matlab")
    with pytest.raises(ValueError, match="no valid query"):
        evaluate_sysu(DIST[:1], [9], G_PIDS, [3], G_CAMS)


# --------------------------------------------------------------------------------------
# RegDB layout and loader
# --------------------------------------------------------------------------------------


def _idx(root: Path, name: str) -> list[tuple[str, int]]:
    return [(p, int(label)) for p, label in (ln.split(" ") for ln in (root / "idx" / name).read_text().splitlines())]


def test_regdb_layout_has_ten_trials_of_disjoint_halves(layouts):
    root = layouts["regdb"]
    assert available_trials(str(root)) == list(REGDB_TRIALS)
    world = build_world(TINY, 0, paired=True, num_cameras=2)
    frames = defaultdict(int)
    for plan in world.tracklets:
        frames[plan.pid] += plan.length
    splits = set()
    for t in REGDB_TRIALS:
        pids = {}
        for split in ("train", "test"):
            vis, th = _idx(root, f"{split}_visible_{t}.txt"), _idx(root, f"{split}_thermal_{t}.txt")
            pids[split] = {int(p.split("/")[1]) for p, _ in vis}
            assert pids[split] == {int(p.split("/")[1]) for p, _ in th}
            assert len(vis) == len(th) == sum(frames[p] for p in pids[split])
            assert all(p.startswith("Visible/") for p, _ in vis) and all(p.startswith("Thermal/") for p, _ in th)
        assert not pids["train"] & pids["test"] and pids["train"] | pids["test"] == set(frames)
        assert len(pids["train"]) == len(frames) // 2
        splits.add(frozenset(pids["train"]))
    assert len(splits) > 1  # trials draw different halves


@pytest.mark.parametrize("trial", [1, 3])
def test_regdb_loader_reads_the_trial_files(layouts, trial):
    root = layouts["regdb"]
    ds = RegDB(root, trial=trial)
    files = {f"{s}_{m}": _idx(root, f"{s}_{m}_{trial}.txt") for s in ("train", "test") for m in ("visible", "thermal")}
    for m, mod in (("visible", Modality.RGB), ("thermal", Modality.IR)):
        got = [(os.path.relpath(t.paths[0], root).replace(os.sep, "/"), t.raw_pid) for t in ds.train_by_modality(mod)]
        assert got == files[f"train_{m}"]
    assert ds.num_train_pids == len({label for _, label in files["train_visible"]})
    assert all(t.pid == t.raw_pid for t in ds.train)  # labels 0..n-1 are kept by the sorted relabelling
    v2t = ds.eval_sets["rgb2ir"]
    assert [(os.path.relpath(t.paths[0], root).replace(os.sep, "/"), t.pid) for t in v2t.query] == files["test_visible"]
    assert [(os.path.relpath(t.paths[0], root).replace(os.sep, "/"), t.pid) for t in v2t.gallery] == files["test_thermal"]
    t2v = ds.eval_sets["ir2rgb"]
    assert t2v.query == v2t.gallery and t2v.gallery == v2t.query
    assert v2t.rule == t2v.rule == "bupt"  # no camera filter (official eval_regdb)
    assert {t.camid for t in v2t.query} == {0} and {t.camid for t in v2t.gallery} == {1}
    assert ds.num_cameras == 2 and ds.stats["trial"] == trial


def test_regdb_any_whitespace_parses_like_single_spaces(layouts, tmp_path):
    root = _copy(layouts["regdb"], tmp_path / "regdb")
    for f in (root / "idx").glob("*_1.txt"):
        f.write_text("".join(f"  {ln.replace(' ', chr(9))}  \n" for ln in f.read_text().splitlines()) + "\n\n")
    a, b = RegDB(layouts["regdb"], trial=1), RegDB(root, trial=1)
    for x, y in ((a.train, b.train), (a.eval_sets["rgb2ir"].query, b.eval_sets["rgb2ir"].query)):
        assert [(os.path.relpath(t.paths[0], layouts["regdb"]), t.pid) for t in x] == \
               [(os.path.relpath(t.paths[0], root), t.pid) for t in y]


def test_regdb_broken_tree_lists_every_problem_in_one_error(layouts, tmp_path):
    root = _copy(layouts["regdb"], tmp_path / "regdb")
    idx = root / "idx"
    (idx / "test_thermal_2.txt").unlink()
    with open(idx / "train_visible_2.txt", "a") as f:
        f.write("Visible/1/no_label.jpg\n")
    lost = _idx(root, "test_visible_2.txt")[0][0]
    (root / lost).unlink()
    thermal = (idx / "train_thermal_2.txt").read_text().splitlines()
    (idx / "train_thermal_2.txt").write_text("".join(ln + "\n" for ln in thermal if not ln.endswith(" 0")))
    with pytest.raises(DatasetFormatError) as info:
        RegDB(root, trial=2)
    err = info.value
    assert len(err.problems) == 4, err.problems
    text = str(err)
    for needle in ("idx/test_thermal_2.txt is missing (idx/ holds trials 1, 2, 3",
                   "idx/train_visible_2.txt:", "got 'Visible/1/no_label.jpg'",
                   "idx/test_visible_2.txt: 1 of", f"e.g. {lost}",
                   "idx/train_thermal_2.txt: 1 label(s) of idx/train_visible_2.txt have no thermal image: 0"):
        assert needle in text


def test_regdb_missing_trial(layouts):
    with pytest.raises(DatasetFormatError, match=r"idx/train_visible_11.txt is missing \(idx/ holds trials 1, 2"):
        RegDB(layouts["regdb"], trial=11)


# --------------------------------------------------------------------------------------
# Trial protocol
# --------------------------------------------------------------------------------------


def test_summarize_trials_on_hand_made_numbers():
    results = {1: {"R1": 80.0, "R10": 90.0, "R20": 95.0, "mAP": 70.0, "mINP": 50.0, "R5": 1.0},
               2: {"R1": 90.0, "R10": 96.0, "R20": 99.0, "mAP": 74.0, "mINP": 60.0, "R5": 2.0}}
    s = summarize_trials(results)
    assert s.trials == (1, 2) and s.metrics == ("R1", "R10", "R20", "mAP", "mINP")
    assert s.mean == pytest.approx({"R1": 85.0, "R10": 93.0, "R20": 97.0, "mAP": 72.0, "mINP": 55.0})
    assert s.std == pytest.approx({"R1": 5.0, "R10": 3.0, "R20": 2.0, "mAP": 2.0, "mINP": 5.0})  # population
    sample = summarize_trials(results, ddof=1)
    assert sample.std["R1"] == pytest.approx(np.sqrt(50.0))
    assert s.to_dict()["per_trial"]["2"]["mAP"] == 74.0
    assert s.summary().startswith("R1 85.00 ± 5.00 | R10 93.00 ± 3.00")
    assert np.isnan(summarize_trials({3: results[1]}, ddof=1).std["R1"])


def test_run_trials_calls_each_trial_and_converts_eval_results():
    seen = []

    def one(t: int) -> EvalResult:
        seen.append(t)
        cmc = np.full(20, 0.5 + 0.05 * t)
        return EvalResult(cmc=cmc, mAP=0.1 * t, mINP=0.01 * t, num_valid=1, ap=np.array([0.1 * t]))

    s = run_trials(one, [0, 1, 2, 3])
    assert seen == [0, 1, 2, 3] and isinstance(s, TrialSummary)
    assert s.mean["R1"] == pytest.approx(100 * (0.5 + 0.05 * 1.5))
    assert s.mean["mAP"] == pytest.approx(15.0) and s.mean["mINP"] == pytest.approx(1.5)
    assert s.std["mAP"] == pytest.approx(100 * 0.1 * np.std([0, 1, 2, 3]))


def test_trial_errors():
    with pytest.raises(ValueError, match="no trial results"):
        summarize_trials({})
    with pytest.raises(KeyError, match="R20"):
        summarize_trials({1: {"R1": 1.0, "R10": 1.0, "mAP": 1.0, "mINP": 1.0}})


def test_sysu_ten_gallery_trials_end_to_end(layouts):
    ds = SYSUMM01(layouts["sysu"])
    pool = ds.gallery_pool("all")
    rng = np.random.default_rng(0)
    dist = rng.random((len(ds.query), len(pool)))  # features of the pool are computed once
    q = (np.array([t.pid for t in ds.query]), np.array([t.camid for t in ds.query]))
    g = (np.array([t.pid for t in pool]), np.array([t.camid for t in pool]))

    def one(trial: int) -> EvalResult:
        idx = ds.gallery_indices(trial)
        return evaluate_sysu(dist[:, idx], q[0], g[0][idx], q[1], g[1][idx])

    s = run_trials(one, SYSU_TRIALS)
    assert s.trials == SYSU_TRIALS and len(s.per_trial) == 10
    assert s.mean["R20"] == pytest.approx(100.0)  # 3 identities: every valid query matches by rank 3
