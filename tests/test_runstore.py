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


# ----------------------------------------------------------------------------- family-scoped code versions
def _imported_modules(path):
    """Module names a file imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``) and the
    dotted ``reprolib.`` names in its string constants (dynamic imports)."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("reprolib."):
            names.add(node.value)
    return names


def test_family_code_is_imported_only_by_its_families():
    from reprolib import PACKAGE_ROOT
    from reprolib.experiments.runstore import CODE_PACKAGES, owners

    def rel_of(module):
        parts = module.split(".")
        if parts[0] != "reprolib":
            return None
        rel = "/".join(parts[1:])
        if (PACKAGE_ROOT / f"{rel}.py").is_file():
            return f"{rel}.py"
        return rel if (PACKAGE_ROOT / rel).is_dir() else None

    checked = 0
    for pkg in CODE_PACKAGES:
        for path in (PACKAGE_ROOT / pkg).rglob("*.py"):
            if path.name == "__init__.py":  # registrations and re-exports
                continue
            rel = path.relative_to(PACKAGE_ROOT).as_posix()
            mine = owners(rel)
            for module in _imported_modules(path):
                target = rel_of(module)
                theirs = owners(target) if target else None
                if theirs is None:
                    continue
                checked += 1
                assert mine is not None and set(mine) <= set(theirs), (
                    f"reprolib/{rel} (run by {mine or 'every family'}) imports {module}, which only {theirs} "
                    "run: widen that FAMILY_CODE entry")
    assert checked > 10  # the scan does see the families' imports


def test_a_change_in_family_code_rekeys_only_that_family(tmp_path, monkeypatch):
    import shutil

    from reprolib import PACKAGE_ROOT
    from reprolib.experiments import runstore

    for pkg in runstore.CODE_PACKAGES:
        shutil.copytree(PACKAGE_ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runstore, "PACKAGE_ROOT", tmp_path)
    cmft, vld, tfclip = load_config("cmft", "smoke"), load_config("vld", "smoke"), load_config("tfclip", "smoke")

    def keys():
        runstore.code_version.cache_clear()
        return runstore.run_key(cmft), runstore.run_key(vld), runstore.run_key(tfclip)

    def change(rel):
        with open(tmp_path / rel, "a") as f:
            f.write("\nCHANGED = 1\n")
        return keys()

    try:
        before = keys()
        after_cmft = change("models/cmft/tsm.py")
        after_mii = change("models/xreid/mii.py")  # X-ReID's block, reused by TF-CLIP
        after_shared = change("engine/optim.py")
    finally:
        runstore.code_version.cache_clear()
    assert after_cmft[0] != before[0] and after_cmft[1:] == before[1:]  # CMFT re-keyed, VLD and TF-CLIP not
    assert after_mii[:2] == after_cmft[:2] and after_mii[2] != after_cmft[2]  # TF-CLIP re-keyed only
    assert all(a != b for a, b in zip(after_shared, after_mii))  # shared code keys every family


def test_a_second_process_waits_for_the_run_being_trained_and_loads_it(tmp_path, monkeypatch):
    import threading
    import time

    import reprolib.engine
    from reprolib.experiments.runstore import run_lock

    cfg = load_config("baseline", "smoke")
    run_dir = tmp_path / f"{cfg.name}-{run_key(cfg)}"
    holding = threading.Event()

    def first_trainer():  # holds the run's lock while "training", then writes the finished run
        with run_lock(run_dir):
            holding.set()
            time.sleep(0.5)
            run_dir.mkdir(parents=True)
            (run_dir / "metrics.json").write_text(json.dumps({"eval": {"ir2rgb": {"mAP": 1.0}}}))

    thread = threading.Thread(target=first_trainer)
    thread.start()
    holding.wait()
    monkeypatch.setattr(reprolib.engine, "train_experiment", lambda *a, **k: pytest.fail("the run was trained twice"))
    run = get_run(cfg, store=tmp_path)  # blocks on the lock, then finds the finished run
    thread.join()
    assert run.cached and run.metrics["eval"]["ir2rgb"]["mAP"] == 1.0


def test_torchrun_ranks_do_not_wait_for_each_others_run_lock(tmp_path, monkeypatch):
    """Every torchrun rank calls get_run for the same run; a rank waiting on rank 0's lock while
    rank 0 waits for it in the process group would deadlock."""
    import threading

    from reprolib.experiments.runstore import run_lock

    run_dir = tmp_path / "baseline-0123456789ab"
    release, entered = threading.Event(), threading.Event()

    def rank0():
        with run_lock(run_dir):
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=rank0)
    holder.start()
    entered.wait()
    monkeypatch.setenv("WORLD_SIZE", "2")
    other = threading.Thread(target=lambda: run_lock(run_dir).__enter__())
    other.start()
    other.join(timeout=5)
    finished = not other.is_alive()
    release.set()
    holder.join()
    assert finished, "a torchrun rank waited for another rank's run lock"
