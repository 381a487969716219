"""The CMFT training criterion: every loss term except L_ID, weighted by the two-stage schedule.

``CMFTCriterion(options)(features, stage)`` returns the **weighted** active terms of eqs. 18-19
(L_ID is computed by the model, which sums everything):

* stage 1 (the warm phase, epochs ``[0, model.extra.warm_epochs)``): ``{"cross": L_cross}`` (eqs. 7-10), or, for a
  Table-4 comparison, ``{"wrt" | "hetero_center" | "cmt_standin": L}``;
* stage 2: ``{"msrl": lambda1 * L_MSRL, "mdl": lambda2 * L_MDL}`` (eq. 19), plus the stage-1
  term with weight 1 when ``stage2_keep_triplet`` (discrepancy #10). A term whose weight is 0
  (e.g. Table 5's single-loss rows with lambda1 = 0 or lambda2 = 0) is neither computed nor
  returned.

Table-4 comparison losses replace L_cross in stage 1 and leave stage 2 unchanged
(docs/decisions/cmft.md#c16-comparison-losses-and-citations). They act on the RGB/IR pair; the fused embedding gets:

* ``"wrt"``: WRT over the union of RGB and IR, plus WRT over the fused features (docs/decisions/cmft.md#c16-comparison-losses-and-citations:
  "over the union of r and u (and separately f)");
* ``"hetero_center"`` and ``"cmt_standin"``: both are two-modality losses without a
  single-space form, so the fused features keep eq. 9's intra-space batch-hard triplet.
"""
from __future__ import annotations

from typing import Mapping, Optional

import torch
from torch import Tensor, nn

from reprolib.models.cmft.losses.cmt_standin import CrossModalityTripletStandIn
from reprolib.models.cmft.losses.cross import CrossLoss
from reprolib.models.cmft.losses.mdl import ModalityDiscriminativeLoss
from reprolib.models.cmft.losses.msrl import ModalitySharedRefinementLoss
from reprolib.models.cmft.losses.options import CMFTLossOptions
from reprolib.models.cmft.losses.schedule import cmft_loss_weights
from reprolib.losses.hetero_center import HeteroCenterTripletLoss
from reprolib.losses.triplet import TripletLoss
from reprolib.losses.wrt import WeightedRegularizedTriplet

__all__ = ["CMFTCriterion"]

_BN_KEYS = ("rgb_bn", "ir_bn", "fused_bn")


