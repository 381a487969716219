"""Per-query NumPy evaluator: the readable oracle for the fast path.

This follows the metric algorithm shared by MITML ``evaluate``, X-ReID ``eval_func``, VLD
``evaluate_vcm``/``evaluate_bupt`` and BUPTCampus ``evaluate`` step by step (see
``docs/decisions/data.md#metric-algorithm``), written for clarity rather than speed:

1. rank every gallery item of each query row by ascending distance;
2. per query, drop the gallery items the camera rule removes (``vcm``: same pid AND same
   camid as the query; ``bupt``: nothing), keeping the others in ranked order;
3. skip a query whose kept list holds no true match;
4. CMC row = cumulative hits clipped to 1, truncated to ``max_rank``; AP = mean of the
   precisions at the hit positions over the whole list; INP = R / (p_last + 1).

Two deliberate differences from the official code, both shared with :mod:`.fast`:

* **Ties.** The official ``np.argsort`` is numpy's default non-stable sort, so gallery items
  at exactly equal distance come out in an arbitrary order. We use ``kind="stable"``: equal
  distances are ordered by gallery index. Only exact ties are affected.
* **Short galleries.** The official code truncates ``max_rank`` to the gallery size and fails
  (ragged CMC rows) when the camera rule leaves a query fewer than ``max_rank`` items. We pad
  each CMC row with its last value (1 for a valid query), so the curve is always ``max_rank``
  long and equals ``P(first match rank <= k)`` for every ``k``.
"""
from __future__ import annotations

import numpy as np

from reprolib.metrics.result import EvalResult, build_result


def evaluate_reference(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray | None,
    g_camids: np.ndarray | None,
    rule: str = "vcm",
    max_rank: int = 20,
) -> EvalResult:
    """Evaluate a query x gallery distance matrix one query at a time.

    Args:
        distmat: ``(num_q, num_g)`` distances, smaller is more similar.
        q_pids: ``(num_q,)`` query identities.
        g_pids: ``(num_g,)`` gallery identities.
        q_camids: ``(num_q,)`` query cameras (unused under ``rule="bupt"``).
        g_camids: ``(num_g,)`` gallery cameras (unused under ``rule="bupt"``).
        rule: ``"vcm"`` removes gallery items with the query's pid and camid; ``"bupt"``
            removes nothing.
        max_rank: length of the CMC curve.

    Returns:
        The :class:`~reprolib.metrics.result.EvalResult`.

    Raises:
        NoValidQueryError: if no query keeps a true match.
    """
    num_q = distmat.shape[0]
    order = np.argsort(distmat, axis=1, kind="stable")  # (num_q, num_g) gallery indices by rank

    cmc_sum = np.zeros(max_rank, dtype=np.int64)
    ap = np.full(num_q, np.nan)
    inp = np.full(num_q, np.nan)
    for i in range(num_q):
        ranked_pids = g_pids[order[i]]  # (num_g,)
        if rule == "vcm":
            keep = ~((ranked_pids == q_pids[i]) & (g_camids[order[i]] == q_camids[i]))
        else:
            keep = np.ones_like(ranked_pids, dtype=bool)
        hits = (ranked_pids[keep] == q_pids[i]).astype(np.int64)  # (num_kept,) 0/1 match vector
        if not hits.any():
            continue  # the query's identity is absent from the kept gallery: skipped

        cum_hits = np.cumsum(hits)
        cmc_row = np.minimum(cum_hits, 1)[:max_rank]
        cmc_row = np.pad(cmc_row, (0, max_rank - len(cmc_row)), mode="edge")
        cmc_sum += cmc_row

        hit_pos = np.flatnonzero(hits)  # 0-based positions of the true matches
        precision_at_hits = cum_hits[hit_pos] / (hit_pos + 1.0)
        ap[i] = precision_at_hits.mean()  # sum of precisions / R
        inp[i] = len(hit_pos) / (hit_pos[-1] + 1.0)
    return build_result(cmc_sum, ap, inp, rule)
