"""Identity batch samplers: which RGB/IR tracklets make up each training batch.

Two samplers reproduce the official batch composition (``docs/decisions/data.md#batch-samplers``):

* :class:`VCMIdentitySampler` (HITSZ-VCM; MITML ``IdentitySampler``, copied by X-ReID, varied by
  VLD): each batch holds ``P`` distinct identities and, for each, ``K`` RGB and ``K`` IR
  tracklets paired position by position, so an item is an identity-matched but otherwise
  random ``(rgb_index, ir_index)`` pair.
* :class:`BUPTIdentitySampler` (BUPTCampus ``RandomIdentitySampler``): ``P`` identities x
  ``num_cams`` distinct cameras x ``num_pairs`` pixel-aligned RGB/IR pairs; items are
  ``(pair_index, pair_index)``.

Both are batch samplers (pass them as ``DataLoader(batch_sampler=...)``) with the same API:

* **Determinism.** The batches of an epoch are a pure function of ``(seed, epoch, pass)``
  (:meth:`IdentityBatchSampler.global_batches`); :meth:`set_epoch` selects the epoch. No global
  random state is used.
* **Resumption.** :meth:`state_dict` / :meth:`load_state_dict` hold the epoch and the number of
  batches already consumed in it (plain ints, so ``torch.load(weights_only=True)`` reads them);
  a restored sampler yields exactly the remaining batches.
* **DDP.** ``num_ids`` is the *global* number of identities per step. Every rank computes the
  same global batch and keeps the contiguous slice ``rank`` of ``world_size`` of it. Items are
  ordered identity by identity, and ``num_ids`` must be divisible by ``world_size``, so each
  rank receives whole identities (``num_ids / world_size`` of them with all their ``K``
  tracklets): its local triplet mining still sees positives, and the union of the ranks'
  batches at one step is exactly the single-process batch.

:class:`IterationSampler` turns either sampler into the papers' fixed-length "epochs" (X-ReID 300
iterations, VLD 200): it concatenates freshly seeded passes of the underlying sampler until the
iteration count is reached, and attaches to every item a deterministic seed for the per-item
frame sampling and augmentation of :class:`reprolib.data.video.PairedClipDataset`.
"""
from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Optional

import numpy as np
from torch.utils.data import Sampler

logger = logging.getLogger(__name__)

#: One training item: ``(rgb_index, ir_index)``; :class:`IterationSampler` appends an item seed.
Item = tuple[int, ...]


class EpochCursor:
    """Epoch and position inside it, with resumable state; shared by every batch sampler here.

    ``position`` counts the batches of the current epoch already handed out; it is advanced
    *before* a batch is yielded, so while a batch is in use it equals the number of batches
    consumed including that one, which is what a checkpoint written after the step must store.
    """

    epoch: int = 0
    position: int = 0
    _restored: bool = False

    def _fingerprint(self) -> dict:
        """Settings a saved state must match (plain ints)."""
        return {}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields, from its beginning.

        Right after :meth:`load_state_dict`, ``set_epoch`` of the restored epoch keeps the
        restored position, so a trainer may restore before or after its usual ``set_epoch``.
        """
        epoch = int(epoch)
        if not (self._restored and epoch == self.epoch):
            self.position = 0
        self.epoch = epoch
        self._restored = False

    def state_dict(self, consumed: Optional[int] = None) -> dict:
        """Resumable state: plain ints only (``torch.load(weights_only=True)`` reads it).

        Args:
            consumed: batches of the current epoch the trainer has actually finished. Pass it
                when the DataLoader prefetches (``num_workers > 0``): the sampler is then asked
                for batches ahead of the training step and its own counter runs ahead.

        Returns:
            ``{"epoch", "position", ...}`` plus the settings the state is only valid for.
        """
        position = self.position if consumed is None else int(consumed)
        return {"epoch": self.epoch, "position": position, **self._fingerprint()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; the next iteration continues after ``position``.

        Raises:
            ValueError: if the state was saved by a sampler with different settings.
        """
        expected = self._fingerprint()
        saved = {key: state.get(key) for key in expected}
        if saved != expected:
            raise ValueError(f"{type(self).__name__}: saved sampler state {saved} does not match "
                             f"this sampler's settings {expected}")
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._restored = True


