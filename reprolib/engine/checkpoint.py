"""Training checkpoints: what a resumed run needs to continue bit-identically.

A checkpoint (``run_dir/last.pt``) is a plain dict of tensors, numbers, strings and
containers, loaded **only** with ``torch.load(weights_only=True)`` (no arbitrary unpickling)::

    format        CHECKPOINT_FORMAT
    model         state_dict of the unwrapped model
    optimizer     optimizer.state_dict()
    scheduler     scheduler.state_dict()
    scaler        GradScaler.state_dict() ({} when disabled)
    rng           list, one get_rng_state() per rank (python/numpy/torch/cuda as tensors)
    sampler       list, one training batch-sampler state_dict() (or None) per rank
    progress      {"epoch": e, "iteration": i, "global_step": s}: the next step to run is
                  iteration i of 0-based epoch e (i == 0: the epoch has not started)
    world_size    number of processes that wrote it
    config_hash   hash of the resolved config (a resume with another config is refused)
    train_time_s  training wall time accumulated over all segments of the run

It is written atomically (temporary file + ``os.replace``) at every epoch end and every
``train.ckpt_every_iters`` steps, so a run killed at any moment leaves either the previous or
the new checkpoint, never a torn one.

Once a run is trained and evaluated (``metrics.json`` written), :func:`finish_checkpoint` drops the
optimiser state and marks the checkpoint ``finished: True``: the model, progress, RNG and sampler
states stay (evaluation, figures and Grad-CAM need only the model), the Adam moments go. They are two
thirds of the file for a ViT-B/16 (1.8 GB -> 0.6 GB a run): kept, a paper store of 92 runs would hold
about 165 GB of optimiser state nobody reads, and a 2-core rehearsal filled its disk with 57 GB.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from reprolib.utils.io import atomic_torch_save, describe_load_error

__all__ = ["CHECKPOINT_FORMAT", "Progress", "unwrap_model", "save_checkpoint", "load_checkpoint",
           "finish_checkpoint"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


@dataclass
class Progress:
    """Position of the training loop: the next step is ``iteration`` of 0-based ``epoch``.

    Attributes:
        epoch: 0-based epoch of the next step (``train.epochs`` when training is done).
        iteration: index of the next step inside that epoch.
        global_step: number of optimiser steps taken so far.
    """

    epoch: int = 0
    iteration: int = 0
    global_step: int = 0


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DDP/DataParallel/our train-step wrappers."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


def save_checkpoint(path: str | os.PathLike, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: Any, progress: Progress, rng: list[dict],
                    sampler: Optional[list] = None, world_size: int = 1, config_hash: str = "",
                    extra: Optional[dict] = None) -> Path:
    """Write a checkpoint atomically (see the module docstring for its layout).

    Args:
        path: destination, normally ``run_dir/last.pt``.
        model: the model (wrappers are removed before ``state_dict``).
        optimizer: the optimiser.
        scheduler: an ``EpochLRScheduler``.
        scaler: a ``torch.amp.GradScaler`` (disabled scalers store ``{}``).
        progress: the next step's position.
        rng: one :func:`reprolib.utils.get_rng_state` snapshot per rank.
        sampler: one batch-sampler ``state_dict()`` (or ``None``) per rank.
        world_size: number of processes.
        config_hash: hash of the resolved config.
        extra: more weights-only-safe entries (e.g. ``train_time_s``).

    Returns:
        The checkpoint path.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": rng,
        "sampler": sampler,
        "progress": asdict(progress),
        "world_size": world_size,
        "config_hash": config_hash,
        **(extra or {}),
    }
    atomic_torch_save(payload, path)
    log.debug("checkpoint %s at epoch %d iteration %d (step %d)", path, progress.epoch,
              progress.iteration, progress.global_step)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``.

    Also accepts a bare ``state_dict`` file (e.g. ``model.pt`` or released weights): it is
    returned as ``{"model": state_dict}``.

    Raises:
        FileNotFoundError: when ``path`` does not exist (never a silent random init).
        ValueError: when the file is truncated, not a torch file or holds pickled Python objects
            (one line naming it and the fix), or its format is newer than this code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torn, truncated or foreign files: one line naming the file
        raise ValueError(f"{path}: unreadable checkpoint: {describe_load_error(e)}. Rerun with --force "
                         f"(get_run(..., force=True)) to train the run "
                         f"again from scratch") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    if "format" not in ckpt:
        return {"model": ckpt}
    if ckpt["format"] > CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {ckpt['format']} is newer than this code "
                         f"(reads up to {CHECKPOINT_FORMAT})")
    return ckpt


def finish_checkpoint(path: str | os.PathLike) -> bool:
    """Drop the optimiser state of a finished run's checkpoint and mark it ``finished`` (atomically).

    Call it only once the run's ``metrics.json`` is written: a finished checkpoint cannot continue
    training (:meth:`reprolib.engine.trainer.Trainer.resume` loads its model and position only).

    Args:
        path: the run's ``last.pt`` (a missing file is left alone).

    Returns:
        True when the file was rewritten; False when it was missing or already finished.
    """
    path = Path(path)
    if not path.is_file():
        return False
    ckpt = load_checkpoint(path)
    if ckpt.get("finished"):
        return False
    ckpt.pop("optimizer", None)
    ckpt["finished"] = True
    atomic_torch_save(ckpt, path)
    log.debug("checkpoint %s finished: optimiser state dropped", path)
    return True
