"""Benchmark: how long ``data check`` takes to decode every frame of a HITSZ-VCM-sized tree.

``data check`` decodes every referenced frame exactly as training does
(:func:`reprolib.data.check.decode_all`: libjpeg-turbo through
:func:`reprolib.data.decode.decode_frame`, in threads). HITSZ-VCM has 463,259 frames
(``docs/decisions/data.md#hitsz-vcm-statistics``), which no CI machine holds, so this measures the decode rate on
``--frames`` JPEG frames written to a temporary folder (or on the frames of ``--root``, any tree
of ``.jpg``/``.png`` files) with one thread and with ``--workers`` threads, and extrapolates the
full-tree time from the measured rate: ``seconds = 463,259 / frames_per_s``. Disk reads of a
cold cache are not included (the files were just written); on a network file system they add to
the figure.

Run: ``python -m reprolib bench check [--frames 4000] [--height 288 --width 144] [--workers N]``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from reprolib.data.check import decode_all

logger = logging.getLogger(__name__)

#: Frames of HITSZ-VCM (232,496 train + 230,763 test name lines).
HITSZ_VCM_FRAMES = 463_259


def write_frames(folder: Path, n: int, height: int, width: int, quality: int = 95, seed: int = 0) -> list[str]:
    """``n`` JPEG frames of smooth random texture with mild noise (like camera frames, unlike
    white noise, which JPEG compresses badly), half in colour and half 3-channel grey."""
    rng = np.random.default_rng(seed)
    paths = []
    base = rng.random((height // 8 + 2, width // 8 + 2, 3)) * 255
    for i in range(n):
        small = np.roll(base, i % 7, axis=0)
        img = np.kron(small, np.ones((8, 8, 1)))[:height, :width]
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        if i % 2:
            img = np.repeat(img.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(img).save(path, quality=quality)
        paths.append(str(path))
    return paths


def measure(paths: Sequence[str], workers: int, rounds: int = 2) -> dict:
    """Best of ``rounds`` full decodes of ``paths`` with ``workers`` threads."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        corrupt = decode_all(paths, workers=workers, progress=False)
        best = min(best, time.perf_counter() - t0)
        if corrupt:
            raise RuntimeError(f"benchmark frames failed to decode: {corrupt[:3]}")
    rate = len(paths) / best
    return {"workers": workers, "frames": len(paths), "seconds": round(best, 3), "frames_per_s": round(rate, 1),
            "hitsz_vcm_minutes": round(HITSZ_VCM_FRAMES / rate / 60, 1)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m reprolib bench check``: print the JSON report."""
    p = argparse.ArgumentParser(prog="python -m reprolib bench check",
                                description="Decode rate of `data check` and the extrapolated time of a full "
                                            "HITSZ-VCM decode.")
    p.add_argument("--frames", type=int, default=4000, help="frames to write and decode (default: %(default)s)")
    p.add_argument("--height", type=int, default=288)
    p.add_argument("--width", type=int, default=144)
    p.add_argument("--root", default=None, help="decode the .jpg/.png files of this tree instead")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="threads (default: the CPU count)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reprolib-bench-check-") as tmp:
        if args.root:
            paths = sorted(str(f) for f in Path(args.root).rglob("*") if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
            paths = paths[:args.frames] if args.frames else paths
            source = args.root
        else:
            paths = write_frames(Path(tmp), args.frames, args.height, args.width)
            source = f"{args.frames} generated {args.height}x{args.width} JPEG frames (quality 95)"
        results = [measure(paths, 1)]
        if args.workers > 1:
            results.append(measure(paths, args.workers))
    report = {"source": source, "cpu_count": os.cpu_count(), "hitsz_vcm_frames": HITSZ_VCM_FRAMES,
              "results": results}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
