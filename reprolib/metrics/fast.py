"""Vectorised evaluator (torch, CPU and CUDA) that never argsorts the distance matrix.

The metrics of a query depend only on the **ranks of its true matches** among the kept
gallery items (0-based, ``r_1 < r_2 < ... < r_R``):

* CMC: the first match is at ``r_1``, so the query counts at every rank ``k > r_1``;
* AP  = (1/R) * sum_i i / (r_i + 1)   (precision at the i-th hit, i = 1..R);
* INP = R / (r_R + 1).

The rank of a match ``j`` is the number of kept gallery items that come before it in the
ranked list. With the tie rule of :mod:`.reference` (stable sort: equal distances ordered by
gallery index) that is::

    rank(j) = #{g : d_g < d_j} - #{removed r : d_r < d_j} + #{kept g : d_g == d_j and g < j}

* The first term is a binary search in the row sorted by *value*. Sorting values is much
  cheaper than an argsort: on the 2-core CPU box a 4,584 x 5,099 float32 ``np.sort`` (SIMD)
  takes ~0.06 s against ~0.7 s for ``np.argsort`` or ``torch.sort``, which is why CPU rows
  are sorted by NumPy and CUDA rows by ``torch.sort``.
* The removed items (``vcm`` rule: same pid AND same camid) all share the query's pid, so
  they are among its matches: the second term is a binary search in a tiny ``(K,)`` row.
* The third term is non-zero only at exact ties. A tie is detected when ``d_j`` also follows
  its first occurrence in the sorted row, and only those (query, match) pairs are counted by
  a direct comparison, so the ranks equal the stable-sort oracle's exactly.

True matches are found without scanning the matrix: the gallery is grouped by pid once into
a padded ``(num_pids, K)`` index table and each query gathers its pid's row, so everything
but the sort works on ``(num_q, K)`` tensors (K = most gallery items of one pid). Only the
sort and its binary searches run over row chunks, which bounds memory to
``O(chunk * num_g)`` and keeps the number of torch calls small.
"""
from __future__ import annotations

import numpy as np
import torch

from reprolib.metrics.result import EvalResult, build_result

#: Elements of the distance matrix processed per chunk (bounds the temporary copies).
CHUNK_ELEMENTS = 1 << 22


def _sort_rows(x: torch.Tensor) -> torch.Tensor:
    """Sort each row by value (NumPy's SIMD sort on CPU, ``torch.sort`` elsewhere)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return torch.sort(x, dim=1).values


def _group_gallery_by_pid(g_pids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index the gallery by identity.

    Args:
        g_pids: ``(num_g,)`` int64 gallery identities.

    Returns:
        ``(pids, table)``: the sorted unique pids ``(P,)`` and a ``(P, max_group)`` table whose
        row ``p`` lists, in ascending order, the gallery indices with pid ``pids[p]``, padded
        with ``num_g``.
    """
    num_g = g_pids.shape[0]
    order = torch.argsort(g_pids, stable=True)  # (G,) gallery indices grouped by pid
    pids, counts = torch.unique_consecutive(g_pids[order], return_counts=True)  # (P,), (P,)
    group = torch.repeat_interleave(torch.arange(len(pids), device=g_pids.device), counts)  # (G,)
    starts = torch.cumsum(counts, 0) - counts  # (P,)
    slot = torch.arange(num_g, device=g_pids.device) - starts[group]  # (G,) position in group
    table = torch.full((len(pids), int(counts.max())), num_g, dtype=torch.long, device=g_pids.device)
    table[group, slot] = order
    return pids, table


