"""Before a notebook trains for hours, check in seconds everything each of its runs will need.

A paper-profile notebook trains several runs, often on several datasets and backbones (X-ReID
Table 3: three HITSZ-VCM runs, then three BUPTCampus runs). A problem that only shows when a run
starts (a dataset root not set, an index file missing, an evaluation set that the official BUPT
batch-64 drop leaves empty, a weights file that is not there, a paper run about to train on the CPU)
would otherwise surface after the runs before it have trained. :func:`preflight` checks every
config up front and :func:`check_configs` raises **one** error listing every problem.

What is checked, per config (datasets and weights once each):

* the device: ``device=auto`` under the paper profile on a machine without CUDA needs an explicit
  ``device=cpu`` (:func:`reprolib.engine.trainer.check_run_device`);
* the training dataset: its root resolves (``${REPROLIB_*}`` set), its index files parse (the
  dataset class validates its tree; frames are not decoded: ``python -m reprolib data check`` does),
  it has training tracklets of both modalities;
* the test dataset (the training one, or ``eval.dataset``/``eval.root``): every direction of
  ``eval.directions`` has a non-empty query and gallery;
* the backbone weights: CLIP (``resolve_weights``) or ResNet-50 (``resolve_resnet_weights``) are
  found, and each file is of ``model.backbone.arch``: its key names and shapes are compared with the
  architecture's (built on the ``meta`` device), reading only a ``.safetensors`` header, a torch file
  memory-mapped (``torch.load(weights_only=True, mmap=True)``) or a TorchScript archive with
  ``torch.jit.load`` on the CPU; a ResNet file given as CLIP weights, or a CLIP of another width, is
  reported with the file named (seconds per file, not the minutes of a model build and load).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

__all__ = ["PreflightError", "preflight", "check_configs", "is_resnet_backbone"]

log = logging.getLogger(__name__)


def is_resnet_backbone(arch: str) -> bool:
    """Whether ``model.backbone.arch`` names a ResNet stream (CMFT) rather than a CLIP encoder."""
    return arch.lower().startswith("resnet")


class PreflightError(RuntimeError):
    """What the runs of a notebook (or one run) lack, every problem on its own line."""


def _dataset_problems(data_cfg: Any, what: str, directions: Iterable[str], check_train: bool) -> list[str]:
    from reprolib.config import ConfigError, resolve_path
    from reprolib.data.datasets import build_dataset

    try:
        resolve_path(data_cfg.root, f"{what}.root")
    except ConfigError as e:
        return [str(e)]
    try:
        ds = build_dataset(data_cfg)
    except Exception as e:  # noqa: BLE001 - every reader error is one line of the report
        return [f"{what}: {data_cfg.dataset} at {data_cfg.root}: {e}"]
    out = []
    if check_train:
        modalities = {int(t.modality) for t in ds.train}
        if len(modalities) < 2:
            out.append(f"{what}: {data_cfg.dataset} at {data_cfg.root}: the training set has "
                       f"{len(ds.train)} tracklets of {len(modalities)} modality/ies; training needs both")
    for d in directions:
        es = ds.eval_sets.get(d)
        if es is None:
            out.append(f"{what}: {data_cfg.dataset} has no evaluation set '{d}' (it has {sorted(ds.eval_sets)})")
            continue
        empty = [name for name, items in (("query", es.query), ("gallery", es.gallery)) if not items]
        if empty:
            hint = ""
            if data_cfg.dataset == "bupt" and getattr(data_cfg, "bupt_eval_mode", "") == "official":
                hint = (" (the official batch-64 evaluation drops the RGB tail of each batch: on a small tree use "
                        "--set data.bupt_eval_mode=full)")
            out.append(f"{what}: {data_cfg.dataset} at {data_cfg.root}: evaluation set '{d}' has an empty "
                       f"{' and '.join(empty)}{hint}")
    return out


def _weights_problem(backbone: Any) -> Optional[str]:
    """Why the backbone's weights would not load: not found, unreadable, or of another architecture
    (key names and shapes compared with ``model.backbone.arch``'s, without building the model)."""
    try:
        if is_resnet_backbone(backbone.arch):
            from reprolib.models.cmft.resnet import resnet_architecture_problem, resolve_resnet_weights

            path = resolve_resnet_weights(backbone.arch, backbone.pretrained, backbone.weights_path)
            misfit = resnet_architecture_problem(path, backbone.arch) if path is not None else None
        else:
            from reprolib.models.weights import clip_architecture_problem, resolve_weights

            source = resolve_weights(backbone.arch, backbone.pretrained, backbone.weights_path or None)
            misfit = None
            if source is not None and source.path is not None:  # None: random init, or a download
                misfit = clip_architecture_problem(backbone.arch, source.path)
                if misfit and source.origin != "model.backbone.weights_path":
                    misfit = f"{misfit} (found through {source.origin})"
    except Exception as e:  # noqa: BLE001
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        return f"weights of {backbone.arch} (pretrained={backbone.pretrained}): {first}"
    if misfit:
        kind = "resnet50" if is_resnet_backbone(backbone.arch) else "clip"
        return (f"weights of {backbone.arch} (pretrained={backbone.pretrained}): {misfit}; give a file of that "
                f"architecture (`python -m reprolib weights check --backbone {kind} --weights-path FILE` checks one)")
    return None


def preflight(configs: Iterable[Any]) -> list[str]:
    """Every problem that would stop the runs of ``configs`` (see the module docstring).

    Args:
        configs: resolved ``ExperimentConfig`` objects.

    Returns:
        One line per problem (empty: all set), each naming the dataset, file or key and the fix.
    """
    from dataclasses import replace

    from reprolib.data.datasets import eval_data_config
    from reprolib.engine.trainer import check_run_device

    problems: list[str] = []
    seen_data: dict[tuple, list[str]] = {}
    seen_weights: dict[tuple, Optional[str]] = {}
    for cfg in configs:
        try:
            check_run_device(cfg)
        except RuntimeError as e:
            problems.append(f"device: {e}")
        cross = bool(cfg.eval.dataset) and not (cfg.eval.dataset == cfg.data.dataset and not cfg.eval.root)
        sets = [(cfg.data, "data", () if cross else tuple(cfg.eval.directions), True)]
        if cross:
            try:
                sets.append((eval_data_config(cfg.data, cfg.eval.dataset, cfg.eval.root), "eval",
                             tuple(cfg.eval.directions), False))
            except ValueError as e:
                problems.append(str(e))
        for data_cfg, what, directions, train in sets:
            key = (what, repr(replace(data_cfg, num_workers=0)), directions)
            if key not in seen_data:
                seen_data[key] = _dataset_problems(data_cfg, what, directions, train)
                problems.extend(seen_data[key])
        bb = cfg.model.backbone
        wkey = (bb.arch, bb.pretrained, bb.weights_path)
        if wkey not in seen_weights:
            seen_weights[wkey] = _weights_problem(bb)
            if seen_weights[wkey]:
                problems.append(seen_weights[wkey])
    return list(dict.fromkeys(problems))


def check_configs(configs: Iterable[Any], what: str = "these runs") -> None:
    """Raise :class:`PreflightError` listing every problem of :func:`preflight`, or return.

    Args:
        configs: resolved configs.
        what: the subject of the message (``"xreid table3"``).
    """
    configs = list(configs)
    problems = preflight(configs)
    if problems:
        raise PreflightError(f"{what} cannot train: {len(problems)} problem(s) found before any training "
                             f"(checked {len(configs)} run config(s)):\n  - " + "\n  - ".join(problems))
    log.info("preflight: %d run config(s) of %s have their data, test sets, weights and device", len(configs), what)
