"""``data check``: validate a dataset root and print its summary (counts per split).

Command line (wired as ``python -m reprolib data check``; also ``python -m reprolib.data.check``)::

    python -m reprolib data check hitsz-vcm /data/HITSZ-VCM --layout auto --min-seq-len 12
    python -m reprolib data check bupt /data/BUPTCampus --bupt-eval-mode official
    python -m reprolib data check sysu-mm01 /data/SYSU-MM01 --sysu-mode indoor --sysu-trial 0
    python -m reprolib data check regdb /data/RegDB --regdb-trial 1

It prints the dataset's :attr:`~reprolib.data.types.VideoReIDDataset.stats` as JSON and exits
0, or prints the :class:`~reprolib.data.errors.DatasetFormatError` (every problem found) on
stderr and exits 1.

The summary has the same keys for every dataset::

    dataset, root, options, num_train_pids, num_cameras, paired,
    splits:    {<split>: {before_filter: C3, after_filter: C3}}
    eval_sets: {ir2rgb|rgb2ir: {rule, query: {before_filter: C, after_filter: C},
                                      gallery: {before_filter: C, after_filter: C}}}
    warnings:  [str, ...]
    (+ dataset-specific keys, see each dataset class)

where ``C = {identities, tracklets, images}`` and ``C3 = {all: C, ir: C, rgb: C}``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Optional

from .errors import DatasetFormatError
from .types import EvalSet, Modality, Tracklet


# --------------------------------------------------------------------------------------
# Summary counts shared by the dataset classes
# --------------------------------------------------------------------------------------


def count_tracklets(tracklets: Iterable[Tracklet]) -> dict[str, int]:
    """Identities (distinct raw pids), tracklets and images of a list of tracklets."""
    tracklets = list(tracklets)
    return {
        "identities": len({t.raw_pid for t in tracklets}),
        "tracklets": len(tracklets),
        "images": sum(len(t) for t in tracklets),
    }


def split_counts(tracklets: Sequence[Tracklet]) -> dict[str, dict[str, int]]:
    """:func:`count_tracklets` for all tracklets and per modality (keys ``all``, ``ir``, ``rgb``)."""
    return {
        "all": count_tracklets(tracklets),
        "ir": count_tracklets(t for t in tracklets if t.modality == Modality.IR),
        "rgb": count_tracklets(t for t in tracklets if t.modality == Modality.RGB),
    }


def filtered_split_counts(before: Sequence[Tracklet], after: Sequence[Tracklet]) -> dict[str, Any]:
    """``{before_filter: split_counts(before), after_filter: split_counts(after)}``."""
    return {"before_filter": split_counts(before), "after_filter": split_counts(after)}


def eval_set_counts(before: EvalSet, after: EvalSet) -> dict[str, Any]:
    """Query and gallery counts of one direction, before and after the dataset's filter."""
    return {
        "rule": after.rule,
        "query": {"before_filter": count_tracklets(before.query),
                  "after_filter": count_tracklets(after.query)},
        "gallery": {"before_filter": count_tracklets(before.gallery),
                    "after_filter": count_tracklets(after.gallery)},
    }


# --------------------------------------------------------------------------------------
# data check
# --------------------------------------------------------------------------------------


def run_check(dataset: str, root: str, **opts: Any) -> dict:
    """Parse and validate a dataset root and return its JSON-serialisable summary.

    Args:
        dataset: registry name, ``"hitsz-vcm"``, ``"bupt"``, ``"sysu-mm01"`` or ``"regdb"``.
        root: dataset root directory.
        **opts: keyword arguments of the dataset class (``layout``, ``min_seq_len`` for
            HITSZ-VCM; ``eval_mode``, ``eval_batch``, ``label_order`` for BUPTCampus; ``mode``,
            ``trial`` for SYSU-MM01; ``trial`` for RegDB).

    Returns:
        The dataset's ``stats`` dictionary (keys described in this module's docstring).

    Raises:
        DatasetFormatError: the root is missing files or holds malformed ones.
        ValueError: unknown dataset name or an option the dataset does not take.
    """
    # Imported here: the dataset modules import the counting helpers above.
    from .datasets import DATASETS

    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset '{dataset}'; expected one of {', '.join(sorted(DATASETS))}")
    try:
        ds = DATASETS[dataset](root, **opts)
    except TypeError as e:  # an option meant for the other dataset
        raise ValueError(f"invalid option for dataset '{dataset}': {e}") from None
    return json.loads(json.dumps(ds.stats))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reprolib data check",
        description="Validate a HITSZ-VCM, BUPTCampus, SYSU-MM01 or RegDB root and print its summary as JSON.")
    p.add_argument("dataset", choices=["hitsz-vcm", "bupt", "sysu-mm01", "regdb"])
    p.add_argument("root", help="dataset root directory (BUPTCampus: the folder holding DATA/, "
                                "or DATA/ itself)")
    p.add_argument("--layout", choices=["auto", "A", "B"], default=None,
                   help="HITSZ-VCM on-disk layout (default: auto)")
    p.add_argument("--min-seq-len", type=int, default=None,
                   help="HITSZ-VCM: drop tracklets shorter than this (default: 12, official)")
    p.add_argument("--bupt-eval-mode", choices=["official", "full"], default=None,
                   help="BUPTCampus: 'official' drops the RGB tail of the batch-64 test sampler "
                        "(default), 'full' keeps every test tracklet")
    p.add_argument("--bupt-eval-batch", type=int, default=None,
                   help="BUPTCampus: batch size of the official test sampler (default: 64)")
    p.add_argument("--sysu-mode", choices=["all", "indoor"], default=None,
                   help="SYSU-MM01: gallery cameras of the summary's eval set (default: all)")
    p.add_argument("--sysu-trial", type=int, default=None,
                   help="SYSU-MM01: seed of the single-shot gallery (default: 0; official trials 0..9)")
    p.add_argument("--regdb-trial", type=int, default=None,
                   help="RegDB: which idx/*_<t>.txt split to check (default: 1; official 1..10)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``data check``; returns the process exit status.

    Args:
        argv: arguments after ``data check`` (default: ``sys.argv[1:]``).

    Returns:
        0 when the root is valid (the JSON summary is printed on stdout), 1 when it is not
        (the error, listing every problem, is printed on stderr), 2 on a usage error.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    # flag -> (dataset it applies to, class keyword, value)
    flags = {
        "--layout": ("hitsz-vcm", "layout", args.layout),
        "--min-seq-len": ("hitsz-vcm", "min_seq_len", args.min_seq_len),
        "--bupt-eval-mode": ("bupt", "eval_mode", args.bupt_eval_mode),
        "--bupt-eval-batch": ("bupt", "eval_batch", args.bupt_eval_batch),
        "--sysu-mode": ("sysu-mm01", "mode", args.sysu_mode),
        "--sysu-trial": ("sysu-mm01", "trial", args.sysu_trial),
        "--regdb-trial": ("regdb", "trial", args.regdb_trial),
    }
    given = {flag: spec for flag, spec in flags.items() if spec[2] is not None}
    misplaced = [flag for flag, (ds, _, _) in given.items() if ds != args.dataset]
    if misplaced:
        parser.error(f"{', '.join(misplaced)} do(es) not apply to dataset '{args.dataset}'")
    opts = {kw: value for _, kw, value in given.values()}
    try:
        summary = run_check(args.dataset, args.root, **opts)
    except DatasetFormatError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
