"""Reproduction targets: the specs load, name real rows and configs, and reproduce() joins correctly."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from reprolib.config import ConfigError, load_config
from reprolib.workbook import targets as T
from reprolib.paper import load_numbers

ROOT = Path(__file__).resolve().parents[1]
ALL = [(p, i) for p, i in T.list_targets()]


def test_every_spec_loads_and_names_existing_configs_and_paper_rows():
    assert {p for p, _ in ALL} == {"xreid", "vld", "cmft"}
    for paper, item in ALL:
        target = T.get_target(paper, item)
        rows = set(load_numbers(paper).query("item == @item")["row"])
        assert rows, f"{paper} {item}: not an item of numbers.csv"
        for spec in target.rows:
            if spec.config is not None:
                for part in spec.config.split("+"):
                    assert (ROOT / "reprolib/configs" / f"{part}.yaml").is_file(), (paper, item, spec.config)
        # every paper row label we claim to reproduce exists in the paper's table
        ours_only = {"B", "B (T=6)"}  # our baseline beside a state-of-the-art table is labelled as such
        if target.kind != "analysis":  # figures of examples have no numeric rows
            for spec in target.rows:
                assert spec.row in rows or spec.row in ours_only, (paper, item, spec.row)


def test_every_target_has_a_generated_notebook_that_is_up_to_date():
    proc = subprocess.run([sys.executable, "-m", "reprolib", "notebook", "generate", "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_figure_given_only_as_a_plot_gets_a_note_instead_of_an_empty_paper_table():
    from reprolib.workbook import generate as M

    sweep = [c.source for c in M.cells(T.get_target("vld", "fig6"))]
    assert not any("paper_table(" in s for s in sweep)           # every value of Fig. 6 is NaN
    assert any("only: none of the values" in s and "dotted line" in s for s in sweep)
    assert any("sweep_plot(" in s for s in sweep)
    table = [c.source for c in M.cells(T.get_target("vld", "table3"))]
    assert "paper_table('vld', 'table3')" in table and not any("none of the values" in s for s in table)
    cost = M.cells(T.get_target("vld", "table10"))                 # sections assemble by kind, not by index
    assert cost[3].source == "## The paper's numbers" and "cost_table(target)" in cost[6].source


def test_every_row_config_resolves_under_every_profile_with_its_overrides():
    for paper, item in ALL:
        target = T.get_target(paper, item)
        for profile in ("smoke", "embedded", "paper"):
            for spec in target.runnable(profile):
                load_config(spec.config, profile, list(target.overrides_for(spec, profile)))


#: Where a row's ``setting`` value must show up in its resolved config, per paper and key.
SETTING_IN_CONFIG = {
    ("*", "seq_len"): lambda c: c.data.seq_len,
    ("vld", "template"): lambda c: c.model.extra["prompt_template"],
    ("vld", "lambda1"): lambda c: c.model.extra["lambda1"],
    ("vld", "lambda2"): lambda c: c.model.extra["lambda2"],
    ("vld", "lambda3"): lambda c: c.model.extra["lambda3"],
    ("xreid", "S_sii"): lambda c: c.model.extra["sii_stride"],
    ("xreid", "S_lii"): lambda c: c.model.extra["lii_stride"],
    ("cmft", "lambda1"): lambda c: c.model.extra["losses"]["stage2"]["msrl"],
    ("cmft", "lambda2"): lambda c: c.model.extra["losses"]["stage2"]["mdl"],
    ("xreid", "SII"): lambda c: c.model.extra["sii"],
    ("xreid", "LII"): lambda c: c.model.extra["lii"],
    ("xreid", "CII"): lambda c: c.model.extra["cii"],
}


@pytest.mark.parametrize("profile", ["embedded", "paper"])
def test_a_rows_setting_is_what_its_config_runs(profile):
    """A sweep point labelled ``seq_len=7`` must run 7 frames (profile defaults must not override it)."""
    checked = 0
    for paper, item in ALL:
        target = T.get_target(paper, item)
        for spec in target.runnable(profile):
            cfg = None
            for part in filter(None, spec.setting.split(";")):
                key, value = part.split("=", 1)
                get = SETTING_IN_CONFIG.get((paper, key)) or SETTING_IN_CONFIG.get(("*", key))
                if get is None:
                    continue
                cfg = cfg or load_config(spec.config, profile, list(target.overrides_for(spec, profile)))
                assert float(get(cfg)) == float(value), (paper, item, spec.label, profile, key, get(cfg))
                checked += 1
    assert checked >= 30


def test_a_table_rows_setting_is_one_the_paper_prints_for_that_row():
    """Rows are joined to the paper by (row, setting): a row labelled with the paper's number but
    another setting would sit beside nothing (X-ReID Table 5 numbers its eight combinations in its
    own order). Figures may add sweep points the paper does not print."""
    def extra(setting) -> str:
        return ";".join(kv for kv in str(setting).split(";") if kv and kv != "nan" and not kv.startswith("direction="))

    checked = 0
    for paper, item in ALL:
        if not item.startswith("table"):
            continue
        numbers = load_numbers(paper).query("item == @item")
        for spec in T.get_target(paper, item).rows:
            cells = numbers[numbers["row"] == spec.row]
            if spec.config is None or cells.empty:
                continue
            assert spec.setting in {extra(s) for s in cells["setting"]}, (paper, item, spec.label, spec.setting)
            checked += 1
    assert checked >= 50


def test_spec_errors_name_the_file_and_key(tmp_path, monkeypatch):
    (tmp_path / "zz.yaml").write_text("t1:\n  title: x\n  rows: [{row: A, config: baseline}]\n"
                                      "  claims: [{component: c, with_row: A, without_row: B}]\n")
    monkeypatch.setattr(T, "TARGETS_DIR", tmp_path)
    T.load_targets.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"zz.yaml:t1: claim 'c' names row 'B'"):
            T.load_targets("zz")
        (tmp_path / "zz.yaml").write_text("t1:\n  title: x\n  rows: [{row: A, confg: baseline}]\n")
        with pytest.raises(ConfigError, match="confg"):
            T.load_targets("zz")
    finally:
        T.load_targets.cache_clear()


def test_smoke_runs_only_marked_rows_and_miniature_overrides_replace_the_paper_ones():
    t = T.get_target("vld", "table6")
    assert [r.label for r in t.runnable("smoke")] == ["8", "10"]
    assert "0" not in [r.label for r in t.runnable("embedded")]  # TinyCLIP cannot place the hub at 0-of-12
    assert "0" in [r.label for r in t.runnable("paper")]
    row = t.row("9")
    assert t.overrides_for(row, "paper") == ("model.extra.hub_layer=9",)
    assert t.overrides_for(row, "embedded") == ("model.extra.hub_layer=1",)
    bupt = T.get_target("vld", "table8").row("B (train VCM, test BUPT)")
    assert "eval.root=data/synthbupt-smoke" in T.get_target("vld", "table8").overrides_for(bupt, "smoke")


def test_paper_setting_renames_directions_as_the_paper_spells_them():
    row = dict(row="r", dataset="regdb", setting="direction=ir2rgb;seq_len=1", metric="R1", value=1.0)
    assert T._paper_setting(row, {"ir2rgb": "t2v"})["setting"] == "direction=t2v;seq_len=1"
    assert T._paper_setting(row, {"ir2rgb": ""})["setting"] == "seq_len=1"
    assert T._paper_setting(row, {"rgb2ir": "v2t"})["setting"] == row["setting"]


def test_verdict_is_helps_only_when_every_gain_is_positive():
    assert T.verdict([1.0, 0.5]) == "helps"
    assert T.verdict([1.0, -0.5]) == "mixed"
    assert T.verdict([0.0, -0.5]) == "does not help"
    assert T.verdict([]) == "pending"


class _Run:
    def __init__(self, r1, path="run"):
        self.metrics = {"eval": {d: {"R1": r1, "mAP": r1 / 2} for d in ("ir2rgb", "rgb2ir")},
                        "train_time_s": 60.0, "global_step": 10}
        self.path = Path(path)
        self.config = load_config("baseline", "smoke")


class _Workbook:
    profile = "embedded"

    def __init__(self, r1_by_config):
        self.r1 = r1_by_config
        self.calls = []

    def run(self, config, *overrides, train=True):
        self.calls.append((config, overrides))
        if config not in self.r1:
            raise FileNotFoundError(config)
        return _Run(self.r1[config])


def test_reproduce_joins_our_runs_with_the_paper_and_checks_claims():
    target = T.get_target("vld", "table3")
    wb = _Workbook({"baseline": 10.0, "vld_imlp": 12.0, "vld": 14.0})  # vld_stp "not run yet"
    rep = T.reproduce(target, wb)
    assert set(rep.runs) == {"B", "B+IMLP", "B+IMLP+STP"}
    b = rep.table[(rep.table["row"] == "B") & (rep.table["metric"] == "R1")]
    assert set(b["status"]) == {"reproduced"} and set(b["ours"]) == {10.0}
    assert set(b["paper"]) == {67.0, 64.2}  # VLD Table III, row B
    assert set(rep.table.loc[rep.table["row"] == "B+STP", "status"]) == {"pending"}
    claims = rep.claims.set_index("component")
    assert claims.loc["IMLP", "ours"] == "helps" and claims.loc["IMLP", "agrees"]
    assert claims.loc["STP", "ours"] == "pending"
    status = T.row_status(target, rep, "embedded")
    assert status.loc["B+STP", "status"] == "pending: not run yet"
    assert T.missing_cells(target, rep).empty  # B+STP did not run: pending, not missing

    class OneDirection(_Workbook):
        def run(self, config, *overrides, train=True):
            run = super().run(config, *overrides, train=train)
            run.metrics["eval"].pop("rgb2ir")
            return run

    missing = T.missing_cells(target, T.reproduce(target, OneDirection({"baseline": 10.0})))
    assert set(missing["row"]) == {"B"} and set(missing["setting"]) == {"direction=rgb2ir"}


def test_select_and_trials_build_the_row_metrics():
    spec = T.RowSpec(row="x", config="baseline", trials=(1, 2, 3), miniature_trials=(1, 2))
    target = T.Target(paper="cmft", item="table8", title="t", rows=(spec,))

    class WB(_Workbook):
        def run(self, config, *overrides, train=True):
            t = int(overrides[-1].split("=")[1])
            return dataclasses.replace(_RunDC(path=Path(f"run-t{t}")), metrics={
                "eval": {"rgb2ir": {"R1": 10.0 * t, "mAP": 1.0}}, "train_time_s": 1.0, "global_step": 1})

    run = T._row_run(spec, target, WB({}), (), True)  # embedded: the miniature trials
    assert run.metrics["eval"]["rgb2ir"]["R1"] == pytest.approx(15.0)
    assert run.metrics["eval"]["rgb2ir"]["trials"]["trials"] == [1, 2]
    rep = T.Reproduction(target=target, runs={"x": run}, table=None, claims=None)
    assert T.row_status(target, rep, "embedded").loc["x", "status"] == "ran (run-t1, run-t2)"  # every trial's run
    sel = T.RowSpec(row="x", config="baseline", select="modes.indoor")

    class WB2(_Workbook):
        def run(self, config, *overrides, train=True):
            return dataclasses.replace(_RunDC(), metrics={"eval": {"ir2rgb": {
                "R1": 1.0, "modes": {"indoor": {"R1": 7.0}}}}})

    assert T._row_run(sel, target, WB2({}), (), True).metrics["eval"]["ir2rgb"]["R1"] == 7.0


@dataclasses.dataclass
class _RunDC:
    path: Path = Path("run")
    metrics: dict = dataclasses.field(default_factory=dict)


def test_config_composition_merges_the_mixin_over_the_paper_config():
    cfg = load_config("vld+bupt", "embedded")
    assert cfg.name == "vld_bupt" and cfg.model.name == "vld"
    assert cfg.data.dataset == "bupt" and cfg.data.root == "data/synthbupt-embedded" and cfg.data.sampler == "bupt"
    assert cfg.model.extra["hub_layer"] == load_config("vld", "embedded").model.extra["hub_layer"]
    assert T.config_available("vld+bupt") and not T.config_available("vld+nope")


class _Toy(nn.Module):
    """A model with a test path (enc, bn) and a training-only head."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
        self.bn = nn.BatchNorm1d(8)
        self.classifier = nn.Linear(8, 100)
        self.token = nn.Parameter(torch.zeros(3))

    def extract(self, x):
        return self.bn(self.enc(x))


