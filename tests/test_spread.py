"""Seed spread: per-seed tables, the noise floor, claims read against it, and their figures."""
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest

from reprolib.experiments import spread as S

matplotlib.use("Agg")


def _run(seed: int, ir2rgb_map: float, rgb2ir_map: float, name: str = "m") -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(seed=seed), path=Path(f"/store/{name}-s{seed}"),
                           metrics={"eval": {"ir2rgb": {"R1": 1.0, "mAP": ir2rgb_map},
                                             "rgb2ir": {"R1": 2.0, "mAP": rgb2ir_map}}})


def _long() -> pd.DataFrame:
    return S.seed_table({"A": [_run(1, 10.0, 20.0), _run(2, 12.0, 20.5), _run(3, 11.0, 19.5)],
                         "B": [_run(1, 30.0, 31.0), _run(2, 30.4, 31.2)]})


def test_seed_table_and_summary_compute_mean_std_and_range_per_model_and_direction():
    long = _long()
    assert len(long) == 5 * 2 * 2  # runs x directions x metrics
    assert set(long.columns) == {"model", "seed", "direction", "metric", "value", "run"}
    s = S.spread_summary(long)
    a = s.loc[("A", "ir2rgb", "mAP")]
    assert (a["seeds"], a["mean"], a["min"], a["max"], a["range"]) == (3, 11.0, 10.0, 12.0, 2.0)
    assert a["std"] == pytest.approx(1.0)  # sample std of 10, 11, 12
    assert s.loc[("B", "rgb2ir", "mAP"), "range"] == pytest.approx(0.2)
    assert S.noise_floor(s) == pytest.approx(2.0)            # the largest mAP range (A, ir2rgb)
    assert S.noise_floor(s, metric="R1") == pytest.approx(0.0)


def test_noise_floor_needs_two_seeds():
    s = S.spread_summary(S.seed_table({"A": [_run(1, 10.0, 20.0)]}))
    assert np.isnan(S.noise_floor(s))


def _rep(paper: str, item: str, lines: list[dict]) -> SimpleNamespace:
    return SimpleNamespace(target=SimpleNamespace(paper=paper, item=item), claims=pd.DataFrame(lines))


def _claim(component: str, paper: str, ours: str, g1: float = float("nan"), g2: float = float("nan")) -> dict:
    return {"component": component, "paper": paper, "ours": ours, "gain ir2rgb mAP": g1, "gain rgb2ir mAP": g2,
            "gain ir2rgb R1": 99.0, "gain rgb2ir R1": 99.0}


def test_a_claim_gets_a_verdict_only_when_every_gain_is_beyond_the_floor_with_one_sign():
    reps = [_rep("vld", "table3", [_claim("big", "helps", "helps", 2.0, 3.0),
                                   _claim("small", "helps", "helps", 0.5, 3.0),
                                   _claim("split", "helps", "mixed", 2.0, -3.0),
                                   _claim("pending", "helps", "pending")]),
            _rep("cmft", "table2", [_claim("reversal", "helps", "does not help", -1.5, -4.0)]),
            _rep("xreid", "table1", [])]
    c = S.claims_against_spread(reps, floor=1.0).set_index("component")
    assert list(c.index) == ["big", "small", "split", "reversal"]  # pending and empty reproductions skipped
    assert c.loc["big", "ours beyond spread"] == "helps" and c.loc["big", "agrees beyond spread"] is True
    assert c.loc["small", "ours beyond spread"] == "within spread" and c.loc["small", "agrees beyond spread"] is None
    assert c.loc["split", "ours beyond spread"] == "within spread"
    assert c.loc["reversal", "ours beyond spread"] == "does not help"
    assert c.loc["reversal", "agrees beyond spread"] is False
    assert c.loc["small", "smallest |gain|"] == pytest.approx(0.5)
    assert (c.loc["reversal", "paper"], c.loc["reversal", "item"]) == ("cmft", "table2")
    # the R1 gains (99) are not read when the floor is in mAP
    assert c.loc["small", "gain ir2rgb"] == pytest.approx(0.5)


class _RecordingWorkbook:
    def __init__(self, profile: str) -> None:
        self.profile, self.calls = profile, []

    def run(self, name: str, *extra: str, train: bool = True):
        self.calls.append((name, extra, train))
        return name


def test_seed_runs_asks_the_store_for_the_rows_config_with_each_seed():
    wb = _RecordingWorkbook("embedded")
    S.seed_runs(wb, "vld", "table3", "B+IMLP+STP", seeds=(1, 2), train=False)
    assert wb.calls == [("vld", ("seed=1",), False), ("vld", ("seed=2",), False)]
    wb = _RecordingWorkbook("embedded")
    S.seed_runs(wb, "cmft", "table2", "Feature concatenation", seeds=(3,))
    assert wb.calls == [("cmft", ("model.extra.variant=concat", "seed=3"), True)]


def test_seed_runs_rejects_trial_means_and_rows_the_profile_does_not_run():
    with pytest.raises(ValueError, match="averages trials"):
        S.seed_runs(_RecordingWorkbook("embedded"), "cmft", "table8", _first_trial_row(), seeds=(1,))
    with pytest.raises(ValueError, match="does not run under the 'smoke' profile"):
        S.seed_runs(_RecordingWorkbook("smoke"), "vld", "table3", "B+IMLP", seeds=(1,))


def _first_trial_row() -> str:
    from reprolib.workbook.targets import get_target

    return next(r.label for r in get_target("cmft", "table8").rows if r.trials or r.miniature_trials)


def test_spread_rows_name_existing_single_run_rows_that_run_in_ci():
    from reprolib.workbook.targets import get_target

    for paper, item, label in S.SPREAD_ROWS:
        target = get_target(paper, item)
        spec = target.row(label)
        assert spec in target.runnable("smoke") and not (spec.trials or spec.miniature_trials or spec.select)


def test_figures_draw_every_seed_and_every_claim_with_the_floor_band():
    from reprolib import viz

    long = _long()
    fig = viz.seed_spread_plot(long, metric="mAP")
    from matplotlib.collections import PathCollection

    points = sum(len(c.get_offsets()) for c in fig.axes[0].collections if isinstance(c, PathCollection))
    assert points == 5 * 2  # one dot per run and direction
    claims = S.claims_against_spread([_rep("vld", "table3", [_claim("big", "helps", "helps", 2.0, 3.0),
                                                             _claim("small", "helps", "helps", 0.5, 3.0)])], 1.0)
    fig = viz.claim_gains_plot(claims, floor=1.0)
    ax = fig.axes[0]
    widths = sorted(round(p.get_width(), 3) for p in ax.patches if p.get_height() < 0.5)
    assert widths == [0.5, 2.0, 3.0, 3.0]  # two bars per claim, their lengths the gains
    assert [t.get_text() for t in ax.get_yticklabels()] == ["vld table3: big", "vld table3: small"]
    assert [t.get_fontweight() for t in ax.get_yticklabels()] == ["bold", "normal"]  # only "big" is beyond ±1
    assert any("seed spread" in t.get_text() for t in ax.get_legend().get_texts())
