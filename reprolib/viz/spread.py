"""Figures of the seed-spread notebook: each seed's result per model, and every claim's gain
against the noise floor (:mod:`reprolib.experiments.spread`)."""
from __future__ import annotations

import numpy as np
import pandas as pd

_COLOURS = {"ir2rgb": "#4575b4", "rgb2ir": "#d73027"}


def seed_spread_plot(long: pd.DataFrame, metric: str = "mAP", title: str = ""):
    """One column of points per model and direction: each seed's ``metric`` (dots, labelled with
    the seed) and their mean (a bar), so the spread reads against the gaps between models.

    Args:
        long: :func:`reprolib.experiments.spread.seed_table`.
        metric: the metric to show.
        title: figure title.
    """
    import matplotlib.pyplot as plt

    t = long[long["metric"] == metric]
    models = list(dict.fromkeys(t["model"]))
    directions = [d for d in _COLOURS if d in set(t["direction"])]
    fig, ax = plt.subplots(figsize=(1.7 * max(len(models), 2) + 1.2, 3.2))
    width = 0.8 / max(len(directions), 1)
    for i, model in enumerate(models):
        for j, d in enumerate(directions):
            x = i - 0.4 + width * (j + 0.5)
            pts = t[(t["model"] == model) & (t["direction"] == d)].sort_values("seed")
            if not len(pts):
                continue
            ax.hlines(pts["value"].mean(), x - width * 0.4, x + width * 0.4, color=_COLOURS[d], lw=2)
            ax.scatter(np.full(len(pts), x), pts["value"], s=18, color=_COLOURS[d], edgecolor="black", lw=0.4, zorder=3,
                       label=d if i == 0 else None)
            for _, p in pts.iterrows():
                ax.annotate(str(p["seed"]), (x, p["value"]), xytext=(4, 0), textcoords="offset points", fontsize=6,
                            va="center", color="#444444")
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels([m.replace(": ", "\n") for m in models], fontsize=7)  # "paper item: row" on two lines
    ax.set_ylabel(f"{metric} (%)")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(title or f"{metric} of each seed (dots) and their mean (bar)", fontsize=9)
    fig.tight_layout()
    return fig


def claim_gains_plot(claims: pd.DataFrame, floor: float, title: str = ""):
    """Every claim's gain in each direction as a horizontal pair of bars, with the noise floor
    (``±floor``) shaded: a bar that ends inside the band is a gain a change of seed alone can make.
    The claims beyond the spread have bold labels.

    Args:
        claims: :func:`reprolib.experiments.spread.claims_against_spread`.
        floor: the noise floor (points).
        title: figure title.
    """
    import matplotlib.pyplot as plt

    directions = [d for d in _COLOURS if f"gain {d}" in claims.columns]
    labels = [f"{r['paper']} {r['item']}: {r['component']}" for _, r in claims.iterrows()]
    n = max(len(claims), 1)
    fig, ax = plt.subplots(figsize=(7.5, 0.24 * n + 1.2))
    height = 0.8 / max(len(directions), 1)
    y = np.arange(len(claims))
    for j, d in enumerate(directions):
        ax.barh(y - 0.4 + height * (j + 0.5), claims[f"gain {d}"].to_numpy(dtype=float), height=height,
                color=_COLOURS[d], label=d, zorder=2)
    if np.isfinite(floor):
        ax.axvspan(-floor, floor, color="#dddddd", lw=0, zorder=0, label=f"seed spread (±{floor:.2f})")
    ax.axvline(0, color="black", lw=0.6, zorder=3)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=6)
    if "beyond spread" in claims.columns:  # the claims that keep a verdict, in bold
        for tick, beyond in zip(ax.get_yticklabels(), claims["beyond spread"]):
            tick.set_fontweight("bold" if beyond else "normal")
    ax.set_ylim(len(claims) - 0.5, -0.5)  # first claim on top, no empty margin
    ax.set_xlabel("gain of the claimed component (points)")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
