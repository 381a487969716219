"""Test-time feature extraction and the evaluation of a model on a dataset's eval sets.

For each direction in ``cfg.eval.directions`` the dataset's ``eval_sets[direction]`` gives a
query and a gallery set and the camera rule. Features are extracted once per distinct set:
on HITSZ-VCM, ``rgb2ir`` uses the same two sets as ``ir2rgb`` with the roles swapped, so its
distance matrix is the transpose of ``ir2rgb``'s (as VLD and X-ReID compute it; reference/
vld.md 5.9, xreid.md 4.5). Distances come from ``reprolib.eval.compute_distance`` with
``cfg.eval.distance`` and the metrics from ``reprolib.eval.evaluate``.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterable, Optional

import numpy as np
import torch
from torch import nn

__all__ = ["extract_features", "direction_distances", "evaluate_model"]

log = logging.getLogger(__name__)


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def extract_features(model: nn.Module, loader: Iterable[dict], device: torch.device,
                     flip: bool = False, amp_dtype: Optional[torch.dtype] = None
                     ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Run ``model.extract`` over a test loader.

    Args:
        model: a ``ReIDModel`` (put in eval mode here).
        loader: yields dicts with ``frames`` (B, T, 3, H, W) or, for dense sampling,
            (B, C, T, 3, H, W) (``ReIDModel.extract`` averages the C clip features), plus
            ``pid``, ``camid``, ``modality``.
        device: where the model runs.
        flip: also extract horizontally flipped frames and average the two features.
        amp_dtype: autocast dtype (``None``: full precision).

    Returns:
        ``(features (N, D) float32 on CPU, pids (N,), camids (N,))`` in loader order.
    """
    model.eval()
    feats, pids, camids = [], [], []
    for batch in loader:
        x = batch["frames"].to(device, non_blocking=True)  # (B, [C,] T, 3, H, W)
        camid = batch["camid"].to(device)  # (B,)
        modality = batch["modality"].to(device)  # (B,)
        with _autocast(device, amp_dtype):
            f = model.extract(x, camid=camid, modality=modality).float()  # (B, D)
            if flip:
                f = 0.5 * (f + model.extract(x.flip(-1), camid=camid, modality=modality).float())
        feats.append(f.cpu())
        pids.append(np.asarray(batch["pid"]))
        camids.append(np.asarray(batch["camid"]))
    if not feats:
        raise ValueError("test loader yielded no batch: the query or gallery set is empty")
    return torch.cat(feats), np.concatenate(pids), np.concatenate(camids)


def _set_key(tracklets: list) -> tuple:
    return tuple(tracklets)


def direction_distances(model: nn.Module, dataset: Any, cfg: Any, directions: Optional[Iterable[str]] = None,
                        device: Optional[torch.device] = None, amp_dtype: Optional[torch.dtype] = None
                        ) -> dict[str, tuple]:
    """Query x gallery distance matrices of ``model`` for each direction.

    Features are extracted once per distinct tracklet set; when a direction uses the same two
    sets as an earlier one with the roles swapped, its matrix is the transpose.

    Args:
        model: the unwrapped ``ReIDModel``.
        dataset: a ``VideoReIDDataset`` whose ``eval_sets`` hold the directions.
        cfg: the ``ExperimentConfig`` (``eval.distance``, ``eval.flip_test``, ``data`` for the loaders).
        directions: which directions (default ``cfg.eval.directions``).
        device: the model's device (default: the device of its first parameter).
        amp_dtype: autocast dtype for extraction.

    Returns:
        ``{direction: (distmat (Q, G), q_pids, g_pids, q_camids, g_camids)}``.

    Raises:
        KeyError: when a direction is not among the dataset's eval sets.
    """
    from reprolib.data.video import build_test_loader
    from reprolib.eval import compute_distance

    if device is None:
        device = next(model.parameters()).device
    features: dict[tuple, tuple] = {}

    def feats_of(tracklets: list) -> tuple:
        key = _set_key(tracklets)
        if key not in features:
            loader = build_test_loader(tracklets, cfg.data)
            features[key] = extract_features(model, loader, device, flip=cfg.eval.flip_test, amp_dtype=amp_dtype)
        return features[key]

    distmats: dict[tuple, Any] = {}
    out: dict[str, tuple] = {}
    for direction in cfg.eval.directions if directions is None else directions:
        if direction not in dataset.eval_sets:
            raise KeyError(f"eval.directions: '{direction}' is not an eval set of dataset "
                           f"'{dataset.name}' (has {sorted(dataset.eval_sets)})")
        es = dataset.eval_sets[direction]
        qkey, gkey = _set_key(es.query), _set_key(es.gallery)
        qf, q_pids, q_camids = feats_of(es.query)
        gf, g_pids, g_camids = feats_of(es.gallery)
        if (gkey, qkey) in distmats:  # the same sets with roles swapped: transpose
            distmat = distmats[(gkey, qkey)].T
        else:
            distmat = compute_distance(qf, gf, cfg.eval.distance)
        distmats[(qkey, gkey)] = distmat
        out[direction] = (distmat, q_pids, g_pids, q_camids, g_camids)
    return out


