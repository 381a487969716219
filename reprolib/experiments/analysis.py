"""Analyses that run a trained model for a figure: VLD Fig. 7's distance distributions.

The figure itself (splitting, the gaps delta_1..delta_4, the plot) is :mod:`reprolib.viz.distances`;
this module measures the distances: it extracts features with the engine's evaluator
(:func:`~reprolib.engine.evaluator.extract_features`, :func:`~reprolib.engine.evaluator.direction_distances`).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from reprolib.data.video import build_test_loader
from reprolib.engine.evaluator import direction_distances, extract_features
from reprolib.metrics import compute_distance
from reprolib.models.base import ReIDModel
from reprolib.viz.distances import split_distances

__all__ = ["distance_distributions", "has_text_branch"]

log = logging.getLogger(__name__)


def has_text_branch(model: nn.Module) -> bool:
    """Whether ``model`` has per-identity text features (``text_features()``; VLD with IMLP on)."""
    extra = getattr(model, "extra", None)
    return callable(getattr(model, "text_features", None)) and bool(getattr(extra, "use_imlp", True))


class _ProjectedFeature(nn.Module):
    """A model seen through f_proj (``forward_features(...)["proj"]``) for :func:`extract_features`."""

    extract = ReIDModel.extract  # the base class's clip / dense-clips dispatch onto extract_clip

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def extract_clip(self, x: Tensor, camid: Optional[Tensor] = None, modality: Optional[Tensor] = None) -> Tensor:
        feats = self.model.forward_features(x, camid, modality)
        if "proj" not in feats:
            raise KeyError(f"{type(self.model).__name__}.forward_features has no 'proj' (f_proj) feature to compare "
                           "with its text prototypes")
        return feats["proj"]  # (B, d)


def _subsample(items: list, limit: Optional[int]) -> list:
    if limit is None or len(items) <= limit:
        return items
    keep = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in np.unique(keep)]


def distance_distributions(model: nn.Module, dataset: Any, cfg: Any, device: Optional[torch.device] = None,
                           direction: Optional[str] = None, metric: str = "cosine",
                           max_train_tracklets: Optional[int] = None,
                           amp_dtype: Optional[torch.dtype] = None) -> dict:
    """Fig. 7's distance distributions of one model: cross-modality and, with IMLP, text-to-visual.

    Args:
        model: the unwrapped ``ReIDModel`` (put in eval mode).
        dataset: its ``VideoReIDDataset`` (``train`` for the text part, ``eval_sets`` for the
            cross-modality part).
        cfg: the run's ``ExperimentConfig`` (``data`` for the loaders, ``eval.flip_test``).
        device: the model's device (default: the device of its first parameter).
        direction: the test direction whose query x gallery pairs are the cross-modality pairs
            (default: the first of ``cfg.eval.directions``; ``ir2rgb`` pairs IR queries with
            the visible gallery).
        metric: ``"cosine"`` (1 - cos, the default) or ``"euclidean"`` (on unit vectors); never
            the raw inner product, whose scale differs between models.
        max_train_tracklets: evenly spaced subset of the training tracklets for the text part
            (``None``: all of them).
        amp_dtype: autocast dtype for feature extraction.

    Returns:
        ``{"metric", "cross": split, "text": split or None}`` where each split is
        :func:`split_distances`'s dict plus ``"split"`` (``"test:<direction>"`` / ``"train"``)
        and ``"feature"`` (``"test"`` / ``"proj"``). ``"text"`` is ``None`` for a model
        without text features (:func:`has_text_branch`).

    Raises:
        ValueError: for an unknown metric or direction.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"distance_distributions: metric must be 'cosine' or 'euclidean', got {metric!r}")
    device = next(model.parameters()).device if device is None else device
    direction = direction or cfg.eval.directions[0]
    if direction not in dataset.eval_sets:
        raise ValueError(f"distance_distributions: direction {direction!r} is not an eval set of "
                         f"{dataset.name} (has {sorted(dataset.eval_sets)})")
    model.eval()

    # (c)/(d): cross-modality pairs of the test direction, test feature, cosine distance
    unit_cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, distance=metric))
    distmat, q_pids, g_pids, _, _ = direction_distances(model, dataset, unit_cfg, (direction,), device,
                                                        amp_dtype)[direction]  # (Q, G)
    cross = {**split_distances(distmat, q_pids, g_pids), "split": f"test:{direction}", "feature": "test"}
    log.info("cross-modality %s: intra %.4f, inter %.4f, delta %.4f", direction, cross["intra_mean"],
             cross["inter_mean"], cross["delta"])

    # (a)/(b): training tracklets vs the learned per-identity text prototypes
    text = None
    if has_text_branch(model):
        tracklets = _subsample(list(dataset.train), max_train_tracklets)
        loader = build_test_loader(tracklets, cfg.data)
        f_proj, pids, _ = extract_features(_ProjectedFeature(model), loader, device, flip=cfg.eval.flip_test,
                                           amp_dtype=amp_dtype)  # (N, d)
        with torch.no_grad():
            prototypes = model.text_features().float().cpu()  # (C, d)
        dist = compute_distance(f_proj, prototypes, metric)  # (N, C)
        text = {**split_distances(dist, pids, np.arange(prototypes.shape[0])), "split": "train", "feature": "proj"}
        log.info("text-to-visual (train, %d tracklets x %d prototypes): intra %.4f, inter %.4f, delta %.4f",
                 len(tracklets), prototypes.shape[0], text["intra_mean"], text["inter_mean"], text["delta"])
    return {"metric": metric, "cross": cross, "text": text}
