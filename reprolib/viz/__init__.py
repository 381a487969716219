"""Figures used by the notebooks: frame strips, retrieval rankings, paper-vs-ours bars.

The retrieval figures live in :mod:`reprolib.viz.retrieval` (re-exported here); the VLD Fig. 7 and
Fig. 8 analyses in :mod:`reprolib.viz.distances` and :mod:`reprolib.viz.cam`; the seed-spread
figures in :mod:`reprolib.viz.spread`. The measurement behind Fig. 7 (running a model) is
:func:`reprolib.experiments.analysis.distance_distributions`.

Every function returns a matplotlib ``Figure`` and never calls ``plt.show()``; notebooks display
it and :func:`~reprolib.viz.save.save_figure` writes it (PNG, atomically) under ``results/<profile>/figures/``.
"""
from __future__ import annotations

import textwrap
from typing import Optional, Sequence

import numpy as np

from reprolib.data.types import Modality, Tracklet
from reprolib.viz.retrieval import HIT, MISS, load_frame, plot_retrieval_grid, retrieval_figure
from reprolib.viz.save import save_figure
from reprolib.viz.spread import claim_gains_plot, seed_spread_plot


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
                ax.imshow(load_frame(t.paths[idx[c]], frame_size))
        label = titles[r] if titles else f"id {t.raw_pid}\n{t.modality.short.upper()} cam {t.camid}\n{len(t)} fr"
        axes[r, 0].text(-0.15, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=0.18, wspace=0.04, hspace=0.08)
    return fig


def _setting_dict(setting: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in str(setting).split(";") if "=" in kv)


def paper_vs_ours_panels(table, metrics: Sequence[str] = ("R1", "mAP"), title: str = "",
                         rows: Optional[Sequence[str]] = None):
    """The paper's numbers and ours side by side, one row of two panels per metric.

    The miniature's absolute numbers are far from the real benchmark's, so what can be compared is
    the *order* of the rows: the two panels of a metric share the row order and the colours (one per
    direction), and each has its own y-scale (from zero; every bar is labelled with its value).
    Rows of several datasets are grouped by dataset. Rows without a number of ours are marked
    ``pending``.

    Args:
        table: long table of :func:`reprolib.workbook.compare.side_by_side`.
        metrics: which metrics (one row of panels each; those absent from ``table`` are skipped).
        title: figure title (name the profile: embedded numbers are not real-benchmark claims).
        rows: only these paper rows (e.g. those we implement: a state-of-the-art table lists many
            methods that only the paper ran); default all.
    """
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if (table["metric"] == m).any()]
    t = table[table["metric"].isin(metrics)].copy()
    if rows is not None:
        t = t[t["row"].isin(list(rows))]
    t["direction"] = [_setting_dict(s).get("direction", "") for s in t["setting"]]
    several = "dataset" in t and t["dataset"].nunique() > 1  # e.g. X-ReID Table 3: HITSZ-VCM and BUPTCampus
    t["group"] = [textwrap.fill(str(r), 14) + (f"\n{ds}" if several else "")  # long names on two lines
                  + "".join(f"\n{k}={v}" for k, v in _setting_dict(s).items() if k != "direction")
                  for r, ds, s in zip(t["row"], t.get("dataset", t["row"]), t["setting"])]
    groups = list(dict.fromkeys(t["group"]))
    if several:  # one dataset's rows together, datasets in the order they first appear
        order = {ds: i for i, ds in enumerate(dict.fromkeys(t["dataset"]))}
        ds_of = dict(zip(t["group"], t["dataset"]))
        groups.sort(key=lambda g: order[ds_of[g]])
    directions = [d for d in dict.fromkeys(t["direction"])]
    palette = ["#4575b4", "#d73027", "#1a9850", "#984ea3"]
    colours = {d: palette[i % len(palette)] for i, d in enumerate(directions)}
    width = 0.8 / max(1, len(directions))
    fig, axes = plt.subplots(len(metrics), 2, figsize=(max(6.0, 1.1 * len(groups) * 2), 2.6 * len(metrics) + 0.4),
                             squeeze=False)
    for i, metric in enumerate(metrics):
        tm = t[t["metric"] == metric]
        for ax, col, name in zip(axes[i], ("paper", "ours"), ("paper (real benchmark)", "ours")):
            for j, d in enumerate(directions):
                sub = tm[tm["direction"] == d].set_index("group")
                vals = [float(sub[col].get(g, np.nan)) if g in sub.index else np.nan for g in groups]
                x = np.arange(len(groups)) + (j - (len(directions) - 1) / 2) * width
                ax.bar(x, vals, width, color=colours[d], label=d or metric,
                       hatch="//" if col == "paper" else None, edgecolor="#333333", linewidth=0.4)
                for xi, v in zip(x, vals):
                    if not np.isnan(v):
                        ax.text(xi, v, f"{v:.1f}", ha="center", va="bottom", fontsize=5.5, color="#333333")
                    else:
                        ax.text(xi, 0.02, "pending" if col == "ours" else "n/a", rotation=90, ha="center",
                                va="bottom", fontsize=6, color="#888888", transform=ax.get_xaxis_transform())
            ax.set_xticks(np.arange(len(groups)), groups if i == len(metrics) - 1 else [""] * len(groups), fontsize=7)
            ax.set_title(f"{name}: {metric}", fontsize=9)
            ax.set_ylabel(f"{metric} (%)" if metric in ("R1", "R5", "R10", "R20", "mAP", "mINP") else metric, fontsize=8)
            finite = tm[col].astype(float).dropna()
            if len(finite):  # bars start at zero (a cut axis would exaggerate the gaps); room for the labels
                ax.set_ylim(0.0, 1.12 * float(finite.max()))
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97) if len(directions) > 1 else None)
    if len(directions) > 1:  # one legend for the figure, above the panels (never over a bar)
        handles = [plt.Rectangle((0, 0), 1, 1, color=colours[d]) for d in directions]
        fig.legend(handles, directions, loc="upper right", ncol=len(directions), fontsize=7, frameon=False)
    return fig


