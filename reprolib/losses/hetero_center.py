"""Hetero-center triplet loss (Liu, Tan & Zhou, "Parameter Sharing Exploration and Hetero-Center
Triplet Loss for Visible-Thermal Person Re-Identification", TMM 2020), a Table-4 comparison
loss of CMFT (docs/decisions/cmft.md#c16-comparison-losses-and-citations).

The batch is summarised by one centre per (identity, modality): for P identities in two
modalities, 2P centres c^R_y and c^I_y. The batch-hard triplet loss is then applied to the
centres with their identity labels::

    L_hc = (1 / 2P) sum_{centres c} [ max_{c' : y(c') = y(c)} ||c - c'|| - min_{c' : y(c') != y(c)} ||c - c'|| + m ]_+

so the hardest positive of c^R_y is c^I_y (the centre itself is at distance ~0) and the hardest
negative is the nearest centre of another identity in either modality. The official code
chunks the batch into identity-ordered blocks; here the centres are computed from the labels,
so any batch order works. The mining is :class:`reprolib.losses.TripletLoss` on the centres.
HCT's margin is 0.3; CMFT states m = 0.1 for its margins and passes it (docs/decisions/cmft.md#c16-comparison-losses-and-citations).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.losses.triplet import TripletLoss

__all__ = ["group_centers", "HeteroCenterTripletLoss"]


def group_centers(feats: Tensor, groups: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean feature of every group of rows (an identity, or an identity x modality pair).

    Args:
        feats: ``(N, D)`` features.
        groups: ``(N,)`` integer group of each row, or ``(N, k)`` integer keys (rows with equal
            keys form a group).

    Returns:
        ``(centers (G, D), keys (G,) or (G, k), member (G, N) bool)``: the G groups in sorted
        key order, their keys and the membership mask.
    """
    if groups.dim() == 1:
        keys, inverse = torch.unique(groups, return_inverse=True)  # (G,), (N,)
    else:
        keys, inverse = torch.unique(groups, dim=0, return_inverse=True)  # (G, k), (N,)
    member = F.one_hot(inverse, len(keys)).t().bool()  # (G, N)
    weights = member.to(feats.dtype)  # (G, N)
    centers = weights @ feats / weights.sum(dim=1, keepdim=True)  # (G, D)
    return centers, keys, member


class HeteroCenterTripletLoss(nn.Module):
    """Batch-hard triplet loss over the (identity, modality) centres of a batch.

    Args:
        margin: hinge margin m (0.3 in HCT; CMFT passes its m = 0.1).
    """

    def __init__(self, margin: float = 0.3) -> None:
        super().__init__()
        self.triplet = TripletLoss(margin=margin)

    def forward(self, feats: Tensor, labels: Tensor, modality: Tensor) -> Tensor:
        """Loss of ``(N, D)`` features with ``(N,)`` identity labels and ``(N,)`` modality codes.

        Returns:
            A scalar; 0 (with the graph kept) when the batch holds a single identity.
        """
        keys = torch.stack([labels, modality], dim=1)  # (N, 2)
        centers, center_keys, _ = group_centers(feats.float(), keys)  # (G, D), (G, 2)
        return self.triplet(centers, center_keys[:, 0])

    def extra_repr(self) -> str:
        return f"margin={self.triplet.margin}"
