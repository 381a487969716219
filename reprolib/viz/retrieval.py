"""Retrieval figures: a query tracklet beside its top-k gallery tracklets, framed by identity match.

:func:`retrieval_figure` is the quickstart's one-model figure (moved here from
``reprolib/viz/__init__.py``, still importable as ``reprolib.viz.retrieval_figure``);
:func:`plot_retrieval_grid` is VLD Fig. 9: the same rows for several models and both
directions, one row per (direction, query, model), so a query's rankings by the baseline and by
VLD sit one above the other. Both draw their rows with :func:`draw_ranking_row`.

Rankings are ``(num_query, >= topk)`` gallery indices, nearest first, e.g.
``Workbook.ranking(run, direction)`` or :func:`ranking_from_distances`.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

import numpy as np

from reprolib.data.types import EvalSet, Tracklet
from reprolib.viz.save import save_figure

__all__ = ["HIT", "MISS", "load_frame", "draw_ranking_row", "visible_ranking", "ranking_from_distances",
           "retrieval_figure", "plot_retrieval_grid", "contrast_queries"]

HIT, MISS = "#1a9850", "#d73027"

_ARROW = {"ir2rgb": "IR \u2192 RGB", "rgb2ir": "RGB \u2192 IR"}


def load_frame(path: str, size: Optional[tuple[int, int]] = None) -> np.ndarray:
    """One frame as an ``(H, W, 3)`` uint8 array, resized to ``size = (H, W)`` when given."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None:
            im = im.resize((size[1], size[0]))
        return np.asarray(im)


def ranking_from_distances(distmat, topk: int = 20) -> np.ndarray:
    """``(Q, topk)`` int32 gallery indices per query, nearest first (stable ties), of a ``(Q, G)`` matrix."""
    dist = np.asarray(distmat)  # (Q, G)
    return np.argsort(dist, axis=1, kind="stable")[:, :topk].astype(np.int32)  # (Q, topk)


def visible_ranking(order: Sequence[int], query: Tracklet, gallery: Sequence[Tracklet], rule: str = "bupt",
                    topk: int = 6) -> list[int]:
    """The first ``topk`` gallery indices of ``order`` that the evaluator scores for ``query``.

    Args:
        order: gallery indices, nearest first.
        query: the query tracklet.
        gallery: the gallery tracklets ``order`` indexes.
        rule: the eval set's camera rule: ``"vcm"`` skips gallery items with the query's pid
            **and** camid (as :func:`reprolib.metrics.evaluate` does), ``"bupt"`` skips nothing.
        topk: how many to keep.
    """
    keep = []
    for gi in order:
        g = gallery[int(gi)]
        if rule == "vcm" and g.pid == query.pid and g.camid == query.camid:
            continue
        keep.append(int(gi))
        if len(keep) == topk:
            break
    return keep


