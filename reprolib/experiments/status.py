"""``python -m reprolib runs status``: which stored runs the present code would train differently.

A run's key does not hash the code (``reprolib.experiments.runstore``), so a committed run stays
current when shared code moves. Its ``provenance.json`` records the code version of its family
(``reprolib.engine.provenance.code_version``). This report lists, per family, the runs whose
recorded code differs from the present code, and what retraining them would cost (their recorded
training time), so a developer can decide whether a change that the behaviour guard accepted is
worth retraining for. It also lists runs whose directory is no longer their key (a results-version
bump or a schema change): those are not found by the notebooks any more and need retraining.

Example::

    python -m reprolib runs status                 # results/embedded/runs
    python -m reprolib runs status --profile smoke --store /tmp/runs
"""
from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from reprolib.config import ConfigError, load_config
from reprolib.experiments.runstore import default_store, run_name

__all__ = ["FamilyStatus", "store_status", "format_status", "main"]

log = logging.getLogger(__name__)


@dataclass
class FamilyStatus:
    """The stored runs of one model family, by how they relate to the present code.

    Attributes:
        family: ``model.name``.
        present: the present code version of the family.
        current: runs trained (or migrated) with the present code.
        other_code: ``(run, recorded code version)`` of runs trained with other code.
        unknown: runs with no recorded code version.
        stale_key: runs whose directory name is not their present key.
        retrain_s: recorded training time of ``other_code`` and ``stale_key`` runs, in seconds.
    """

    family: str
    present: str
    current: list[str] = field(default_factory=list)
    other_code: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    stale_key: list[str] = field(default_factory=list)
    retrain_s: float = 0.0


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def store_status(store: Path) -> dict[str, FamilyStatus]:
    """Status of every finished run of ``store``, per family (see :class:`FamilyStatus`)."""
    from reprolib.engine.provenance import code_version

    out: dict[str, FamilyStatus] = {}
    for metrics_path in sorted(store.glob("*/metrics.json")):
        run_dir = metrics_path.parent
        try:
            cfg = load_config(str(run_dir / "config.yaml"))
        except ConfigError as e:
            log.warning("%s: config.yaml does not load (%s); skipped", run_dir, e)
            continue
        family = cfg.model.name
        if family not in out:
            out[family] = FamilyStatus(family, code_version(family))
        status = out[family]
        recorded = (_read_json(run_dir / "provenance.json").get("code") or {}).get("version")
        cost = float(_read_json(metrics_path).get("train_time_s") or 0.0)
        if run_dir.name != run_name(cfg):
            status.stale_key.append(run_dir.name)
            status.retrain_s += cost
        elif recorded is None:
            status.unknown.append(run_dir.name)
        elif recorded != status.present:
            status.other_code.append((run_dir.name, recorded))
            status.retrain_s += cost
        else:
            status.current.append(run_dir.name)
    return out


def format_status(status: dict[str, FamilyStatus], verbose: bool = False) -> str:
    """A table (one line per family) and, with ``verbose``, the runs behind each count."""
    lines = [f"{'family':<10} {'code now':<13} {'current':>7} {'other code':>10} {'stale key':>9} "
             f"{'unknown':>7} {'retrain':>9}"]
    for fam in sorted(status):
        s = status[fam]
        lines.append(f"{fam:<10} {s.present:<13} {len(s.current):>7} {len(s.other_code):>10} "
                     f"{len(s.stale_key):>9} {len(s.unknown):>7} {s.retrain_s / 3600:>8.1f}h")
        if verbose:
            lines += [f"    other code ({code}): {run}" for run, code in s.other_code]
            lines += [f"    stale key: {run}" for run in s.stale_key]
            lines += [f"    no recorded code: {run}" for run in s.unknown]
    total = sum(s.retrain_s for s in status.values())
    lines.append(f"retraining every run trained with other code or under a stale key: {total / 3600:.1f} h "
                 "(recorded training time, on the machines that trained them)")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """``runs status [--profile P] [--store DIR] [-v]``."""
    ap = argparse.ArgumentParser(prog="reprolib runs status", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="embedded", choices=["smoke", "embedded", "paper"])
    ap.add_argument("--store", default=None, help="run-store root (default: results/<profile>/runs)")
    ap.add_argument("-v", "--verbose", action="store_true", help="name the runs behind each count")
    args = ap.parse_args(argv)
    store = Path(args.store) if args.store else default_store(args.profile)
    if not store.is_dir():
        print(f"no run store at {store}")
        return 1
    print(format_status(store_status(store), args.verbose))
    return 0
