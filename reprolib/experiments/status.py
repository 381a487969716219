"""``python -m reprolib runs status``: which stored runs the present code would train differently.

A run's key does not hash the code (``reprolib.experiments.runstore``), so a committed run stays
current when shared code moves. Its ``provenance.json`` records the code versions of its family
(``reprolib.engine.provenance.code_versions``: the shared code and the family's own folder). This
report lists, per family, the runs whose recorded code differs from the present code, split into
runs whose *family* code changed (the likelier to compute something else) and runs where only
shared code did, and what retraining them would cost (their recorded training time), so a developer
can decide whether a change that the behaviour guard accepted is worth retraining for. It also lists runs whose directory is no longer their key (a results-version
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
        present: the present code versions of the family (``code_versions``).
        current: runs trained (or migrated) with the present code.
        family_code: runs trained with other code of the family's own folder.
        shared_code: runs whose family code is the present one but the shared code is not.
        unknown: runs with no recorded code version.
        stale_key: runs whose directory name is not their present key.
        retrain_s: recorded training time of the runs of every list but ``current``, in seconds.
    """

    family: str
    present: dict
    current: list[str] = field(default_factory=list)
    family_code: list[str] = field(default_factory=list)
    shared_code: list[str] = field(default_factory=list)
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
    from reprolib.engine.provenance import code_versions

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
            out[family] = FamilyStatus(family, code_versions(family))
        status = out[family]
        recorded = _read_json(run_dir / "provenance.json").get("code") or {}
        if run_dir.name != run_name(cfg):
            bucket = status.stale_key
        elif "own" not in recorded or "shared" not in recorded:
            bucket = status.unknown
        elif recorded["own"] != status.present["own"]:
            bucket = status.family_code
        elif recorded["shared"] != status.present["shared"]:
            bucket = status.shared_code
        else:
            bucket = status.current
        bucket.append(run_dir.name)
        if bucket is not status.current:
            status.retrain_s += float(_read_json(metrics_path).get("train_time_s") or 0.0)
    return out


def format_status(status: dict[str, FamilyStatus], verbose: bool = False) -> str:
    """A table (one line per family) and, with ``verbose``, the runs behind each count."""
    lines = [f"{'family':<10} {'current':>7} {'own code':>8} {'shared code':>11} {'stale key':>9} "
             f"{'unknown':>7} {'retrain':>8}"]
    for fam in sorted(status):
        s = status[fam]
        lines.append(f"{fam:<10} {len(s.current):>7} {len(s.family_code):>8} {len(s.shared_code):>11} "
                     f"{len(s.stale_key):>9} {len(s.unknown):>7} {s.retrain_s / 3600:>7.1f}h")
        if verbose:
            for what, runs in (("own code changed", s.family_code), ("shared code changed", s.shared_code),
                               ("stale key", s.stale_key), ("no recorded code", s.unknown)):
                lines += [f"    {what}: {run}" for run in runs]
    total = sum(s.retrain_s for s in status.values())
    lines.append("own code / shared code: runs trained with other code of the family's own folder / of the "
                 "shared packages (the behaviour guard vouches for their results; retrain when in doubt)")
    lines.append(f"retraining every run that is not current: {total / 3600:.1f} h "
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
