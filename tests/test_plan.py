"""``python -m reprolib plan``: FLOPs counted once per model, calibrations saved and used, the render
order, and the README's budget table (issue 17, section 3)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from reprolib.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fixed_macs(monkeypatch):
    """Every model counts 20 GMACs per frame (no model is built)."""
    from reprolib.workbook import plan as P

    monkeypatch.setattr(P, "_macs_per_frame", lambda config, profile, overrides: 20e9)
    return 20e9


def _calibration(path: Path, tflops: dict[str, float], peak_gib: float = 30.0, device_type: str = "cuda") -> dict:
    cal = {"schema": 1, "device": "NVIDIA Test GPU", "device_type": device_type, "torch": "2.x", "threads": 1,
           "date": "2026-01-01T00:00:00+00:00", "note": "a test",
           "families": {f: {"tflops": t, "step_s": 1.0, "peak_memory_bytes": int(peak_gib * 2 ** 30)}
                        for f, t in tflops.items()}}
    path.write_text(json.dumps(cal))
    return cal


# ------------------------------------------------------------------------------------- FLOPs
@pytest.mark.parametrize("config,overrides", [("xreid", []), ("cmft", ["data.seq_len=3"]), ("vld", [])])
def test_the_fast_count_equals_a_real_forward_pass(config, overrides):
    """Meta tracing (weights on 'meta', inputs real) counts what a real forward pass counts; CMFT routes
    clips by their modality values, which stay real."""
    from reprolib.experiments.calibrate import macs_per_frame

    fast = macs_per_frame(config, "smoke", overrides, meta=True)
    real = macs_per_frame(config, "smoke", overrides, meta=False)
    assert fast == real > 0


def test_runs_that_differ_only_outside_the_model_share_one_count():
    from reprolib.experiments.calibrate import model_key

    a = load_config("xreid", "paper", ["seed=2", "train.epochs=3", "model.backbone.weights_path=/x.pt"])
    assert model_key(a) == model_key(load_config("xreid", "paper"))
    assert model_key(load_config("xreid", "paper", ["data.seq_len=4"])) != model_key(load_config("xreid", "paper"))


# ------------------------------------------------------------------------------- shared runs
def test_a_shared_run_is_counted_once_and_its_reuser_renders_after_its_trainer(fixed_macs):
    from reprolib.workbook import plan as P

    table = P.plan(["xreid_table1", "xreid_table3"])
    full = table[(table["notebook"] == "xreid_table3") & (table["config"] == "xreid")].iloc[0]
    assert full["shared"] and full["trained_in"] == "xreid_table1"
    summary = P.notebook_summary(table).set_index("notebook")
    assert "xreid_table1" in summary.loc["xreid_table3", "reuses"]
    todo = table[~table["shared"]]
    assert summary["runs"].sum() == todo["run"].nunique() == len(todo)
    assert P.render_order(table) == ["xreid_table1", "xreid_table3"]
    # the order check catches a reuser placed before its trainer
    bad = table.copy()
    bad["trained_in"] = "xreid_table3"
    with pytest.raises(AssertionError):
        P.render_order(bad)


# ------------------------------------------------------------------------------ calibration
def test_without_a_calibration_the_plan_says_it_assumes_a_throughput(fixed_macs, capsys, monkeypatch, tmp_path):
    from reprolib.experiments import calibrate as C
    from reprolib.workbook import plan as P

    monkeypatch.setattr(C, "CALIBRATION_DIR", tmp_path)  # no calibration of this device there
    assert P.main(["xreid_table3"]) == 0
    out = capsys.readouterr().out
    assert "ASSUMED 100 TFLOP/s" in out and "no calibration of this device" in out and "workbook:" in out
    assert P.main(["xreid_table3", "--markdown"]) == 0
    assert "peak memory not estimated" in capsys.readouterr().out


def test_a_calibration_round_trips_and_scales_the_estimates(fixed_macs, tmp_path, capsys):
    from reprolib.experiments.calibrate import load_calibration
    from reprolib.workbook import plan as P

    written = _calibration(tmp_path / "gpu.json", {"xreid": 50.0, "baseline": 200.0})
    cal = load_calibration(tmp_path / "gpu.json")
    assert cal["families"] == written["families"] and cal["path"] == str(tmp_path / "gpu.json")
    assumed = P.plan(["xreid_table1"], tflops=100.0)
    measured = P.plan(["xreid_table1"], tflops=100.0, calibration=cal)
    ratio = measured["est. hours"] / assumed["est. hours"]
    expect = measured["family"].map({"xreid": 100 / 50, "baseline": 100 / 200}).fillna(1.0)
    assert ratio.tolist() == pytest.approx(expect.tolist())  # hours scale with 1 / the family's throughput
    assert set(measured.loc[measured["family"] == "xreid", "source"]) == {"calibrated"}
    assert measured.loc[measured["family"] == "xreid", "peak GiB"].tolist()[0] == pytest.approx(30.0)
    assert P.main(["xreid_table1", "--calibration", str(tmp_path / "gpu.json")]) == 0
    out = capsys.readouterr().out
    assert "MEASURED on NVIDIA Test GPU" in out and "gpu.json" in out


def test_a_broken_calibration_file_is_a_clear_error(tmp_path):
    from reprolib.experiments.calibrate import load_calibration

    (tmp_path / "x.json").write_text(json.dumps({"device": "x", "families": {"vld": {"step_s": 1}}}))
    with pytest.raises(ValueError, match="not a calibration file"):
        load_calibration(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="plan --calibrate"):
        load_calibration(tmp_path / "missing.json")


def test_calibrate_times_real_steps_on_a_cpu_and_saves_the_file(tmp_path):
    """The smoke profile's miniature model: two epochs of two steps, the file written atomically, labelled
    host memory and CPU, and read back by the plan."""
    from reprolib.experiments.calibrate import calibrate, load_calibration

    cal, path = calibrate(["baseline"], steps=2, batch="rehearsal", profile="smoke", device="cpu",
                          out=tmp_path / "cpu.json", threads=1)
    rec = load_calibration(path)["families"]["baseline"]
    assert rec["measured_step_s"] > 0 and rec["tflops"] > 0 and rec["frames_per_s"] > 0
    assert rec["num_ids"] == 2 and rec["num_pos"] == 1 and rec["scaled"]  # smoke's batch is 2 x 2
    assert rec["step_s"] == pytest.approx(rec["measured_step_s"] * rec["paper_frames_per_step"] / rec["frames_per_step"])
    assert rec["memory_kind"].startswith("host") and cal["device_type"] == "cpu"
    assert "not an estimate for a GPU" in cal["note"] and "scaled per frame" in cal["note"]
    assert not list(tmp_path.glob("*.tmp*"))


# ------------------------------------------------------------------------------------ README
def test_the_readme_budget_table_is_what_plan_prints():
    """README.md's table between the plan markers is ``plan all --markdown`` (regenerate it with that command)."""
    from reprolib.experiments.calibrate import load_calibration
    from reprolib.workbook import plan as P

    readme = (ROOT / "README.md").read_text()
    begin, end = readme.index(P.MARKDOWN_BEGIN), readme.index(P.MARKDOWN_END) + len(P.MARKDOWN_END)
    block = readme[begin:end] + "\n"
    m = re.search(r"`--calibration ([^`]+)`", block)
    cal = load_calibration(ROOT / m.group(1)) if m else None
    if cal is not None:
        cal["path"] = m.group(1)
    table = P.plan(P._notebooks("all"), "paper", P.DEFAULT_TFLOPS, cal)
    assert block == P.markdown(table, cal), "README budget table is stale: python -m reprolib plan all --markdown"
