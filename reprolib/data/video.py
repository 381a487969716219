"""Clip datasets and loaders: tracklet records in, batches of normalised clips out.

* :class:`PairedClipDataset` (training) is indexed by ``(rgb_index, ir_index[, item_seed])``
  tuples from the identity samplers (:mod:`reprolib.data.batches`) and returns one RGB clip
  and one IR clip of the same identity.
* :class:`ClipDataset` (testing) is indexed by tracklet position and returns one clip, or all
  dense clips of the tracklet.
* :func:`build_train_loader` / :func:`build_test_loader` wire records, frame sampling
  (:mod:`reprolib.data.frames`), samplers and augmentation recipes
  (:mod:`reprolib.data.transforms`) from a :class:`reprolib.config.DataConfig`.

Batches follow ``docs/architecture.md``: training ``rgb (B,T,3,H,W)``, ``ir (B,T,3,H,W)``,
``label (B,)``, ``camid_rgb (B,)``, ``camid_ir (B,)``; test ``frames (B,T,3,H,W)`` (or
``(1,C_clips,T,3,H,W)`` for dense sampling), ``pid (B,)``, ``camid (B,)``, ``modality (B,)``.

Determinism: every random choice of a training item (frame indices, joint flip, every
augmentation parameter) is drawn from a generator seeded by ``(seed, item_seed)``, where
``item_seed`` is the item's global position ``(epoch, iteration, slot)`` attached by
:class:`~reprolib.data.batches.IterationSampler`. The same item therefore yields the same clip
in any worker process, after a resume, and on any DDP rank; no global RNG is consulted.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

from reprolib.config import DataConfig
from reprolib.data.decode import load_frames
from reprolib.data.batches import BUPTIdentitySampler, IterationSampler, VCMIdentitySampler
from reprolib.data.frames import get_test_sampling, get_train_sampling
from reprolib.data.transforms import (ClipTransform, FrameClip, Normalize, build_test_transform,
                                      build_train_transforms)
from reprolib.data.types import Modality, Tracklet, VideoReIDDataset

logger = logging.getLogger(__name__)

# Namespaces of the per-item generator's seed, so the two ways to seed an item never collide.
_SEEDED_ITEM, _UNSEEDED_ITEM = 0, 1


def _plain_transform() -> ClipTransform:
    return ClipTransform([], Normalize.named("imagenet"))


@dataclass
class _PreparedItem:
    """A training item between drawing/decoding and rendering."""

    rgb: Tracklet
    ir: Tracklet
    rng: np.random.Generator
    rgb_clip: FrameClip
    ir_clip: FrameClip


def _empty_batch(batch_size: int, clip: FrameClip) -> torch.Tensor:
    """``(B, T, 3, H, W)`` float32 for clips like ``clip``; shared memory inside a worker."""
    shape = (batch_size, len(clip), 3, clip.height, clip.width)
    if get_worker_info() is None:
        return torch.empty(shape)
    # As default_collate does: workers hand batches over in shared memory, so allocate there.
    storage = torch.empty(0)._typed_storage()._new_shared(math.prod(shape))
    return torch.empty(0).new(storage).view(shape)


def _batch_view_base(values: list) -> Optional[torch.Tensor]:
    """The batch tensor whose consecutive slices ``values`` are, or ``None``."""
    first = values[0]
    if not isinstance(first, torch.Tensor):
        return None
    base = first._base
    if base is None or base.dim() != first.dim() + 1 or base.shape[0] != len(values):
        return None
    for i, value in enumerate(values):
        if (not isinstance(value, torch.Tensor) or value._base is not base
                or value.shape != base.shape[1:]
                or value.storage_offset() != base.storage_offset() + i * base.stride(0)):
            return None
    return base


def collate_clips(items: list[dict]) -> dict:
    """Collate item dicts; clips that are already slices of one batch tensor are not copied.

    Falls back to :func:`torch.utils.data.default_collate` for every other field.
    """
    batch = {}
    for key in items[0]:
        values = [item[key] for item in items]
        base = _batch_view_base(values)
        batch[key] = base if base is not None else default_collate(values)
    return batch


class PairedClipDataset(Dataset):
    """Training dataset of identity-matched RGB/IR clip pairs.

    Args:
        rgb_tracklets: visible training tracklets (``rgb_index`` is a position here).
        ir_tracklets: infrared training tracklets.
        seq_len: frames per clip ``T``.
        train_sampling: a :data:`~reprolib.data.frames.TRAIN_SAMPLING` name or a function
            ``(n_frames, seq_len, rng) -> indices``.
        transform_rgb: :class:`~reprolib.data.transforms.ClipTransform` of visible clips
            (default: ImageNet normalisation only).
        transform_ir: transform of infrared clips.
        shared_frames: sample one set of frame indices and use it for both halves (BUPTCampus'
            pixel-aligned pairs; both tracklets must have the same length).
        seed: base seed of every item's generator.
        joint_flip: probability of mirroring both clips of an item together (BUPT's pair flip).
        decode_min_size: optional ``(H, W)`` for DCT-domain downscaled decoding
            (:func:`reprolib.data.decode.decode_frame`); off by default.
    """

    def __init__(self, rgb_tracklets: Sequence[Tracklet], ir_tracklets: Sequence[Tracklet],
                 seq_len: int, train_sampling: Union[str, Callable] = "chunk",
                 transform_rgb: Optional[ClipTransform] = None,
                 transform_ir: Optional[ClipTransform] = None, shared_frames: bool = False,
                 seed: int = 0, joint_flip: float = 0.0,
                 decode_min_size: Optional[tuple[int, int]] = None) -> None:
        self.rgb = list(rgb_tracklets)
        self.ir = list(ir_tracklets)
        self.seq_len = seq_len
        if isinstance(train_sampling, str):
            train_sampling = get_train_sampling(train_sampling)
        self.sample = train_sampling
        self.transform_rgb = transform_rgb or _plain_transform()
        self.transform_ir = transform_ir or _plain_transform()
        self.shared_frames = shared_frames
        self.seed = int(seed)
        self.joint_flip = joint_flip
        self.decode_min_size = decode_min_size
        self._warned_unseeded = False

    def item_rng(self, key: Sequence[int]) -> np.random.Generator:
        """The generator of one item: from its item seed, or from its indices if it has none.

        A plain ``(rgb_index, ir_index)`` key (an identity sampler used without
        :class:`~reprolib.data.batches.IterationSampler`) seeds from the indices, so a pair that
        recurs gets the same frames and augmentation each time; a warning says so once.
        """
        if len(key) > 2:
            return np.random.default_rng([self.seed, _SEEDED_ITEM, int(key[2])])
        if not self._warned_unseeded:
            logger.warning("PairedClipDataset got (rgb_index, ir_index) keys without an item seed: "
                           "a recurring pair repeats its clip; wrap the batch sampler in "
                           "IterationSampler for per-item seeds")
            self._warned_unseeded = True
        return np.random.default_rng([self.seed, _UNSEEDED_ITEM, int(key[0]), int(key[1])])

    def frame_indices(self, rgb: Tracklet, ir: Tracklet,
                      rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """Frame indices of both halves (shared for pairs, independent otherwise)."""
        if not self.shared_frames:
            return self.sample(len(rgb), self.seq_len, rng), self.sample(len(ir), self.seq_len, rng)
        if len(rgb) != len(ir):
            raise ValueError(f"shared_frames needs equal-length pair halves; RGB "
                             f"{rgb.source or rgb.paths[0]} has {len(rgb)} frames, IR "
                             f"{ir.source or ir.paths[0]} has {len(ir)}")
        shared = self.sample(len(ir), self.seq_len, rng)
        return shared, shared

    def _prepare(self, key: Sequence[int]) -> _PreparedItem:
        """Draw everything of one item and decode its frames; render nothing yet."""
        rgb, ir = self.rgb[int(key[0])], self.ir[int(key[1])]
        if rgb.pid != ir.pid:
            raise ValueError(f"item {tuple(key)} pairs RGB pid {rgb.pid} with IR pid {ir.pid}; the "
                             f"sampler must pair tracklets of one identity")
        rng = self.item_rng(key)
        rgb_idx, ir_idx = self.frame_indices(rgb, ir, rng)
        flip = bool(self.joint_flip) and rng.random() < self.joint_flip
        rgb_clip = self.transform_rgb.prepare(load_frames(rgb.paths, rgb_idx, self.decode_min_size),
                                              rng, flip)
        ir_clip = self.transform_ir.prepare(load_frames(ir.paths, ir_idx, self.decode_min_size),
                                            rng, flip)
        return _PreparedItem(rgb, ir, rng, rgb_clip, ir_clip)

    def _finish(self, item: _PreparedItem, rgb_out: Optional[torch.Tensor] = None,
                ir_out: Optional[torch.Tensor] = None) -> dict:
        return {
            "rgb": self.transform_rgb.finish(item.rgb_clip, item.rng, rgb_out),  # (T, 3, H, W)
            "ir": self.transform_ir.finish(item.ir_clip, item.rng, ir_out),  # (T, 3, H, W)
            "label": item.rgb.pid,
            "camid_rgb": item.rgb.camid,
            "camid_ir": item.ir.camid,
        }

    def __getitem__(self, key: Sequence[int]) -> dict:
        return self._finish(self._prepare(key))

    def __getitems__(self, keys: Sequence[Sequence[int]]) -> list[dict]:
        """A whole batch at once (the ``DataLoader`` calls this when it exists).

        Each item's clips are rendered straight into its slice of two batch tensors
        ``(B, T, 3, H, W)`` (in shared memory inside a worker, as ``default_collate`` allocates),
        so :func:`collate_clips` returns the batch without the copy that stacking per-item
        tensors would cost. Items equal those of :meth:`__getitem__` exactly.
        """
        items: list[dict] = []
        rgb_batch = ir_batch = None
        for b, key in enumerate(keys):
            prepared = self._prepare(key)
            if rgb_batch is None:
                rgb_batch = _empty_batch(len(keys), prepared.rgb_clip)  # (B, T, 3, H, W)
                ir_batch = _empty_batch(len(keys), prepared.ir_clip)  # (B, T, 3, H, W)
            items.append(self._finish(prepared, rgb_batch[b], ir_batch[b]))
        return items


class ClipDataset(Dataset):
    """Test dataset: one deterministic clip (or all dense clips) per tracklet.

    Args:
        tracklets: query or gallery tracklets.
        seq_len: frames per clip ``T``.
        test_sampling: a :data:`~reprolib.data.frames.TEST_SAMPLING` name or a function
            ``(n_frames, seq_len) -> indices | list of clips``.
        transform: deterministic clip transform (default: ImageNet normalisation only).
    """

    def __init__(self, tracklets: Sequence[Tracklet], seq_len: int,
                 test_sampling: Union[str, Callable] = "chunk_first",
                 transform: Optional[ClipTransform] = None) -> None:
        self.tracklets = list(tracklets)
        self.seq_len = seq_len
        if isinstance(test_sampling, str):
            test_sampling = get_test_sampling(test_sampling)
        self.sample = test_sampling
        self.transform = transform or _plain_transform()

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, index: int) -> dict:
        tracklet = self.tracklets[index]
        selection = self.sample(len(tracklet), self.seq_len)
        dense = bool(selection) and isinstance(selection[0], (list, tuple))
        flat = [i for clip in selection for i in clip] if dense else list(selection)
        rng = np.random.default_rng(index)  # test transforms draw nothing; kept for the API
        frames = self.transform(load_frames(tracklet.paths, flat), rng)  # (C*T or T, 3, H, W)
        if dense:
            frames = frames.view(len(selection), self.seq_len, *frames.shape[1:])  # (C, T, 3, H, W)
        return {"frames": frames, "pid": tracklet.pid, "camid": tracklet.camid,
                "modality": int(tracklet.modality)}


def _pair_halves(rgb: list[Tracklet], ir: list[Tracklet]) -> tuple[list[Tracklet], list[Tracklet]]:
    """Align pixel-aligned pair halves by ``pair_id`` (same position = same pair)."""
    by_id = {t.pair_id: t for t in ir}
    missing = [t for t in rgb if t.pair_id is None or t.pair_id not in by_id]
    if missing or len(rgb) != len(ir):
        example = missing[0].source if missing else ""
        raise ValueError(f"sampler 'bupt' needs every training RGB tracklet paired with one IR "
                         f"tracklet by pair_id ({len(rgb)} RGB, {len(ir)} IR, {len(missing)} "
                         f"unpaired{', e.g. ' + example if example else ''})")
    rgb = sorted(rgb, key=lambda t: t.pair_id)
    return rgb, [by_id[t.pair_id] for t in rgb]


def build_train_loader(dataset: VideoReIDDataset, data_cfg: DataConfig, seed: int, iters_per_epoch: int,
                       rank: int = 0, world_size: int = 1) -> DataLoader:
    """Training loader of fixed-length epochs, from the config's sampler and recipe.

    ``data_cfg.sampler`` ``"vcm"`` draws identity-matched RGB/IR tracklets independently
    (:class:`VCMIdentitySampler` with ``num_ids``, ``num_pos``, ``sampler_replace``,
    ``sampler_length``); ``"bupt"`` draws pixel-aligned pairs (:class:`BUPTIdentitySampler` with
    ``num_pos`` cameras per identity, one pair per camera) and shares frame indices between the
    halves. ``num_ids`` is the global count per step; each DDP rank gets ``num_ids /
    world_size`` identities.

    The trainer drives ``loader.batch_sampler`` (an :class:`IterationSampler`): call
    ``set_epoch(e)`` at the start of each epoch, save ``state_dict(consumed=steps_done)`` in
    checkpoints (``consumed`` is needed with ``num_workers > 0``, whose prefetching runs the
    sampler ahead) and ``load_state_dict`` it on resume.

    Args:
        dataset: parsed dataset (``dataset.train`` holds both modalities).
        data_cfg: :class:`reprolib.config.DataConfig`.
        seed: experiment seed (sampler and per-item generators).
        iters_per_epoch: batches per epoch (VLD 200, X-ReID 300).
        rank: DDP rank.
        world_size: DDP world size.

    Returns:
        A ``DataLoader`` whose batches are dicts ``rgb``, ``ir``, ``label``, ``camid_rgb``,
        ``camid_ir``.
    """
    rgb = dataset.train_by_modality(Modality.RGB)
    ir = dataset.train_by_modality(Modality.IR)
    if data_cfg.sampler == "vcm":
        sampler = VCMIdentitySampler([t.pid for t in rgb], [t.pid for t in ir], data_cfg.num_ids,
                                     data_cfg.num_pos, data_cfg.sampler_replace,
                                     data_cfg.sampler_length, seed, rank, world_size)
        shared = False
    elif data_cfg.sampler == "bupt":
        if not dataset.paired:
            raise ValueError(f"data.sampler='bupt' needs a paired dataset; '{dataset.name}' is not "
                             f"(use data.sampler='vcm')")
        rgb, ir = _pair_halves(rgb, ir)
        sampler = BUPTIdentitySampler([t.pid for t in rgb], [t.camid for t in rgb],
                                      data_cfg.num_ids, num_cams=data_cfg.num_pos, num_pairs=1,
                                      seed=seed, rank=rank, world_size=world_size)
        shared = True
    else:
        raise ValueError(f"unknown data.sampler '{data_cfg.sampler}'; expected 'vcm' or 'bupt'")
    transforms = build_train_transforms(data_cfg.augment, data_cfg.height, data_cfg.width,
                                        data_cfg.normalization, data_cfg.augment_per,
                                        paired=dataset.paired, padding=data_cfg.pad)
    clips = PairedClipDataset(rgb, ir, data_cfg.seq_len, data_cfg.train_sampling, transforms.rgb,
                              transforms.ir, shared_frames=shared, seed=seed,
                              joint_flip=transforms.joint_flip)
    return make_train_dataloader(clips, IterationSampler(sampler, iters_per_epoch),
                                 data_cfg.num_workers)


def make_train_dataloader(clips: PairedClipDataset, batch_sampler: Sampler,
                          num_workers: int = 0) -> DataLoader:
    """The ``DataLoader`` of a training dataset: batched rendering, zero-copy collation."""
    return DataLoader(clips, batch_sampler=batch_sampler, collate_fn=collate_clips,
                      num_workers=num_workers, persistent_workers=num_workers > 0,
                      pin_memory=torch.cuda.is_available())


def build_test_loader(tracklets: Sequence[Tracklet], data_cfg: DataConfig) -> DataLoader:
    """Test loader over query or gallery tracklets, in their order.

    Dense sampling (``data_cfg.test_sampling == "dense"``) yields a different number of clips
    per tracklet, so it runs with batch size 1 (as the official code does); otherwise
    ``data_cfg.test_batch_size``.

    Args:
        tracklets: the tracklets to embed.
        data_cfg: :class:`reprolib.config.DataConfig`.

    Returns:
        A ``DataLoader`` whose batches are dicts ``frames``, ``pid``, ``camid``, ``modality``.
    """
    transform = build_test_transform(data_cfg.height, data_cfg.width, data_cfg.normalization)
    clips = ClipDataset(tracklets, data_cfg.seq_len, data_cfg.test_sampling, transform)
    batch_size = 1 if data_cfg.test_sampling == "dense" else data_cfg.test_batch_size
    workers = data_cfg.num_workers
    return DataLoader(clips, batch_size=batch_size, shuffle=False, num_workers=workers,
                      persistent_workers=False, pin_memory=torch.cuda.is_available())
