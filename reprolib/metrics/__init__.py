"""Retrieval metrics for video visible-infrared ReID (CMC, mAP, mINP): scoring a distance matrix.

Running a model to get that matrix (feature extraction, the datasets' eval sets and trial
protocols) is :mod:`reprolib.engine.evaluator`; this package only scores.

``evaluate`` implements the metric shared by the official HITSZ-VCM and BUPTCampus code
(``docs/decisions/data.md#metric-algorithm``) with two camera rules:

* ``"vcm"``: gallery items with the query's pid **and** camid are removed before ranking
  (MITML, X-ReID, VLD on HITSZ-VCM);
* ``"bupt"``: nothing is removed (BUPTCampus official; also RegDB's ``eval_regdb``); camids
  may be ``None``;
* ``"sysu"``: SYSU-MM01's rule (:mod:`.sysu_rule`): for a camera-3 query every camera-2 gallery
  item is removed, and the CMC is identity-unique (both backends use that NumPy implementation).

A query with no true match left is skipped (it counts in no average). AP averages the
precision at every hit over the whole ranked list; INP = R / (p_last + 1) (mINP, Ye et al.).

Two backends give identical results: ``"fast"`` (:mod:`.fast`, vectorised torch on the
distance matrix's device, default) and ``"reference"`` (:mod:`.reference`, a per-query NumPy
loop kept as the oracle). Both order exactly equal distances by gallery index (stable sort)
and pad the CMC curve to ``max_rank`` (see :mod:`.reference` for why).

The rgb2ir direction of a dataset evaluated by transposing the ir2rgb matrix
(``evaluate(d.T, g_pids, q_pids, g_camids, q_camids)``) equals rebuilding it with the roles
swapped, as X-ReID and VLD do.

Example::

    dist = compute_distance(qf, gf, "cosine")
    res = evaluate(dist, q_pids, g_pids, q_camids, g_camids, rule="vcm")
    print(res.summary())
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from reprolib.metrics.distance import METRICS, compute_distance
from reprolib.metrics.fast import evaluate_fast
from reprolib.metrics.reference import evaluate_reference
from reprolib.metrics.result import EvalResult, NoValidQueryError
from reprolib.metrics.sysu_rule import evaluate_sysu

__all__ = ["EvalResult", "NoValidQueryError", "compute_distance", "evaluate", "METRICS", "RULES", "BACKENDS"]

RULES = ("vcm", "bupt", "sysu")
BACKENDS = ("fast", "reference")

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[int]]


def _as_ids(x: ArrayLike, name: str, length: int, device: torch.device) -> torch.Tensor:
    """Return an id array as an int64 ``(length,)`` tensor on ``device``, or raise naming it."""
    if isinstance(x, torch.Tensor):
        integer = not (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool)
        dtype, shape = x.dtype, tuple(x.shape)
    else:
        x = np.asarray(x)
        integer, dtype, shape = x.dtype.kind in "iu", x.dtype, x.shape
    if len(shape) != 1 or shape[0] != length:
        raise ValueError(f"evaluate: {name} must have shape ({length},) to match distmat, got {shape}")
    if not integer:
        raise ValueError(f"evaluate: {name} must hold integer ids, got dtype {dtype}")
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x.astype(np.int64))
    return x.to(device=device, dtype=torch.long)


def _as_distmat(distmat: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
    """Return the distance matrix as a detached floating tensor, checking shape and NaNs."""
    d = torch.as_tensor(distmat).detach()
    if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] == 0:
        raise ValueError(f"evaluate: distmat must be a non-empty 2-D (num_q, num_g) matrix, got {tuple(d.shape)}")
    if not d.is_floating_point():
        d = d.to(torch.float64)  # integer distances: exact up to 2**53
    elif d.dtype in (torch.float16, torch.bfloat16):
        d = d.float()  # exact, order-preserving upcast (NumPy cannot sort bfloat16)
    if torch.isnan(d.amax()):  # amax propagates NaN; cheaper than a full isnan mask
        raise ValueError("evaluate: distmat contains NaN; rankings would be undefined")
    return d


def _to_numpy(t: Optional[torch.Tensor]) -> Optional[np.ndarray]:
    return None if t is None else t.cpu().numpy()


def evaluate(
    distmat: Union[np.ndarray, torch.Tensor],
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: Optional[ArrayLike] = None,
    g_camids: Optional[ArrayLike] = None,
    rule: str = "vcm",
    max_rank: int = 20,
    backend: str = "fast",
) -> EvalResult:
    """Compute CMC, mAP and mINP of a query x gallery distance matrix.

    Args:
        distmat: ``(num_q, num_g)`` distances (NumPy array or tensor on any device); smaller
            means more similar. Integer and half-precision inputs are upcast exactly.
        q_pids: ``(num_q,)`` integer query identities.
        g_pids: ``(num_g,)`` integer gallery identities.
        q_camids: ``(num_q,)`` integer query cameras; required for ``"vcm"`` and ``"sysu"``.
        g_camids: ``(num_g,)`` integer gallery cameras; required for ``"vcm"`` and ``"sysu"``.
        rule: ``"vcm"`` (drop gallery items with the same pid AND camid as the query),
            ``"bupt"`` (drop nothing) or ``"sysu"`` (drop camera-2 items for camera-3 queries;
            identity-unique CMC).
        max_rank: length of the CMC curve (ranks 1..max_rank). Unlike the official code it
            is not cut to the gallery size; the curve is padded with its last value (1.0).
        backend: ``"fast"`` (vectorised torch, runs on ``distmat``'s device) or
            ``"reference"`` (per-query NumPy oracle, CPU).

    Returns:
        An :class:`EvalResult`; ``ap`` holds one value per query, ``NaN`` for skipped ones.

    Raises:
        ValueError: for an unknown rule/backend, bad shapes, missing camids under ``"vcm"``,
            or NaN distances.
        NoValidQueryError: if no query keeps a true match (a ``ValueError`` subclass).
    """
    if rule not in RULES:
        raise ValueError(f"evaluate: unknown rule {rule!r}; expected one of {RULES}")
    if backend not in BACKENDS:
        raise ValueError(f"evaluate: unknown backend {backend!r}; expected one of {BACKENDS}")
    if int(max_rank) < 1:
        raise ValueError(f"evaluate: max_rank must be >= 1, got {max_rank}")
    d = _as_distmat(distmat)
    num_q, num_g = d.shape
    pids = (_as_ids(q_pids, "q_pids", num_q, d.device), _as_ids(g_pids, "g_pids", num_g, d.device))
    if rule in ("vcm", "sysu"):
        if q_camids is None or g_camids is None:
            raise ValueError(f"evaluate: rule {rule!r} needs q_camids and g_camids (use rule='bupt' to ignore cameras)")
        cams = (_as_ids(q_camids, "q_camids", num_q, d.device), _as_ids(g_camids, "g_camids", num_g, d.device))
    else:
        cams = (None, None)

    if rule == "sysu":  # single-shot galleries are small (<= 301 items): one NumPy path for both backends
        return evaluate_sysu(_to_numpy(d), *map(_to_numpy, pids), *map(_to_numpy, cams), max_rank=int(max_rank))
    if backend == "fast":
        return evaluate_fast(d, *pids, *cams, rule=rule, max_rank=int(max_rank))
    return evaluate_reference(
        _to_numpy(d), *map(_to_numpy, pids), *map(_to_numpy, cams), rule=rule, max_rank=int(max_rank)
    )
