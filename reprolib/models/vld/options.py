"""``model.extra`` schema of the ``vld`` family (torch-free: config loading validates with it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from reprolib.config import from_dict
from reprolib.models.options import check_choice

__all__ = ["VLDExtra", "TEMPORAL_HEADS", "OPTIONS"]

#: The Table IV temporal heads of :mod:`reprolib.models.vld.temporal` (``model.extra.temporal_head``).
TEMPORAL_HEADS: tuple[str, ...] = ("tap", "conv1d", "transf", "transf_cls")
_TEST_FEATURES = ("auto", "cls_hub", "cls", "hub")
_SIMILARITIES = ("dot", "cosine")


@dataclass(frozen=True)
class VLDExtra:
    """Schema of ``model.extra`` for the ``vld`` family (defaults: the paper and its code)."""

    # Table III / V switches
    use_imlp: bool = True  # IMLP: prompts, frozen text encoder and L_v2t
    use_stp: bool = True  # STH (hub in the ViT); with use_sta, also STA, L^H terms and f_H in the test feature
    use_sta: bool = True  # STA + L_id^H + L_wrt^H (false: Table V "STH only"; test feature f_cls)
    # STH (docs/decisions/vld.md#v10-hub-insertion-index)
    hub_layer: int = 9  # 0-based block s where H enters (H in blocks s..end); ViT-B/16: 9 (#10, #11).
    #   The 4-block TinyCLIP uses 1 (vld.yaml's smoke/embedded profiles): H in the last three
    #   blocks as at 9-of-12, i.e. the same H, H^T, H pattern with two cross-frame exchanges; the
    #   depth ratio 9/12 would give block 3, where H sees a single block and never moves.
    hub_as_released: bool = False  # #10: skip the transpose before the last block when hub_layer=0 (code quirk)
    # STA (docs/decisions/vld.md#v9-sta-query-and-keyvalue-source)
    sta_heads: Optional[int] = None  # None: the backbone's head count (12 for ViT-B/16)
    sta_separate_ln: bool = False  # #8: own copy of ln_post for STA (code: shared ln_post, ln_post2 unused)
    # IMLP (docs/decisions/vld.md#imlp-prompts)
    prompt_template: Union[int, str] = 4  # Table VII index 1-4 (code: 4) or a custom string with '{ctx}'
    n_ctx: int = 4  # learnable tokens M per identity
    ctx_init_std: float = 0.02
    truncate_text: bool = True  # #19: exact causal truncation to EOT+1 tokens (false: full context, as the code)
    v2t_similarity: str = "dot"  # #2: "dot" (code: raw f_proj . t_c) | "cosine" (L2-normalised x v2t_scale)
    v2t_scale: Optional[float] = None  # "cosine" only; None: the loaded CLIP's exp(logit_scale)
    # loss (paper eq. 14; docs/decisions/vld.md#v1-loss-terms)
    lambda1: float = 0.08  # L_v2t
    lambda2: float = 0.4  # L_id^H
    lambda3: float = 1.0  # L_wrt^H
    clipreid_extra_terms: bool = True  # #1: + CE(f_proj), WRT(f_last), WRT(f_proj) (code) vs eq. 14 only
    # heads and test feature
    bn_bias_trainable: bool = True  # #28: VLD trains the BNNeck shift
    test_feature: str = "auto"  # #13: "cls_hub" ([f_cls; f_H], code) | "cls" | "hub"; auto: cls_hub if f_H exists
    # Table IV temporal fusion of the projected [CLS] (docs/decisions/vld.md#v22-table-iv-temporal-heads; reprolib.models.vld.temporal)
    temporal_head: str = "tap"  # #22: "tap" | "conv1d" | "transf" | "transf_cls" (6 layers, 8 heads) -> f_proj
    conv1d_as_released: bool = False  # #22: ActionCLIP's view (B, T, D) -> (B, D, T) instead of a transpose
    transf_frame_position: bool = True  # #22: Transf adds its 77 x D frame positions (ActionCLIP's forward)

    @classmethod
    def from_dict(cls, extra: dict) -> "VLDExtra":
        """Validate ``model.extra``; unknown keys, wrong types or values raise naming the key."""
        out = from_dict(cls, extra, "model.extra")  # types and unknown keys, with a nearest-key hint
        if out.test_feature not in _TEST_FEATURES:
            raise ValueError(f"model.extra.test_feature: expected one of {', '.join(_TEST_FEATURES)}, "
                             f"got {out.test_feature!r}")
        if out.v2t_similarity not in _SIMILARITIES:
            raise ValueError(f"model.extra.v2t_similarity: expected one of {', '.join(_SIMILARITIES)}, "
                             f"got {out.v2t_similarity!r}")
        if out.test_feature in ("cls_hub", "hub") and not (out.use_stp and out.use_sta):
            raise ValueError(f"model.extra.test_feature={out.test_feature!r} needs f_H, i.e. use_stp and use_sta; "
                             "use test_feature: cls or auto")
        check_choice("model.extra.temporal_head", out.temporal_head, TEMPORAL_HEADS, "vld")
        if out.temporal_head != "tap" and not (out.use_imlp or out.clipreid_extra_terms):
            raise ValueError(f"model.extra.temporal_head={out.temporal_head!r} pools f_proj, which only L_v2t "
                             "(use_imlp) and the extra terms (clipreid_extra_terms) use; enable one or use tap")
        for key in ("lambda1", "lambda2", "lambda3"):
            if getattr(out, key) < 0:
                raise ValueError(f"model.extra.{key} must be >= 0, got {getattr(out, key)}")
        return out


#: The options class the registry returns for ``vld`` (``family_options``).
OPTIONS = VLDExtra
