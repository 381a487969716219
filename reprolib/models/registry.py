"""Model-family registry: a family registers its builder, its options class and its results version
under a name; configs pick the family by that name (``model.name``).

This module imports neither torch nor any family: config loading uses it to validate
``model.extra`` without building (or even importing) a model.

API::

    @register_model("myfam", options=MyFamOptions, results_version=1)
    class MyFam(ReIDModel):
        def __init__(self, model_cfg, num_classes, num_cameras, image_size=None, loss_cfg=None,
                     seq_len=None, **kwargs): ...

    create_model(cfg.model, num_classes=500, num_cameras=12,
                 image_size=(cfg.data.height, cfg.data.width), loss_cfg=cfg.loss, seq_len=cfg.data.seq_len)
    family_options("myfam")    # -> MyFamOptions, without building a model
    results_version("myfam")   # -> 1
    list_models()              # every discoverable family, sorted

The family contract:

* **builder**: ``cls(model_cfg, num_classes, num_cameras, image_size=(H, W), loss_cfg=LossConfig,
  seq_len=T)`` returning an ``nn.Module``, normally a :class:`~reprolib.models.base.ReIDModel`.
* **options**: a frozen dataclass, the schema of ``model.extra``, with a classmethod
  ``from_dict(extra: dict) -> options`` that raises :class:`~reprolib.config.ConfigError` (unknown
  key, with the nearest valid key; wrong type) or ``ValueError`` (a bad value) naming the key as
  ``model.extra.<key>``. :func:`reprolib.config.load_config` calls it, so a typo fails at load.
  It must live in a module that does not import torch (built-in families: ``<family>/options.py``).
* **results_version**: an integer that is part of every run key of the family
  (``reprolib.experiments.runstore``). Bump it, with the family's golden values in ``tests/golden/``,
  in the commit that deliberately changes what the family's runs produce; code changes that leave
  results alone keep it.

Families are discovered, on first use, from

1. the built-in packages :data:`BUILTIN_FAMILIES`: ``reprolib/models/<family>/`` with ``options.py``
   (torch-free; ``OPTIONS`` is read by :func:`family_options` without importing the model code) and
   ``model.py`` (its import registers the model class);
2. installed distributions, through the entry-point group ``reprolib.models`` (``importlib.metadata``):
   each entry point names a module (or ``module:attr``) whose import registers one or more families,
   e.g. in ``pyproject.toml``::

       [project.entry-points."reprolib.models"]
       myfam = "myfam_package"

3. the environment variable ``REPROLIB_FAMILY_PATH``: folders separated by ``os.pathsep``, each one a
   family package (a folder with ``__init__.py``), imported by file location under the module name
   ``reprolib_family_<folder name>``; its ``__init__.py`` calls :func:`register_model`.

An unknown name raises ``KeyError`` naming the nearest registered family.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

__all__ = ["BUILTIN_FAMILIES", "ENTRY_POINT_GROUP", "FAMILY_PATH_ENV", "register_model", "create_model",
           "list_models", "get_model_class", "family_options", "results_version", "discover_families"]

logger = logging.getLogger(__name__)

#: The families shipped in ``reprolib/models/<name>/`` (the order of their former registration imports).
BUILTIN_FAMILIES: tuple[str, ...] = ("baseline", "vld", "xreid", "cmft", "clipreid", "tfclip")
#: ``importlib.metadata`` entry-point group through which installed packages add families.
ENTRY_POINT_GROUP = "reprolib.models"
#: Environment variable: ``os.pathsep``-separated folders, each one a family package.
FAMILY_PATH_ENV = "REPROLIB_FAMILY_PATH"

T = TypeVar("T", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Family:
    builder: Callable[..., Any]
    options: Optional[type]
    results_version: int


_MODELS: dict[str, _Family] = {}
_external_loaded = False


def register_model(name: str, options: Optional[type] = None, results_version: int = 1) -> Callable[[T], T]:
    """Class decorator that registers a model family under ``name`` (``model.name`` in configs).

    Args:
        name: the key configs use; re-registering a name replaces it with a warning.
        options: the family's ``model.extra`` schema (see the module docstring); ``None``: the family
            takes no ``model.extra`` keys (a non-empty ``model.extra`` is then a config error).
        results_version: the family's results version, part of every run key of the family
            (``reprolib.experiments.runstore.run_key``). Bump it, with the family's golden values
            in ``tests/golden/``, in the commit that deliberately changes what the family's runs
            produce; code changes that leave results alone keep it.

    Returns:
        The decorator; it returns the class unchanged.
    """
    def decorator(cls: T) -> T:
        if name in _MODELS and _MODELS[name].builder is not cls:
            logger.warning("register_model: '%s' was already registered (%s); replacing it with %s",
                           name, _MODELS[name].builder, cls)
        _MODELS[name] = _Family(cls, options, int(results_version))
        return cls

    return decorator


def _import_path_family(folder: Path) -> None:
    """Import the family package ``folder`` (with ``__init__.py``) by its file location."""
    init = folder / "__init__.py"
    if not init.is_file():
        raise ImportError(f"{FAMILY_PATH_ENV}: {folder} is not a family package (no __init__.py)")
    module_name = f"reprolib_family_{folder.name}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, init, submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None:
        raise ImportError(f"{FAMILY_PATH_ENV}: cannot import {init}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise


def _load_external() -> None:
    """Import the families of installed entry points and of ``REPROLIB_FAMILY_PATH`` (once per
    value of the variable)."""
    global _external_loaded
    if not _external_loaded:
        _external_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            ep.load()  # importing the module registers its families
    for entry in filter(None, os.environ.get(FAMILY_PATH_ENV, "").split(os.pathsep)):
        _import_path_family(Path(entry).expanduser().resolve())


def _import_builtin(name: str) -> None:
    importlib.import_module(f"reprolib.models.{name}.model")  # registers the family's model class


def discover_families() -> list[str]:
    """Import every built-in and external family (see the module docstring); their sorted names."""
    for name in BUILTIN_FAMILIES:
        _import_builtin(name)
    _load_external()
    return sorted(_MODELS)


def list_models() -> list[str]:
    """Sorted names of every discoverable model family (built-in, entry points, ``REPROLIB_FAMILY_PATH``)."""
    return discover_families()


def _unknown(name: str) -> KeyError:
    names = sorted(set(BUILTIN_FAMILIES) | set(_MODELS))
    near = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    return KeyError(f"model.name: unknown model '{name}'.{hint} Registered: {', '.join(names)}")


def _family(name: str) -> _Family:
    if name not in _MODELS:
        if name in BUILTIN_FAMILIES:
            _import_builtin(name)
        else:
            _load_external()
    if name not in _MODELS:
        raise _unknown(name)
    return _MODELS[name]


def get_model_class(name: str) -> Callable[..., Any]:
    """The builder registered under ``name``.

    Raises:
        KeyError: naming the unknown key, the nearest registered name and all registered names.
    """
    return _family(name).builder


def family_options(name: str) -> Optional[type]:
    """The ``model.extra`` options class of family ``name``, without building a model.

    A built-in family's options come from its torch-free ``options`` module (the model code is not
    imported); an external family is imported (it registers its options with :func:`register_model`).

    Returns:
        The options dataclass, or ``None`` for a family without ``model.extra`` keys.

    Raises:
        KeyError: for an unknown family, naming the nearest registered one.
    """
    if name in _MODELS:
        return _MODELS[name].options
    if name in BUILTIN_FAMILIES:
        return importlib.import_module(f"reprolib.models.{name}.options").OPTIONS
    return _family(name).options


def results_version(name: str) -> int:
    """The results version family ``name`` registered with (see :func:`register_model`)."""
    return _family(name).results_version


def create_model(model_cfg: Any, num_classes: int, num_cameras: int, **kwargs: Any) -> Any:
    """Build the model family named by ``model_cfg.name``.

    Args:
        model_cfg: a ``ModelConfig``.
        num_classes: number of training identities (classifier size).
        num_cameras: size of the camera-embedding table (largest camid + 1).
        **kwargs: passed to the family's constructor; the families take ``image_size=(H, W)``
            (the input grid the positional embedding is resized to), ``loss_cfg`` (the
            ``LossConfig`` that ``forward_train`` uses) and ``seq_len``.

    Returns:
        The model (an ``nn.Module``, normally a :class:`~reprolib.models.base.ReIDModel`).
    """
    return get_model_class(model_cfg.name)(model_cfg, num_classes, num_cameras, **kwargs)
