"""``model.extra`` schema of the ``xreid`` family (torch-free: config loading validates with it)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from reprolib.config import from_dict
from reprolib.data.frames import TEST_SAMPLING
from reprolib.models.options import check_choice

__all__ = ["XReIDExtra", "MEMORY_KINDS", "UPDATE_SOURCES", "CONTRASTS", "NEGATIVES", "CII_SHARING", "OPTIONS"]

logger = logging.getLogger(__name__)

#: CPC (:mod:`reprolib.models.xreid.cpc`) choices.
MEMORY_KINDS = ("none", "single", "per_modality")
UPDATE_SOURCES = ("same", "other", "pooled")
CONTRASTS = ("own", "both")
NEGATIVES = ("all", "batch")
#: CII weight sharing (:mod:`reprolib.models.xreid.mii`): one block for all of {SII, LII} x {vis->ir, ir->vis},
#: one per branch, one per direction, or four.
CII_SHARING = ("shared", "per_branch", "per_direction", "none")


@dataclass(frozen=True)
class XReIDExtra:
    """Schema of ``model.extra`` for the ``xreid`` family (defaults: the paper, with our
    resolutions; discrepancy numbers refer to docs/decisions/xreid.md#numbered-decisions)."""

    # CPC (Table 4 switches)
    memory: str = "per_modality"  # "none" (Vanilla) | "single" (literal PCL) | "per_modality"
    update_source: str = "other"  # D5: "other" (eq. 2) | "same" (Visual Memories) | "pooled" (released)
    contrast: str = "both"  # "both" (eqs. 3-4: every clip vs both memories) | "own"
    momentum: float = 0.2  # D4: mu (paper, PCL); the released processor uses 0.1
    temperature: float = 0.05  # D6
    cpcl_negatives: str = "all"  # D7: "all" N_c prototypes (code, PCL) | "batch" (eq. 3's j = 1..P)
    cpcl_weight: float = 1.0
    memory_refresh: str = "epoch"  # D9: re-extract at every epoch start (code, PCL) | "once" (paper)
    memory_sie: bool = False  # D9: the released extraction has no SIE; true adds the tracklet's camera
    memory_sampling: str = "chunk_first"  # frames of the extraction clips (a data.test_sampling name)
    # MII (Table 5 switches)
    sii: bool = True
    lii: bool = True
    cii: bool = True
    sii_depth: int = 2  # D3: two stacked blocks (released code); 1 = eq. 6
    sii_stride: int = 1  # Figure 4
    sii_as_released: bool = False  # D10: the released in-place cascade (CPU result) instead of eq. 5
    lii_stride: int = 2  # D1, Figure 5: [CLS]_t attends to patches_{(t+S) mod T}; 0 = own; -1 = code
    lii_depth: int = 1
    mii_heads: Optional[int] = None  # None: the backbone's head count (12 at ViT-B/16)
    mii_detach: bool = True  # D18: MII reads a detached copy of the tokens (no gradient into CLIP)
    cii_sharing: str = "shared"  # D2: one CII block for {SII, LII} x {vis, ir}
    cii_attend_self: bool = False  # O_bar among CII's keys (true with cii_residual: the literal block)
    cii_residual: bool = False  # residual from O_bar (collapses CMCL to the trivial solution; see mii.py)
    cmcl_weight: float = 1.0
    cmcl_normalize: bool = False  # D21: raw features (paper); true: L2-normalised
    cmcl_stop_grad: bool = False  # D21: gradients into both terms
    # heads and test feature
    frame_id_weight: Optional[float] = None  # D11: None = 1/T (code); 0 = no frame term (eq. 10)
    fusion: str = "mean"  # D16: "mean" (eq. 8) | "concat" (commented-out code)

    @classmethod
    def from_dict(cls, extra: dict) -> "XReIDExtra":
        """Validate ``model.extra``; unknown keys, wrong types or values raise naming the key."""
        out = from_dict(cls, extra, "model.extra")
        for key, choices in (("memory", MEMORY_KINDS), ("update_source", UPDATE_SOURCES),
                             ("contrast", CONTRASTS), ("cpcl_negatives", NEGATIVES),
                             ("memory_refresh", ("epoch", "once")), ("cii_sharing", CII_SHARING),
                             ("fusion", ("mean", "concat")), ("memory_sampling", tuple(TEST_SAMPLING))):
            check_choice(f"model.extra.{key}", getattr(out, key), choices, "xreid")
        if out.memory == "single" and out.update_source != "pooled":
            raise ValueError("model.extra.update_source: memory=single is updated from the pooled batch; "
                             f"set update_source: pooled (got {out.update_source!r})")
        for key in ("sii_depth", "sii_stride", "lii_depth"):
            if getattr(out, key) < 1:
                raise ValueError(f"model.extra.{key} must be >= 1, got {getattr(out, key)}")
        if out.cii and not (out.sii or out.lii):
            logger.info("X-ReID: CII without SII/LII interacts the backbone's f (TAP of [CLS]) instead of a "
                        "branch feature (Table 5 row 4)")
        for key in ("cpcl_weight", "cmcl_weight"):
            if getattr(out, key) < 0:
                raise ValueError(f"model.extra.{key} must be >= 0, got {getattr(out, key)}")
        if out.frame_id_weight is not None and out.frame_id_weight < 0:
            raise ValueError(f"model.extra.frame_id_weight must be >= 0 or null (1/T), got {out.frame_id_weight}")
        return out


#: The options class the registry returns for ``xreid`` (``family_options``).
OPTIONS = XReIDExtra