class CMFTCriterion(nn.Module):
    """Weighted CMFT loss terms of one training step (see the module docstring).

    The criterion has no parameters or buffers.

    Args:
        options: the loss options (default: ``CMFTLossOptions()``, the paper's final model).
    """

    def __init__(self, options: Optional[CMFTLossOptions] = None) -> None:
        super().__init__()
        self.options = (options if options is not None else CMFTLossOptions()).validate("CMFTLossOptions")
        opt = self.options
        self.cross = CrossLoss(margin=opt.margin)
        self.msrl = ModalitySharedRefinementLoss(form=opt.msrl_form, distance=opt.msrl_distance)
        self.mdl = ModalityDiscriminativeLoss(mode=opt.mdl_mode)
        self.comparison: Optional[nn.Module] = None
        if opt.comparison == "wrt":
            self.comparison = WeightedRegularizedTriplet(legacy_numerics=opt.wrt_legacy_numerics)
        elif opt.comparison == "hetero_center":
            self.comparison = HeteroCenterTripletLoss(margin=opt.margin)
        elif opt.comparison == "cmt_standin":
            self.comparison = CrossModalityTripletStandIn(margin=opt.margin)
        self.fused_triplet = TripletLoss(margin=opt.margin)  # eq. 9 next to HCT / the L_CMT stand-in

    def weights(self, stage: int) -> dict[str, float]:
        """Schedule of :func:`~reprolib.models.cmft.losses.cmft_loss_weights` for these options."""
        return cmft_loss_weights(stage, self.options)

    def stage1_loss(self, rgb: Tensor, ir: Tensor, labels: Tensor, fused: Optional[Tensor]) -> Tensor:
        """Unweighted stage-1 term: L_cross (eq. 10) or the Table-4 comparison loss."""
        name = self.options.comparison
        if name == "none":
            return self.cross(rgb, ir, labels, fused)
        if name == "wrt":
            loss = self.comparison(torch.cat([rgb, ir]), torch.cat([labels, labels]))  # (2B, D) union
            return loss + self.comparison(fused, labels) if fused is not None else loss
        if name == "hetero_center":
            modality = torch.cat([torch.zeros_like(labels), torch.ones_like(labels)])  # (2B,): 0 RGB, 1 IR
            loss = self.comparison(torch.cat([rgb, ir]), torch.cat([labels, labels]), modality)
        else:  # cmt_standin
            loss = self.comparison(rgb, ir, labels, labels)
        return loss + self.fused_triplet(fused, labels) if fused is not None else loss

    def term(self, name: str, features: Mapping[str, Optional[Tensor]]) -> Tensor:
        """One **unweighted** term: ``"msrl"``, ``"mdl"`` or the stage-1 term (``options.stage1_term``).

        Args:
            name: the term.
            features: as in :meth:`forward`.

        Raises:
            ValueError: an unknown term, mismatched batch sizes, ``msrl_form="literal"``
                without fused features.
            KeyError: a required feature is missing.
        """
        missing = [k for k in ("rgb", "ir", "labels") if features.get(k) is None]
        if missing:
            raise KeyError(f"CMFTCriterion: features lacks {missing}; expected keys rgb, ir, fused, labels")
        rgb, ir, labels, fused = features["rgb"], features["ir"], features["labels"], features.get("fused")
        sizes = {k: len(v) for k, v in (("rgb", rgb), ("ir", ir), ("labels", labels), ("fused", fused))
                 if v is not None}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"CMFTCriterion: features must be paired row by row; got batch sizes {sizes}")
        if name == "msrl":
            if self.options.msrl_distance == "cosine" and self.options.msrl_cosine_features == "bn":
                needed = _BN_KEYS if self.options.msrl_form == "literal" else _BN_KEYS[:2]
                absent = [k for k in needed if features.get(k) is None]
                if absent:
                    raise KeyError(f"CMFTCriterion: cosine MSRL on BN features needs {absent} in features "
                                   "(or msrl_cosine_features='pre_bn')")
                rgb, ir, fused = features["rgb_bn"], features["ir_bn"], features.get("fused_bn")
            return self.msrl(rgb, ir, labels, fused)
        if name == "mdl":
            return self.mdl(rgb, ir, labels)
        if name == self.options.stage1_term:
            return self.stage1_loss(rgb, ir, labels, fused)
        raise ValueError(f"CMFTCriterion: unknown term {name!r}; expected msrl, mdl or {self.options.stage1_term}")

    def forward(self, features: Mapping[str, Optional[Tensor]], stage: int) -> dict[str, Tensor]:
        """Weighted active loss terms of training ``stage`` (1 or 2).

        Args:
            features: ``{"rgb": (B, D), "ir": (B, D), "fused": (B, D') or None, "labels": (B,)}``,
                the pre-BN embeddings Z^RGB, Z^IR, Z^Fusion of B RGB/IR pairs (row j of every
                tensor belongs to identity ``labels[j]``; ``fused`` may be absent). The BNNeck
                outputs ``rgb_bn``/``ir_bn``/``fused_bn`` are read only by the cosine MSRL with
                ``msrl_cosine_features="bn"``.
            stage: 1 (the warm phase) or 2.

        Returns:
            ``{name: weight * loss}`` for every term with a non-zero weight: ``"cross"`` (or the
            comparison's name), ``"msrl"``, ``"mdl"``.

        Raises:
            KeyError: a required key of ``features`` is missing.
            ValueError: mismatched batch sizes, or ``msrl_form="literal"`` without fused features.
        """
        return {name: weight * self.term(name, features)
                for name, weight in self.weights(stage).items() if weight != 0.0}

    def extra_repr(self) -> str:
        return f"options={self.options}"
