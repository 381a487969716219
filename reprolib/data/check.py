"""``data check``: validate a dataset root and print its summary (counts per split).

Command line (wired as ``python -m reprolib data check``; also ``python -m reprolib.data.check``)::

    python -m reprolib data check hitsz-vcm /data/HITSZ-VCM --layout auto --min-seq-len 12
    python -m reprolib data check bupt /data/BUPTCampus --bupt-eval-mode official
    python -m reprolib data check sysu-mm01 /data/SYSU-MM01 --sysu-mode indoor --sysu-trial 0
    python -m reprolib data check regdb /data/RegDB --regdb-trial 1
    python -m reprolib data check hitsz-vcm /data/HITSZ-VCM --no-decode   # index only, seconds

By default every frame the dataset references is decoded (in threads, with a progress bar on a
terminal) exactly as training decodes it, and every corrupt file is listed; ``--no-decode`` only
checks the index files and that every frame exists. A training identity that also appears in a
test split is a warning (``warnings``), as are index rows no tracklet references (HITSZ-VCM).

It prints the dataset's :attr:`~reprolib.data.types.VideoReIDDataset.stats` as JSON and exits
0, or prints the :class:`~reprolib.data.errors.DatasetFormatError` (every problem found) on
stderr and exits 1.

The summary has the same keys for every dataset::

    dataset, root, options, num_train_pids, num_cameras, paired,
    splits:    {<split>: {before_filter: C3, after_filter: C3}}
    eval_sets: {ir2rgb|rgb2ir: {rule, query: {before_filter: C, after_filter: C},
                                      gallery: {before_filter: C, after_filter: C}}}
    warnings:  [str, ...]
    decode:    {checked, frames (distinct frames referenced), + when checked: corrupt, seconds,
                frames_per_s}
    (+ dataset-specific keys, see each dataset class)

where ``C = {identities, tracklets, images}`` and ``C3 = {all: C, ir: C, rgb: C}``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, Optional

from .counts import count_tracklets, eval_set_counts, filtered_split_counts, split_counts  # noqa: F401 (re-exported)
from .errors import DatasetFormatError


# --------------------------------------------------------------------------------------
# data check
# --------------------------------------------------------------------------------------


def decode_all(paths: Sequence[str], workers: Optional[int] = None, progress: Optional[bool] = None,
               chunk: int = 256) -> list[tuple[str, str]]:
    """Decode every frame exactly as training does (:func:`reprolib.data.decode.decode_frame`).

    Frames are decoded in threads (libjpeg-turbo and PIL release the GIL while decoding), in
    chunks so that a tree of half a million frames does not queue half a million futures.

    Args:
        paths: image files.
        workers: decoding threads (default: the CPU count).
        progress: show a tqdm progress bar on stderr (default: only on a terminal).
        chunk: frames per task.

    Returns:
        ``(path, reason)`` of every file that cannot be decoded (missing, truncated, not an
        image), in the order of ``paths``.
    """
    import concurrent.futures as cf
    import os

    from tqdm.auto import tqdm

    from .decode import decode_frame

    def run(block: Sequence[str]) -> list[tuple[str, str]]:
        bad = []
        for path in block:
            try:
                frame = decode_frame(path)
                if frame.size == 0:
                    bad.append((path, "decodes to an empty image"))
            except Exception as e:  # noqa: BLE001 - every failure is a corrupt file to list
                reason = str(e).split(": ", 1)[-1] if str(e).startswith("cannot decode") else str(e)
                bad.append((path, reason.strip().splitlines()[0] if reason.strip() else type(e).__name__))
        return bad

    blocks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    workers = max(1, workers or os.cpu_count() or 1)
    corrupt: list[tuple[str, str]] = []
    with tqdm(total=len(paths), unit="frame", desc="decoding", disable=None if progress is None else not progress,
              file=sys.stderr) as bar, cf.ThreadPoolExecutor(max_workers=workers) as pool:
        for block, bad in zip(blocks, pool.map(run, blocks)):
            corrupt.extend(bad)
            bar.update(len(block))
    return corrupt


def _referenced_frames(ds: Any) -> list[str]:
    """Every distinct frame path of a dataset's training tracklets and evaluation sets, in order."""
    seen: dict[str, None] = {}
    for t in ds.train:
        seen.update(dict.fromkeys(t.paths))
    for es in ds.eval_sets.values():
        for t in list(es.query) + list(es.gallery):
            seen.update(dict.fromkeys(t.paths))
    return list(seen)


def identity_overlap(ds: Any) -> list:
    """Raw identities that appear both in training and in a test set (should be none)."""
    train = {t.raw_pid for t in ds.train}
    test = {t.raw_pid for es in ds.eval_sets.values() for t in list(es.query) + list(es.gallery)}
    return sorted(train & test, key=str)


def run_check(dataset: str, root: str, decode: bool = False, workers: Optional[int] = None,
              progress: Optional[bool] = None, **opts: Any) -> dict:
    """Parse and validate a dataset root and return its JSON-serialisable summary.

    Args:
        dataset: registry name, ``"hitsz-vcm"``, ``"bupt"``, ``"sysu-mm01"`` or ``"regdb"``.
        root: dataset root directory.
        decode: decode every referenced frame (:func:`decode_all`) and list each corrupt one;
            without it only the index files and the frames' presence are checked.
        workers: decoding threads (default: the CPU count).
        progress: decoding progress bar (default: only on a terminal).
        **opts: keyword arguments of the dataset class (``layout``, ``min_seq_len`` for
            HITSZ-VCM; ``eval_mode``, ``eval_batch``, ``label_order`` for BUPTCampus; ``mode``,
            ``trial`` for SYSU-MM01; ``trial`` for RegDB).

    Returns:
        The dataset's ``stats`` dictionary (keys described in this module's docstring).

    Raises:
        DatasetFormatError: the root is missing files or holds malformed ones, or (``decode``)
            frames that cannot be decoded; every one is listed.
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
    stats = json.loads(json.dumps(ds.stats))
    warnings = stats.setdefault("warnings", [])
    overlap = identity_overlap(ds)
    if overlap:
        message = (f"{len(overlap)} identit{'y appears' if len(overlap) == 1 else 'ies appear'} in both the "
                   f"training and the test split (e.g. {', '.join(map(str, overlap[:5]))}): test results "
                   f"would not measure generalisation to unseen people")
        logging.getLogger(__name__).warning("%s", message)
        warnings.append(message)
    frames = _referenced_frames(ds)
    stats["decode"] = {"checked": bool(decode), "frames": len(frames)}
    if decode:
        import time

        t0 = time.perf_counter()
        corrupt = decode_all(frames, workers=workers, progress=progress)
        elapsed = time.perf_counter() - t0
        stats["decode"].update({"corrupt": len(corrupt), "seconds": round(elapsed, 3),
                                "frames_per_s": round(len(frames) / elapsed, 1) if elapsed > 0 else None})
        if corrupt:
            raise DatasetFormatError(ds.stats.get("dataset", dataset), str(root),
                                     [f"{path}: cannot be decoded ({why})" for path, why in corrupt])
    return stats


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
    p.add_argument("--no-decode", action="store_true",
                   help="quick pass: check the index files and that every frame exists, without decoding")
    p.add_argument("--workers", type=int, default=None, help="decoding threads (default: the CPU count)")
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
        summary = run_check(args.dataset, args.root, decode=not args.no_decode, workers=args.workers, **opts)
    except DatasetFormatError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
