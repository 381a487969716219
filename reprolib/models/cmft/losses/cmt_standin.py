"""STAND-IN for L_CMT (Jiang et al., "Cross-Modality Transformer for Visible-Infrared Person
Re-Identification", ECCV 2022), a Table-4 comparison loss of CMFT.

**This is not the published L_CMT.** Its definition has no public code or text that could be
checked (docs/decisions/cmft.md#c16-comparison-losses-and-citations, discrepancy #16). The stand-in is a bi-directional
cross-modality batch-hard triplet: an RGB anchor mines its hardest positive and hardest
negative among the IR samples only, an IR anchor among the RGB samples only, margin 0.1::

    L = mean_j [max_{k: y_k = y_j} d(r_j, u_k) - min_{k: y_k != y_j} d(r_j, u_k) + m]_+
      + mean_j [max_{k: y_k = y_j} d(u_j, r_k) - min_{k: y_k != y_j} d(u_j, r_k) + m]_+

with Euclidean distances of raw embeddings. Results with it must be labelled as an
approximation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.losses.triplet import euclidean_dist, hard_example_mining

__all__ = ["CrossModalityTripletStandIn"]


def _rectangular_batch_hard(dist: Tensor, same: Tensor, margin: float) -> Tensor:
    """Hinge of the hardest positive and negative of each row of an ``(m, n)`` distance matrix.

    :class:`reprolib.losses.TripletLoss` mines a square intra-set matrix; the cross-modal
    stand-in needs the anchors of one set against the candidates of the other.
    """
    hardest_pos, hardest_neg = hard_example_mining(dist, same)  # (m,), (m,)
    ok = torch.isfinite(hardest_pos) & torch.isfinite(hardest_neg)  # anchors with both
    if not bool(ok.any()):
        return dist.sum() * 0.0
    return F.relu(hardest_pos[ok] - hardest_neg[ok] + margin).mean()


class CrossModalityTripletStandIn(nn.Module):
    """Stand-in for L_CMT: bi-directional cross-modality batch-hard triplet (see the module docstring).

    Args:
        margin: hinge margin (0.1).
    """

    def __init__(self, margin: float = 0.1) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, rgb: Tensor, ir: Tensor, labels_rgb: Tensor, labels_ir: Tensor) -> Tensor:
        """Loss of ``(B, D)`` RGB and ``(B', D)`` IR embeddings with their labels (a scalar)."""
        dist = euclidean_dist(rgb.float(), ir.float())  # (B, B'): d(r_j, u_k)
        same = labels_rgb.view(-1, 1) == labels_ir.view(1, -1)  # (B, B')
        return (_rectangular_batch_hard(dist, same, self.margin)  # RGB -> IR
                + _rectangular_batch_hard(dist.t(), same.t(), self.margin))  # IR -> RGB

    def extra_repr(self) -> str:
        return f"margin={self.margin}, stand_in_for='L_CMT (Jiang et al., ECCV 2022)'"
