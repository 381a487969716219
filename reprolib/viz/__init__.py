"""Figures used by the notebooks: frame strips, retrieval rankings, paper-vs-ours bars.

Every function returns a matplotlib ``Figure`` and never calls ``plt.show()``; notebooks display
it and :func:`save_figure` writes it (PNG, atomically) under ``results/<profile>/figures/``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from reprolib.data.types import Modality, Tracklet

HIT, MISS = "#1a9850", "#d73027"


def _load(path: str, size: Optional[tuple[int, int]] = None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None:
            im = im.resize((size[1], size[0]))
        return np.asarray(im)


def _frame_indices(n: int, k: int) -> list[int]:
    return [int(i) for i in np.linspace(0, n - 1, min(k, n)).round()]


def tracklet_strips(tracklets: Sequence[Tracklet], frames: int = 6, titles: Optional[Sequence[str]] = None,
                    frame_size: tuple[int, int] = (128, 64)):
    """One row per tracklet with ``frames`` evenly spaced frames (visible and infrared alike).

    Args:
        tracklets: the tracklets to show.
        frames: frames per row.
        titles: row labels (default: pid, modality, camera, length).
        frame_size: (H, W) each frame is resized to.
    """
    import matplotlib.pyplot as plt

    rows = len(tracklets)
    fig, axes = plt.subplots(rows, frames, figsize=(frames * 0.9, rows * 1.7), squeeze=False)
    for r, t in enumerate(tracklets):
        idx = _frame_indices(len(t), frames)
        for c in range(frames):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(idx):
                ax.imshow(_load(t.paths[idx[c]], frame_size))
        label = titles[r] if titles else f"id {t.raw_pid}\n{t.modality.short.upper()} cam {t.camid}\n{len(t)} fr"
        axes[r, 0].text(-0.15, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=0.18, wspace=0.04, hspace=0.08)
    return fig


def retrieval_figure(ranking: np.ndarray, query: Sequence[Tracklet], gallery: Sequence[Tracklet],
                     query_indices: Sequence[int], topk: int = 6, title: str = "",
                     frame_size: tuple[int, int] = (128, 64)):
    """Query tracklets and their top-k gallery tracklets, framed green (same identity) or red.

    Args:
        ranking: (num_query, >= topk) gallery indices, nearest first (see ``Workbook.ranking``).
        query: query tracklets (rows of ``distmat``).
        gallery: gallery tracklets (columns).
        query_indices: which queries to show (one row each).
        topk: gallery items per row.
        title: figure title (say the model, profile and direction).
    """
    import matplotlib.pyplot as plt

    rows = len(query_indices)
    fig, axes = plt.subplots(rows, topk + 1, figsize=((topk + 1) * 1.0, rows * 1.9), squeeze=False)
    for r, qi in enumerate(query_indices):
        q = query[qi]
        order = ranking[qi][:topk]
        ax = axes[r, 0]
        ax.imshow(_load(q.paths[len(q) // 2], frame_size))
        ax.set_title(f"query id {q.raw_pid}\n{q.modality.short.upper()}", fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])
        for c, gi in enumerate(order, start=1):
            g = gallery[gi]
            ax = axes[r, c]
            ax.imshow(_load(g.paths[len(g) // 2], frame_size))
            ok = g.raw_pid == q.raw_pid
            for s in ax.spines.values():
                s.set_edgecolor(HIT if ok else MISS)
                s.set_linewidth(3)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"#{c} id {g.raw_pid}", fontsize=7, color=HIT if ok else MISS)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def paper_vs_ours_bars(table, metric: str = "R1", title: str = ""):
    """Grouped bars of a side-by-side table (columns ``row``, ``setting``, ``paper``, ``ours``).

    Paper numbers are hatched; ours are solid. The profile belongs in ``title``: embedded numbers
    are a miniature, not a claim about the real benchmark.
    """
    import matplotlib.pyplot as plt

    t = table[table["metric"] == metric]
    labels = [f"{r}\n{s}" for r, s in zip(t["row"], t["setting"])]
    x = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(t)), 3))
    ax.bar(x - 0.2, t["paper"].astype(float), 0.4, label="paper (real data)", hatch="//", color="#bbbbbb",
           edgecolor="#555555")
    ax.bar(x + 0.2, t["ours"].astype(float), 0.4, label="ours", color="#4575b4")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(fig, path: os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG atomically (temp file + rename) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    return path


__all__ = ["tracklet_strips", "retrieval_figure", "paper_vs_ours_bars", "save_figure", "Modality"]
