"""``model.extra`` schema of the ``tfclip`` family (torch-free: config loading validates with it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from reprolib.config import from_dict
from reprolib.data.frames import TEST_SAMPLING
from reprolib.models.options import BANK_NAMES, check_choice

__all__ = ["TFCLIPExtra", "OPTIONS"]


@dataclass(frozen=True)
class TFCLIPExtra:
    """Schema of ``model.extra`` for the ``tfclip`` family (defaults: the released code,
    docs/decisions/clip_baselines.md#tf-clip-recipe)."""

    memory_banks: str = "shared"  # "shared" (TF-CLIP) | "per_modality" (one memory per modality)
    memory_refresh: str = "once"  # "once" (TF-CLIP: the pre-trained encoder) | "epoch" (re-extract each epoch)
    memory_sampling: str = "dense"  # clips of the memory extraction (TF-CLIP: dense, averaged)
    ssp_layers: int = 2
    ssp_heads: Optional[int] = None  # None: d / 64 (8 at ViT-B/16)
    ssp_dropout: float = 0.1
    tmd_heads: Optional[int] = None  # None: the backbone's head count (12 at ViT-B/16)
    tmd_detach: bool = True  # TMD reads a detached copy of the tokens (released)
    i2t_weight: float = 1.0
    frame_id_weight: Optional[float] = None  # None: 1/T (released frame CE divided by T); 0 drops it

    @classmethod
    def from_dict(cls, extra: dict) -> "TFCLIPExtra":
        """Validate ``model.extra``; unknown keys, wrong types or values raise naming the key."""
        out = from_dict(cls, extra, "model.extra")
        for key, choices in (("memory_banks", tuple(BANK_NAMES)), ("memory_refresh", ("once", "epoch")),
                             ("memory_sampling", tuple(TEST_SAMPLING))):
            check_choice(f"model.extra.{key}", getattr(out, key), choices, "tfclip")
        if out.ssp_layers < 1:
            raise ValueError(f"model.extra.ssp_layers must be >= 1, got {out.ssp_layers}")
        if not 0.0 <= out.ssp_dropout < 1.0:
            raise ValueError(f"model.extra.ssp_dropout must be in [0, 1), got {out.ssp_dropout}")
        for key in ("i2t_weight", "frame_id_weight"):
            value = getattr(out, key)
            if value is not None and value < 0:
                raise ValueError(f"model.extra.{key} must be >= 0, got {value}")
        return out


#: The options class the registry returns for ``tfclip`` (``family_options``).
OPTIONS = TFCLIPExtra
