"""Provenance of a run: the resolved config and the environment that produced the numbers.

``write_provenance(run_dir, cfg)`` writes

* ``config.yaml``: the resolved config (``reprolib.config.to_dict``), reloadable with
  ``load_config(run_dir / "config.yaml")``;
* ``provenance.json``: git SHA and dirty flag, versions of python/torch/torchvision/
  open_clip/numpy, hardware (CPU model, cores, GPU names), world size, hostname, command line
  and start time. When the run is resumed, the first record is kept and the new start is
  appended under ``"resumed"`` (the topology of every segment stays on record; reference/
  anchors.md B6: results depend on hardware and number of processes).
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
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

__all__ = ["collect_provenance", "write_provenance", "git_info"]

log = logging.getLogger(__name__)

_PACKAGES = {"torch": "torch", "torchvision": "torchvision", "open_clip": "open_clip_torch",
             "numpy": "numpy", "timm": "timm"}
_REPO_ROOT = Path(__file__).resolve().parents[2]


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
    record.update(extra or {})
    path = run_dir / "provenance.json"
    if path.is_file():
        previous = read_json(path)
        previous.setdefault("resumed", []).append(record)
        record = previous
    atomic_write_json(path, record)
    return record
