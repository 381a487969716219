"""VLD Fig. 7: intra- vs inter-class distance distributions and the gaps delta_1..delta_4.

The paper (section IV-F, "Text Prompt Analysis") compares two kinds of distances for CLIP-ReID
and VLD; no code was released (docs/decisions/vld.md#v30-figures-7-and-8), so
this module follows the recommendations recorded there:

* **text-to-visual** (Fig. 7 (a) CLIP-ReID, (b) VLD): the distance between a sequence's visual
  feature and the learned text prototype t_c of every identity; *intra* pairs a sequence with
  its own identity's prototype t_y, *inter* with the other C - 1. Prototypes exist only for the
  **training** identities (IMLP learns one prompt per training identity), so this part is
  computed on the training tracklets (both modalities, deterministic test-time clips). The
  visual feature is f_proj, the 512-d projected [CLS] that L_v2t (paper eq. 5) compares with
  the text;
* **cross-modality** (Fig. 7 (c), (d)): the distance between every infrared query and every
  visible gallery sequence of a test direction (``ir2rgb`` by default), with the model's test
  feature; *intra* pairs share the identity, *inter* pairs do not. All pairs are kept (the
  evaluator's same-camera rule is a ranking convention, not a property of the features).

Distances are **cosine distances** 1 - cos(a, b) in [0, 2] (features L2-normalised, as the
figure's axes suggest), whatever ``eval.distance`` the model is scored with.
The gap of a pair of distributions is delta = mean(inter) - mean(intra) (larger: better
separated). In the paper's numbering, delta_1 / delta_2 are the text-to-visual gaps of
CLIP-ReID / VLD and delta_3 / delta_4 their cross-modality gaps ("delta_2 > delta_1,
delta_4 > delta_3"); :func:`paper_deltas` maps two models' results onto those names.

The distances of a trained model are measured by
:func:`reprolib.experiments.analysis.distance_distributions` (it runs the model); this module
splits, summarises and plots them.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Optional

import numpy as np
from torch import Tensor

from reprolib.viz.save import save_figure

__all__ = ["split_distances", "paper_deltas", "plot_distance_distributions"]

log = logging.getLogger(__name__)

INTRA_COLOR, INTER_COLOR = "#2c7bb6", "#fdae61"


def split_distances(dist: Any, row_labels: Any, col_labels: Any) -> dict:
    """Split a distance matrix into intra-class and inter-class entries and their gap.

    Args:
        dist: ``(R, C)`` distances (array or tensor).
        row_labels: ``(R,)`` identity of each row.
        col_labels: ``(C,)`` identity of each column (``arange(C)`` for text prototypes).

    Returns:
        ``{"intra": (n_intra,) float32, "inter": (n_inter,) float32, "intra_mean", "inter_mean",
        "delta"}`` with ``delta = inter_mean - intra_mean``.

    Raises:
        ValueError: when the shapes disagree or either class of pairs is empty.
    """
    d = dist.detach().cpu().numpy() if isinstance(dist, Tensor) else np.asarray(dist)
    rows, cols = np.asarray(row_labels).reshape(-1), np.asarray(col_labels).reshape(-1)
    if d.shape != (rows.size, cols.size):
        raise ValueError(f"split_distances: distances {d.shape} do not match {rows.size} row and {cols.size} "
                         "column labels")
    same = rows[:, None] == cols[None, :]  # (R, C)
    intra, inter = d[same].astype(np.float32), d[~same].astype(np.float32)
    if not intra.size or not inter.size:
        raise ValueError(f"split_distances: {intra.size} intra-class and {inter.size} inter-class pairs; "
                         "both kinds are needed")
    intra_mean, inter_mean = float(intra.mean()), float(inter.mean())
    return {"intra": intra, "inter": inter, "intra_mean": intra_mean, "inter_mean": inter_mean,
            "delta": inter_mean - intra_mean}


def paper_deltas(results: Mapping[str, dict], reference: str, ours: str) -> dict[str, Optional[float]]:
    """The paper's delta_1..delta_4 from two models' :func:`~reprolib.experiments.analysis.distance_distributions` results.

    Args:
        results: ``{model_label: result}``.
        reference: the CLIP-ReID(-like) model's label (delta_1 text, delta_3 cross-modality).
        ours: the VLD model's label (delta_2 text, delta_4 cross-modality).

    Returns:
        ``{"delta1", "delta2", "delta3", "delta4"}``; a text gap is ``None`` for a model
        without text features. The paper's claim is delta2 > delta1 and delta4 > delta3.
    """
    def text_gap(label: str) -> Optional[float]:
        text = results[label]["text"]
        return None if text is None else text["delta"]

    return {"delta1": text_gap(reference), "delta2": text_gap(ours),
            "delta3": results[reference]["cross"]["delta"], "delta4": results[ours]["cross"]["delta"]}


def _value_range(parts: list[Optional[dict]]) -> tuple[float, float]:
    """Padded (min, max) over the intra and inter distances of the given parts (``None`` skipped)."""
    values = [v for p in parts if p is not None for v in (p["intra"].min(), p["intra"].max(),
                                                          p["inter"].min(), p["inter"].max())]
    lo, hi = (min(values), max(values)) if values else (0.0, 2.0)
    pad = 0.03 * max(hi - lo, 1e-3)
    return float(lo - pad), float(hi + pad)


def _draw_panel(ax, part: dict, bins: np.ndarray, delta_name: str) -> None:
    """Both densities, their means (dashed), a double arrow between the means and a gap box."""
    peak = 0.0
    for key, color, name in (("intra", INTRA_COLOR, "intra-class"), ("inter", INTER_COLOR, "inter-class")):
        density, _ = np.histogram(part[key], bins=bins, density=True)
        peak = max(peak, float(density.max()))
        ax.stairs(density, bins, fill=True, color=color, alpha=0.45)
        ax.stairs(density, bins, color=color, lw=1.2, label=f"{name} (n={part[key].size:,})")
    y, top = 1.08 * peak, 1.55 * peak  # the arrow's height; headroom for the legend and the gap box
    for key, color in (("intra", INTRA_COLOR), ("inter", INTER_COLOR)):
        ax.axvline(part[f"{key}_mean"], ymax=y / top, color=color, ls="--", lw=1.2)
    ax.annotate("", xy=(part["inter_mean"], y), xytext=(part["intra_mean"], y),
                arrowprops=dict(arrowstyle="<|-|>", color="black", lw=1.0, shrinkA=0, shrinkB=0, mutation_scale=8))
    ax.set_ylim(0, top)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.text(0.98, 0.97, f"{delta_name} = {part['delta']:.3g}\nintra mean {part['intra_mean']:.4g}\n"
            f"inter mean {part['inter_mean']:.4g}", transform=ax.transAxes, ha="right", va="top", fontsize=7.5,
            bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#999999"))


def plot_distance_distributions(results: Mapping[str, dict], path: Optional[os.PathLike] = None,
                                paper_pair: Optional[tuple[str, str]] = None, bins: int = 40,
                                share_bins: bool = False, title: str = "", dpi: int = 110):
    """Fig. 7: histograms of intra- vs inter-class distances, one column per model.

    The top row holds the text-to-visual distances (training identities; Fig. 7 (a)/(b)), the
    bottom row the cross-modality IR-to-visible distances (test set; Fig. 7 (c)/(d)). Each panel
    shows both densities, their means (dashed) and the gap delta between them; a model without
    text features gets a "no text branch" panel. Compare models by their deltas: cosine
    distances of raw (un-centred) features can sit in very different ranges per model, so each
    panel has its own bins unless ``share_bins``.

    Args:
        results: ``{model_label: distance_distributions(...)}`` in display order (e.g. baseline,
            CLIP-ReID-like, VLD).
        path: PNG to write (atomically); ``None`` to only return the figure.
        paper_pair: ``(reference, ours)`` labels whose gaps are named as in the paper
            (delta_1 / delta_2 text, delta_3 / delta_4 cross-modality); other panels say delta.
        bins: histogram bins per panel.
        share_bins: the same bin edges for every panel of a row (one x range).
        title: figure title (say the profile).
        dpi: resolution of the PNG.

    Returns:
        The matplotlib ``Figure``.
    """
    from matplotlib.figure import Figure

    labels = list(results)
    if not labels:
        raise ValueError("plot_distance_distributions: no results to plot")
    names = {}
    if paper_pair is not None:
        reference, ours = paper_pair
        names = {(reference, "text"): r"$\delta_1$", (ours, "text"): r"$\delta_2$",
                 (reference, "cross"): r"$\delta_3$", (ours, "cross"): r"$\delta_4$"}
    metric = results[labels[0]].get("metric", "cosine")
    fig = Figure(figsize=(3.6 * len(labels), 6.2))  # no pyplot state; PNGs are rendered by Agg
    axes = fig.subplots(2, len(labels), squeeze=False)
    for row, kind in enumerate(("text", "cross")):
        parts = [results[label][kind] for label in labels]
        row_edges = np.linspace(*_value_range(parts), bins + 1)
        for col, (label, part) in enumerate(zip(labels, parts)):
            ax = axes[row, col]
            if kind == "text":
                ax.set_title(f"{label}\ntext prototypes \u2194 visual (train IDs)", fontsize=9)
            else:
                direction = part["split"].split(":", 1)[-1]
                ax.set_title(f"{label}\nIR \u2194 visible sequences (test, {direction})", fontsize=9)
            if part is None:
                ax.text(0.5, 0.5, "no text branch\n(no per-identity text features)", ha="center", va="center",
                        fontsize=9, color="#555555", transform=ax.transAxes)
                ax.set_xticks([]), ax.set_yticks([])
                continue
            edges = row_edges if share_bins else np.linspace(*_value_range([part]), bins + 1)
            _draw_panel(ax, part, edges, names.get((label, kind), r"$\delta$"))
            ax.set_xlabel(f"{metric} distance", fontsize=8)
            ax.tick_params(labelsize=7)
            if col == 0:
                ax.set_ylabel("density", fontsize=8)
    fig.suptitle(title or "Intra- vs inter-class distance distributions "
                 r"($\delta$ = mean inter $-$ mean intra)", fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig
