"""Provenance of a run: the resolved config and the environment that produced the numbers.

``write_provenance(run_dir, cfg)`` writes

* ``config.yaml``: the resolved config (``reprolib.config.to_dict``), reloadable with
  ``load_config(run_dir / "config.yaml")``;
* ``provenance.json``: git SHA and dirty flag, versions of python/torch/torchvision/
  open_clip/numpy, hardware (CPU model, cores, GPU names), world size, hostname, command line
  and start time, and the *code version* of the model family (:func:`code_version`). When the run
  is resumed, the first record is kept and the new start is appended under ``"resumed"`` (the
  topology of every segment stays on record: results depend on hardware and number of processes).

The code version is provenance, not identity: a run's key (``reprolib.experiments.runstore``) holds
what determines its result by intent (config, dataset identity, processes, the family's results
version), so editing shared code never re-keys committed runs. ``python -m reprolib runs status``
compares each run's recorded code version with the present code; the behaviour guard
(``tests/test_behaviour_guard.py``) catches changes of results that nobody intended.
"""
from __future__ import annotations

import ast
import datetime as _dt
import functools
import hashlib
import importlib.metadata
import inspect
import logging
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

from reprolib.config import to_dict
from reprolib.utils.io import atomic_write_json, atomic_write_text, read_json

__all__ = ["collect_provenance", "write_provenance", "git_info", "code_version", "code_versions", "code_record",
           "family_files", "CODE_PACKAGES"]

log = logging.getLogger(__name__)

_PACKAGES = {"torch": "torch", "torchvision": "torchvision", "open_clip": "open_clip_torch",
             "numpy": "numpy", "timm": "timm"}
_REPO_ROOT = Path(__file__).resolve().parents[2]
_PACKAGE_ROOT = Path(__file__).resolve().parents[1]

#: Sub-packages of ``reprolib`` whose code determines a run's result.
CODE_PACKAGES = ("data", "models", "losses", "engine", "eval")


def family_files(name: str) -> tuple[Path, Path]:
    """``(source, own)`` of a registered model family: the file that defines its class and what the
    family owns, i.e. its package folder (``models/<family>/``, or a plug-in family's folder) or,
    for a family that is a single module, that module."""
    from reprolib.models.registry import get_model_class

    source = Path(inspect.getfile(get_model_class(name))).resolve()
    package = source.parent
    own = package if (package / "__init__.py").is_file() and package != _PACKAGE_ROOT / "models" else source
    return source, own


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _hash_files(h: "hashlib._Hash", files: list[Path], base: Path) -> None:
    for path in files:
        h.update(path.relative_to(base).as_posix().encode())
        if path.suffix == ".py":
            tree = _strip_docstrings(ast.parse(path.read_text(), filename=str(path)))
            h.update(ast.dump(tree, annotate_fields=False, include_attributes=False).encode())
        else:  # model configs and weight records are code too
            h.update(path.read_bytes())


@functools.lru_cache(maxsize=None)
def code_versions(family: str) -> dict[str, str]:
    """Semantic hashes (12 hex digits each) of the code a family's runs execute, docstrings and
    comments ignored (editing them keeps the versions). Provenance only: never part of a run key.

    Returns:
        ``{"shared": ..., "own": ..., "version": ...}``: the shared code of :data:`CODE_PACKAGES`
        (every registered family's own files left out), the family's own files
        (:func:`family_files`), and the two together.
    """
    from reprolib.models.registry import list_models

    owned = {name: family_files(name)[1] for name in list_models()}

    def inside(path: Path, own: Path) -> bool:
        return path == own or own in path.parents

    def code_files(root: Path) -> list[Path]:
        return sorted(p for p in root.rglob("*") if p.suffix in (".py", ".json") and p.is_file()
                      and "__pycache__" not in p.parts)

    shared = [p for pkg in CODE_PACKAGES for p in code_files(_PACKAGE_ROOT / pkg)
              if not any(inside(p, own) for own in owned.values())]
    own = owned[family]
    mine = code_files(own) if own.is_dir() else [own]
    hashes = {}
    for part, files, base in (("shared", shared, _PACKAGE_ROOT), ("own", mine, own.parent)):
        h = hashlib.sha256()
        _hash_files(h, files, base)
        hashes[part] = h.hexdigest()[:12]
    hashes["version"] = hashlib.sha256((hashes["shared"] + hashes["own"]).encode()).hexdigest()[:12]
    return hashes


def code_version(family: str) -> str:
    """The combined code version of :func:`code_versions` (12 hex digits)."""
    return code_versions(family)["version"]


def code_record(family: str) -> dict[str, Any]:
    """What ``provenance.json`` records under ``"code"``: family, code versions, results version."""
    from reprolib.models.registry import results_version

    return {"family": family, **code_versions(family), "results_version": results_version(family)}


def git_info(repo: Path = _REPO_ROOT) -> dict[str, Any]:
    """Git commit and dirty flag of ``repo`` (``None`` values outside a repository or without git).

    ``dirty`` is True when tracked files differ from the commit (untracked files are ignored).
    """
    def _git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if sha else None
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def _package_versions() -> dict[str, Optional[str]]:
    versions: dict[str, Optional[str]] = {}
    for key, dist_name in _PACKAGES.items():
        try:
            versions[key] = importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _hardware() -> dict[str, Any]:
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
        "cudnn": torch.backends.cudnn.version() if gpus else None,
    }


def collect_provenance(world_size: int = 1) -> dict[str, Any]:
    """The environment record of this process (see the module docstring)."""
    return {
        "start_time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_info(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _package_versions(),
        "hardware": _hardware(),
        "world_size": world_size,
        "hostname": socket.gethostname(),
        "command": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
    }


def write_provenance(run_dir: str | os.PathLike, cfg: Any, world_size: int = 1,
                     extra: Optional[dict] = None) -> dict[str, Any]:
    """Write ``config.yaml`` and ``provenance.json`` into ``run_dir``.

    Args:
        run_dir: the run directory (created if missing).
        cfg: the resolved ``ExperimentConfig``.
        world_size: number of training processes.
        extra: more keys to record (e.g. the config hash, ``data.num_workers``).

    Returns:
        The provenance record as written.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    record = collect_provenance(world_size)
    family = getattr(getattr(cfg, "model", None), "name", None)
    if family:
        record["code"] = code_record(family)
    record.update(extra or {})
    path = run_dir / "provenance.json"
    if path.is_file():
        previous = read_json(path)
        previous.setdefault("resumed", []).append(record)
        record = previous
    atomic_write_json(path, record)
    return record
