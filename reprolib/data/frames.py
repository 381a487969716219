"""Frame sampling: which frames of an ``n``-frame tracklet make up a ``seq_len``-frame clip.

Every function here is pure: it maps ``(n_frames, seq_len)`` (plus an explicit
:class:`numpy.random.Generator` for the random, training-time strategies) to frame indices.
No global random state is touched, so a clip is reproducible from its generator alone.

The strategies follow the official code of each codebase exactly, quirks included
(``docs/decisions/data.md#chunk-sampling``):

* **Restricted random sampling (RRS, "chunk")**, MITML/X-ReID/VLD on HITSZ-VCM. The index list
  ``0..n-1`` is padded with copies of ``n-1`` to ``c * S`` entries, ``c = ceil(n / S)``, and cut
  into ``S`` chunks of ``c``; training takes one random element per chunk, testing the first.
  Because ``c`` is a ceiling, trailing chunks may consist entirely of padding, which
  over-samples the last frame (``n=13, S=6 -> [0, 3, 6, 9, 12, 12]``). This is reproduced on
  purpose: it is deterministic at test time and shapes the published numbers.
* **Dense**: consecutive non-overlapping clips covering the tracklet; the last clip is padded by
  cycling its own frames.
* **BUPT uniform / random / restricted_random**: BUPTCampus' ``dataloader.py`` modes.
* **Consecutive**: ``S`` consecutive frames from a random start, cycled when the tracklet is short.

The registries :data:`TRAIN_SAMPLING` and :data:`TEST_SAMPLING` map the config names of
``DataConfig.train_sampling`` / ``DataConfig.test_sampling`` to these functions.
"""
from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np

#: A training strategy: ``(n_frames, seq_len, rng) -> indices``.
TrainSampler = Callable[[int, int, np.random.Generator], list[int]]
#: A test strategy: ``(n_frames, seq_len) -> indices`` or, for dense, a list of clips.
TestSampler = Callable[[int, int], Union[list[int], list[list[int]]]]


def _check(n_frames: int, seq_len: int) -> None:
    if n_frames < 1:
        raise ValueError(f"cannot sample frames from an empty tracklet (n_frames={n_frames})")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")


def _cycle(frames: list[int], length: int) -> list[int]:
    """Extend ``frames`` to ``length`` entries by cycling through its own elements."""
    return [frames[i % len(frames)] for i in range(length)]


# --------------------------------------------------------------------------------------
# Restricted random sampling ("chunk")
# --------------------------------------------------------------------------------------


def rrs_chunks(n_frames: int, seq_len: int) -> list[list[int]]:
    """The ``seq_len`` chunks of restricted random sampling (official ceil-chunk padding).

    Args:
        n_frames: tracklet length ``n``.
        seq_len: clip length ``S``.

    Returns:
        ``S`` lists of frame indices. If ``n < S`` each chunk holds one index
        (``0..n-1`` then copies of ``n-1``); otherwise each holds ``c = ceil(n / S)`` indices of
        ``0..n-1`` padded with copies of ``n-1`` to ``c * S``.
    """
    _check(n_frames, seq_len)
    size = 1 if n_frames < seq_len else math.ceil(n_frames / seq_len)
    padded = list(range(n_frames)) + [n_frames - 1] * (size * seq_len - n_frames)
    return [padded[s * size:(s + 1) * size] for s in range(seq_len)]


def rrs_train(n_frames: int, seq_len: int, rng: np.random.Generator) -> list[int]:
    """Training RRS (``video_train`` / ``rrs_train``): one uniformly drawn element per chunk.

    Args:
        n_frames: tracklet length.
        seq_len: clip length ``S``.
        rng: the generator that draws the position inside each chunk.

    Returns:
        ``S`` frame indices, non-decreasing.
    """
    chunks = rrs_chunks(n_frames, seq_len)
    picks = rng.integers(0, len(chunks[0]), size=seq_len)
    return [chunk[int(p)] for chunk, p in zip(chunks, picks)]


def rrs_test(n_frames: int, seq_len: int) -> list[int]:
    """Test RRS (``video_test`` / ``rrs_test``): the first element of every chunk.

    Examples (``docs/decisions/data.md#chunk-sampling``): ``n=24, S=6 -> [0, 4, 8, 12, 16, 20]``;
    ``n=13, S=6 -> [0, 3, 6, 9, 12, 12]``; ``n=12, S=10 -> [0, 2, 4, 6, 8, 10, 11, 11, 11, 11]``.
    """
    return [chunk[0] for chunk in rrs_chunks(n_frames, seq_len)]


# --------------------------------------------------------------------------------------
# Dense
# --------------------------------------------------------------------------------------


def dense_clips(n_frames: int, seq_len: int) -> list[list[int]]:
    """Dense test sampling: every frame, in consecutive non-overlapping clips.

    Clips of ``S`` frames are cut while more than ``S`` frames remain; the last clip (1..S
    frames) is padded by cycling its own frames, e.g. ``n=26, S=8`` gives
    ``[0..7], [8..15], [16..23], [24, 25, 24, 25, 24, 25, 24, 25]``.

    Returns:
        A list of clips, each a list of ``S`` frame indices.
    """
    _check(n_frames, seq_len)
    clips, start = [], 0
    while n_frames - start > seq_len:
        clips.append(list(range(start, start + seq_len)))
        start += seq_len
    clips.append(_cycle(list(range(start, n_frames)), seq_len))
    return clips


# --------------------------------------------------------------------------------------
# BUPTCampus modes
# --------------------------------------------------------------------------------------


