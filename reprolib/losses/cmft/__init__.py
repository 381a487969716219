"""Losses of CMFT (Mukhtar & Khan, "Progressive Learning in Cross-Modal Cross-scale Fusion
Transformer for Visible-Infrared Video-based Person Re-ID", section 3.4; reference/cmft.md 5, 6, 8).

* :class:`CMFTCriterion`: the entry point; ``criterion(features, epoch)`` returns the weighted
  active terms of eqs. 18-19 (L_ID excluded, it is the model's);
* :class:`CMFTLossOptions`: its frozen options (``from_dict`` validates ``model.extra`` keys);
* :func:`cmft_loss_weights`: the two-stage progressive schedule, a pure function;
* the terms: :class:`CrossLoss` (L_cross, eqs. 7-10), :class:`ModalitySharedRefinementLoss`
  (L_MSRL, eqs. 11-14), :class:`ModalityDiscriminativeLoss` (L_MDL, eqs. 15-17) and the
  Table-4 :class:`CrossModalityTripletStandIn` (an approximation of L_CMT);
* :data:`CMFT_LOSSES`: the same terms by name, unweighted (the ``cmft`` model's plug-in table);
* :data:`CMFT_OPTIM_PRESETS`: optimiser and schedule presets as config data.
"""
from __future__ import annotations

from reprolib.losses.cmft.cmt_standin import CrossModalityTripletStandIn
from reprolib.losses.cmft.criterion import CMFTCriterion
from reprolib.losses.cmft.cross import CrossLoss
from reprolib.losses.cmft.mdl import ModalityDiscriminativeLoss
from reprolib.losses.cmft.msrl import ModalitySharedRefinementLoss, pairwise_distance
from reprolib.losses.cmft.options import COMPARISONS, MDL_MODES, MSRL_DISTANCES, MSRL_FORMS, CMFTLossOptions
from reprolib.losses.cmft.presets import CMFT_OPTIM_PRESETS, cmft_optim_preset
from reprolib.losses.cmft.schedule import cmft_loss_weights, cmft_stage
from reprolib.losses.cmft.table import CMFT_LOSSES

__all__ = [
    "CMFTCriterion", "CMFTLossOptions", "cmft_loss_weights", "cmft_stage",
    "CrossLoss", "ModalitySharedRefinementLoss", "ModalityDiscriminativeLoss", "CrossModalityTripletStandIn",
    "pairwise_distance", "CMFT_LOSSES", "CMFT_OPTIM_PRESETS", "cmft_optim_preset",
    "MSRL_FORMS", "MSRL_DISTANCES", "MDL_MODES", "COMPARISONS",
]
