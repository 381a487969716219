"""The family registry: options and results versions, discovery, and ``model.extra`` validated at load."""
from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import pytest

from reprolib.config import ConfigError, load_config
from reprolib.models import registry

BUILTIN = ("baseline", "vld", "xreid", "clipreid", "tfclip", "cmft")


def test_a_typo_in_model_extra_fails_at_load_with_the_nearest_key():
    with pytest.raises(ConfigError, match=r"model\.extra\.sii_strde.*did you mean '.*model\.extra\.sii_stride'"):
        load_config("xreid", "smoke", ["model.extra.sii_strde=3"])
    with pytest.raises(ConfigError, match=r"model\.extra\.sii_stride: expected an integer"):
        load_config("xreid", "smoke", ["model.extra.sii_stride=two"])
    with pytest.raises(ConfigError, match=r"model\.extra\.memory_sampling"):  # the family's own value check
        load_config("xreid", "smoke", ["model.extra.memory_sampling=every_frame"])
    with pytest.raises(ConfigError, match="Did you mean 'baseline'"):
        load_config("baseline", "smoke", ["model.name=basline"])
    with pytest.raises(ConfigError, match="model.temporal_pool: fixed to 'tap'"):
        load_config("baseline", "smoke", ["model.temporal_pool=max"])


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_options_are_the_registered_ones_and_need_no_model(name):
    code = textwrap.dedent(f"""
        import sys
        from reprolib.models.registry import family_options
        opts = family_options({name!r})
        assert opts.__name__.endswith("Extra"), opts
        assert not any(m.endswith(".model") and m.startswith("reprolib.models.") for m in sys.modules), "model imported"
        assert "torch" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    registry.get_model_class(name)  # imports the model, which registers its options
    options_module = importlib.import_module(f"reprolib.models.{name}.options")
    assert registry.family_options(name) is options_module.OPTIONS
    assert registry.results_version(name) == 1


def test_every_committed_config_validates_its_extra():
    from reprolib.config import CONFIG_DIR

    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        for profile in ("smoke", "embedded", "paper"):
            load_config(path.stem, profile)


def test_a_family_from_the_family_path_registers_options_and_builds(tmp_path, monkeypatch):
    fam = tmp_path / "toyfam"
    fam.mkdir()
    (fam / "__init__.py").write_text(textwrap.dedent('''
        from dataclasses import dataclass

        from torch import nn

        from reprolib.config import from_dict
        from reprolib.models import register_model


        @dataclass(frozen=True)
        class ToyOptions:
            width: int = 4

            @classmethod
            def from_dict(cls, extra):
                out = from_dict(cls, extra, "model.extra")
                if out.width < 1:
                    raise ValueError(f"model.extra.width must be >= 1, got {out.width}")
                return out


        @register_model("toyfam", options=ToyOptions, results_version=3)
        class Toy(nn.Module):
            def __init__(self, model_cfg, num_classes, num_cameras, **kwargs):
                super().__init__()
                self.fc = nn.Linear(ToyOptions.from_dict(model_cfg.extra).width, num_classes)
    '''))
    monkeypatch.setenv(registry.FAMILY_PATH_ENV, str(fam))
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))  # the toy family leaves with the test
    monkeypatch.delitem(sys.modules, "reprolib_family_toyfam", raising=False)
    cfg = load_config("baseline", "smoke", ["model.name=toyfam", "model.extra={width: 6}"])
    with pytest.raises(ConfigError, match=r"model\.extra\.widht.*did you mean '.*model\.extra\.width'"):
        load_config("baseline", "smoke", ["model.name=toyfam", "model.extra={widht: 6}"])
    with pytest.raises(ConfigError, match=r"model\.extra\.width must be >= 1"):
        load_config("baseline", "smoke", ["model.name=toyfam", "model.extra={width: 0}"])
    assert "toyfam" in registry.list_models() and registry.results_version("toyfam") == 3
    model = registry.create_model(cfg.model, num_classes=5, num_cameras=2)
    assert model.fc.in_features == 6 and model.fc.out_features == 5
    sys.modules.pop("reprolib_family_toyfam", None)
