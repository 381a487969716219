"""Cross-modal loss L_cross of CMFT's first stage (eqs. 7-10; docs/decisions/cmft.md#losses).

A batch-hard triplet loss **within** each space: RGB (eq. 7), IR (eq. 8) and fused (eq. 9),
positives and negatives mined among the samples of the same space only (PMT's stage-1
scheme), on raw (pre-BN) embeddings with Euclidean distance and margin m = 0.1::

    L_cross = TriBH(r) + TriBH(u) + TriBH(f)                             (eq. 10)

Each TriBH is :class:`reprolib.losses.TripletLoss` (a mean over anchors instead of eq. 7's
sum, docs/decisions/cmft.md#losses). Models without a fused embedding (Table 2's score-fusion
baselines) drop the fused term.
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from reprolib.losses.triplet import TripletLoss

__all__ = ["CrossLoss"]


class CrossLoss(nn.Module):
    """L_cross (eq. 10): the sum of the intra-space batch-hard triplets of eqs. 7-9.

    Args:
        margin: hinge margin m (0.1).
    """

    def __init__(self, margin: float = 0.1) -> None:
        super().__init__()
        self.triplet = TripletLoss(margin=margin)

    def forward(self, rgb: Tensor, ir: Tensor, labels: Tensor, fused: Optional[Tensor] = None) -> Tensor:
        """Loss of ``(B, D)`` RGB, IR and (optional) fused embeddings with ``(B,)`` labels."""
        loss = self.triplet(rgb, labels) + self.triplet(ir, labels)  # eqs. 7 + 8
        if fused is not None:
            loss = loss + self.triplet(fused, labels)  # eq. 9
        return loss

    def extra_repr(self) -> str:
        return f"margin={self.triplet.margin}"
