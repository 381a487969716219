"""CMFT's image benchmarks through the engine: SYSU-MM01 trial evaluation, RegDB trial runs,
the still-image miniature worlds and end-to-end training of cmft_sysu / cmft_regdb (smoke)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reprolib.config import load_config
from reprolib.data.regdb import RegDB
from reprolib.data.synthetic import WORLD_SPECS, WorldSpec, build_world
from reprolib.data.synthetic.world import GENERATOR_VERSION, IMAGE_SCALES, STILL_BURST
from reprolib.data.synthetic.writers import COMPLETE_MARKER
from reprolib.data.sysu import SYSUMM01
from reprolib.data.video import build_test_loader
from reprolib.engine import Trainer
from reprolib.engine.evaluator import aggregate_trial_runs, evaluate_model, extract_features, summarize_trial_metrics
from reprolib.metrics import compute_distance, evaluate
from reprolib.metrics.trials import REGDB_TRIALS, SYSU_TRIALS
from reprolib.experiments.runstore import ensure_world

METRICS = ("R1", "R5", "R10", "R20", "mAP", "mINP")


class GridModel(nn.Module):
    """A fixed "model": the frame averaged on a 4x2 grid, plus a modality offset; counts inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the evaluator a device
        self.seen = 0

    def extract(self, x: torch.Tensor, camid=None, modality=None) -> torch.Tensor:
        self.seen += x.shape[0]
        grid = nn.functional.adaptive_avg_pool2d(x.flatten(0, 1), (4, 2))  # (B*T, 3, 4, 2)
        f = grid.flatten(1).view(x.shape[0], x.shape[1], -1).mean(1)  # (B, 24)
        return f + 0.1 * modality[:, None].float()


def _cfg(name: str, root: Path, *overrides: str):
    return load_config(name, "smoke", [f"data.root={root}", "device=cpu", *overrides])


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[str, Path]:
    """The smoke still-image worlds, generated through ensure_world as a run would."""
    base = tmp_path_factory.mktemp("image-worlds")
    return {name: ensure_world(_cfg(name, base / name)) for name in ("cmft_sysu", "cmft_regdb")}


# --------------------------------------------------------------------------------------
# Still-image worlds
# --------------------------------------------------------------------------------------


def test_ensure_world_writes_the_still_image_presets(worlds):
    for name, fmt in (("cmft_sysu", "sysu"), ("cmft_regdb", "regdb")):
        marker = json.loads((worlds[name] / COMPLETE_MARKER).read_text())
        assert (marker["format"], marker["scale"]) == (fmt, "smoke-image")
        assert marker["spec_fingerprint"] == WORLD_SPECS["smoke-image"].fingerprint()
    world = build_world("smoke-image", 0, paired=False, num_cameras=4)
    expected = sum(t.length for t in world.tracklets)  # every planned still is one image on disk
    assert len(list((worlds["cmft_sysu"]).glob("cam*/*/*.jpg"))) == expected
    assert all(STILL_BURST[0] <= t.length <= STILL_BURST[1] for t in world.tracklets)
    stamp = (worlds["cmft_sysu"] / COMPLETE_MARKER).stat().st_mtime_ns
    assert ensure_world(_cfg("cmft_sysu", worlds["cmft_sysu"])) == worlds["cmft_sysu"]
    assert (worlds["cmft_sysu"] / COMPLETE_MARKER).stat().st_mtime_ns == stamp  # reused, not rewritten


def test_still_image_presets_are_small_and_leave_the_video_presets_unchanged():
    for video, image in IMAGE_SCALES.items():
        spec, still = WORLD_SPECS[video], WORLD_SPECS[image]
        assert still.still_images and not spec.still_images and still.short_fraction == 0
        assert (still.num_train_ids, still.num_test_ids) == (spec.num_train_ids, spec.num_test_ids)
        # the fingerprint of a video preset is the one it had before `still_images` existed
        fields = dataclasses.asdict(spec)
        del fields["workers"], fields["still_images"]
        legacy = hashlib.sha256(json.dumps({**fields, "generator_version": GENERATOR_VERSION},
                                           sort_keys=True).encode()).hexdigest()[:16]
        assert spec.fingerprint() == legacy != still.fingerprint()
    embedded = build_world("embedded-image", 0, paired=False, num_cameras=4)
    assert 3000 < sum(t.length for t in embedded.tracklets) < 10000  # a few thousand SYSU images, not ~50k
    assert not any(t.length >= 12 for t in embedded.tracklets)  # no long walk, no appended short tracklet