def test_path_parameters_count_what_extract_runs():
    from reprolib.experiments.costs import path_parameters

    toy = _Toy()
    expected = 4 * 8 + 8 + 8 * 8 + 8 + 2 * 8 + 3  # enc, bn, the model's own parameter; no classifier
    assert path_parameters(toy, (torch.randn(2, 4),)) == expected


def test_paper_vs_ours_panels_draws_one_row_per_metric():
    from reprolib.viz import paper_vs_ours_panels

    table = pd.DataFrame([dict(row=r, setting=f"direction={d}", metric=m, paper=50.0 + i, ours=(5.0 + i if r != "C" else None))
                          for i, r in enumerate("ABC") for d in ("ir2rgb", "rgb2ir") for m in ("R1", "mAP")])
    fig = paper_vs_ours_panels(table, metrics=("R1", "mAP", "R20"))
    assert len(fig.axes) == 4  # R20 is absent from the table: two metrics x (paper, ours)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("pending") == 4  # row C has no number of ours: 2 directions x 2 metrics


def test_sweep_curves_keep_our_direction_names_when_the_paper_reports_one_direction():
    from reprolib.viz import sweep_plot

    # a target with directions {ir2rgb: ""}: the paper's direction has no setting prefix, ours keeps it
    table = pd.DataFrame([dict(row="CMFT", setting=f"{p}lambda1={x}", metric="R1", paper=None, ours=y + x)
                          for p, y in (("", 8.0), ("direction=rgb2ir;", 6.0)) for x in (0.1, 0.3)])
    fig = sweep_plot(table, metrics=("R1",), chosen={"lambda1": "0.3"}, directions={"ir2rgb": ""})
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in fig.axes[0].get_lines() if ln.get_label().startswith("ours")}
    assert lines == {"ours ir2rgb": [8.1, 8.3], "ours rgb2ir": [6.1, 6.3]}