class IdentityBatchSampler(EpochCursor, Sampler[list]):
    """Base class: deterministic, resumable, DDP-sharded epochs of global batches.

    Subclasses implement :meth:`global_batches`. Iterating yields this rank's share of each global
    batch of the current epoch, starting after the batches already consumed.

    Args:
        num_ids: identities per global batch (``P``).
        seed: base seed of every epoch's generator.
        rank: this process' rank.
        world_size: number of processes; must divide ``num_ids``.
    """

    def __init__(self, num_ids: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if num_ids < 1:
            raise ValueError(f"num_ids must be >= 1, got {num_ids}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid DDP placement rank={rank}, world_size={world_size}")
        if num_ids % world_size:
            raise ValueError(
                f"data.num_ids={num_ids} is not divisible by world_size={world_size}: each rank "
                f"must receive whole identities (num_ids is the global count per step)")
        self.num_ids = num_ids
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size

    # -- to implement -------------------------------------------------------------------

    def global_batches(self, epoch: int, pass_index: int = 0) -> list[list[tuple[int, int]]]:
        """All global batches of one pass, a pure function of ``(seed, epoch, pass_index)``."""
        raise NotImplementedError

    # -- shared machinery ---------------------------------------------------------------

    def _rng(self, epoch: int, pass_index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, pass_index])

    def shard(self, batch: Sequence) -> list:
        """This rank's contiguous slice of a global batch (whole identities; see module doc)."""
        if self.world_size == 1:
            return list(batch)
        per_rank = len(batch) // self.world_size
        return list(batch[self.rank * per_rank:(self.rank + 1) * per_rank])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        self._restored = False
        batches = self.global_batches(self.epoch, 0)
        for index in range(self.position, len(batches)):
            self.position = index + 1
            yield self.shard(batches[index])

    def __len__(self) -> int:
        return len(self.global_batches(self.epoch, 0))

    def _fingerprint(self) -> dict:
        return {"seed": self.seed}


# --------------------------------------------------------------------------------------
# HITSZ-VCM
# --------------------------------------------------------------------------------------


def _positions_by_label(labels: Sequence[int]) -> dict[int, np.ndarray]:
    groups: dict[int, list[int]] = defaultdict(list)
    for position, label in enumerate(labels):
        groups[int(label)].append(position)
    return {label: np.asarray(pos) for label, pos in groups.items()}


def _validate_vcm_labels(rgb_labels: Sequence[int], ir_labels: Sequence[int]) -> int:
    """Check the official sampler's hidden assumption; return the number of labels."""
    rgb, ir = set(map(int, rgb_labels)), set(map(int, ir_labels))
    labels = rgb | ir
    if not labels:
        raise ValueError("VCMIdentitySampler: no training tracklets")
    num_labels = max(labels) + 1
    problems = []
    gaps = sorted(set(range(num_labels)) - labels)
    if min(labels) < 0 or gaps:
        problems.append(f"labels are not contiguous 0..{num_labels - 1} (missing: {gaps[:10]})")
    if rgb - ir:
        problems.append(f"labels with RGB but no IR tracklet: {sorted(rgb - ir)[:10]}")
    if ir - rgb:
        problems.append(f"labels with IR but no RGB tracklet: {sorted(ir - rgb)[:10]}")
    if problems:
        raise ValueError(
            "VCMIdentitySampler needs training labels 0..L-1 with at least one tracklet of each "
            "modality per label (after the min_seq_len filter); " + "; ".join(problems))
    return num_labels


