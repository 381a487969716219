"""Weighted regularised triplet (WRT) loss of AGW (Ye et al., "Deep Learning for Person
Re-identification: A Survey and Outlook"), as VLD uses it: eqs. (4) and (13) of the VLD paper.

For anchor i with positive set P_i (same identity, **the anchor itself included**, d_ii ~ 1e-6)
and negative set N_i, over the whole batch (both modalities mixed)::

    w^p_ij = exp(d_ij) / sum_{j' in P_i} exp(d_ij')        D^p_i = sum_j w^p_ij d_ij
    w^n_ik = exp(-d_ik) / sum_{k' in N_i} exp(-d_ik')      D^n_i = sum_k w^n_ik d_ik
    L_wrt  = (1/n_b) sum_i log(1 + exp(D^p_i - D^n_i))     (SoftMarginLoss(D^n - D^p, +1))

on Euclidean distances ``sqrt(max(., 1e-12))`` of un-normalised features, weights **not**
detached.

``legacy_numerics=True`` (default) reproduces VLD/AGW's code exactly (docs/decisions/vld.md#v26-wrt-numerics):
the softmax denominators get ``+ 1e-6``, the positive branch is shifted by the row maximum of
the positive distances, and the negative branch by **0** (the maximum of the masked ``-d`` is
taken with zeros at non-negative positions). When every negative distance exceeds ~14,
sum exp(-d) becomes comparable to 1e-6, the negative weights sum to less than one and D^n
(with it the negative term) fades away. ``legacy_numerics=False`` is the clean masked softmax
of eq. (4) (per-branch max shift, no epsilon): identical at small distances, different at
large ones (e.g. VLD's z_last, the un-normalised residual stream).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.losses.triplet import euclidean_dist

__all__ = ["WeightedRegularizedTriplet"]

LEGACY_EPS = 1e-6


def _legacy_softmax_weights(scores: Tensor, mask: Tensor) -> Tensor:
    """AGW's ``softmax_weights``: shift by the row max of ``scores * mask``, ``+1e-6`` in the sum."""
    shift = (scores * mask).amax(dim=1, keepdim=True)  # (N, 1); 0 for the negative branch
    expd = torch.exp(scores - shift)  # (N, N)
    denom = (expd * mask).sum(dim=1, keepdim=True) + LEGACY_EPS  # (N, 1)
    return expd * mask / denom


def _masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Row softmax of ``scores`` restricted to ``mask``; all-zero rows where the mask is empty."""
    masked = scores.masked_fill(mask == 0, float("-inf"))  # (N, N)
    shift = masked.amax(dim=1, keepdim=True)  # (N, 1)
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    expd = torch.exp(masked - shift)  # (N, N), 0 outside the mask
    denom = expd.sum(dim=1, keepdim=True)  # (N, 1)
    return expd / torch.where(denom > 0, denom, torch.ones_like(denom))


class WeightedRegularizedTriplet(nn.Module):
    """WRT loss (VLD eqs. 4 and 13).

    Args:
        legacy_numerics: reproduce the official shift and 1e-6 epsilon (``loss.wrt_legacy_numerics``).
        normalize: L2-normalise features first (off in VLD).
    """

    def __init__(self, legacy_numerics: bool = True, normalize: bool = False) -> None:
        super().__init__()
        self.legacy_numerics = legacy_numerics
        self.normalize = normalize

    def weighted_distances(self, feats: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Softmax-weighted positive and negative distances ``(D^p, D^n)``, each ``(N,)``."""
        feats = feats.float()  # VLD casts to fp32 (also under autocast)
        if self.normalize:
            feats = F.normalize(feats, dim=1)
        dist = euclidean_dist(feats, feats)  # (N, N)
        is_pos = (labels.view(-1, 1) == labels.view(1, -1)).float()  # (N, N), anchor included
        is_neg = 1.0 - is_pos
        dist_ap = dist * is_pos  # (N, N)
        dist_an = dist * is_neg  # (N, N)
        if self.legacy_numerics:
            w_ap = _legacy_softmax_weights(dist_ap, is_pos)
            w_an = _legacy_softmax_weights(-dist_an, is_neg)
        else:
            w_ap = _masked_softmax(dist, is_pos)
            w_an = _masked_softmax(-dist, is_neg)
        return (dist_ap * w_ap).sum(dim=1), (dist_an * w_an).sum(dim=1)

    def forward(self, feats: Tensor, labels: Tensor) -> Tensor:
        """Loss of ``(N, D)`` features with ``(N,)`` labels (a scalar)."""
        d_pos, d_neg = self.weighted_distances(feats, labels)  # (N,), (N,)
        return F.soft_margin_loss(d_neg - d_pos, torch.ones_like(d_neg))

    def extra_repr(self) -> str:
        return f"legacy_numerics={self.legacy_numerics}, normalize={self.normalize}"