def _count_tied_before(
    distmat: torch.Tensor,
    rows: torch.Tensor,
    idx: torch.Tensor,
    keep_pid: torch.Tensor,
    keep_cam: torch.Tensor | None,
    g_pids: torch.Tensor,
    g_camids: torch.Tensor | None,
) -> torch.Tensor:
    """Count, for tied (query, match) pairs, the kept items at equal distance with a lower index.

    Args:
        distmat: ``(Q, G)`` distances.
        rows: ``(n,)`` query of each pair.
        idx: ``(n,)`` gallery index of the match.
        keep_pid: ``(n,)`` pid of each pair's query.
        keep_cam: ``(n,)`` camid of each pair's query, ``None`` when nothing is removed.
        g_pids: ``(G,)`` gallery pids.
        g_camids: ``(G,)`` gallery camids, ``None`` when nothing is removed.

    Returns:
        ``(n,)`` int64 counts ``#{kept g : d_g == d_j and g < j}``.
    """
    num_g = distmat.shape[1]
    arange = torch.arange(num_g, device=distmat.device)
    step = max(1, CHUNK_ELEMENTS // num_g)
    counts = []
    for s in range(0, rows.shape[0], step):
        sl = slice(s, s + step)
        row_dist = distmat[rows[sl]]  # (n_s, G)
        thresh = row_dist.gather(1, idx[sl, None])  # (n_s, 1)
        hit = (row_dist == thresh) & (arange[None, :] < idx[sl, None])  # (n_s, G)
        if keep_cam is not None:
            hit &= (g_pids[None, :] != keep_pid[sl, None]) | (g_camids[None, :] != keep_cam[sl, None])
        counts.append(hit.sum(dim=1))
    return torch.cat(counts)


def _rank_in_rows(distmat: torch.Tensor, thresh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Locate values of each row in the row sorted by value.

    Args:
        distmat: ``(Q, G)`` distances.
        thresh: ``(Q, K)`` values taken from the same rows.

    Returns:
        ``(n_less, tied)``: ``#{g : d_g < t}`` and whether another item of the row equals
        ``t`` (the value also follows its first occurrence in the sorted row), both ``(Q, K)``.
    """
    num_q, num_g = distmat.shape
    n_less = torch.empty(thresh.shape, dtype=torch.long, device=distmat.device)
    tied = torch.empty(thresh.shape, dtype=torch.bool, device=distmat.device)
    step = max(1, CHUNK_ELEMENTS // num_g)
    for s in range(0, num_q, step):
        t = thresh[s : s + step]  # (C, K)
        sorted_dist = _sort_rows(distmat[s : s + step].contiguous())  # (C, G)
        n_less[s : s + step] = torch.searchsorted(sorted_dist, t)
        following = sorted_dist.gather(1, (n_less[s : s + step] + 1).clamp(max=num_g - 1))  # (C, K)
        tied[s : s + step] = (following == t) & (n_less[s : s + step] + 1 < num_g)
    return n_less, tied


def evaluate_fast(
    distmat: torch.Tensor,
    q_pids: torch.Tensor,
    g_pids: torch.Tensor,
    q_camids: torch.Tensor | None,
    g_camids: torch.Tensor | None,
    rule: str = "vcm",
    max_rank: int = 20,
) -> EvalResult:
    """Evaluate a query x gallery distance matrix from the ranks of the true matches.

    Same contract and results as :func:`reprolib.metrics.reference.evaluate_reference` (equal
    distances ordered by gallery index; CMC padded to ``max_rank``).

    Args:
        distmat: ``(num_q, num_g)`` floating distances without NaN, on any device; smaller
            is closer.
        q_pids: ``(num_q,)`` int64 query identities on the same device.
        g_pids: ``(num_g,)`` int64 gallery identities.
        q_camids: ``(num_q,)`` int64 query cameras (``None`` allowed under ``"bupt"``).
        g_camids: ``(num_g,)`` int64 gallery cameras (``None`` allowed under ``"bupt"``).
        rule: ``"vcm"`` (drop same pid AND same camid) or ``"bupt"`` (drop nothing).
        max_rank: length of the CMC curve.

    Returns:
        The :class:`~reprolib.metrics.result.EvalResult`.

    Raises:
        NoValidQueryError: if no query keeps a true match.
    """
    num_q, num_g = distmat.shape
    if rule != "vcm":
        q_camids = g_camids = None  # nothing is removed

    # The same-pid gallery items of every query, their distances and the camera rule.
    pids, table = _group_gallery_by_pid(g_pids)
    group = torch.searchsorted(pids, q_pids).clamp(max=len(pids) - 1)  # (Q,)
    cand = torch.where((pids[group] == q_pids)[:, None], table[group], num_g)  # (Q, K), num_g = none
    is_pos = cand < num_g  # (Q, K)
    cand = cand.clamp(max=num_g - 1)
    thresh = distmat.gather(1, cand).contiguous()  # (Q, K) distance of each same-pid item
    removed = None
    if q_camids is not None:
        removed = is_pos & (g_camids[cand] == q_camids[:, None])  # (Q, K) same pid and camera
        is_pos &= ~removed

    # rank(j) = #{g : d_g < d_j} - #{removed r : d_r < d_j} + #{kept g : d_g == d_j, g < j}
    rank, tied = _rank_in_rows(distmat, thresh)
    if removed is not None and removed.any():
        removed_dist = torch.where(removed, thresh, float("inf")).sort(dim=1).values  # (Q, K)
        rank -= torch.searchsorted(removed_dist.contiguous(), thresh)
    tied &= is_pos
    if tied.any():
        rows, cols = tied.nonzero(as_tuple=True)
        cams = None if q_camids is None else q_camids[rows]
        rank[rows, cols] += _count_tied_before(distmat, rows, cand[rows, cols], q_pids[rows], cams, g_pids, g_camids)
    return build_result(*_metrics_from_ranks(rank, is_pos, max_rank), rule)


def _metrics_from_ranks(
    rank: torch.Tensor, is_pos: torch.Tensor, max_rank: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-query CMC counts, AP and INP from the 0-based ranks of the true matches.

    Args:
        rank: ``(Q, K)`` rank of each candidate among the kept items (ignored where not
            ``is_pos``).
        is_pos: ``(Q, K)`` which candidates are kept true matches.
        max_rank: length of the CMC curve.

    Returns:
        ``(cmc_sum (max_rank,), ap (Q,), inp (Q,))`` as NumPy arrays, NaN for skipped queries.
    """
    num_rel = is_pos.sum(dim=1)  # (Q,) R
    valid = num_rel > 0
    slots = torch.arange(rank.shape[1], device=rank.device)  # (K,)
    position = torch.where(is_pos, rank, torch.iinfo(torch.long).max).sort(dim=1).values  # (Q, K) r_1 < ...
    position = position.to(torch.float64) + 1.0  # (Q, K) 1-based positions of the hits, padding last
    hit_no = (slots + 1).to(torch.float64)  # (K,) i = 1..K
    precision = torch.where(slots[None, :] < num_rel[:, None], hit_no / position, 0.0)  # (Q, K) i / (r_i + 1)
    rel = num_rel.to(torch.float64)
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=rank.device)
    ap = torch.where(valid, precision.sum(dim=1) / rel.clamp(min=1), nan)  # (Q,) mean precision at hits
    last = position.gather(1, (num_rel - 1).clamp(min=0)[:, None]).squeeze(1)  # (Q,) r_R + 1
    inp = torch.where(valid, rel / last, nan)  # (Q,) INP = R / (r_R + 1)
    first = position[:, 0][valid & (position[:, 0] <= max_rank)].long() - 1  # (n,) r_1 within the top max_rank
    cmc_sum = torch.cumsum(torch.bincount(first, minlength=max_rank), 0)  # (max_rank,)
    return cmc_sum.cpu().numpy(), ap.cpu().numpy(), inp.cpu().numpy()
