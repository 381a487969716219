"""Query x gallery distance matrices as the three codebases compute them.

* ``"cosine"``: ``1 - cos(q, g)`` (MITML/X-ReID rank by the cosine of L2-normalised features;
  BUPTCampus' ``cosine`` option).
* ``"euclidean"``: Euclidean distance between **L2-normalised** features, as BUPTCampus'
  official ``euclidean_dist``: ``sqrt(clamp(|q|^2 + |g|^2 - 2 q.g, min=1e-12))``.
* ``"inner"``: the negative raw inner product ``-q.g`` on **unnormalised** features (VLD).

For unit vectors ``|q - g|^2 = 2 - 2 cos(q, g)``, an increasing function of the cosine
distance, so ``"euclidean"`` and ``"cosine"`` give the same rankings and the same metrics.
This holds exactly in real arithmetic; in float32 the two roundings may swap or tie items
whose cosine distances differ by less than ~1e-7 (tested in float64).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

METRICS = ("cosine", "euclidean", "inner")


def _as_features(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """Return ``x`` as a floating ``(N, D)`` tensor, or raise naming the argument."""
    x = torch.as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"compute_distance: {name} must be a 2-D (N, D) feature matrix, got shape {tuple(x.shape)}")
    return x if x.is_floating_point() else x.float()


def compute_distance(
    qf: torch.Tensor | np.ndarray, gf: torch.Tensor | np.ndarray, metric: str = "cosine"
) -> torch.Tensor:
    """Compute the query x gallery distance matrix (smaller is more similar).

    Args:
        qf: ``(num_q, D)`` query features (tensor or array).
        gf: ``(num_g, D)`` gallery features, same ``D`` and device as ``qf``.
        metric: ``"cosine"``, ``"euclidean"`` (on L2-normalised features) or ``"inner"``
            (negative raw inner product).

    Returns:
        ``(num_q, num_g)`` distances in the features' dtype and device.

    Raises:
        ValueError: for an unknown metric or mismatched shapes.
    """
    if metric not in METRICS:
        raise ValueError(f"compute_distance: unknown metric {metric!r}; expected one of {METRICS}")
    qf, gf = _as_features(qf, "qf"), _as_features(gf, "gf")
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(
            f"compute_distance: feature sizes differ: qf has D={qf.shape[1]}, gf has D={gf.shape[1]}"
        )
    if metric == "inner":
        return -(qf @ gf.T)  # (Q, G)
    qf, gf = F.normalize(qf, dim=1), F.normalize(gf, dim=1)  # (Q, D), (G, D) unit rows
    if metric == "cosine":
        return 1.0 - qf @ gf.T  # (Q, G)
    sq = qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1)[None, :] - 2.0 * (qf @ gf.T)  # (Q, G)
    return sq.clamp(min=1e-12).sqrt()