def test_panels_keep_rows_of_two_datasets_apart():
    from reprolib.viz import paper_vs_ours_panels

    table = pd.DataFrame([dict(row="Baseline", dataset=ds, setting="direction=ir2rgb", metric="R1", paper=p, ours=o)
                          for ds, p, o in (("hitsz-vcm", 60.0, 5.0), ("bupt", 50.0, 7.0))])
    fig = paper_vs_ours_panels(table, metrics=("R1",))
    labels = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert labels == ["Baseline\nhitsz-vcm", "Baseline\nbupt"]
    assert [p.get_height() for p in fig.axes[1].patches] == [5.0, 7.0]


def test_panels_put_long_row_names_on_two_lines():
    from reprolib.viz import paper_vs_ours_panels

    table = pd.DataFrame([dict(row=r, dataset="hitsz-vcm", setting="direction=ir2rgb", metric="R1", paper=60.0, ours=5.0)
                          for r in ("CPC", "Cross-modal Collaboration")])
    fig = paper_vs_ours_panels(table, metrics=("R1",))
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["CPC", "Cross-modal\nCollaboration"]


def test_every_committed_render_matches_its_notebook_source():
    """A rendered notebook in results/embedded/notebooks must be a run of the current source (re-render
    it after editing the source or the spec), so a reader never sees outputs of older cells."""
    import nbformat

    rendered = sorted((ROOT / "results/embedded/notebooks").glob("*.ipynb"))
    assert rendered, "no committed embedded renders"
    stale = []
    for path in rendered:
        source = ROOT / "notebooks" / path.name
        assert source.exists(), f"{path.name}: rendered, but notebooks/{path.name} does not exist"
        ran = [c.source for c in nbformat.read(path, as_version=4).cells
               if "injected-parameters" not in c.metadata.get("tags", [])]   # papermill's cell
        if ran != [c.source for c in nbformat.read(source, as_version=4).cells]:
            stale.append(path.name)
    assert not stale, f"renders older than their source (python -m reprolib notebook run ...): {stale}"


