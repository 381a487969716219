"""``model.extra`` schema of the ``cmft`` family and the CCF options (torch-free: config loading
validates with it)."""
from __future__ import annotations

from dataclasses import dataclass, field

from reprolib.config import from_dict
from reprolib.models.options import check_choice

__all__ = ["CMFTExtra", "CCFOptions", "CCF_VARIANTS", "FUSION_BASELINES", "VARIANTS", "MODULATIONS", "ALIGNS",
           "OPTIONS"]

CCF_VARIANTS: tuple[str, ...] = ("S2", "S3", "S4", "S5", "S6", "D6F", "S6F")
FUSION_BASELINES: tuple[str, ...] = ("score_avg", "score_mul", "concat")
VARIANTS: tuple[str, ...] = CCF_VARIANTS + FUSION_BASELINES
MODULATIONS: tuple[str, ...] = ("product", "one_plus", "sigmoid")
ALIGNS: tuple[str, ...] = ("repeat", "linear")


@dataclass(frozen=True)
class CCFOptions:
    """Hyper-parameters of a CCF cascade (the ``model.extra`` keys of the same names).

    Attributes:
        num_heads: attention heads of every MHSA (8, section 4.2).
        num_layers: L, cross-attention layers per branch (1; #19).
        final_dim: d of the final CCF after its FC pair; 0 = C_6 / 2 (1024 on ResNet-50).
        modulation: eq. 6 form: ``product`` (literal) | ``one_plus`` | ``sigmoid`` (#4).
        align: channel alignment of the previous fused map: ``repeat`` | ``linear`` (#4, #3).
        single_branch_ln_affine: affine LN in the single-branch S6F (8.40 M) or not (8.39 M; #3).
    """

    num_heads: int = 8
    num_layers: int = 1
    final_dim: int = 0
    modulation: str = "product"
    align: str = "repeat"
    single_branch_ln_affine: bool = False

    def validate(self) -> "CCFOptions":
        """Raise a ``ValueError`` naming the ``model.extra`` key of a bad value; returns self."""
        check_choice("model.extra.modulation", self.modulation, MODULATIONS, "cmft")
        check_choice("model.extra.align", self.align, ALIGNS, "cmft")
        for key in ("num_heads", "num_layers"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.extra.{key}: expected >= 1, got {getattr(self, key)}")
        if self.final_dim < 0:
            raise ValueError(f"model.extra.final_dim: expected >= 0 (0 = C_6 / 2), got {self.final_dim}")
        return self


_STAGES = ("stage1", "stage2")


def _default_losses() -> dict:
    # The paper's progressive schedule: L_ID + L_cross (eq. 18), then L_ID + 0.3 L_MSRL + 0.7 L_MDL (eq. 19).
    return {"stage1": {"cross": 1.0}, "stage2": {"msrl": 0.3, "mdl": 0.7}}


@dataclass(frozen=True)
class CMFTExtra:
    """Schema of ``model.extra`` for the ``cmft`` family (discrepancy numbers: docs/decisions/cmft.md#numbered-decisions)."""

    variant: str = "S5"  # S2..S6 | D6F (= S6) | S6F | score_avg | score_mul | concat (#2, #14, #21)
    eval_protocol: str = "p1"  # "p1": own-modality stream features | "p2": self-paired fused feature (#6)
    test_feature: str = "bn"  # "bn" (post-BNNeck, 2048-d) | "pre_bn" (#17)
    last_stride: int = 1  # layer4 stride: 1 (ReID convention; not stated in the paper) | 2
    shift: bool = True  # TSM residual shift (identity anyway for T = 1)
    shift_div: int = 8  # 1/8 of the channels each way
    # Randomly initialised streams (pretrained: none; smoke/embedded start from TinyResNet instead)
    # can start each bottleneck as the identity. Without it the batch-hard L_cross on the near-identical features of a fresh
    # narrow ResNet back-propagates a stream gradient of norm ~850 at the first step (L_ID: ~36),
    # the losses went to NaN, and with clipping the ID loss stayed at chance for 800 steps.
    # No effect when weights are loaded (the paper profile).
    zero_init_residual: bool = False
    num_heads: int = 8  # section 4.2
    num_layers: int = 1  # L, cross-attention layers per branch (#19)
    final_dim: int = 0  # final CCF width after the FC pair; 0 = C_6 / 2 (1024 on ResNet-50)
    modulation: str = "product"  # eq. 6: "product" (literal) | "one_plus" | "sigmoid" (#4)
    align: str = "repeat"  # Conv2->Conv3 channel match: "repeat" (S2 = 33.40 M) | "linear" (notes; 33.43 M) (#4, #3)
    single_branch_ln_affine: bool = False  # S6F's LN: parameter-free (8.39 M) | affine (8.40 M) (#3)
    bn_bias_trainable: bool = False  # BNNeck shift frozen (PMT / AGW)
    warm_epochs: int = 8  # stage 1 ("warm phase") = epochs [0, warm_epochs)
    losses: dict = field(default_factory=_default_losses)  # {"stage1": {name: weight}, "stage2": {...}}
    loss_options: dict = field(default_factory=dict)  # {name: {kwarg: value}} passed to that loss

    @classmethod
    def from_dict(cls, extra: dict) -> "CMFTExtra":
        """Validate ``model.extra``; unknown keys or values raise naming the key."""
        out = from_dict(cls, extra, "model.extra")
        check_choice("model.extra.variant", out.variant, VARIANTS, "cmft")
        check_choice("model.extra.eval_protocol", out.eval_protocol, ("p1", "p2"), "cmft")
        check_choice("model.extra.test_feature", out.test_feature, ("bn", "pre_bn"), "cmft")
        if out.eval_protocol == "p2" and out.variant in ("score_avg", "score_mul"):
            raise ValueError(f"model.extra.eval_protocol='p2' needs a fused feature; variant {out.variant!r} "
                             "fuses scores only (use p1)")
        if out.warm_epochs < 0:
            raise ValueError(f"model.extra.warm_epochs: expected >= 0, got {out.warm_epochs}")
        unknown = set(out.losses) - set(_STAGES)
        if unknown:
            raise ValueError(f"model.extra.losses: expected the sections {', '.join(_STAGES)}, got {sorted(unknown)}")
        for stage in _STAGES:
            terms = out.losses.get(stage, {}) or {}
            if not isinstance(terms, dict) or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                                      for w in terms.values()):
                raise ValueError(f"model.extra.losses.{stage}: expected a mapping loss name -> weight, got {terms!r}")
        named = {n for stage in _STAGES for n in (out.losses.get(stage) or {})}
        stray = set(out.loss_options) - named
        if stray:
            raise ValueError(f"model.extra.loss_options: {sorted(stray)} are not used by model.extra.losses "
                             f"(used: {sorted(named)})")
        out.ccf_options().validate()
        return out

    def ccf_options(self) -> CCFOptions:
        """The :class:`~reprolib.models.cmft.options.CCFOptions` of these keys."""
        return CCFOptions(num_heads=self.num_heads, num_layers=self.num_layers, final_dim=self.final_dim,
                          modulation=self.modulation, align=self.align,
                          single_branch_ln_affine=self.single_branch_ln_affine)

    def stage_losses(self, stage: int) -> dict[str, float]:
        """``{name: weight}`` of training stage 1 or 2."""
        return {k: float(v) for k, v in (self.losses.get(f"stage{stage}") or {}).items()}


#: The options class the registry returns for ``cmft`` (``family_options``).
OPTIONS = CMFTExtra
