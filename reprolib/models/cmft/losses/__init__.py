"""Losses of CMFT (Mukhtar & Khan, "Progressive Learning in Cross-Modal Cross-scale Fusion
Transformer for Visible-Infrared Video-based Person Re-ID", section 3.4; docs/decisions/cmft.md#losses).
Only the ``cmft`` family uses them, so they live with it; the shared losses they build on
(triplet, WRT, hetero-center) are in :mod:`reprolib.losses`.

* :data:`CMFT_LOSSES`: the terms by name, unweighted (the ``cmft`` model's plug-in table; the
  model owns the stage switch, ``model.extra.warm_epochs``, and the weights);
* :class:`CMFTCriterion`: the all-in-one alternative; ``criterion(features, stage)`` returns the
  weighted active terms of eqs. 18-19 (L_ID excluded, it is the model's);
* :class:`CMFTLossOptions`: its frozen options (``from_dict`` validates ``model.extra`` keys);
* :func:`cmft_loss_weights`: the two-stage progressive schedule, a pure function of the stage;
* the terms: :class:`CrossLoss` (L_cross, eqs. 7-10), :class:`ModalitySharedRefinementLoss`
  (L_MSRL, eqs. 11-14), :class:`ModalityDiscriminativeLoss` (L_MDL, eqs. 15-17) and the
  Table-4 :class:`CrossModalityTripletStandIn` (an approximation of L_CMT).
"""
from __future__ import annotations

from reprolib.models.cmft.losses.cmt_standin import CrossModalityTripletStandIn
from reprolib.models.cmft.losses.criterion import CMFTCriterion
from reprolib.models.cmft.losses.cross import CrossLoss
from reprolib.models.cmft.losses.mdl import ModalityDiscriminativeLoss
from reprolib.models.cmft.losses.msrl import ModalitySharedRefinementLoss, pairwise_distance
from reprolib.models.cmft.losses.options import (COMPARISONS, MDL_MODES, MSRL_DISTANCES, MSRL_FORMS,
                                                 CMFTLossOptions)
from reprolib.models.cmft.losses.schedule import cmft_loss_weights
from reprolib.models.cmft.losses.table import CMFT_LOSSES

__all__ = [
    "CMFTCriterion", "CMFTLossOptions", "cmft_loss_weights",
    "CrossLoss", "ModalitySharedRefinementLoss", "ModalityDiscriminativeLoss", "CrossModalityTripletStandIn",
    "pairwise_distance", "CMFT_LOSSES",
    "MSRL_FORMS", "MSRL_DISTANCES", "MDL_MODES", "COMPARISONS",
]