def test_still_image_spec_validation():
    base = dict(name="x", num_train_ids=2, num_test_ids=2, num_aux_ids=0, num_cameras=2, cams_per_modality=(1, 1),
                tracklets_per_camera=(1, 1), length_range=(2, 3), short_length_range=(2, 3), occlusion_prob=0.0)
    with pytest.raises(ValueError, match="short_length_range"):  # a video world needs long tracklets
        WorldSpec(short_fraction=0.0, **base)
    with pytest.raises(ValueError, match="short_fraction must be 0"):
        WorldSpec(short_fraction=0.1, still_images=True, **base)
    with pytest.raises(ValueError, match="length_range"):
        WorldSpec(short_fraction=0.0, still_images=True, **{**base, "length_range": (0, 2)})
    assert WorldSpec(short_fraction=0.0, still_images=True, **base).still_images


# --------------------------------------------------------------------------------------
# SYSU-MM01: ten gallery trials from one extraction
# --------------------------------------------------------------------------------------


def _direct_trial(model, ds, cfg, trial, mode):
    """One trial evaluated on its own: its own query and gallery extraction and distances."""
    es = ds.eval_set(trial, mode)
    qf, qp, qc = extract_features(model, build_test_loader(es.query, cfg.data), torch.device("cpu"))
    gf, gp, gc = extract_features(model, build_test_loader(es.gallery, cfg.data), torch.device("cpu"))
    res = evaluate(compute_distance(qf, gf, cfg.eval.distance), qp, gp, qc, gc, rule="sysu", max_rank=cfg.eval.max_rank)
    return res.to_dict(counts=True)


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_sysu_trials_equal_independent_evaluations_and_extract_once(worlds, mode):
    cfg = _cfg("cmft_sysu", worlds["cmft_sysu"], f"data.sysu_mode={mode}")
    ds = SYSUMM01(worlds["cmft_sysu"], mode=mode)
    model = GridModel()
    out = evaluate_model(model, ds, cfg)
    assert model.seen == len(ds.query) + len(ds.gallery_pool("all"))  # query + pool, once (indoor pool is inside)
    assert list(out) == ["ir2rgb"]
    entry = out["ir2rgb"]
    assert entry["mode"] == mode and set(entry["modes"]) == {"all", "indoor"}
    for m in ("all", "indoor"):
        direct = {t: _direct_trial(model, ds, cfg, t, m) for t in SYSU_TRIALS}
        got = entry["modes"][m]
        assert got["trials"]["trials"] == list(SYSU_TRIALS)
        for t in SYSU_TRIALS:
            assert got["trials"]["per_trial"][str(t)] == pytest.approx({k: direct[t][k] for k in METRICS})
        for k in METRICS:
            values = [direct[t][k] for t in SYSU_TRIALS]
            assert got[k] == pytest.approx(np.mean(values)) and got["trials"]["std"][k] == pytest.approx(np.std(values))
        assert got["num_query"] == len(ds.query) and got["num_valid"] == direct[0]["num_valid"]
    headline = {k: v for k, v in entry.items() if k not in ("mode", "modes")}
    assert headline == entry["modes"][mode]  # the configured mode's means are the top-level metrics
    galleries = {tuple(ds.gallery_indices(t, "all")) for t in SYSU_TRIALS}
    assert len(galleries) > 1  # the trials really use different galleries


def test_sysu_rejects_directions_it_does_not_have(worlds):
    cfg = _cfg("cmft_sysu", worlds["cmft_sysu"], "eval.directions=[ir2rgb,rgb2ir]")
    with pytest.raises(KeyError, match="'rgb2ir' is not an eval set of dataset 'sysu-mm01'"):
        evaluate_model(GridModel(), SYSUMM01(worlds["cmft_sysu"]), cfg)


def test_regdb_keeps_the_single_run_evaluation(worlds):
    cfg = _cfg("cmft_regdb", worlds["cmft_regdb"])
    ds = RegDB(worlds["cmft_regdb"], trial=2)
    out = evaluate_model(GridModel(), ds, cfg)
    assert list(out) == ["rgb2ir", "ir2rgb"]
    es = ds.eval_sets["rgb2ir"]
    qf, qp, _ = extract_features(GridModel(), build_test_loader(es.query, cfg.data), torch.device("cpu"))
    gf, gp, _ = extract_features(GridModel(), build_test_loader(es.gallery, cfg.data), torch.device("cpu"))
    expected = evaluate(compute_distance(qf, gf, "cosine"), qp, gp, rule="bupt").to_dict(counts=True)
    assert out["rgb2ir"] == pytest.approx(expected) and "trials" not in out["rgb2ir"]


