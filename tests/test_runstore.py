"""The run store: keys, caching, code-version semantics."""
import ast
import json

import pytest

from reprolib.config import load_config
from reprolib.experiments import get_run, run_key
from reprolib.experiments.runstore import _strip_docstrings


def test_finished_run_is_loaded_not_retrained(tmp_path):
    cfg = load_config("baseline", profile="smoke")
    run_dir = tmp_path / f"{cfg.name}-{run_key(cfg)}"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text(json.dumps({"eval": {"ir2rgb": {"R1": 42.0}}}))
    run = get_run(cfg, store=tmp_path, train=False)
    assert run.cached and run.metric("ir2rgb", "R1") == 42.0
    with pytest.raises(KeyError, match="no metric"):
        run.metric("rgb2ir", "R1")


def test_missing_run_without_training_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not in the store"):
        get_run("baseline", profile="smoke", store=tmp_path, train=False)


def test_key_depends_on_config_and_profile():
    a = load_config("baseline", profile="smoke")
    b = load_config("baseline", profile="smoke", overrides=["seed=7"])
    c = load_config("baseline", profile="embedded")
    assert len({run_key(a), run_key(b), run_key(c)}) == 3


def test_code_version_ignores_docstrings_but_not_code():
    src_a = 'def f(x):\n    """Doc one."""\n    return x + 1\n'
    src_b = 'def f(x):\n    """Another doc."""\n    # a comment\n    return x + 1\n'
    src_c = 'def f(x):\n    """Doc one."""\n    return x + 2\n'
    dump = lambda s: ast.dump(_strip_docstrings(ast.parse(s)))  # noqa: E731
    assert dump(src_a) == dump(src_b)
    assert dump(src_a) != dump(src_c)


def test_a_run_differing_only_in_evaluation_keys_is_tested_from_its_twin(tmp_path):
    plain = get_run("baseline", profile="smoke", store=tmp_path / "a")
    cosine = ["eval.distance=cosine", "eval.max_rank=10"]
    derived = get_run("baseline", profile="smoke", overrides=cosine, store=tmp_path / "a")
    assert derived.path != plain.path and derived.metrics["evaluated_from"] == plain.path.name
    assert not (derived.path / "last.pt").exists()  # nothing was trained
    assert (derived.path / "train_log.jsonl").read_text() == (plain.path / "train_log.jsonl").read_text()
    assert derived.metrics["train_time_s"] == plain.metrics["train_time_s"]
    # ... and it is exactly what training that config from scratch gives
    trained = get_run("baseline", profile="smoke", overrides=cosine, store=tmp_path / "b")
    assert "evaluated_from" not in trained.metrics
    for d, m in trained.metrics["eval"].items():
        assert derived.metrics["eval"][d]["mAP"] == pytest.approx(m["mAP"], abs=1e-9)
        assert derived.metrics["eval"][d]["R1"] == pytest.approx(m["R1"], abs=1e-9)
    assert derived.metrics["eval"] != plain.metrics["eval"]  # the cosine distance did change the test


def test_a_training_key_difference_finds_no_twin(tmp_path):
    from reprolib.experiments.runstore import trained_twin, training_view

    get_run("baseline", profile="smoke", store=tmp_path)
    assert trained_twin(load_config("baseline", "smoke", ["eval.dataset=bupt"]), tmp_path) is not None
    assert trained_twin(load_config("baseline", "smoke", ["seed=7"]), tmp_path) is None
    assert trained_twin(load_config("baseline", "smoke", ["data.seq_len=3"]), tmp_path) is None
    view = training_view(load_config("baseline", "smoke", ["data.bupt_eval_mode=full"]))
    assert "eval" not in view and "bupt_eval_mode" not in view["data"] and "seq_len" in view["data"]
