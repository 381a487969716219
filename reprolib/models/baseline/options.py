"""``model.extra`` schema of the ``baseline`` family (torch-free: config loading validates with it)."""
from __future__ import annotations

from dataclasses import dataclass

from reprolib.config import from_dict

__all__ = ["BaselineExtra", "OPTIONS"]


@dataclass(frozen=True)
class BaselineExtra:
    """Schema of ``model.extra`` for the ``baseline`` family (see the module docstring)."""

    test_feature: str = "pre_bn"  # "pre_bn" (VLD) | "bn" (X-ReID)
    bn_bias_trainable: bool = True  # VLD trains the BNNeck bias; CLIP-ReID/X-ReID freeze it

    @classmethod
    def from_dict(cls, extra: dict) -> "BaselineExtra":
        """Validate ``model.extra``; unknown keys or values raise naming the key."""
        out = from_dict(cls, extra, "model.extra")  # types and unknown keys, with a nearest-key hint
        if out.test_feature not in ("pre_bn", "bn"):
            raise ValueError(f"model.extra.test_feature: expected 'pre_bn' or 'bn', got {out.test_feature!r}")
        return out


#: The options class the registry returns for ``baseline`` (``family_options``).
OPTIONS = BaselineExtra