# --------------------------------------------------------------------------------------
# RegDB: aggregating ten runs
# --------------------------------------------------------------------------------------


def test_aggregate_trial_runs_on_hand_made_numbers():
    runs = [{"rgb2ir": {"R1": 10.0 * t, "mAP": 5.0, "num_query": 20, "num_valid": 20},
             "ir2rgb": {"R1": 1.0, "mAP": float(t), "num_query": 20 + t, "num_valid": 20}} for t in REGDB_TRIALS]
    agg = aggregate_trial_runs(runs)
    assert agg["rgb2ir"]["R1"] == pytest.approx(55.0) and agg["rgb2ir"]["mAP"] == 5.0
    assert agg["rgb2ir"]["trials"]["std"]["R1"] == pytest.approx(np.std([10.0 * t for t in REGDB_TRIALS]))
    assert agg["rgb2ir"]["trials"]["trials"] == list(REGDB_TRIALS)  # ten runs are the official trials 1..10
    assert agg["rgb2ir"]["trials"]["per_trial"]["3"] == {"R1": 30.0, "mAP": 5.0}
    assert agg["ir2rgb"]["mAP"] == pytest.approx(5.5)
    assert agg["rgb2ir"]["num_query"] == 20 and "num_query" not in agg["ir2rgb"]  # counts only when equal
    assert aggregate_trial_runs(runs[:2])["rgb2ir"]["trials"]["trials"] == [0, 1]
    assert aggregate_trial_runs(runs[:2], trials=(4, 7))["rgb2ir"]["trials"]["trials"] == [4, 7]


def test_aggregate_trial_runs_errors():
    with pytest.raises(ValueError, match="no run metrics"):
        aggregate_trial_runs([])
    with pytest.raises(ValueError, match="2 trial ids for 1 runs"):
        aggregate_trial_runs([{"rgb2ir": {"R1": 1.0}}], trials=(1, 2))
    with pytest.raises(KeyError, match="trials \\[2\\] have no direction 'ir2rgb'"):
        aggregate_trial_runs([{"ir2rgb": {"R1": 1.0}}, {"rgb2ir": {"R1": 1.0}}], trials=(1, 2))
    with pytest.raises(ValueError, match="no trial results"):
        summarize_trial_metrics({})


# --------------------------------------------------------------------------------------
# End to end: the smoke configs train and evaluate through the engine
# --------------------------------------------------------------------------------------


def test_cmft_sysu_and_regdb_smoke_configs():
    for name, dataset, directions in (("cmft_sysu", "sysu-mm01", ("ir2rgb",)),
                                      ("cmft_regdb", "regdb", ("rgb2ir", "ir2rgb"))):
        for profile in ("smoke", "embedded", "paper"):
            cfg = load_config(name, profile)
            assert (cfg.data.dataset, cfg.data.seq_len, cfg.data.augment, cfg.data.augment_per) == \
                (dataset, 1, "cmft", "tracklet")
            assert cfg.eval.directions == directions and cfg.model.name == "cmft"
        short = name.split("_")[1]
        assert load_config(name, "smoke").data.root == f"data/synth{short}-smoke"
        assert load_config(name, "embedded").data.root == f"data/synth{short}-embedded"
        assert load_config(name, "paper").data.root == f"${{REPROLIB_{short.upper()}}}"
        assert load_config(name, "paper").train.epochs == 32


@pytest.mark.parametrize("name", ["cmft_sysu", "cmft_regdb"])
def test_cmft_image_configs_train_and_evaluate_end_to_end(worlds, tmp_path, name):
    cfg = _cfg(name, worlds[name])
    metrics = Trainer(cfg, tmp_path / "run").fit()
    assert list(metrics["eval"]) == list(cfg.eval.directions)
    for direction, m in metrics["eval"].items():
        assert all(0.0 <= m[k] <= 100.0 for k in METRICS), (direction, m)
        assert m["num_valid"] > 0
    if name == "cmft_sysu":
        assert metrics["eval"]["ir2rgb"]["trials"]["trials"] == list(SYSU_TRIALS)
        assert set(metrics["eval"]["ir2rgb"]["modes"]) == {"all", "indoor"}
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "losses" in r]
    assert len(steps) == cfg.train.epochs * cfg.train.iters_per_epoch and all(np.isfinite(r["total"]) for r in steps)
    # both progressive stages ran on the image pairs: L_cross in stage 1, L_MSRL + L_MDL in stage 2 (eqs. 18-19)
    assert set(steps[0]["losses"]) == {"id", "cross"} and set(steps[-1]["losses"]) == {"id", "msrl", "mdl"}
