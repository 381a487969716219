"""Modality Discriminative Loss L_MDL (CMFT eqs. 15-17; PMT's DCL; docs/decisions/cmft.md#losses).

Samples are the RGB and IR embeddings of a batch, S = {r_j} U {u_j} (2PK items). Per identity
y of the batch, with Euclidean distances::

    c_y       = mean_{z in S, label y} z                                   (eq. 15, both modalities)
    n_{y,k}   = ||z_k - c_y||_2 for the samples z_k of other identities
    d^neg_y   = mean_k n_{y,k}                                             (eq. 16, dynamic margin)
    pos_y     = mean_{k: y_k = y} ||z_k - c_y||_2
    neg_y     = mean_{k in N_y} n_{y,k}
    L_MDL     = (sum_y pos_y) / (sum_y neg_y)                              (eq. 17)

Eq. 16's normalisation "1/(2N) (P - 1)" is read as the mean over the 2K(P - 1) negatives and
eq. 17's garbled denominator "mean_{f_k = c_yi}" as the mean over the selected negatives N_y
(discrepancy #12). The negative selection N_y (Table 5):

* ``"dynamic"`` (DCL_dyn, default): the negatives nearer than d^neg_y. When every negative is
  at the same distance none is strictly nearer, and all of them are used;
* ``"all"`` (DCL_all): every negative;
* ``"hard"`` (DCL_hard): only the nearest negative.

Selection uses explicit label masks (PMT filters distances by "> 1e-6", which also drops a
sample that coincides with a centre). The numerator is eq. 17's sum of per-identity means;
for the balanced P x K batches of the identity sampler it equals PMT's global mean over all
positive centre-sample distances. A batch with a single identity has no negative and gives a
zero loss that keeps the graph.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from reprolib.losses.hetero_center import group_centers
from reprolib.losses.triplet import euclidean_dist

__all__ = ["ModalityDiscriminativeLoss"]


class ModalityDiscriminativeLoss(nn.Module):
    """L_MDL (eqs. 15-17); see the module docstring.

    Args:
        mode: ``"dynamic"`` (default), ``"all"`` or ``"hard"`` negative selection (Table 5).
    """

    def __init__(self, mode: str = "dynamic") -> None:
        super().__init__()
        if mode not in ("dynamic", "all", "hard"):
            raise ValueError(f"mdl_mode: expected 'dynamic', 'all' or 'hard'; got {mode!r}")
        self.mode = mode

    def forward(self, rgb: Tensor, ir: Tensor, labels: Tensor) -> Tensor:
        """Loss of paired features (a scalar).

        Args:
            rgb: ``(B, D)`` RGB embeddings.
            ir: ``(B, D)`` IR embeddings (row j has the identity of ``rgb`` row j).
            labels: ``(B,)`` identity labels shared by the rows.
        """
        feats = torch.cat([rgb, ir]).float()  # (2B, D): S = {r_j} U {u_j}
        all_labels = torch.cat([labels, labels])  # (2B,)
        centers, _, pos = group_centers(feats, all_labels)  # (P, D), (P, 2B)
        dist = euclidean_dist(centers, feats)  # (P, 2B)
        pos_mean = (dist * pos).sum(dim=1) / pos.sum(dim=1)  # (P,)
        neg = ~pos  # (P, 2B)
        if len(centers) < 2:
            return dist.sum() * 0.0  # one identity: no negative
        if self.mode == "hard":
            neg_mean = dist.masked_fill(pos, float("inf")).amin(dim=1)  # (P,)
        else:
            if self.mode == "dynamic":
                d_neg = (dist * neg).sum(dim=1, keepdim=True) / neg.sum(dim=1, keepdim=True)  # (P, 1), eq. 16
                nearest = dist.masked_fill(pos, float("inf")).amin(dim=1, keepdim=True)  # (P, 1)
                neg = neg & ((dist < d_neg) | (dist <= nearest))  # (P, 2B); all when every n is equal
            neg_mean = (dist * neg).sum(dim=1) / neg.sum(dim=1)  # (P,)
        return pos_mean.sum() / neg_mean.sum()

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
