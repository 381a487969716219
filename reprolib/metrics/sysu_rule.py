"""SYSU-MM01's evaluation rule: the camera-3/camera-2 filter and the identity-unique CMC.

The official SYSU-MM01 metric (``mangye16/Cross-Modal-Re-ID-baseline:eval_metrics.py``
``eval_sysu``, copied by DDAG; ``docs/decisions/data.md#image-benchmarks``) differs from the shared
video metric of :mod:`reprolib.metrics` (``docs/decisions/data.md#metric-algorithm``) in two ways:

* **Camera rule.** For a query taken by camera 3 (the indoor infrared camera), *every*
  gallery image of camera 2 (the visible camera at the same indoor location) is removed,
  whatever its identity. Nothing else is removed: queries from camera 6 keep the whole
  gallery, and there is no same-pid-same-camera removal (IR queries and RGB gallery items
  never share a camera).
* **Identity-unique CMC.** The kept ranked list is collapsed to its identities in order of
  first appearance, and the CMC counts the rank of the query's identity in that list (the
  dataset authors' MATLAB protocol). With a single-shot gallery (one image per identity and
  camera) an identity still appears up to four times, so this CMC is higher than the
  standard one. Equivalently: identities are ranked by their best kept gallery item.

mAP and mINP use the standard 0/1 match vector over the kept items, exactly as
:func:`reprolib.metrics.reference.evaluate_reference` does.

Deliberate differences from the official code (the same two as :mod:`reprolib.metrics.reference`):

* **Ties** among exactly equal distances are ordered by gallery index (stable sort); the
  official ``np.argsort`` is not stable.
* **Short lists.** The official code truncates ``max_rank`` to the gallery size and builds
  ragged CMC rows when fewer than ``max_rank`` identities remain; we pad every row with its
  last value, so the curve is always ``max_rank`` long.

The official code sums the identity-unique CMC rows of *every* query but divides by the
number of valid queries; a query without a true match contributes an all-zero row, so this
equals the average over valid queries, which is what we compute.

Example::

    res = evaluate_sysu(dist, q_pids, g_pids, q_camids, g_camids)       # (3803, 301) distances
    res.to_dict()                                                        # R1, R5, R10, R20, mAP, mINP
"""
from __future__ import annotations

from typing import Sequence, Union

import numpy as np
import torch

from reprolib.metrics.result import EvalResult, NoValidQueryError, build_result

#: Query camera whose gallery is filtered (indoor infrared).
SYSU_FILTERED_QUERY_CAMERA = 3
#: Gallery camera removed for those queries (indoor visible, same location as camera 3).
SYSU_REMOVED_GALLERY_CAMERA = 2
#: CMC variants: ``"identity_unique"`` (official) or ``"standard"`` (first true match, as
#: :func:`reprolib.metrics.evaluate`; kept for comparison with papers that use it).
CMC_MODES = ("identity_unique", "standard")

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[int]]


