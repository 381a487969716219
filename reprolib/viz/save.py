"""Writing figures: :func:`save_figure` (PNG, atomic), shared by every figure module of :mod:`reprolib.viz`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["save_figure"]


def save_figure(fig: Any, path: os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` (a matplotlib ``Figure``) as PNG atomically (temp file + rename) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    return path
