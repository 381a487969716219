"""Configs: base inheritance, profiles, overrides, validation errors, hashing."""
import textwrap

import pytest

from reprolib.config import ConfigError, config_hash, load_config, resolve_path


def write(tmp_path, name, text):
    p = tmp_path / f"{name}.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_child_inherits_and_overrides_parent(tmp_path):
    write(tmp_path, "parent", """
        name: parent
        data: {seq_len: 6, height: 288}
        optim: {lr: 1.0e-3}
    """)
    child = write(tmp_path, "child", """
        base: parent
        name: child
        data: {seq_len: 10}
    """)
    cfg = load_config(str(child))
    assert cfg.name == "child"
    assert cfg.data.seq_len == 10          # child wins
    assert cfg.data.height == 288          # parent kept (deep merge, not replace)
    assert cfg.optim.lr == pytest.approx(1e-3)


def test_profile_section_and_set_overrides_apply_in_order(tmp_path):
    p = write(tmp_path, "exp", """
        train: {epochs: 24}
        profiles:
          smoke: {train: {epochs: 2, iters_per_epoch: 3}}
    """)
    assert load_config(str(p), profile="paper").train.epochs == 24
    smoke = load_config(str(p), profile="smoke")
    assert (smoke.train.epochs, smoke.train.iters_per_epoch, smoke.profile) == (2, 3, "smoke")
    assert load_config(str(p), profile="smoke", overrides=["train.epochs=5"]).train.epochs == 5


def test_misspelt_key_names_the_nearest_valid_one(tmp_path):
    p = write(tmp_path, "bad", "optim: {lrr: 0.1}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'config\.optim\.lrr'.*did you mean 'config\.optim\.lr'"):
        load_config(str(p))


def test_wrong_type_names_the_key(tmp_path):
    p = write(tmp_path, "bad", "data: {seq_len: six}\n")
    with pytest.raises(ConfigError, match=r"data\.seq_len: expected an integer"):
        load_config(str(p))


def test_unknown_profile_and_missing_config_are_errors(tmp_path):
    p = write(tmp_path, "exp", "name: x\n")
    with pytest.raises(ConfigError, match="unknown profile"):
        load_config(str(p), profile="huge")
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_circular_inheritance_is_reported(tmp_path):
    write(tmp_path, "a", "base: b\n")
    b = write(tmp_path, "b", "base: a\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(str(b))


def test_hash_changes_with_any_value_and_only_then(tmp_path):
    p = write(tmp_path, "exp", "name: x\n")
    h = config_hash(load_config(str(p)))
    assert h == config_hash(load_config(str(p)))
    assert h != config_hash(load_config(str(p), overrides=["seed=2"]))


def test_shipped_configs_validate_in_every_profile():
    for profile in ("smoke", "embedded", "paper"):
        cfg = load_config("baseline", profile=profile)
        assert cfg.model.name == "baseline"
    assert load_config("baseline", profile="paper").data.height == 288


def test_resolve_path_relative_to_project_and_env(monkeypatch, tmp_path):
    from reprolib import PROJECT_ROOT

    assert resolve_path("data/x") == PROJECT_ROOT / "data/x"
    monkeypatch.setenv("REPROLIB_DATA", str(tmp_path))
    assert resolve_path("${REPROLIB_DATA}/vcm") == tmp_path / "vcm"
    monkeypatch.delenv("REPROLIB_DATA")
    with pytest.raises(ConfigError, match="REPROLIB_DATA is not set"):
        resolve_path("${REPROLIB_DATA}")