def test_every_run_a_committed_table_names_is_the_current_run_of_its_row():
    """The committed run store is current: every row of a committed embedded table names the run that
    its config and overrides key today (and every trial's run is finished in the store). A change that
    re-keys runs (a results-version bump, a config-schema change) fails here until they are retrained
    (``make reproduce-<paper>-<item>``) or migrated (``tools/migrate_run_keys.py``), so ``make
    reproduce`` on a fresh clone renders from the store instead of retraining for hours."""
    import json

    from reprolib.experiments.runstore import run_name

    store = ROOT / "results/embedded/runs"
    checked, wrong = 0, []
    for paper, item in ALL:
        table = ROOT / f"results/embedded/tables/{paper}_{item}.json"
        if not table.exists():
            continue
        named = json.loads(table.read_text()).get("runs") or {}
        target = T.get_target(paper, item)
        for spec in target.rows:
            if spec.label not in named:
                continue
            overrides = target.overrides_for(spec, "embedded")
            dirs = [run_name(load_config(spec.config, "embedded", [*overrides, *extra]))
                    for extra in spec.trial_overrides("embedded")]
            checked += 1
            if dirs[0] != named[spec.label]:
                wrong.append(f"{paper}.{item} {spec.label!r}: table names {named[spec.label]}, code keys {dirs[0]}")
            wrong += [f"{paper}.{item} {spec.label!r}: {d} is not finished in the store"
                      for d in dirs if not (store / d / "metrics.json").exists()]
    assert checked > 50, f"only {checked} committed table rows found"
    assert not wrong, "stale run store:\n" + "\n".join(wrong)


def test_the_committed_seed_spread_names_the_current_runs_of_its_rows():
    """Same guarantee for the seed-spread notebook (02): each model's runs, seed by seed, are the
    runs the present code keys for its row with ``seed=<n>``, and they are finished in the store."""
    import json

    from reprolib.experiments.runstore import run_name
    from reprolib.experiments.spread import SPREAD_ROWS

    named = json.loads((ROOT / "results/embedded/tables/workbook_seed_spread.json").read_text())["runs"]
    assert len(named) == len(SPREAD_ROWS)
    for (paper, item, label), (model, runs) in zip(SPREAD_ROWS, named.items()):
        assert model == f"{paper} {item}: {label}"
        target = T.get_target(paper, item)
        spec = target.row(label)
        for seed, name in enumerate(runs, start=1):
            cfg = load_config(spec.config, "embedded", [*target.overrides_for(spec, "embedded"), f"seed={seed}"])
            assert name == run_name(cfg), f"{model} seed {seed}: stale run {name}"
            assert (ROOT / "results/embedded/runs" / name / "metrics.json").exists(), name
