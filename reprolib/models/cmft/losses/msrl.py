"""Modality-Shared Refinement Loss L_MSRL (CMFT eqs. 11-14; docs/decisions/cmft.md#losses).

For every anchor j of a batch of P identities x K RGB/IR pairs (features r_j, u_j, f_j and
labels y_j; D a Euclidean or cosine distance), the mean distances to the other positives of the
same space are (eqs. 11 and 12, with the paper's 1/K and "i != j over N" read as the mean over
the K - 1 other samples of the identity, discrepancy #11)::

    intra^R_j = mean_{k != j, y_k = y_j} D(r_j, r_k)
    intra^I_j = mean_{k != j, y_k = y_j} D(u_j, u_k)

Two readings of the "cross-modality" distance (discrepancy #11):

* ``form="literal"`` (default, eq. 13 as printed): cross_j = mean_{k != j, y_k = y_j} D(f_j, f_k),
  in the fused space, and (eq. 14 with its "sum_{P=1}^{2N}" read as one sum over anchors)::

      L = 1 / (2 P K) sum_j [(intra^R_j - cross_j)^2 + (intra^I_j - cross_j)^2]

* ``form="pmt"`` (PMT's MSEL, which section 3.4.2's text paraphrases): the cross distance of
  an RGB anchor is to the IR samples of its identity and vice versa (the paired sample
  included, K terms)::

      cross^R_j = mean_{k: y_k = y_j} D(r_j, u_k)      cross^I_j = mean_{k: y_k = y_j} D(u_j, r_k)
      L = 1/2 [mean_j (cross^R_j - intra^R_j)^2 + mean_j (cross^I_j - intra^I_j)^2]

Both have the same normalisation (a mean over anchors of half the summed squares). Anchors
without another sample of their identity (K = 1) are left out; a batch without any such
anchor gives a zero loss that keeps the graph.

``distance="cosine"`` is 1 - cos(a, b) on the features given (Table 5's "MSFL_cosine"). PMT's
MSEL_Cos is applied to post-BN features; this loss does not know about the BNNeck, so the
caller decides which features it receives (CMFT: the pre-BN embeddings, docs/decisions/cmft.md#dual-stream-extractor).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.losses.triplet import euclidean_dist

__all__ = ["pairwise_distance", "ModalitySharedRefinementLoss"]


def pairwise_distance(x: Tensor, y: Tensor, distance: str = "euclidean") -> Tensor:
    """Pairwise distances of ``(m, D)`` and ``(n, D)`` features.

    Args:
        x: ``(m, D)``.
        y: ``(n, D)``.
        distance: ``"euclidean"`` (:func:`reprolib.losses.euclidean_dist`) or ``"cosine"``
            (``1 - cos``).

    Returns:
        ``(m, n)`` distances.
    """
    if distance == "euclidean":
        return euclidean_dist(x, y)
    if distance == "cosine":
        return 1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()  # (m, n)
    raise ValueError(f"msrl_distance: expected 'euclidean' or 'cosine'; got {distance!r}")


def _masked_row_mean(dist: Tensor, mask: Tensor) -> Tensor:
    """Mean of each row of ``dist`` over ``mask`` (0 where the row's mask is empty)."""
    count = mask.sum(dim=1).clamp(min=1)  # (m,)
    return (dist * mask).sum(dim=1) / count  # (m,)


class ModalitySharedRefinementLoss(nn.Module):
    """L_MSRL (eqs. 11-14); see the module docstring for both forms.

    Args:
        form: ``"literal"`` (eq. 13: cross distance in the fused space) or ``"pmt"`` (RGB-IR
            cross distance, PMT's MSEL); discrepancy #11.
        distance: ``"euclidean"`` or ``"cosine"`` (Table 5).
    """

    def __init__(self, form: str = "literal", distance: str = "euclidean") -> None:
        super().__init__()
        if form not in ("literal", "pmt"):
            raise ValueError(f"msrl_form: expected 'literal' or 'pmt'; got {form!r}")
        if distance not in ("euclidean", "cosine"):
            raise ValueError(f"msrl_distance: expected 'euclidean' or 'cosine'; got {distance!r}")
        self.form = form
        self.distance = distance

    def forward(self, rgb: Tensor, ir: Tensor, labels: Tensor, fused: Optional[Tensor] = None) -> Tensor:
        """Loss of paired features (a scalar).

        Args:
            rgb: ``(B, D)`` RGB embeddings r_j.
            ir: ``(B, D)`` IR embeddings u_j (row j has the identity of ``rgb`` row j).
            labels: ``(B,)`` identity labels shared by the rows.
            fused: ``(B, D')`` fused embeddings f_j; required by ``form="literal"``.

        Raises:
            ValueError: ``form="literal"`` without fused features.
        """
        rgb, ir = rgb.float(), ir.float()
        same = labels.view(-1, 1) == labels.view(1, -1)  # (B, B)
        others = (same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)).float()  # (B, B)
        valid = others.sum(dim=1) > 0  # (B,) anchors with another positive
        intra_r = _masked_row_mean(pairwise_distance(rgb, rgb, self.distance), others)  # (B,)
        intra_i = _masked_row_mean(pairwise_distance(ir, ir, self.distance), others)  # (B,)
        if self.form == "literal":
            if fused is None:
                raise ValueError("msrl_form='literal' needs the fused features (eq. 13's D^Cross); "
                                 "use msrl_form='pmt' for a model without Z^Fusion")
            cross = _masked_row_mean(pairwise_distance(fused.float(), fused.float(), self.distance), others)  # (B,)
            cross_r, cross_i = cross, cross
        else:
            d_ri = pairwise_distance(rgb, ir, self.distance)  # (B, B): D(r_j, u_k)
            cross_r = _masked_row_mean(d_ri, same.float())  # (B,)
            cross_i = _masked_row_mean(d_ri.t(), same.float())  # (B,): D(u_j, r_k)
        if not bool(valid.any()):
            return (intra_r.sum() + cross_r.sum()) * 0.0  # K = 1: no positive pair in a space
        sq = (intra_r - cross_r).pow(2) + (intra_i - cross_i).pow(2)  # (B,)
        return 0.5 * sq[valid].mean()

    def extra_repr(self) -> str:
        return f"form={self.form!r}, distance={self.distance!r}"