def eval_setup(cfg: Any, train_dataset: Any = None) -> tuple[Any, Any]:
    """The config and dataset a run is tested with.

    Normally the training dataset itself; with ``eval.dataset`` set (cross-dataset testing, VLD
    Table VIII) the other dataset, parsed from ``eval.root`` and tested with its own protocol.

    Args:
        cfg: the ``ExperimentConfig``.
        train_dataset: the already parsed training dataset (parsed here when needed and absent).

    Returns:
        ``(cfg_for_eval, dataset)``: ``cfg_for_eval.data`` describes the test data.
    """
    from dataclasses import replace

    from reprolib.data.datasets import build_dataset, eval_data_config

    if not cfg.eval.dataset or (cfg.eval.dataset == cfg.data.dataset and not cfg.eval.root):
        return cfg, (train_dataset if train_dataset is not None else build_dataset(cfg.data))
    data = eval_data_config(cfg.data, cfg.eval.dataset, cfg.eval.root)
    log.info("cross-dataset test: trained on %s, testing on %s (%s)", cfg.data.dataset, data.dataset, data.root)
    return replace(cfg, data=data), build_dataset(data)


def evaluate_model(model: nn.Module, dataset: Any, cfg: Any, device: Optional[torch.device] = None,
                   amp_dtype: Optional[torch.dtype] = None) -> dict[str, dict]:
    """Evaluate ``model`` on every direction of ``cfg.eval.directions``.

    Args:
        model: the unwrapped ``ReIDModel``.
        dataset: a ``VideoReIDDataset`` whose ``eval_sets`` hold the directions.
        cfg: the ``ExperimentConfig`` (``eval.distance``, ``eval.max_rank``, ``eval.flip_test``,
            ``data`` for the test loaders).
        device: the model's device (default: the device of its first parameter).
        amp_dtype: autocast dtype for extraction.

    Returns:
        ``{direction: EvalResult.to_dict(counts=True)}``.

    Raises:
        KeyError: when a direction is not among the dataset's eval sets.
    """
    from reprolib.eval import evaluate

    results: dict[str, dict] = {}
    for direction, (distmat, q_pids, g_pids, q_camids, g_camids) in direction_distances(
            model, dataset, cfg, None, device, amp_dtype).items():
        rule = dataset.eval_sets[direction].rule
        result = evaluate(distmat, q_pids, g_pids, q_camids, g_camids, rule=rule, max_rank=cfg.eval.max_rank)
        results[direction] = result.to_dict(counts=True)
        log.info("%s: %s", direction, {k: v for k, v in results[direction].items() if not isinstance(v, list)})
    return results