def _as_numpy(x: Union[ArrayLike, np.ndarray], name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``x`` as a NumPy array (tensors are detached and moved to the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.double() if x.is_floating_point() else x
        x = x.numpy()
    x = np.asarray(x)
    if shape is not None and x.shape != shape:
        raise ValueError(f"evaluate_sysu: {name} must have shape {shape} to match distmat, got {x.shape}")
    return x


def sysu_removal_mask(q_camids: ArrayLike, g_camids: ArrayLike) -> np.ndarray:
    """Which gallery items the SYSU-MM01 camera rule removes for each query.

    Args:
        q_camids: ``(num_q,)`` raw SYSU query cameras (3 or 6 for infrared queries).
        g_camids: ``(num_g,)`` raw SYSU gallery cameras (1, 2, 4, 5 for visible images).

    Returns:
        ``(num_q, num_g)`` boolean mask, True where the item is removed: the query comes from
        camera 3 and the item from camera 2 (any identity).
    """
    q = _as_numpy(q_camids, "q_camids")
    g = _as_numpy(g_camids, "g_camids")
    return (q[:, None] == SYSU_FILTERED_QUERY_CAMERA) & (g[None, :] == SYSU_REMOVED_GALLERY_CAMERA)  # (Q, G)


def _identity_ranks(ranked_ids: np.ndarray, keep: np.ndarray, first_hit: np.ndarray) -> np.ndarray:
    """0-based rank of each query's identity in its kept list collapsed to unique identities.

    Args:
        ranked_ids: ``(Q, G)`` dense identity index (0..P-1) of the gallery item at each rank.
        keep: ``(Q, G)`` whether the item at each rank survives the camera rule.
        first_hit: ``(Q,)`` rank (in the full list) of the query's first kept true match.

    Returns:
        ``(Q,)`` number of distinct identities whose first kept item precedes the first hit.
    """
    num_q, num_g = ranked_ids.shape
    num_ids = int(ranked_ids.max()) + 1
    best = np.full((num_q, num_ids), num_g, dtype=np.int64)  # (Q, P) first kept rank of each identity
    rows, cols = np.nonzero(keep)  # kept (query, rank) pairs
    np.minimum.at(best, (rows, ranked_ids[rows, cols]), cols)
    return (best < first_hit[:, None]).sum(axis=1)  # (Q,)


def evaluate_sysu(
    distmat: Union[np.ndarray, torch.Tensor],
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 20,
    cmc: str = "identity_unique",
) -> EvalResult:
    """Compute CMC, mAP and mINP of a SYSU-MM01 query x gallery distance matrix.

    Args:
        distmat: ``(num_q, num_g)`` distances (array or tensor); smaller is more similar.
        q_pids: ``(num_q,)`` integer query identities (raw SYSU pids).
        g_pids: ``(num_g,)`` integer gallery identities.
        q_camids: ``(num_q,)`` raw query cameras (1..6; the rule looks for 3).
        g_camids: ``(num_g,)`` raw gallery cameras (the rule looks for 2).
        max_rank: length of the CMC curve (padded with its last value past the list end).
        cmc: ``"identity_unique"`` (official SYSU-MM01 CMC) or ``"standard"``.

    Returns:
        An :class:`~reprolib.metrics.result.EvalResult`; ``ap`` is ``NaN`` for skipped queries.

    Raises:
        ValueError: unknown ``cmc``, bad shapes, ``max_rank < 1`` or NaN distances.
        NoValidQueryError: if no query keeps a true match after the camera rule.
    """
    if cmc not in CMC_MODES:
        raise ValueError(f"evaluate_sysu: unknown cmc {cmc!r}; expected one of {CMC_MODES}")
    if int(max_rank) < 1:
        raise ValueError(f"evaluate_sysu: max_rank must be >= 1, got {max_rank}")
    d = _as_numpy(distmat, "distmat")
    if d.ndim != 2 or 0 in d.shape:
        raise ValueError(f"evaluate_sysu: distmat must be a non-empty 2-D (num_q, num_g) matrix, got {d.shape}")
    if np.isnan(d).any():
        raise ValueError("evaluate_sysu: distmat contains NaN; rankings would be undefined")
    num_q, num_g = d.shape
    q_pids = _as_numpy(q_pids, "q_pids", (num_q,))
    g_pids = _as_numpy(g_pids, "g_pids", (num_g,))
    removed = sysu_removal_mask(_as_numpy(q_camids, "q_camids", (num_q,)),
                                _as_numpy(g_camids, "g_camids", (num_g,)))  # (Q, G) in gallery order

    order = np.argsort(d, axis=1, kind="stable")  # (Q, G) gallery indices by rank
    keep = ~np.take_along_axis(removed, order, axis=1)  # (Q, G) in rank order
    hits = keep & (g_pids[order] == q_pids[:, None])  # (Q, G) kept true matches
    num_rel = hits.sum(axis=1)  # (Q,) R
    valid = num_rel > 0
    if not valid.any():
        raise NoValidQueryError(
            f"evaluate_sysu: no valid query: none of the {num_q} queries has a gallery item with its pid left "
            f"after the camera-3/camera-2 rule; check that query and gallery use the same raw SYSU pids")

    kept_pos = np.cumsum(keep, axis=1)  # (Q, G) 1-based position among the kept items
    cum_hits = np.cumsum(hits, axis=1)  # (Q, G)
    precision = np.divide(cum_hits, kept_pos, out=np.zeros((num_q, num_g)), where=hits)  # (Q, G) at hits only
    ap = np.where(valid, precision.sum(axis=1) / np.maximum(num_rel, 1), np.nan)  # (Q,)
    last_pos = np.where(hits, kept_pos, 0).max(axis=1)  # (Q,) 1-based position of the last hit
    inp = np.where(valid, num_rel / np.maximum(last_pos, 1), np.nan)  # (Q,) R / (p_last + 1)

    first_hit = hits.argmax(axis=1)  # (Q,) rank of the first kept hit in the full list
    if cmc == "identity_unique":
        _, dense_ids = np.unique(g_pids, return_inverse=True)  # (G,) identity index 0..P-1
        first_rank = _identity_ranks(dense_ids.reshape(-1)[order], keep, first_hit)  # (Q,)
    else:
        first_rank = kept_pos[np.arange(num_q), first_hit] - 1  # (Q,) 0-based among kept items
    first_rank = first_rank[valid & (first_rank < max_rank)]
    cmc_sum = np.cumsum(np.bincount(first_rank, minlength=int(max_rank)))[: int(max_rank)]  # (max_rank,)
    return build_result(cmc_sum, ap, inp, rule="sysu")
