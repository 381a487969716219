"""Rename run-store directories from the legacy key (all code) to the family-scoped key.

``reprolib.experiments.runstore.run_key`` hashes only the code a run's model family runs
(``FAMILY_CODE``); runs stored before that carry the legacy key, which hashed every family's code.
A run whose directory name still equals its legacy key under the *current* code was produced by
exactly this code, so it is valid under the new key too: this renames it (and the
``evaluated_from`` references to it). A run whose name matches neither key was produced by other
code and is only reported. Unfinished runs are left alone (one may be training right now). Run it
before changing any family's code::

    .venv/bin/python tools/rekey_runs.py            # every results/<profile>/runs
    .venv/bin/python tools/rekey_runs.py --dry-run
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reprolib.config import load_config  # noqa: E402
from reprolib.experiments.runstore import legacy_run_key, run_key  # noqa: E402
from reprolib.utils import atomic_write_json  # noqa: E402


def plan(store: Path) -> tuple[dict[str, str], list[str]]:
    """``({old name: new name}, [names matching neither key])`` of the runs in ``store``."""
    renames, stale = {}, []
    for run_dir in sorted(p for p in store.iterdir() if (p / "metrics.json").is_file()):  # finished runs only
        cfg = load_config(str(run_dir / "config.yaml"))
        new = f"{cfg.name}-{run_key(cfg)}"
        if run_dir.name == new:
            continue
        if run_dir.name == f"{cfg.name}-{legacy_run_key(cfg)}":
            renames[run_dir.name] = new
        else:
            stale.append(run_dir.name)
    return renames, stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--dry-run", action="store_true")
    ns = parser.parse_args()
    for store in sorted(Path(ns.results).glob("*/runs")):
        renames, stale = plan(store)
        for old, new in renames.items():
            print(f"{store}: {old} -> {new}")
            if ns.dry_run:
                continue
            if (store / new).exists():
                print(f"  {new} exists already; left {old} alone")
                continue
            (store / old).rename(store / new)
        for name in stale:
            print(f"{store}: {name} matches neither key (other code): left alone")
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
