"""Options of the CMFT losses (Mukhtar & Khan, section 3.4; docs/decisions/cmft.md#losses).

One frozen dataclass, :class:`CMFTLossOptions`, holds every choice of the loss side of CMFT:
the MSRL form and distance (Table 5), the MDL negative selection (Table 5), the loss weights
lambda1/lambda2 (eq. 19; Figs. 6 and 7), the triplet margin, the two-stage schedule and the
Table-4 comparison loss that replaces L_cross in stage 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from reprolib.config import from_dict

__all__ = ["CMFTLossOptions", "MSRL_FORMS", "MSRL_DISTANCES", "MDL_MODES", "COMPARISONS"]

MSRL_FORMS = ("literal", "pmt")
MSRL_DISTANCES = ("euclidean", "cosine")
MDL_MODES = ("dynamic", "all", "hard")
COMPARISONS = ("none", "wrt", "hetero_center", "cmt_standin")


def _check_choice(where: str, key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{where}.{key}: expected one of {', '.join(repr(c) for c in choices)}; got {value!r}")


@dataclass(frozen=True)
class CMFTLossOptions:
    """Loss options of CMFT.

    Attributes:
        msrl_form: ``"literal"`` (default): eq. 13's "cross" distance is the mean distance
            between fused features of the same identity, D^Cross_j = mean_k D(f_j, f_k);
            ``"pmt"``: PMT's MSEL, the cross distance is between an RGB anchor and the IR
            samples of its identity (and vice versa), discrepancy #11.
        msrl_distance: ``"euclidean"`` (default; Table 5's best row) or ``"cosine"``
            (1 - cosine similarity; Table 5's "MSFL_cosine", MSFL = MSRL, discrepancy #13).
        mdl_mode: negatives of each identity centre in eq. 17: ``"dynamic"`` (default; those
            nearer than the mean negative distance d^neg of eq. 16), ``"all"`` or ``"hard"``
            (the nearest one); Table 5's DCL_dyn / DCL_all / DCL_hard (DCL = MDL, #13; eqs. 16-17
            as cleaned up in #12).
        lambda1: weight of L_MSRL in stage 2 (eq. 19; 0.3, Fig. 6). 0 switches MSRL off.
        lambda2: weight of L_MDL in stage 2 (eq. 19; 0.7, Fig. 7). 0 switches MDL off.
        margin: triplet margin m of eqs. 7-9 (0.1, section 4.2); also used by the
            hetero-center and L_CMT stand-in comparison losses.
        stage2_keep_triplet: keep the stage-1 term (weight 1) in stage 2, as PMT's code does
            (PMT's stage-2 triplet mines across modalities; here the stage-1 term is kept as it
            is); off by default because eq. 19 drops it (discrepancy #10).
        comparison: stage-1 cross-modal loss (Table 4): ``"none"`` (L_cross, eqs. 7-10),
            ``"wrt"``, ``"hetero_center"`` or ``"cmt_standin"`` (an approximation of L_CMT,
            whose definition is not public; discrepancy #16).
        msrl_cosine_features: features of the cosine MSRL: ``"bn"`` (default; the BNNeck outputs
            ``rgb_bn``/``ir_bn``/``fused_bn`` of the features dict, as PMT's MSEL_Cos,
            docs/decisions/cmft.md#losses) or ``"pre_bn"`` (the embeddings of every other term).
        wrt_legacy_numerics: AGW's code numerics for the ``"wrt"`` comparison (see
            :class:`reprolib.losses.WeightedRegularizedTriplet`); off by default, i.e. the
            clean softmax of the WRT formula.
    """

    msrl_form: str = "literal"
    msrl_distance: str = "euclidean"
    mdl_mode: str = "dynamic"
    lambda1: float = 0.3
    lambda2: float = 0.7
    margin: float = 0.1
    stage2_keep_triplet: bool = False
    comparison: str = "none"
    msrl_cosine_features: str = "bn"
    wrt_legacy_numerics: bool = False

    def validate(self, where: str = "model.extra") -> "CMFTLossOptions":
        """Check every value; errors name ``<where>.<key>`` and what was expected.

        Returns:
            ``self``, for chaining.
        """
        _check_choice(where, "msrl_form", self.msrl_form, MSRL_FORMS)
        _check_choice(where, "msrl_distance", self.msrl_distance, MSRL_DISTANCES)
        _check_choice(where, "mdl_mode", self.mdl_mode, MDL_MODES)
        _check_choice(where, "comparison", self.comparison, COMPARISONS)
        _check_choice(where, "msrl_cosine_features", self.msrl_cosine_features, ("bn", "pre_bn"))
        for key in ("lambda1", "lambda2", "margin"):
            if getattr(self, key) < 0:
                raise ValueError(f"{where}.{key}: expected a number >= 0; got {getattr(self, key)!r}")
        return self

    @classmethod
    def from_dict(cls, data: Optional[dict[str, Any]], where: str = "model.extra") -> "CMFTLossOptions":
        """Build and validate from a mapping (e.g. a subset of ``model.extra``).

        Unknown keys raise a ``ConfigError`` with the nearest valid key; bad values raise a
        ``ValueError`` naming ``<where>.<key>``.
        """
        return from_dict(cls, data, where).validate(where)

    @property
    def stage1_term(self) -> str:
        """Name of the stage-1 loss term: ``"cross"`` (L_cross) or the comparison loss's name."""
        return "cross" if self.comparison == "none" else self.comparison
