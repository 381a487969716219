"""Benchmark: our training loader against a plain per-frame PIL + torchvision pipeline.

Both pipelines load the same training items from the same files in one process, one thread
(``torch.set_num_threads(1)``: the throughput *per core*; real training multiplies either by
its DataLoader workers). Each item is one RGB and one IR clip of ``seq_len`` frames, i.e. two
sequences, with identical frame indices in both pipelines (restricted random sampling through
:meth:`PairedClipDataset.frame_indices` and the same per-item generators) and an equivalent
augmentation, MITML's recipe applied per frame:

* **baseline** (how the official codes load): for each sampled frame ``PIL.Image.open(path)
  .convert("RGB")`` then ``torchvision.transforms`` ``Resize -> Pad(10) -> RandomCrop ->
  RandomHorizontalFlip -> ToTensor -> Normalize``, and ``torch.stack`` of the frames;
* **ours**: :class:`~reprolib.data.video.PairedClipDataset` with the ``"mitml"`` recipe of
  :func:`~reprolib.data.transforms.build_train_transforms` and the loader of
  :func:`~reprolib.data.video.make_train_dataloader` (libjpeg-turbo decoding of each distinct
  sampled frame, lazy pad/crop/flip applied in the one transposing copy, one vectorised
  normalisation per clip written straight into the batch tensor).

Both are driven through a ``DataLoader(num_workers=0)`` with the same batch sampler, so
batching and collation are timed too. Rounds alternate between the pipelines and the best round of each is
reported (``timeit``'s convention: on a shared machine the fastest round is the closest to the
pipeline's own cost; every round's time is returned too). The headline rates (``*_seqs_per_s``, ``ratio``) divide by the process' CPU time,
which is the throughput per core and stays meaningful on a shared, busy machine; the
wall-clock rates (``*_per_wall_s``, ``ratio_wall``) coincide with them on an idle one.

Without ``--root`` a temporary VCM-like set is written: 288x144 JPEG frames (quality 90) of
smooth random texture drifting over time with mild sensor noise; visible tracklets in colour,
infrared tracklets as 3-channel grey (like HITSZ-VCM's IR frames); lengths 12..40 frames. With
``--root`` every directory holding ``.jpg``/``.jpeg``/``.png`` files is one tracklet, and
consecutive directories form the (RGB, IR) halves of one identity.

Run: ``python -m reprolib bench data`` (or ``python -m reprolib.bench.data``).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from typing import Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from reprolib.data.decode import default_backend
from reprolib.data.batches import IterationSampler, VCMIdentitySampler
from reprolib.data.transforms import NORMALIZATION, build_train_transforms
from reprolib.data.types import Modality, Tracklet
from reprolib.data.video import PairedClipDataset, make_train_dataloader

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def _texture(rng: np.random.Generator, height: int, width: int, num_frames: int,
             colour: bool) -> np.ndarray:
    """``(num_frames, H, W, 3)`` uint8 smooth random texture that drifts over time."""
    coarse = rng.uniform(0, 255, size=(height // 16 + 2, width // 16 + 2, 3 if colour else 1))
    base = np.asarray(Image.fromarray(coarse.astype(np.uint8).squeeze()).resize(
        (width + 2 * num_frames, height), Image.BICUBIC), dtype=np.float32)
    base = base.reshape(height, width + 2 * num_frames, -1)  # (H, W + 2n, C)
    frames = []
    for t in range(num_frames):
        frame = base[:, 2 * t:2 * t + width] + rng.normal(0, 4, size=(height, width, 1))
        frames.append(np.broadcast_to(frame.clip(0, 255).astype(np.uint8), (height, width, 3)))
    return np.stack(frames)


def write_synthetic_tracklets(root: str, num_ids: int = 8, per_modality: int = 2, height: int = 288,
                              width: int = 144, seed: int = 0) -> tuple[list[Tracklet], list[Tracklet]]:
    """Write a small VCM-like set of JPEG tracklets under ``root``.

    Returns:
        ``(rgb_tracklets, ir_tracklets)`` with labels ``0..num_ids-1``.
    """
    rng = np.random.default_rng(seed)
    tracklets: dict[Modality, list[Tracklet]] = {Modality.RGB: [], Modality.IR: []}
    for pid in range(num_ids):
        for modality in (Modality.RGB, Modality.IR):
            for k in range(per_modality):
                folder = os.path.join(root, f"{pid:04d}", modality.short, f"T{k}")
                os.makedirs(folder, exist_ok=True)
                n = int(rng.integers(12, 41))
                paths = []
                for t, frame in enumerate(_texture(rng, height, width, n, modality is Modality.RGB)):
                    path = os.path.join(folder, f"F{t:03d}.jpg")
                    Image.fromarray(frame).save(path, quality=90)
                    paths.append(path)
                tracklets[modality].append(Tracklet(tuple(paths), pid, 1, modality))
    return tracklets[Modality.RGB], tracklets[Modality.IR]


def discover_tracklets(root: str) -> tuple[list[Tracklet], list[Tracklet]]:
    """Every image directory under ``root`` is a tracklet; consecutive ones pair as RGB/IR."""
    folders = []
    for folder, _, files in sorted(os.walk(root)):
        images = sorted(f for f in files if f.lower().endswith(IMAGE_SUFFIXES))
        if images:
            folders.append(tuple(os.path.join(folder, f) for f in images))
    if len(folders) < 2:
        raise ValueError(f"bench data --root {root}: need at least 2 directories of images, "
                         f"found {len(folders)}")
    pairs = len(folders) // 2
    rgb = [Tracklet(folders[2 * i], i, 1, Modality.RGB) for i in range(pairs)]
    ir = [Tracklet(folders[2 * i + 1], i, 2, Modality.IR) for i in range(pairs)]
    return rgb, ir


# --------------------------------------------------------------------------------------
# The two pipelines
# --------------------------------------------------------------------------------------


class PerFramePILDataset(Dataset):
    """The official way to load a training item: PIL + torchvision, frame by frame.

    Frame indices come from ``indices_of`` (the same as our dataset's); torchvision's own RNG
    drives the augmentation, as in the official codes.
    """

    def __init__(self, reference: PairedClipDataset, height: int, width: int) -> None:
        self.reference = reference
        mean, std = NORMALIZATION["imagenet"]
        self.transform = T.Compose([
            T.Resize((height, width)), T.Pad(10), T.RandomCrop((height, width)),
            T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])

    def _clip(self, paths: Sequence[str], indices: Sequence[int]) -> torch.Tensor:
        frames = [self.transform(Image.open(paths[i]).convert("RGB")) for i in indices]
        return torch.stack(frames)  # (T, 3, H, W)

    def __getitem__(self, key: Sequence[int]) -> dict:
        rgb, ir = self.reference.rgb[key[0]], self.reference.ir[key[1]]
        rgb_idx, ir_idx = self.reference.frame_indices(rgb, ir, self.reference.item_rng(key))
        return {"rgb": self._clip(rgb.paths, rgb_idx), "ir": self._clip(ir.paths, ir_idx),
                "label": rgb.pid, "camid_rgb": rgb.camid, "camid_ir": ir.camid}


def _time_loader(loader: DataLoader) -> tuple[float, float]:
    """``(wall seconds, process CPU seconds)`` to load every batch of ``loader``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in loader:
        assert batch["rgb"].dtype == torch.float32
    return time.perf_counter() - wall, time.process_time() - cpu


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def run_benchmark(root: Optional[str] = None, seq_len: int = 6, height: int = 288, width: int = 144,
                  num_sequences: int = 512, seed: int = 0, rounds: int = 5,
                  batch_items: int = 8) -> dict:
    """Measure sequences per second of our training loader and of the per-frame PIL pipeline.

    Args:
        root: directory of JPEG tracklets; ``None`` writes a temporary synthetic set.
        seq_len: frames per clip.
        height: training height.
        width: training width.
        num_sequences: sequences loaded per pipeline and round (two per item: RGB and IR).
        seed: seed of the data, the sampler and the per-item generators.
        rounds: alternating timing rounds per pipeline; the best is reported.
        batch_items: items per DataLoader batch.

    Returns:
        A JSON-serialisable dict with ``ours_seqs_per_s``, ``baseline_seqs_per_s`` (per CPU
        second), ``ratio`` (ours / baseline), their wall-clock counterparts and the settings.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = None
    try:
        if root is None:
            tmp = tempfile.TemporaryDirectory(prefix="reprolib-bench-data-")
            rgb, ir = write_synthetic_tracklets(tmp.name, height=height, width=width, seed=seed)
        else:
            rgb, ir = discover_tracklets(root)
        recipe = build_train_transforms("mitml", height, width, "imagenet", per="frame")
        ours = PairedClipDataset(rgb, ir, seq_len, "chunk", recipe.rgb, recipe.ir, seed=seed)
        baseline = PerFramePILDataset(ours, height, width)
        num_ids = min(4, len({t.pid for t in rgb}))
        sampler = VCMIdentitySampler([t.pid for t in rgb], [t.pid for t in ir], num_ids=num_ids,
                                     num_pos=max(1, batch_items // num_ids), seed=seed)
        num_batches = max(1, num_sequences // (2 * num_ids * sampler.num_pos))
        batches = list(IterationSampler(sampler, num_batches))
        num_items = sum(len(b) for b in batches)
        loaders = {"ours": make_train_dataloader(ours, batches),
                   "baseline": DataLoader(baseline, batch_sampler=batches)}
        for name, dataset in (("ours", ours), ("baseline", baseline)):  # warm-up: page cache etc.
            _time_loader(DataLoader(dataset, batch_sampler=batches[:1]))
        wall: dict[str, list[float]] = {"ours": [], "baseline": []}
        cpu: dict[str, list[float]] = {"ours": [], "baseline": []}
        for _ in range(rounds):
            for name, loader in loaders.items():
                seconds, cpu_seconds = _time_loader(loader)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
        per_cpu = {name: 2 * num_items / min(t) for name, t in cpu.items()}
        per_wall = {name: 2 * num_items / min(t) for name, t in wall.items()}
        return {
            "ours_seqs_per_s": round(per_cpu["ours"], 2),
            "baseline_seqs_per_s": round(per_cpu["baseline"], 2),
            "ratio": round(per_cpu["ours"] / per_cpu["baseline"], 3),
            "ours_seqs_per_wall_s": round(per_wall["ours"], 2),
            "baseline_seqs_per_wall_s": round(per_wall["baseline"], 2),
            "ratio_wall": round(per_wall["ours"] / per_wall["baseline"], 3),
            "sequences": 2 * num_items,
            "seq_len": seq_len,
            "height": height,
            "width": width,
            "rounds": rounds,
            "decoder": default_backend(),
            "threads": 1,
            "data": root or "synthetic 288x144-style JPEG tracklets (quality 90)",
            "round_cpu_seconds": {k: [round(x, 4) for x in v] for k, v in cpu.items()},
            "round_wall_seconds": {k: [round(x, 4) for x in v] for k, v in wall.items()},
        }
    finally:
        torch.set_num_threads(threads)
        if tmp is not None:
            tmp.cleanup()


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m reprolib bench data [--root DIR] [--seq-len 6] [--num-sequences 512]``."""
    parser = argparse.ArgumentParser(prog="reprolib bench data", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="directory of JPEG tracklets (default: synthetic)")
    parser.add_argument("--seq-len", type=int, default=6)
    parser.add_argument("--num-sequences", type=int, default=512)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=144)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = run_benchmark(args.root, args.seq_len, args.height, args.width, args.num_sequences,
                           args.seed, args.rounds)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
