"""Rename run-store directories after the keying scheme changed (``FAMILY_CODE`` in
``reprolib/experiments/runstore.py``), without retraining runs whose code did not change.

A finished run stored under an older scheme is renamed to its current key when both hold:

1. its directory name is the key the code of git revision ``--rev`` gives it under one of the
   older schemes (all the code; all but CMFT's), i.e. that revision's code produced it; and
2. the code its model family runs now is the same as at ``--rev`` (docstrings and comments aside):
   the run is then exactly what training it again would give.

Anything else is reported and left alone; so are unfinished runs (one may be training now).
``evaluated_from`` references to renamed runs are rewritten. Usage::

    .venv/bin/python tools/rekey_runs.py --rev ec8cb2d            # every results/<profile>/runs
    .venv/bin/python tools/rekey_runs.py --rev ec8cb2d --dry-run
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reprolib.config import load_config  # noqa: E402
from reprolib.experiments import runstore  # noqa: E402
from reprolib.experiments.runstore import CODE_PACKAGES, code_version, run_key, run_name  # noqa: E402
from reprolib.utils import atomic_write_json  # noqa: E402

#: Each older scheme's ``FAMILY_CODE`` (paths left out of a non-owning family's code version).
OLDER_SCHEMES: dict[str, dict[str, tuple[str, ...]]] = {
    "all code": {},
    "all but CMFT": {"models/cmft": ("cmft",), "losses/cmft": ("cmft",)},
    # a process started before tinyresnet.json became CMFT's own hashed it into every family's version
    "TinyResNet's record shared": {k: v for k, v in runstore.FAMILY_CODE.items()
                                   if k != "models/weights/tinyresnet.json"},
}


def checkout(rev: str, dest: Path) -> Path:
    """Extract ``reprolib/`` of git revision ``rev`` into ``dest``; returns ``dest/reprolib``."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "reprolib"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "reprolib"


def older_versions(old_root: Path, family: str) -> set[str]:
    """Code versions ``family``'s runs got at the old revision under each older scheme."""
    saved = runstore.FAMILY_CODE
    out = set()
    try:
        for scheme in OLDER_SCHEMES.values():
            runstore.FAMILY_CODE = scheme  # the older scheme's ownership
            code_version.cache_clear()
            out.add(code_version(CODE_PACKAGES, family, old_root))
    finally:
        runstore.FAMILY_CODE = saved
        code_version.cache_clear()
    return out


def plan(store: Path, old_root: Path) -> tuple[dict[str, str], list[str]]:
    """``({old name: new name}, [reasons a run was left alone])`` for the finished runs of ``store``."""
    renames, left = {}, []
    for run_dir in sorted(p for p in store.iterdir() if (p / "metrics.json").is_file()):
        cfg = load_config(str(run_dir / "config.yaml"))
        family = cfg.model.name
        new = run_name(cfg)
        if run_dir.name == new:
            continue
        if code_version(CODE_PACKAGES, family, old_root) != code_version(CODE_PACKAGES, family):
            left.append(f"{run_dir.name}: the {family} code changed since that revision")
        elif run_dir.name in {run_name(cfg, run_key(cfg, v)) for v in older_versions(old_root, family)}:
            renames[run_dir.name] = new
        else:
            left.append(f"{run_dir.name}: not produced by that revision's code")
    return renames, left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True, help="git revision whose code produced the runs")
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--dry-run", action="store_true")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_root = checkout(ns.rev, Path(tmp))
        for store in sorted(Path(ns.results).glob("*/runs")):
            renames, left = plan(store, old_root)
            for old, new in renames.items():
                print(f"{store}: {old} -> {new}")
                if not ns.dry_run:
                    if (store / new).exists():
                        print(f"  {new} exists already; left {old} alone")
                        continue
                    (store / old).rename(store / new)
            for reason in left:
                print(f"{store}: left alone: {reason}")
            if ns.dry_run:
                continue
            for metrics in store.glob("*/metrics.json"):  # evaluation-only runs name their twin
                data = json.loads(metrics.read_text())
                if data.get("evaluated_from") in renames:
                    data["evaluated_from"] = renames[data["evaluated_from"]]
                    atomic_write_json(metrics, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
