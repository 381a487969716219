"""Benchmark: the fast evaluator against the official per-query algorithm on a HITSZ-VCM-sized
problem (4,584 IR queries x 5,099 RGB gallery tracklets, 427 identities).

The "official-style" evaluator below reproduces *how* the official HITSZ-VCM code computes
the metric (MITML ``eval_metrics.evaluate``, shared by X-ReID and VLD; mINP as in MITML's
``eval_sysu``): a full per-row ``np.argsort`` of the matrix, a match matrix, then a Python
loop over queries with a Python-level list comprehension for the precisions. It is written
here from the protocol description (``docs/decisions/data.md#metric-algorithm``), for timing and as a second
independent check; it keeps numpy's default (unstable) argsort and MITML's truncation of
``max_rank`` to the gallery size.

Run: ``python -m reprolib.bench.eval --device cpu`` (or ``python -m reprolib bench eval``).
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from typing import Callable, Optional, Sequence, TypeVar

import numpy as np
import torch

from reprolib.metrics import compute_distance, evaluate

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Largest absolute difference allowed between the two evaluators (metrics are fractions).
TOLERANCE = 1e-6


def official_style_evaluate(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 20,
) -> tuple[np.ndarray, float, float]:
    """Evaluate the way the official HITSZ-VCM code does (per query, Python-level loops).

    Args:
        distmat: ``(num_q, num_g)`` distances.
        q_pids: ``(num_q,)`` query identities.
        g_pids: ``(num_g,)`` gallery identities.
        q_camids: ``(num_q,)`` query cameras.
        g_camids: ``(num_g,)`` gallery cameras.
        max_rank: CMC length, cut to ``num_g`` as the official code does.

    Returns:
        ``(cmc, mAP, mINP)`` with ``cmc`` of length ``min(max_rank, num_g)``.
    """
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    ranked = np.argsort(distmat, axis=1)  # (Q, G) numpy's default, non-stable sort
    matches = (g_pids[ranked] == q_pids[:, np.newaxis]).astype(np.int32)  # (Q, G)
    cmc_rows, aps, inps = [], [], []
    for q in range(num_q):
        order = ranked[q]
        drop = (g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q])
        hits = matches[q][np.invert(drop)]  # 0/1 over the kept items, in ranked order
        if not np.any(hits):
            continue
        cum = hits.cumsum()
        last_hit = np.max(np.where(hits == 1))
        inps.append(cum[last_hit] / (last_hit + 1.0))
        cum[cum > 1] = 1
        cmc_rows.append(cum[:max_rank])
        # The official precision loop: one Python iteration per gallery item (this dominates).
        precisions = [n / (i + 1.0) for i, n in enumerate(hits.cumsum())]
        aps.append((np.asarray(precisions) * hits).sum() / hits.sum())
    if not cmc_rows:
        raise ValueError("official_style_evaluate: no valid query")
    cmc = np.asarray(cmc_rows).astype(np.float32).sum(0) / len(cmc_rows)  # float32 as in the original
    return cmc, float(np.mean(aps)), float(np.mean(inps))


def make_problem(
    num_q: int, num_g: int, num_ids: int, seed: int, device: str = "cpu", feat_dim: int = 256, num_cams: int = 6,
    noise: float = 2.0,
) -> dict[str, torch.Tensor]:
    """Build a HITSZ-VCM-like retrieval problem with identity-structured features.

    Every identity gets an uneven share of tracklets in each modality (at least one when the
    sizes allow), appears in 2 to 4 of ``num_cams`` cameras shared by both modalities (so the
    same-pid-same-camera rule fires), and has features ``center + modality shift + camera
    bias + noise``, L2-normalised downstream by the cosine distance.

    Args:
        num_q: number of (IR) queries.
        num_g: number of (RGB) gallery items.
        num_ids: number of identities.
        seed: random seed.
        device: torch device of the returned tensors.
        feat_dim: feature size.
        num_cams: number of cameras.
        noise: per-dimension noise scale (2.0 gives R1 ~ 75%, mAP ~ 48%, in the range of
            published HITSZ-VCM results).

    Returns:
        Dict with ``distmat (Q, G)`` float32 cosine distances, ``q_pids``, ``g_pids``,
        ``q_camids``, ``g_camids`` (int64).
    """
    rng = np.random.default_rng(seed)
    share = rng.gamma(4.0, size=num_ids)
    share /= share.sum()
    cam_sets = [rng.choice(num_cams, size=rng.integers(2, min(4, num_cams) + 1), replace=False) for _ in range(num_ids)]

    def tracklet_ids(n: int) -> np.ndarray:
        base = np.arange(num_ids) if n >= num_ids else rng.choice(num_ids, size=n, replace=False)
        extra = rng.choice(num_ids, size=n - len(base), p=share)
        return rng.permutation(np.concatenate([base, extra]))

    q_pids, g_pids = tracklet_ids(num_q), tracklet_ids(num_g)
    q_cams = np.array([rng.choice(cam_sets[p]) for p in q_pids])
    g_cams = np.array([rng.choice(cam_sets[p]) for p in g_pids])

    centers = rng.normal(size=(num_ids, feat_dim))  # (P, D)
    modality = rng.normal(scale=0.4, size=(2, num_ids, feat_dim))  # (2, P, D) per-id modality shift
    cams = rng.normal(scale=0.3, size=(num_cams, feat_dim))  # (C, D)
    qf = centers[q_pids] + modality[0, q_pids] + cams[q_cams] + rng.normal(scale=noise, size=(num_q, feat_dim))
    gf = centers[g_pids] + modality[1, g_pids] + cams[g_cams] + rng.normal(scale=noise, size=(num_g, feat_dim))

    feats = [torch.as_tensor(f, dtype=torch.float32, device=device) for f in (qf, gf)]
    ids = [torch.as_tensor(a, dtype=torch.long, device=device) for a in (q_pids, g_pids, q_cams, g_cams)]
    return {
        "distmat": compute_distance(*feats, metric="cosine"),  # (Q, G)
        "q_pids": ids[0] + 501,  # raw test pids as in HITSZ-VCM (501..927)
        "g_pids": ids[1] + 501,
        "q_camids": ids[2] + 1,  # 1-based camera ids, shared by both modalities
        "g_camids": ids[3] + 1,
    }


def _timed(fn: Callable[[], T], device: str) -> tuple[T, float]:
    """Run ``fn`` and return its result and wall time, synchronising CUDA around it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def run_benchmark(
    num_q: int = 4584,
    num_g: int = 5099,
    num_ids: int = 427,
    seed: int = 0,
    device: str = "cpu",
    repeats: int = 5,
    threads: Optional[int] = None,
) -> dict:
    """Time the official-style evaluator against the fast path and check they agree.

    Args:
        num_q: number of queries (HITSZ-VCM ir2rgb: 4,584).
        num_g: number of gallery items (5,099).
        num_ids: number of identities (427).
        seed: seed of the synthetic problem.
        device: device of the fast path (``"cpu"`` or ``"cuda"``); the official-style
            evaluator always runs on CPU NumPy, as the official code does.
        repeats: timed runs of the fast path (after one warm-up); the median is reported.
        threads: torch intra-op threads during the run (restored afterwards); ``None`` keeps
            the current setting. On an oversubscribed CPU, ``1`` avoids paying a scheduler
            time slice on every small parallel torch op; both evaluators sort on one core.

    Returns:
        A JSON-serialisable dict with sizes, ``official_s``, ``fast_s`` (median),
        ``speedup`` (official_s / fast_s), the largest absolute differences, and the metrics.

    Raises:
        AssertionError: if the two evaluators differ by more than :data:`TOLERANCE`. The
            official argsort is not stable, so at exact float32 ties a query's AP may differ
            from ours in the last digits; the averages stay within ~1e-7.
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(num_q, num_g, num_ids, seed, device, repeats)
    finally:
        torch.set_num_threads(previous_threads)


def _run(num_q: int, num_g: int, num_ids: int, seed: int, device: str, repeats: int) -> dict:
    """Body of :func:`run_benchmark` (same arguments)."""
    prob = make_problem(num_q, num_g, num_ids, seed, device)
    args = [prob[k] for k in ("distmat", "q_pids", "g_pids", "q_camids", "g_camids")]
    np_args = [a.cpu().numpy() for a in args]

    logger.info("official-style evaluation of a %d x %d matrix (slow) ...", num_q, num_g)
    (cmc_off, map_off, minp_off), official_s = _timed(lambda: official_style_evaluate(*np_args), "cpu")
    logger.info("official-style: %.2f s", official_s)

    def fast():
        return evaluate(*args, rule="vcm", max_rank=20, backend="fast")

    res, _ = _timed(fast, device)  # warm-up
    fast_times = [_timed(fast, device)[1] for _ in range(repeats)]
    fast_s = statistics.median(fast_times)
    logger.info("fast: median %.4f s over %d runs", fast_s, repeats)

    diff = {
        "cmc": float(np.abs(res.cmc[: len(cmc_off)] - cmc_off).max()),
        "mAP": abs(res.mAP - map_off),
        "mINP": abs(res.mINP - minp_off),
    }
    if max(diff.values()) > TOLERANCE:
        raise AssertionError(f"fast and official-style evaluators disagree by more than {TOLERANCE}: {diff}")
    return {
        "num_q": num_q,
        "num_g": num_g,
        "num_ids": num_ids,
        "seed": seed,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "official_s": official_s,
        "fast_s": fast_s,
        "fast_runs_s": fast_times,
        "speedup": official_s / fast_s,
        "max_abs_diff": diff,
        "num_valid": res.num_valid,
        "metrics": res.to_dict(),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: parse ``--num-q --num-g --num-ids --device --seed --repeats --threads``; print JSON."""
    parser = argparse.ArgumentParser(prog="reprolib bench eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-q", type=int, default=4584)
    parser.add_argument("--num-g", type=int, default=5099)
    parser.add_argument("--num-ids", type=int, default=427)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: unchanged)")
    ns = parser.parse_args(argv)
    out = run_benchmark(ns.num_q, ns.num_g, ns.num_ids, ns.seed, ns.device, ns.repeats, ns.threads)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
