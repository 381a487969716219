"""Batch-hard triplet loss (Hermans et al., "In Defense of the Triplet Loss") and the pairwise
Euclidean distance shared with the WRT loss.

As X-ReID's code uses it (docs/decisions/xreid.md#loss-composition): Euclidean distance on **un-normalised**
(pre-BN) features, hardest positive and hardest negative searched over the whole batch (both
modalities mixed), margin 0.3, hinge ``max(0, d_ap - d_an + m)``; the soft-margin variant
``log(1 + exp(d_ap - d_an))`` is an option.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["euclidean_dist", "TripletLoss"]


def euclidean_dist(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise Euclidean distances ``sqrt(max(|x|^2 + |y|^2 - 2 x.y, 1e-12))``.

    Args:
        x: ``(m, D)``.
        y: ``(n, D)``.

    Returns:
        ``(m, n)`` distances; the 1e-12 clamp keeps the gradient finite at zero distance (so
        ``d_ii`` is ~1e-6, as in the official codes).
    """
    xx = x.pow(2).sum(dim=1, keepdim=True)  # (m, 1)
    yy = y.pow(2).sum(dim=1, keepdim=True).t()  # (1, n)
    dist = xx + yy - 2.0 * (x @ y.t())  # (m, n)
    return dist.clamp(min=1e-12).sqrt()


def hard_example_mining(dist: Tensor, same: Tensor) -> tuple[Tensor, Tensor]:
    """Hardest positive and negative distance of each row of an ``(m, n)`` distance matrix.

    Args:
        dist: ``(m, n)`` distances (anchors x candidates; square for intra-batch mining).
        same: ``(m, n)`` bool, True where anchor and candidate share the identity.

    Returns:
        ``(hardest_pos (m,), hardest_neg (m,))``; ``-inf`` / ``+inf`` where a row has none.
    """
    hardest_pos = dist.masked_fill(~same, float("-inf")).amax(dim=1)  # (m,)
    hardest_neg = dist.masked_fill(same, float("inf")).amin(dim=1)  # (m,)
    return hardest_pos, hardest_neg


class TripletLoss(nn.Module):
    """Batch-hard triplet loss over all samples of the batch.

    Args:
        margin: hinge margin m (X-ReID 0.3); ignored with ``soft_margin``.
        soft_margin: use ``log(1 + exp(d_ap - d_an))`` instead of the hinge.
        normalize: L2-normalise features first (off in X-ReID).
    """

    def __init__(self, margin: float = 0.3, soft_margin: bool = False, normalize: bool = False) -> None:
        super().__init__()
        self.margin = margin
        self.soft_margin = soft_margin
        self.normalize = normalize

    def forward(self, feats: Tensor, labels: Tensor) -> Tensor:
        """Loss of ``(N, D)`` features with ``(N,)`` labels (a scalar)."""
        feats = feats.float()
        if self.normalize:
            feats = F.normalize(feats, dim=1)
        dist = euclidean_dist(feats, feats)  # (N, N)
        same = labels.view(-1, 1) == labels.view(1, -1)  # (N, N), diagonal included
        hardest_pos, hardest_neg = hard_example_mining(dist, same)  # (N,), (N,)
        has_neg = torch.isfinite(hardest_neg)
        if not bool(has_neg.any()):
            return dist.sum() * 0.0  # one identity in the batch: no triplet
        gap = hardest_pos[has_neg] - hardest_neg[has_neg]  # (N',)
        if self.soft_margin:
            return F.softplus(gap).mean()
        return F.relu(gap + self.margin).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}, soft_margin={self.soft_margin}, normalize={self.normalize}"
