"""X-ReID's Cross-Modality Constraint Loss (CMCL, paper eq. 9).

    L_CMCL = (1 / PK) sum_i || O_bar_i - O_CMII_i ||_2^2

O_bar_i is a clip's sequence feature from an MII branch (SII or LII) and O_CMII_i the same
feature after interacting with the same identity's other-modality clip (CII,
:class:`reprolib.models.xreid.mii.CrossModalityInteraction`). No released code exists
(docs/decisions/xreid.md#d2-cii-and-cmcl, discrepancies D2 and D21): the squared L2 distance is **summed over
channels and averaged over the PK clips** of one modality; the model sums the four terms
{SII, LII} x {vis, ir}.

Options (remedies, docs/decisions/xreid.md#d21-cmcl-reduction, against a degenerate solution and the raw-norm scale):
``normalize`` compares L2-normalised features (each term then lies in [0, 4]);
``stop_grad`` stops the gradient through the target O_bar (the paper is silent; by default
both terms receive gradients).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["cmcl_loss"]


def cmcl_loss(seq_feat: Tensor, interacted: Tensor, normalize: bool = False, stop_grad: bool = False) -> Tensor:
    """CMCL of one branch and direction (paper eq. 9).

    Args:
        seq_feat: ``(PK, D)`` O_bar, the branch's sequence features.
        interacted: ``(PK, D)`` O_CMII, the same features after cross-modality interaction.
        normalize: L2-normalise both features first.
        stop_grad: detach ``seq_feat`` (the target).

    Returns:
        Scalar ``mean_i sum_c (O_bar_ic - O_CMII_ic)^2``; zero exactly when the features agree.
    """
    if seq_feat.shape != interacted.shape or seq_feat.dim() != 2:
        raise ValueError(f"cmcl_loss expects two (PK, D) tensors, got {tuple(seq_feat.shape)} and "
                         f"{tuple(interacted.shape)}")
    a, b = seq_feat.float(), interacted.float()
    if stop_grad:
        a = a.detach()
    if normalize:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    return (a - b).pow(2).sum(dim=1).mean()
