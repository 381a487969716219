"""Test-time feature extraction and the evaluation of a model on a dataset's eval sets.

For each direction in ``cfg.eval.directions`` the dataset's ``eval_sets[direction]`` gives a
query and a gallery set and the camera rule. Features are extracted once per distinct set:
on HITSZ-VCM, ``rgb2ir`` uses the same two sets as ``ir2rgb`` with the roles swapped, so its
distance matrix is the transpose of ``ir2rgb``'s (as VLD and X-ReID compute it;
docs/decisions/vld.md#v13-test-feature, docs/decisions/xreid.md#evaluation-and-test-outputs). Distances come from ``reprolib.metrics.compute_distance`` with
``cfg.eval.distance`` and the metrics from ``reprolib.metrics.evaluate``.

Trial protocols (CMFT Tables 7 and 8; ``docs/decisions/data.md#image-benchmarks``):

* **SYSU-MM01** (:func:`evaluate_sysu_trials`, chosen by :func:`evaluate_model` for a
  :class:`~reprolib.data.sysu.SYSUMM01` test set): the query and the visible gallery pool are
  embedded once, then the ten single-shot galleries (trials 0..9) of *both* search modes are
  cut from that one distance matrix and scored with the ``"sysu"`` rule. The top-level
  metrics are the ten-trial means of the configured mode (``data.sysu_mode``); the per-trial
  values and standard deviations sit under ``"trials"``, and both modes under ``"modes"``, so a
  single trained model fills both halves of Table 7. The fixed-trial gallery of
  ``eval_sets["ir2rgb"]`` (``data.sysu_trial``) is left to rankings and figures.
* **RegDB**: a run trains and tests on one split (``data.regdb_trial``) with the ordinary path;
  :func:`aggregate_trial_runs` averages the ``eval`` metrics of the ten runs.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["extract_features", "direction_distances", "evaluate_model", "evaluate_sysu_trials",
           "summarize_trial_metrics", "aggregate_trial_runs"]

#: Integer counts of :meth:`EvalResult.to_dict` (``counts=True``); not averaged over trials.
COUNT_KEYS = ("num_valid", "num_query")

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


def _eval_set(dataset: Any, direction: str) -> Any:
    """``dataset.eval_sets[direction]``, or a ``KeyError`` naming ``eval.directions``."""
    if direction not in dataset.eval_sets:
        raise KeyError(f"eval.directions: '{direction}' is not an eval set of dataset "
                       f"'{dataset.name}' (has {sorted(dataset.eval_sets)})")
    return dataset.eval_sets[direction]


def _set_features(model: nn.Module, tracklets: list, cfg: Any, device: torch.device,
                  amp_dtype: Optional[torch.dtype]) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Features, pids and camids of ``tracklets`` with the test loader of ``cfg.data``."""
    from reprolib.data.video import build_test_loader

    loader = build_test_loader(tracklets, cfg.data)
    return extract_features(model, loader, device, flip=cfg.eval.flip_test, amp_dtype=amp_dtype)


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
    from reprolib.metrics import compute_distance

    if device is None:
        device = next(model.parameters()).device
    features: dict[tuple, tuple] = {}

    def feats_of(tracklets: list) -> tuple:
        key = _set_key(tracklets)
        if key not in features:
            features[key] = _set_features(model, tracklets, cfg, device, amp_dtype)
        return features[key]

    distmats: dict[tuple, Any] = {}
    out: dict[str, tuple] = {}
    for direction in cfg.eval.directions if directions is None else directions:
        es = _eval_set(dataset, direction)
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
        ``{direction: EvalResult.to_dict(counts=True)}``; for SYSU-MM01 the ten-trial form of
        :func:`evaluate_sysu_trials` (same metric keys, trial means).

    Raises:
        KeyError: when a direction is not among the dataset's eval sets.
    """
    from reprolib.data.sysu import SYSUMM01
    from reprolib.metrics import evaluate

    if isinstance(dataset, SYSUMM01):
        return evaluate_sysu_trials(model, dataset, cfg, device=device, amp_dtype=amp_dtype)
    results: dict[str, dict] = {}
    for direction, (distmat, q_pids, g_pids, q_camids, g_camids) in direction_distances(
            model, dataset, cfg, None, device, amp_dtype).items():
        rule = dataset.eval_sets[direction].rule
        result = evaluate(distmat, q_pids, g_pids, q_camids, g_camids, rule=rule, max_rank=cfg.eval.max_rank)
        results[direction] = result.to_dict(counts=True)
        log.info("%s: %s", direction, {k: v for k, v in results[direction].items() if not isinstance(v, list)})
    return results


def summarize_trial_metrics(results: Mapping[int, Mapping[str, Any]], ddof: int = 0) -> dict[str, Any]:
    """Average per-trial metric dicts into one metrics entry of the usual shape.

    Args:
        results: ``{trial: EvalResult.to_dict(counts=True)}`` (or a run's metrics of one
            direction), in trial order; every trial must hold the first trial's metrics.
        ddof: delta degrees of freedom of the standard deviation (0: population).

    Returns:
        ``{metric: mean over trials, ..., "trials": TrialSummary.to_dict()}``: the metrics are
        those of the first trial (R1..R20, mAP, mINP); ``trials`` holds the trial ids, ``mean``,
        ``std`` and ``per_trial``. ``num_valid``/``num_query`` are kept when every trial has the
        same value (SYSU-MM01 trials share the query set and the gallery folders).

    Raises:
        ValueError: no trial given.
        KeyError: a trial lacks a metric of the first one.
    """
    from reprolib.metrics.trials import summarize_trials

    if not results:
        raise ValueError("summarize_trial_metrics: no trial results given")
    first = next(iter(results.values()))
    metrics = [k for k, v in first.items() if k not in COUNT_KEYS and isinstance(v, (int, float))]
    summary = summarize_trials(results, metrics, ddof)
    entry: dict[str, Any] = dict(summary.mean)
    for key in COUNT_KEYS:
        values = {r.get(key) for r in results.values()}
        if len(values) == 1 and None not in values:
            entry[key] = values.pop()
    entry["trials"] = summary.to_dict()
    return entry


def evaluate_sysu_trials(model: nn.Module, dataset: Any, cfg: Any, trials: Sequence[int] = (),
                         modes: Sequence[str] = (), device: Optional[torch.device] = None,
                         amp_dtype: Optional[torch.dtype] = None) -> dict[str, dict]:
    """SYSU-MM01's official protocol: ten single-shot gallery trials per search mode.

    Features of the infrared queries and of every candidate visible gallery image (the pool of
    all modes; the indoor pool is a subset of the all-search pool) are extracted once, and one
    query x pool distance matrix is computed. Trial ``t`` of a mode keeps the columns of its
    single-shot draw (:meth:`SYSUMM01.gallery_indices`, ``random.seed(t)`` as DDAG), so it equals
    evaluating ``dataset.eval_set(t, mode)`` on its own (distances are computed column by
    column). Each trial is scored with the direction's rule (``"sysu"``: the camera-3/camera-2
    filter and the identity-unique CMC) and the trials are averaged
    (:func:`summarize_trial_metrics`).

    Args:
        model: the unwrapped ``ReIDModel``.
        dataset: a :class:`~reprolib.data.sysu.SYSUMM01`; its ``mode`` (``data.sysu_mode``)
            gives the top-level metrics.
        cfg: the ``ExperimentConfig`` (``eval.directions`` (``ir2rgb``, the only SYSU-MM01
            direction), ``eval.distance``, ``eval.max_rank``, ``eval.flip_test``, ``data``).
        trials: gallery seeds (default :data:`reprolib.metrics.trials.SYSU_TRIALS`, 0..9).
        modes: search modes to evaluate (default both, ``"all"`` and ``"indoor"``); must
            include ``dataset.mode``.
        device: the model's device (default: the device of its first parameter).
        amp_dtype: autocast dtype for extraction.

    Returns:
        ``{direction: {R1, R5, R10, R20, mAP, mINP (means over trials), num_valid, num_query,
        "trials": {trials, ddof, mean, std, per_trial}, "mode": dataset.mode,
        "modes": {mode: the same entry}}}``.

    Raises:
        KeyError: a direction of ``eval.directions`` is not a SYSU-MM01 eval set.
        ValueError: ``modes`` lacks ``dataset.mode`` or names an unknown mode.
    """
    from reprolib.data.sysu import SEARCH_MODES
    from reprolib.metrics import compute_distance, evaluate
    from reprolib.metrics.trials import SYSU_TRIALS

    trials = tuple(trials) or SYSU_TRIALS
    modes = tuple(modes) or SEARCH_MODES
    unknown = [m for m in modes if m not in SEARCH_MODES]
    if unknown or dataset.mode not in modes:
        raise ValueError(f"evaluate_sysu_trials: modes must be among {SEARCH_MODES} and include "
                         f"data.sysu_mode='{dataset.mode}', got {modes}")
    eval_sets = {d: _eval_set(dataset, d) for d in cfg.eval.directions}
    if device is None:
        device = next(model.parameters()).device

    pools = {m: dataset.gallery_pool(m) for m in modes}
    union = list(dict.fromkeys(t for m in modes for t in pools[m]))  # all-search pool first
    column = {t: i for i, t in enumerate(union)}
    qf, q_pids, q_camids = _set_features(model, dataset.query, cfg, device, amp_dtype)
    gf, g_pids, g_camids = _set_features(model, union, cfg, device, amp_dtype)
    distmat = compute_distance(qf, gf, cfg.eval.distance)  # (Q, G_pool)

    out: dict[str, dict] = {}
    for direction, es in eval_sets.items():
        per_mode: dict[str, dict] = {}
        for mode in modes:
            pool_columns = np.array([column[t] for t in pools[mode]])  # mode pool -> union column
            results = {}
            for trial in trials:
                cols = pool_columns[dataset.gallery_indices(trial, mode)]  # (G_trial,)
                result = evaluate(distmat[:, torch.as_tensor(cols)], q_pids, g_pids[cols], q_camids, g_camids[cols],
                                  rule=es.rule, max_rank=cfg.eval.max_rank)
                results[trial] = result.to_dict(counts=True)
            per_mode[mode] = summarize_trial_metrics(results)
            log.info("%s (%s-search, %d trials): %s", direction, mode, len(trials),
                     per_mode[mode]["trials"]["mean"])
        out[direction] = {**per_mode[dataset.mode], "mode": dataset.mode, "modes": per_mode}
    return out


def aggregate_trial_runs(metrics_list: Sequence[Mapping[str, Mapping[str, Any]]],
                         trials: Sequence[int] = (), ddof: int = 0) -> dict[str, dict]:
    """Average the evaluations of one model trained once per trial (RegDB's ten splits).

    Example::

        runs = [get_run("cmft_regdb", profile, [f"data.regdb_trial={t}"]) for t in REGDB_TRIALS]
        table8 = aggregate_trial_runs([r.metrics["eval"] for r in runs], REGDB_TRIALS)
        table8["rgb2ir"]["R1"], table8["rgb2ir"]["trials"]["std"]["R1"]

    Args:
        metrics_list: one ``{direction: metrics}`` per run (a run's ``metrics["eval"]``); every
            run must have the directions of the first.
        trials: the trial id of each run (default :data:`reprolib.metrics.trials.REGDB_TRIALS`
            when there are ten runs, else ``0..n-1``).
        ddof: delta degrees of freedom of the standard deviation (0: population).

    Returns:
        ``{direction: {metric: mean over runs, ..., "trials": {trials, ddof, mean, std,
        per_trial}}}`` (:func:`summarize_trial_metrics`; counts kept when equal in every run).

    Raises:
        ValueError: no run, or ``trials`` and ``metrics_list`` differ in length.
        KeyError: a run lacks a direction or a metric of the first run.
    """
    from reprolib.metrics.trials import REGDB_TRIALS

    if not metrics_list:
        raise ValueError("aggregate_trial_runs: no run metrics given")
    if not trials:
        trials = REGDB_TRIALS if len(metrics_list) == len(REGDB_TRIALS) else tuple(range(len(metrics_list)))
    if len(trials) != len(metrics_list):
        raise ValueError(f"aggregate_trial_runs: {len(trials)} trial ids for {len(metrics_list)} runs")
    out: dict[str, dict] = {}
    for direction in metrics_list[0]:
        missing = [t for t, m in zip(trials, metrics_list) if direction not in m]
        if missing:
            raise KeyError(f"aggregate_trial_runs: the runs of trials {missing} have no direction '{direction}'")
        out[direction] = summarize_trial_metrics({int(t): m[direction] for t, m in zip(trials, metrics_list)}, ddof)
    return out