def sweep_plot(table, metrics: Sequence[str] = ("R1", "mAP"), title: str = "", chosen: Optional[dict] = None,
               directions: Optional[dict] = None):
    """Hyper-parameter sweeps of a side-by-side table whose settings carry one swept key each
    (``direction=ir2rgb;lambda1=0.04``): one panel per (metric, key) with our curves (both
    directions) and, where the paper gives numbers, its curve on a second axis (its own scale).

    Args:
        table: long table of :func:`reprolib.workbook.compare.side_by_side`.
        metrics: which metrics (one row of panels each).
        title: figure title.
        chosen: ``{key: value}`` the paper selected (a dashed vertical line); papers often give a
            sweep's values only in the figure, so the chosen value is what can be compared.
        directions: how the table's settings spell our directions (``Target.directions``, e.g.
            ``{ir2rgb: ""}`` when the paper reports one direction); the curves keep our names.
    """
    import matplotlib.pyplot as plt

    t = table[table["metric"].isin(list(metrics))].copy()
    parsed = [_setting_dict(s) for s in t["setting"]]
    t["direction"] = [p.get("direction", "") for p in parsed]
    t["key"] = [next((k for k in p if k != "direction"), "") for p in parsed]
    t["x"] = [float(p[k]) if k else np.nan for p, k in zip(parsed, t["key"])]
    keys = [k for k in dict.fromkeys(t["key"]) if k]
    fig, axes = plt.subplots(len(metrics), len(keys), figsize=(3.4 * len(keys), 2.6 * len(metrics) + 0.4),
                             squeeze=False)
    for i, metric in enumerate(metrics):
        for j, key in enumerate(keys):
            ax = axes[i][j]
            sub = t[(t["metric"] == metric) & (t["key"] == key)].sort_values("x")
            for d, c in (("ir2rgb", "#4575b4"), ("rgb2ir", "#d73027")):
                ours = sub[sub["direction"] == (directions or {}).get(d, d)].dropna(subset=["ours"])
                if len(ours):
                    ax.plot(ours["x"], ours["ours"], "-o", color=c, ms=4, label=f"ours {d}")
            if not sub["ours"].notna().any():
                ax.text(0.5, 0.5, "pending", ha="center", va="center", transform=ax.transAxes, color="#888888")
            ax.set_xlabel(key)
            ax.set_ylabel(f"ours {metric} (%)", fontsize=8)
            paper = sub.dropna(subset=["paper"])
            if len(paper):
                ax2 = ax.twinx()
                ax2.plot(paper["x"], paper["paper"], "k--s", ms=3, label="paper")
                ax2.set_ylabel(f"paper {metric} (%)", fontsize=8)
            if chosen and key in chosen:
                ax.axvline(float(chosen[key]), color="#555555", ls=":", lw=1, label="paper's choice")
            if i == 0 and j == 0:
                ax.legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


__all__ = ["tracklet_strips", "retrieval_figure", "plot_retrieval_grid", "paper_vs_ours_panels", "sweep_plot", "save_figure",
           "seed_spread_plot", "claim_gains_plot", "load_frame", "HIT", "MISS", "Modality"]
