"""``model.extra`` schema of the ``mymethod`` template family.

Keep this module free of torch imports: config loading validates ``model.extra`` with it, so a typo
such as ``--set model.extra.pol=max`` fails when the config loads, naming ``model.extra.pool``.
"""
from __future__ import annotations

from dataclasses import dataclass

from reprolib.models.baseline.options import BaselineExtra

__all__ = ["MyMethodOptions", "POOLS"]

#: Temporal pooling choices of the template method.
POOLS = ("max", "mean")


@dataclass(frozen=True)
class MyMethodOptions(BaselineExtra):
    """The baseline's options plus ``pool``: how frame features become the sequence feature."""

    pool: str = "max"  # "max" (the template's change) | "mean" (exactly the baseline's TAP)

    @classmethod
    def from_dict(cls, extra: dict) -> "MyMethodOptions":
        """Validate ``model.extra`` (unknown keys with the nearest valid key, types, values)."""
        out = super().from_dict(extra)
        if out.pool not in POOLS:
            raise ValueError(f"model.extra.pool: expected one of {', '.join(POOLS)}, got {out.pool!r}")
        return out