def draw_ranking_row(axes: Sequence, query: Tracklet, gallery: Sequence[Tracklet], order: Sequence[int],
                     frame_size: tuple[int, int] = (128, 64), label: str = "") -> None:
    """Fill one row of axes: the query's middle frame, then each ranked gallery tracklet's middle frame.

    Gallery frames get a thick border, green (:data:`HIT`) for the query's identity and red
    (:data:`MISS`) otherwise, and a ``#rank id`` title in the same colour.

    Args:
        axes: ``1 + len(order)`` or more axes (extra ones are blanked).
        query: the query tracklet.
        gallery: gallery tracklets.
        order: the gallery indices to show, nearest first.
        frame_size: ``(H, W)`` every frame is resized to.
        label: text to the left of the query (model and direction); empty for none.
    """
    ax = axes[0]
    ax.imshow(load_frame(query.paths[len(query) // 2], frame_size))
    ax.set_title(f"query id {query.raw_pid}\n{query.modality.short.upper()}", fontsize=7)
    ax.set_xticks([]), ax.set_yticks([])
    if label:
        ax.text(-0.12, 0.5, label, transform=ax.transAxes, ha="right", va="center", fontsize=8)
    for c, gi in enumerate(order, start=1):
        g = gallery[gi]
        ax = axes[c]
        ax.imshow(load_frame(g.paths[len(g) // 2], frame_size))
        ok = g.raw_pid == query.raw_pid
        for s in ax.spines.values():
            s.set_edgecolor(HIT if ok else MISS)
            s.set_linewidth(3)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"#{c} id {g.raw_pid}", fontsize=7, color=HIT if ok else MISS)
    for ax in axes[1 + len(order):]:
        ax.axis("off")


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
        draw_ranking_row(axes[r], query[qi], gallery, ranking[qi][:topk], frame_size)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_retrieval_grid(rankings: Mapping[str, Mapping[str, np.ndarray]], eval_sets: Mapping[str, EvalSet],
                        query_indices: Mapping[str, Sequence[int]], path: Optional[os.PathLike] = None,
                        topk: int = 6, apply_camera_rule: bool = True, title: str = "",
                        frame_size: tuple[int, int] = (128, 64), dpi: int = 110):
    """VLD Fig. 9: top-``topk`` retrievals of the same queries by several models, in several directions.

    Rows are grouped by direction, then query, then model (so a query's rankings by the
    baseline and by VLD are adjacent); each row is the query's middle frame followed by its
    ``topk`` nearest gallery tracklets framed green (same identity) or red.

    Args:
        rankings: ``{model_label: {direction: (num_query, >= topk) ranking}}``, nearest first
            (``Workbook.ranking`` or :func:`ranking_from_distances`); models in display order.
        eval_sets: ``{direction: EvalSet}`` (``dataset.eval_sets``) the rankings index.
        query_indices: ``{direction: query indices}``; only these directions are drawn, in this
            order (see :func:`contrast_queries` to pick queries where the models differ).
        path: PNG to write (atomically); ``None`` to only return the figure.
        topk: gallery items per row (the paper's 6).
        apply_camera_rule: skip the gallery items the evaluator ignores (same pid and camera as
            the query under the ``vcm`` rule), so the row is the ranking that R1/mAP score.
            Needs rankings longer than ``topk`` (``Workbook.ranking`` keeps 20).
        title: figure title (say the profile).
        frame_size: ``(H, W)`` every frame is resized to.
        dpi: resolution of the PNG.

    Returns:
        The matplotlib ``Figure``.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    models = list(rankings)
    rows = [(d, qi, m) for d, qis in query_indices.items() for qi in qis for m in models]
    if not rows:
        raise ValueError("plot_retrieval_grid: no (direction, query, model) row to draw")
    fig = Figure(figsize=(1.05 * (topk + 1) + 1.4, 1.75 * len(rows)))  # no pyplot state; Agg renders the PNG
    axes = fig.subplots(len(rows), topk + 1, squeeze=False)
    for r, (direction, qi, model) in enumerate(rows):
        es = eval_sets[direction]
        q = es.query[qi]
        order = rankings[model][direction][qi]
        shown = (visible_ranking(order, q, es.gallery, es.rule, topk) if apply_camera_rule
                 else [int(g) for g in order[:topk]])
        hits = sum(es.gallery[g].raw_pid == q.raw_pid for g in shown)
        label = f"{_ARROW.get(direction, direction)}\nquery {qi}\n{model}\n{hits}/{len(shown)} correct"
        draw_ranking_row(axes[r], q, es.gallery, shown, frame_size, label)
    fig.suptitle(title or f"Retrieval: top-{topk} gallery tracklets (green: same identity, red: another)",
                 fontsize=9)
    fig.tight_layout()
    for r in range(1, len(rows)):
        if rows[r][:2] != rows[r - 1][:2]:  # a rule between two queries' row groups
            above, below = axes[r - 1, 0].get_position(), axes[r, 0].get_position()
            y = above.y0 - 0.12 * (above.y0 - below.y1)  # just under the upper row, clear of the titles
            fig.add_artist(Line2D([0.01, 0.99], [y, y], color="#888888", lw=0.8, transform=fig.transFigure))
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def contrast_queries(ranking_a: np.ndarray, ranking_b: np.ndarray, eval_set: EvalSet, n: int = 3,
                     topk: int = 6, apply_camera_rule: bool = True) -> list[int]:
    """Queries where model b's top-``topk`` holds the most more correct matches than model a's.

    The paper's Fig. 9 shows such queries (occlusion, low light) to contrast the baseline with
    VLD; ties keep query order. The selection favours model b by construction: say so in the
    figure's caption, and report R1/mAP for the unbiased comparison.

    Returns:
        ``n`` query indices into ``eval_set.query``.
    """
    def hits(ranking: np.ndarray, qi: int) -> int:
        q = eval_set.query[qi]
        shown = (visible_ranking(ranking[qi], q, eval_set.gallery, eval_set.rule, topk) if apply_camera_rule
                 else ranking[qi][:topk])
        return sum(eval_set.gallery[g].raw_pid == q.raw_pid for g in shown)

    gain = [hits(ranking_b, qi) - hits(ranking_a, qi) for qi in range(len(eval_set.query))]
    return [int(i) for i in np.argsort(-np.asarray(gain), kind="stable")[:n]]
