"""A researcher's own method: a family from a folder outside the package, validated at config load,
compared with the committed runs of the three papers without re-keying or retraining them."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from reprolib import PROJECT_ROOT
from reprolib.config import ConfigError, load_config

TEMPLATE = PROJECT_ROOT / "templates"
STORE = PROJECT_ROOT / "results/embedded/runs"


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    """The families a test registers leave with it (registry entries and their imported modules)."""
    from reprolib.models import registry

    for name in registry.BUILTIN_FAMILIES:  # registered for good before the copy (imports register once)
        registry.get_model_class(name)
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("reprolib_family_"):
            del sys.modules[name]


def _toy_family(tmp_path: Path) -> tuple[Path, Path]:
    """The template family copied to ``tmp_path/toyfam`` and renamed ``toyfam``; its config."""
    family = tmp_path / "toyfam"
    shutil.copytree(TEMPLATE / "mymethod", family, ignore=shutil.ignore_patterns("__pycache__"))
    model = family / "model.py"
    model.write_text(model.read_text().replace('register_model("mymethod"', 'register_model("toyfam"')
                     .replace('family, options = "mymethod"', 'family, options = "toyfam"'))
    config = tmp_path / "toyfam.yaml"
    config.write_text((TEMPLATE / "mymethod.yaml").read_text().replace("name: mymethod", "name: toyfam"))
    return family, config


def test_a_family_from_a_folder_is_validated_when_its_config_loads(tmp_path, monkeypatch):
    family, config = _toy_family(tmp_path)
    monkeypatch.setenv("REPROLIB_FAMILY_PATH", str(family))
    cfg = load_config(str(config), "smoke")
    assert cfg.model.name == "toyfam" and cfg.model.extra == {"pool": "max"}
    with pytest.raises(ConfigError, match=r"model\.extra\.pol.*model\.extra\.pool"):
        load_config(str(config), "smoke", ["model.extra.pol=mean"])
    with pytest.raises((ConfigError, ValueError), match=r"model\.extra\.pool"):
        load_config(str(config), "smoke", ["model.extra.pool=median"])


def test_the_template_family_trains_and_its_max_pool_differs_from_the_baseline(tmp_path, monkeypatch):
    """The template is a working method: a smoke run trains, and with ``pool=mean`` it is exactly the
    baseline (same losses step by step), with ``pool=max`` it is not."""
    from reprolib.experiments import get_run

    monkeypatch.setenv("REPROLIB_FAMILY_PATH", str(TEMPLATE / "mymethod"))
    short = ["train.epochs=1", "train.iters_per_epoch=2"]

    def losses(config, *extra):
        run = get_run(config, profile="smoke", overrides=[*short, *extra], store=tmp_path)
        return [json.loads(line)["losses"] for line in (run.path / "train_log.jsonl").read_text().splitlines()]

    base = losses("baseline")
    assert losses(str(TEMPLATE / "mymethod.yaml"), "model.extra.pool=mean") == base
    assert losses(str(TEMPLATE / "mymethod.yaml")) != base


@pytest.mark.notebook
def test_a_toy_family_renders_its_comparison_against_the_committed_runs(tmp_path, monkeypatch):
    """The template notebook, with a family from a temporary folder, renders the comparison: the
    papers' committed runs are loaded (not trained), no committed run changes key or content, and the
    toy family's runs go to their own store."""
    import nbformat

    from reprolib.experiments.runstore import run_name
    from reprolib.workbook.runner import run_notebook

    family, config = _toy_family(tmp_path)
    before = {p.relative_to(STORE).as_posix(): p.stat().st_mtime_ns for p in STORE.rglob("*") if p.is_file()}
    results = tmp_path / "results"
    (results / "embedded").mkdir(parents=True)
    (results / "embedded/runs").symlink_to(STORE)  # the committed references; tables/figures go to tmp
    monkeypatch.setenv("REPROLIB_RESULTS", str(results))
    out = run_notebook("my_method", profile="embedded", overrides=["train.epochs=1", "train.iters_per_epoch=2"],
                       output=tmp_path / "rendered.ipynb", progress=False,
                       params={"method_config": str(config), "family_path": str(family), "seeds": [1],
                               "method_name": "toy", "method_store": str(tmp_path / "toy_runs")})
    text = json.dumps(nbformat.read(str(out), as_version=4)["cells"])
    for label in ("vld B+IMLP+STP", "xreid + MII (VCM)", "cmft CMFT_S5", "toy"):
        assert label in text, label
    table = (results / "embedded/tables/workbook_my_method.csv").read_text()
    assert "toy" in table and "vld B" in table
    assert len(list((tmp_path / "toy_runs").glob("toyfam-*/metrics.json"))) == 1
    after = {p.relative_to(STORE).as_posix(): p.stat().st_mtime_ns for p in STORE.rglob("*") if p.is_file()}
    assert after == before, "the comparison wrote into the committed run store"
    monkeypatch.setenv("REPROLIB_FAMILY_PATH", str(family))  # the toy family registered, as in the render
    stale = [d.name for d in STORE.iterdir() if (d / "metrics.json").is_file()
             and run_name(load_config(str(d / "config.yaml"))) != d.name]
    assert not stale, f"committed runs re-keyed by registering a family: {stale}"