def bupt_uniform(n_frames: int, seq_len: int, part: str = "full") -> list[int]:
    """BUPT ``uniform`` test sampling: ``int(linspace(a, b, S, endpoint=False))``.

    Args:
        n_frames: tracklet length.
        seq_len: clip length ``S``.
        part: ``"full"`` (``a, b = 0, n``; the default test mode), ``"first_half"``
            (``0, n // 2``) or ``"second_half"`` (``n // 2, n``); the halves are used by BUPT's
            AuxNet for re-ranking features.

    Returns:
        ``S`` indices (truncated towards zero, so short tracklets repeat frames:
        ``n=4, S=10 -> [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]``).
    """
    _check(n_frames, seq_len)
    bounds = {"full": (0, n_frames), "first_half": (0, n_frames // 2),
              "second_half": (n_frames // 2, n_frames)}
    if part not in bounds:
        raise ValueError(f"bupt_uniform part must be one of {sorted(bounds)}, got {part!r}")
    lo, hi = bounds[part]
    return [int(i) for i in np.linspace(lo, hi, seq_len, endpoint=False).astype(int)]


def bupt_random(n_frames: int, seq_len: int, rng: np.random.Generator) -> list[int]:
    """BUPT ``random`` training sampling: ``S`` distinct indices in ascending order.

    Indices are drawn without replacement unless ``n < S`` (then with replacement, as the
    official ``numpy.random.choice`` call does), and sorted.
    """
    _check(n_frames, seq_len)
    picks = rng.choice(n_frames, size=seq_len, replace=n_frames < seq_len)
    return sorted(int(i) for i in picks)


def bupt_restricted_random(n_frames: int, seq_len: int, rng: np.random.Generator) -> list[int]:
    """BUPT ``restricted_random`` training sampling: one random element per segment.

    If ``n >= S`` segment ``i`` is ``[int(i * n / S), int((i + 1) * n / S))``. Otherwise the index
    list is padded at the *front* with zeros, ``[0] * (S - n) + [0..n-1]``, and each segment
    holds one entry (``n=4, S=10 -> [0, 0, 0, 0, 0, 0, 0, 1, 2, 3]``).
    """
    _check(n_frames, seq_len)
    if n_frames < seq_len:
        return [0] * (seq_len - n_frames) + list(range(n_frames))
    step = n_frames / seq_len
    starts = [int(i * step) for i in range(seq_len)]
    ends = [int((i + 1) * step) for i in range(seq_len)]
    return [int(rng.integers(lo, hi)) for lo, hi in zip(starts, ends)]


# --------------------------------------------------------------------------------------
# Consecutive
# --------------------------------------------------------------------------------------


def consecutive(n_frames: int, seq_len: int, rng: np.random.Generator,
                as_released: bool = False) -> list[int]:
    """Consecutive training sampling: ``S`` consecutive frames from a random start.

    Args:
        n_frames: tracklet length.
        seq_len: clip length ``S``.
        rng: generator drawing the start.
        as_released: the official code (MITML ``random``, copied by X-ReID and VLD) draws the
            start from ``0..max(0, n - S - 1)``, an off-by-one that never picks the final window
            (``docs/decisions/data.md#consecutive-sampling``). ``False`` (default) draws from the full range
            ``0..max(0, n - S)``; no official training pipeline uses this mode, so fixing it
            costs no fidelity.

    Returns:
        ``S`` indices; tracklets shorter than ``S`` are cycled (``n=3, S=8 -> [0,1,2,0,1,2,0,1]``).
    """
    _check(n_frames, seq_len)
    last_start = max(0, n_frames - seq_len - (1 if as_released else 0))
    start = int(rng.integers(0, last_start + 1))
    return _cycle(list(range(start, min(start + seq_len, n_frames))), seq_len)


def consecutive_first(n_frames: int, seq_len: int) -> list[int]:
    """Deterministic test counterpart of :func:`consecutive`: the first ``S`` frames, cycled."""
    _check(n_frames, seq_len)
    return _cycle(list(range(min(seq_len, n_frames))), seq_len)


# --------------------------------------------------------------------------------------
# Registries
# --------------------------------------------------------------------------------------

#: ``DataConfig.train_sampling`` name -> strategy.
TRAIN_SAMPLING: dict[str, TrainSampler] = {
    "chunk": rrs_train,
    "bupt_random": bupt_random,
    "bupt_restricted": bupt_restricted_random,
    "consecutive": consecutive,
}

#: ``DataConfig.test_sampling`` name -> strategy (``dense`` returns a list of clips).
TEST_SAMPLING: dict[str, TestSampler] = {
    "chunk_first": rrs_test,
    "dense": dense_clips,
    "bupt_uniform": bupt_uniform,
    "consecutive": consecutive_first,
}


def get_train_sampling(name: str) -> TrainSampler:
    """Look up a training strategy by its ``data.train_sampling`` name (clear error if unknown)."""
    if name not in TRAIN_SAMPLING:
        raise ValueError(f"unknown data.train_sampling '{name}'; "
                         f"expected one of {sorted(TRAIN_SAMPLING)}")
    return TRAIN_SAMPLING[name]


def get_test_sampling(name: str) -> TestSampler:
    """Look up a test strategy by its ``data.test_sampling`` name (clear error if unknown)."""
    if name not in TEST_SAMPLING:
        raise ValueError(f"unknown data.test_sampling '{name}'; "
                         f"expected one of {sorted(TEST_SAMPLING)}")
    return TEST_SAMPLING[name]