class VCMIdentitySampler(IdentityBatchSampler):
    """HITSZ-VCM identity sampler: ``P`` identities x ``K`` identity-matched RGB/IR pairs.

    Each global batch draws ``P`` distinct labels; for each it draws ``K`` RGB and ``K`` IR
    tracklet positions independently and pairs them in draw order, so an item is a random
    same-identity ``(rgb_index, ir_index)`` pair (official; ``docs/decisions/data.md#hitsz-vcm-identity-sampler``).
    Items are ordered label by label.

    Args:
        rgb_labels: label of every RGB training tracklet (``rgb_index`` is a position here).
        ir_labels: label of every IR training tracklet.
        num_ids: ``P``, distinct identities per global batch.
        num_pos: ``K``, tracklets per identity and modality.
        replace: ``True`` (official) draws the ``K`` tracklets with replacement. ``False`` draws
            ``K`` distinct tracklets when the identity has at least ``K`` in that modality;
            otherwise it takes all of them (in random order) and fills the rest with
            replacement (X-ReID D25: "sample without replacement when possible").
        length: epoch length. ``"max"`` (VLD): ``int(max(#RGB, #IR) / (P*K)) + 1`` batches;
            ``"min"`` (MITML, X-ReID): ``int(min(#RGB, #IR) / (P*K))`` batches.
        seed: base seed.
        rank: DDP rank.
        world_size: DDP world size.

    Raises:
        ValueError: if labels are not contiguous ``0..L-1``, a label lacks one modality, or
            ``P > L`` (the official code indexes per-label lists by label value and draws ``P``
            labels without replacement).
    """

    def __init__(self, rgb_labels: Sequence[int], ir_labels: Sequence[int], num_ids: int,
                 num_pos: int, replace: bool = True, length: str = "max", seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        super().__init__(num_ids, seed, rank, world_size)
        if num_pos < 1:
            raise ValueError(f"num_pos must be >= 1, got {num_pos}")
        if length not in ("max", "min"):
            raise ValueError(f"data.sampler_length must be 'max' or 'min', got {length!r}")
        self.num_labels = _validate_vcm_labels(rgb_labels, ir_labels)
        if num_ids > self.num_labels:
            raise ValueError(f"data.num_ids={num_ids} exceeds the {self.num_labels} training "
                             f"identities")
        self.num_pos = num_pos
        self.replace = replace
        self.length = length
        self.rgb_pos = _positions_by_label(rgb_labels)
        self.ir_pos = _positions_by_label(ir_labels)
        counts = (len(rgb_labels), len(ir_labels))
        per_batch = num_ids * num_pos
        if length == "max":
            self.num_batches = max(counts) // per_batch + 1
        else:
            self.num_batches = min(counts) // per_batch
        if self.num_batches < 1:
            raise ValueError(f"VCMIdentitySampler: {min(counts)} tracklets are fewer than one batch "
                             f"of {per_batch} with sampler_length='min'")

    def _draw(self, rng: np.random.Generator, positions: np.ndarray) -> np.ndarray:
        k = self.num_pos
        if self.replace:
            return rng.choice(positions, size=k, replace=True)
        if len(positions) >= k:
            return rng.choice(positions, size=k, replace=False)
        extra = rng.choice(positions, size=k - len(positions), replace=True)
        return np.concatenate([rng.permutation(positions), extra])

    def global_batches(self, epoch: int, pass_index: int = 0) -> list[list[tuple[int, int]]]:
        """The ``num_batches`` global batches of one pass (``P * K`` items each)."""
        rng = self._rng(epoch, pass_index)
        batches = []
        for _ in range(self.num_batches):
            batch = []
            for label in rng.choice(self.num_labels, size=self.num_ids, replace=False):
                rgb = self._draw(rng, self.rgb_pos[int(label)])
                ir = self._draw(rng, self.ir_pos[int(label)])
                batch.extend((int(r), int(i)) for r, i in zip(rgb, ir))
            batches.append(batch)
        return batches

    def __len__(self) -> int:
        return self.num_batches


# --------------------------------------------------------------------------------------
# BUPTCampus
# --------------------------------------------------------------------------------------


class BUPTIdentitySampler(IdentityBatchSampler):
    """BUPTCampus identity sampler: ``P`` identities x ``num_cams`` cameras x ``num_pairs`` pairs.

    Per pass (official ``RandomIdentitySampler``, ``docs/decisions/data.md#buptcampus-identity-sampler``):

    1. group the pairs by identity and camera (each camera's list shuffled);
    2. per identity, while at least ``num_cams`` cameras still hold ``num_pairs`` pairs, pick
       ``num_cams`` distinct such cameras at random and take ``num_pairs`` pairs from each
       (without replacement), forming one group;
    3. while at least ``P`` identities have groups left, draw ``P`` of them and take one group
       from each: that is one global batch. Leftover groups are discarded.

    Identities seen in fewer than ``num_cams`` cameras never appear (logged once). The number of
    batches varies from pass to pass.

    Args:
        labels: label of every training pair (``pair_index`` is a position here).
        camids: camera of every training pair.
        num_ids: ``P`` (official: 8).
        num_cams: distinct cameras per identity in a batch (official: 2).
        num_pairs: pairs per camera (official: 1).
        seed: base seed.
        rank: DDP rank.
        world_size: DDP world size.
    """

    def __init__(self, labels: Sequence[int], camids: Sequence[int], num_ids: int, num_cams: int = 2,
                 num_pairs: int = 1, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(num_ids, seed, rank, world_size)
        if len(labels) != len(camids):
            raise ValueError(f"BUPTIdentitySampler: {len(labels)} labels but {len(camids)} camids")
        if num_cams < 1 or num_pairs < 1:
            raise ValueError(f"num_cams and num_pairs must be >= 1, got {num_cams}, {num_pairs}")
        self.num_cams = num_cams
        self.num_pairs = num_pairs
        pools: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        for index, (label, cam) in enumerate(zip(labels, camids)):
            pools[int(label)][int(cam)].append(index)
        self.pools = {label: {cam: list(idx) for cam, idx in sorted(cams.items())}
                      for label, cams in sorted(pools.items())}
        self.eligible = [label for label, cams in self.pools.items()
                         if sum(len(v) >= num_pairs for v in cams.values()) >= num_cams]
        excluded = len(self.pools) - len(self.eligible)
        if excluded:
            logger.info("BUPTIdentitySampler: %d of %d identities have fewer than %d cameras with "
                        ">= %d pairs and never appear in training (official behaviour)",
                        excluded, len(self.pools), num_cams, num_pairs)
        if len(self.eligible) < num_ids:
            raise ValueError(f"BUPTIdentitySampler: only {len(self.eligible)} identities have "
                             f"{num_cams} cameras, fewer than data.num_ids={num_ids}")

    def _groups(self, rng: np.random.Generator, cams: dict[int, list[int]]) -> list[list[int]]:
        pools = {cam: list(rng.permutation(idx)) for cam, idx in cams.items()}
        groups = []
        while True:
            available = [cam for cam, idx in pools.items() if len(idx) >= self.num_pairs]
            if len(available) < self.num_cams:
                return groups
            group = []
            for cam in rng.choice(available, size=self.num_cams, replace=False):
                pool = pools[int(cam)]
                group.extend(int(i) for i in pool[:self.num_pairs])
                del pool[:self.num_pairs]
            groups.append(group)

    def global_batches(self, epoch: int, pass_index: int = 0) -> list[list[tuple[int, int]]]:
        """The global batches of one pass (``P * num_cams * num_pairs`` items each)."""
        rng = self._rng(epoch, pass_index)
        groups = {label: self._groups(rng, self.pools[label]) for label in self.eligible}
        active = [label for label in self.eligible if groups[label]]
        batches = []
        while len(active) >= self.num_ids:
            batch = []
            for label in rng.choice(active, size=self.num_ids, replace=False):
                batch.extend((i, i) for i in groups[int(label)].pop(0))
            batches.append(batch)
            active = [label for label in active if groups[label]]
        return batches


# --------------------------------------------------------------------------------------
# Fixed-length epochs
# --------------------------------------------------------------------------------------


class IterationSampler(EpochCursor, Sampler[list]):
    """Fixed number of iterations per epoch over a cycled identity batch sampler.

    Epoch ``e`` is the concatenation of passes ``global_batches(e, 0)``, ``global_batches(e, 1)``,
    ... of the underlying sampler, truncated to ``iters_per_epoch`` batches. Every epoch thus
    starts from a fresh pass, as VLD rebuilds its sampler every epoch and consumes its first 200
    batches; X-ReID instead carries its iterator over epoch boundaries, which only changes which
    (equally distributed) random batches are drawn.

    Items are ``(rgb_index, ir_index, item_seed)``; ``item_seed`` identifies the item's global
    position ``(epoch, iteration, slot)`` and seeds its frame sampling and augmentation, so a
    resumed run, a run with DataLoader workers and a DDP run (slots are positions in the global
    batch) see exactly the same clips.

    Args:
        batch_sampler: the underlying :class:`IdentityBatchSampler`; its rank/world_size shard.
        iters_per_epoch: batches per epoch.
        item_seeds: append the item seed to every item (``False``: plain 2-tuples).
    """

    #: ``item_seed = (epoch * ITERATION_SPAN + iteration) * SLOT_SPAN + slot``.
    SLOT_SPAN = 1 << 16
    ITERATION_SPAN = 1 << 32

    def __init__(self, batch_sampler: IdentityBatchSampler, iters_per_epoch: int,
                 item_seeds: bool = True) -> None:
        if iters_per_epoch < 1:
            raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch}")
        self.sampler = batch_sampler
        self.iters_per_epoch = int(iters_per_epoch)
        self.item_seeds = item_seeds

    def __len__(self) -> int:
        return self.iters_per_epoch

    def _stream(self, epoch: int) -> Iterator[list[tuple[int, int]]]:
        for pass_index in itertools.count():
            batches = self.sampler.global_batches(epoch, pass_index)
            if not batches:
                raise RuntimeError(f"{type(self.sampler).__name__} produced an empty pass; "
                                   f"cannot fill {self.iters_per_epoch} iterations")
            yield from batches

    def item_seed(self, epoch: int, iteration: int, slot: int) -> int:
        """The seed of the item in ``slot`` of the global batch ``iteration`` of ``epoch``."""
        return (epoch * self.ITERATION_SPAN + iteration) * self.SLOT_SPAN + slot

    def __iter__(self) -> Iterator[list[Item]]:
        self._restored = False
        stream = self._stream(self.epoch)
        for iteration in range(self.iters_per_epoch):
            batch = next(stream)
            if iteration < self.position:
                continue  # already consumed before a resume; regenerated to stay in step
            if self.item_seeds:
                batch = [item + (self.item_seed(self.epoch, iteration, slot),)
                         for slot, item in enumerate(batch)]
            self.position = iteration + 1
            yield self.sampler.shard(batch)

    def _fingerprint(self) -> dict:
        return {"seed": self.sampler.seed, "iters_per_epoch": self.iters_per_epoch}
