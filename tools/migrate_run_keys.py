"""Migrate a run store from code-hash keys to config-identity keys, without retraining.

Until revision ``3ff5833`` a run's key hashed its resolved config, its profile and a semantic hash
of the code its model family ran. Keys now hash what determines a result
(``reprolib.experiments.runstore.run_key``: config with the device resolved, dataset identity
instead of paths, number of processes, the family's results version). A finished run keeps its
config and metrics under the new scheme; only its directory name changes. This tool renames a run
when its directory name is the key the code of ``--rev`` gives its ``config.yaml`` (that revision's
code produced it, so it is what training again would give; the behaviour guard proves the code
since then computes the same), records the migration in its ``provenance.json`` and rewrites every
reference to the old name in the store's tables, notebooks and metrics (``evaluated_from``). A run
that does not match is reported and left alone; unfinished runs are never touched.

Usage::

    .venv/bin/python tools/migrate_run_keys.py --dry-run          # every results/<profile>/runs
    .venv/bin/python tools/migrate_run_keys.py --rev 3ff5833
    .venv/bin/python tools/migrate_run_keys.py --refresh-code    # after a passing behaviour guard
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from reprolib import PROJECT_ROOT
from reprolib.config import load_config
from reprolib.engine.provenance import code_record
from reprolib.experiments.runstore import run_name
from reprolib.utils import atomic_write_json
from reprolib.utils.io import read_json

#: The last revision whose run keys hashed the code.
LAST_CODE_KEYED_REV = "3ff5833"
#: How a migrated run's code version was recorded: the code of the migration, which the behaviour guard
#: (tests/test_behaviour_guard.py) shows computes what the code that trained the run computed.
RECORDED = "at migration (the behaviour guard: same results as the code that trained it)"
#: Text files of a results tree that may name a run directory.
TEXT_SUFFIXES = (".json", ".jsonl", ".csv", ".ipynb", ".md", ".yaml", ".txt")


def legacy_keyer(rev: str, dest: Path):
    """``cfg -> run directory name`` under the code-hash scheme of git revision ``rev``."""
    blob = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", rev, "reprolib"], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    old_root = dest / "reprolib"
    spec = importlib.util.spec_from_file_location("_legacy_runstore", old_root / "experiments/runstore.py")
    legacy = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = legacy  # dataclasses look their module up there
    spec.loader.exec_module(legacy)

    def name(cfg) -> str:
        code = legacy.code_version(legacy.CODE_PACKAGES, cfg.model.name, old_root)
        return f"{cfg.name}-{legacy.config_hash(cfg, extra={'profile': cfg.profile, 'code': code})}"

    return name


def plan(store: Path, old_name) -> tuple[dict[str, str], list[str]]:
    """``({old directory name: new name}, [why a run was left alone])`` for the finished runs of ``store``."""
    renames, left = {}, []
    for run_dir in sorted(p for p in store.iterdir() if (p / "metrics.json").is_file()):
        cfg = load_config(str(run_dir / "config.yaml"))
        new = run_name(cfg)
        if run_dir.name == new:
            continue
        if old_name(cfg) != run_dir.name:
            left.append(f"{run_dir.name}: not the key {LAST_CODE_KEYED_REV}'s code gives its config "
                        f"(stale before the migration); retrain it")
            continue
        if (store / new).exists():
            left.append(f"{run_dir.name}: {new} exists already")
            continue
        renames[run_dir.name] = new
    return renames, left


def apply(store: Path, renames: dict[str, str], rev: str) -> int:
    """Rename the runs, record the migration, rewrite references under the store's profile folder;
    returns the number of files rewritten."""
    for old, new in renames.items():
        (store / old).rename(store / new)
    rewritten = 0
    for path in sorted(store.parent.rglob("*")):
        if not path.is_file() or path.suffix not in TEXT_SUFFIXES:
            continue
        text = path.read_text()
        new_text = text
        for old, new in renames.items():
            new_text = new_text.replace(old, new)
        if new_text != text:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(new_text)
            tmp.replace(path)
            rewritten += 1
    for old, new in renames.items():  # after the rewrite, which would turn "from" into the new name
        prov_path = store / new / "provenance.json"
        prov = read_json(prov_path)
        family = load_config(str(store / new / "config.yaml")).model.name
        prov["migrated"] = {"from": old, "scheme": f"code-hash keys of {rev}",
                            "note": "renamed by tools/migrate_run_keys.py; config and metrics unchanged"}
        prov["code"] = {**code_record(family), "recorded": RECORDED}
        atomic_write_json(prov_path, prov)
    return rewritten


def refresh_code(store: Path) -> int:
    """Record the present code as the code of every migrated run (``--refresh-code``), for a commit
    whose behaviour guard passes: that is what vouches that the present code computes what trained
    them. Returns the number of runs updated."""
    n = 0
    for prov_path in sorted(store.glob("*/provenance.json")):
        prov = read_json(prov_path)
        if "migrated" not in prov:
            continue
        family = load_config(str(prov_path.parent / "config.yaml")).model.name
        prov["code"] = {**code_record(family), "recorded": RECORDED}
        atomic_write_json(prov_path, prov)
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default=LAST_CODE_KEYED_REV, help="revision whose code keyed the runs")
    ap.add_argument("--store", action="append", help="run store(s); default every results/<profile>/runs")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--refresh-code", action="store_true",
                    help="only re-record the present code as that of the migrated runs (run the behaviour guard first)")
    args = ap.parse_args(argv)
    stores = [Path(s) for s in args.store] if args.store else sorted((PROJECT_ROOT / "results").glob("*/runs"))
    if args.refresh_code:
        for store in stores:
            print(f"{store}: recorded the present code for {refresh_code(store)} migrated runs")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        old_name = legacy_keyer(args.rev, Path(tmp))
        for store in stores:
            renames, left = plan(store, old_name)
            print(f"{store}: {len(renames)} to rename, {len(left)} left alone")
            for line in left:
                print("  left:", line)
            if args.dry_run:
                for old, new in renames.items():
                    print(f"  {old} -> {new}")
            elif renames:
                print(f"  renamed {len(renames)}; rewrote {apply(store, renames, args.rev)} files that named them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
