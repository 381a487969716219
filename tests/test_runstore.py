"""The run store: run identity, caching, twins, locks."""
import ast
import json

import pytest

from reprolib.config import load_config
from reprolib.experiments import get_run, run_key


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


# ----------------------------------------------------------------------------- run identity
def test_auto_and_cpu_are_one_run_on_a_machine_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    auto, cpu = load_config("baseline", "smoke"), load_config("baseline", "smoke", ["device=cpu"])
    assert auto.device == "auto" and run_key(auto) == run_key(cpu)
    assert run_key(load_config("baseline", "smoke", ["device=cuda"])) != run_key(cpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # on a GPU box auto is cuda
    assert run_key(auto) == run_key(load_config("baseline", "smoke", ["device=cuda:1"])) != run_key(cpu)


def test_the_number_of_processes_is_part_of_the_key(monkeypatch):
    cfg = load_config("baseline", "smoke")
    single = run_key(cfg)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_key(cfg) != single
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert run_key(cfg) == single


def test_a_generated_world_is_identified_by_its_generator_not_its_path():
    a = load_config("baseline", "embedded")
    b = load_config("baseline", "embedded", ["data.root=/somewhere/else/synthvcm"])
    assert run_key(a) == run_key(b)
    assert run_key(load_config("baseline", "smoke")) != run_key(a)  # another scale: another world


def _vcm_index(root, query="1\n"):
    info = root / "info"
    info.mkdir(parents=True)
    for name in ("train_name.txt", "test_name.txt", "track_train_info.txt", "track_test_info.txt"):
        (info / name).write_text(f"{name} rows\n")
    (info / "query_IDX.txt").write_text(query)
    return root


def test_a_real_dataset_is_identified_by_its_index_files_not_its_path(tmp_path, monkeypatch):
    one, copy = _vcm_index(tmp_path / "disk1/vcm"), _vcm_index(tmp_path / "disk2/VCM")
    other = _vcm_index(tmp_path / "vcm_edited", query="2\n")
    keys = {name: run_key(load_config("baseline", "paper", [f"data.root={root}"]))
            for name, root in (("one", one), ("copy", copy), ("other", other))}
    assert keys["one"] == keys["copy"] != keys["other"]
    monkeypatch.setenv("REPROLIB_DATA", str(one))  # the env-var spelling of the same root: the same run
    assert run_key(load_config("baseline", "paper")) == keys["one"]


def test_a_root_without_index_files_is_named_in_the_error(tmp_path):
    from reprolib.config import ConfigError

    with pytest.raises((FileNotFoundError, ConfigError), match=str(tmp_path)):
        run_key(load_config("baseline", "paper", [f"data.root={tmp_path}"]))


def test_a_results_version_bump_rekeys_only_that_family(monkeypatch):
    from reprolib.models import registry

    vld, cmft = load_config("vld", "smoke"), load_config("cmft", "smoke")
    before = run_key(vld), run_key(cmft)
    import dataclasses

    entry = registry._MODELS["vld"]
    monkeypatch.setitem(registry._MODELS, "vld", dataclasses.replace(entry, results_version=entry.results_version + 1))
    assert run_key(vld) != before[0] and run_key(cmft) == before[1]


def test_editing_shared_code_or_adding_a_family_keeps_every_run_key(tmp_path):
    """Run keys of a copy of the package whose trainer gained a statement and beside which a new
    family is registered (through REPROLIB_FAMILY_PATH) are the keys of the present package, for the
    config of every committed run; the code versions recorded as provenance do change."""
    import shutil
    import subprocess
    import sys
    import textwrap

    from reprolib import PACKAGE_ROOT, PROJECT_ROOT

    shutil.copytree(PACKAGE_ROOT, tmp_path / "pkg/reprolib", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "pkg/reprolib/engine/trainer.py", "a") as f:
        f.write("\nEDITED = True\n")
    family = tmp_path / "families/toyfam"
    family.mkdir(parents=True)
    (family / "__init__.py").write_text(textwrap.dedent("""
        from reprolib.models.base import ReIDModel
        from reprolib.models.registry import register_model

        @register_model("toyfam")
        class ToyFamily(ReIDModel):
            pass
    """))
    script = textwrap.dedent("""
        import json, sys
        from pathlib import Path
        from reprolib.config import load_config
        from reprolib.engine.provenance import code_version
        from reprolib.experiments.runstore import run_name
        from reprolib.models.registry import list_models
        runs = sorted(Path(sys.argv[1]).glob("*/config.yaml"))[:40]
        names = {p.parent.name: run_name(load_config(str(p))) for p in runs}
        print(json.dumps({"names": names, "code": code_version("vld"), "families": list_models()}))
    """)
    store = PROJECT_ROOT / "results/embedded/runs"

    def run(pythonpath, extra_env):
        env = {**__import__("os").environ, "PYTHONPATH": str(pythonpath), **extra_env}
        out = subprocess.run([sys.executable, "-c", script, str(store)], capture_output=True, text=True,
                             env=env, cwd=tmp_path, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    present = run(PACKAGE_ROOT.parent, {})
    edited = run(tmp_path / "pkg", {"REPROLIB_FAMILY_PATH": str(family)})
    assert "toyfam" in edited["families"] and "toyfam" not in present["families"]
    assert len(present["names"]) >= 20 and edited["names"] == present["names"]
    assert edited["code"] != present["code"]  # provenance does see the change


def test_runs_status_sorts_runs_by_the_code_they_were_trained_with(tmp_path):
    import yaml

    from reprolib.config import to_dict
    from reprolib.engine.provenance import code_record
    from reprolib.experiments.runstore import run_name
    from reprolib.experiments.status import format_status, store_status

    cfg = load_config("vld", "smoke")
    present = code_record("vld")
    records = {"current": present, "own": {**present, "own": "0" * 12}, "shared": {**present, "shared": "1" * 12},
               "unknown": None}
    for seed, (what, record) in enumerate(records.items(), start=1):
        c = load_config("vld", "smoke", [f"seed={seed}"])
        run_dir = tmp_path / run_name(c)
        run_dir.mkdir()
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(c)))
        (run_dir / "metrics.json").write_text(json.dumps({"eval": {}, "train_time_s": 3600.0}))
        (run_dir / "provenance.json").write_text(json.dumps({"code": record} if record else {}))
    (tmp_path / f"{cfg.name}-000000000000").mkdir()  # a run under a key that is not its config's
    (tmp_path / f"{cfg.name}-000000000000/config.yaml").write_text((tmp_path / run_name(cfg) / "config.yaml").read_text())
    (tmp_path / f"{cfg.name}-000000000000/metrics.json").write_text(json.dumps({"eval": {}, "train_time_s": 1800.0}))
    s = store_status(tmp_path)["vld"]
    assert [len(s.current), len(s.family_code), len(s.shared_code), len(s.unknown), len(s.stale_key)] == [1, 1, 1, 1, 1]
    assert s.retrain_s == 3 * 3600 + 1800
    assert "3.5 h" in format_status({"vld": s})


def test_code_version_ignores_docstrings_but_not_code():
    from reprolib.engine.provenance import _strip_docstrings

    src_a = 'def f(x):\n    """Doc one."""\n    return x + 1\n'
    src_b = 'def f(x):\n    """Another doc."""\n    # a comment\n    return x + 1\n'
    src_c = 'def f(x):\n    """Doc one."""\n    return x + 2\n'
    dump = lambda s: ast.dump(_strip_docstrings(ast.parse(s)))  # noqa: E731
    assert dump(src_a) == dump(src_b)
    assert dump(src_a) != dump(src_c)


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
