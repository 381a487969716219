"""The training loop both pretraining recipes share (TinyCLIP, TinyResNet), and their weights records.

:func:`pretrain_loop` runs ``cfg.steps`` optimisation steps under a warm-up + cosine learning rate
(:func:`warmup_cosine_lr`, set on every group before each step), with a wall-time safety stop
(``cfg.max_minutes``); the recipe supplies the batches and the step's loss. The order of the
operations in a step (lr, batch, forward, loss, ``zero_grad``, ``backward``, ``step``, then the
recipe's ``after_step``) is the one both recipes used when their shipped weights were trained.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from torch import Tensor, nn

from reprolib.models.weights import sha256_file

__all__ = ["LoopResult", "pretrain_loop", "warmup_cosine_lr", "save_weights", "record_path", "hardware_summary",
           "write_record"]

logger = logging.getLogger(__name__)


def warmup_cosine_lr(step: int, cfg: Any) -> float:
    """Learning rate at ``step``: linear warm-up over ``cfg.warmup_steps``, then cosine decay to 0 at ``cfg.steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class LoopResult:
    """What :func:`pretrain_loop` ran: the loss of every step, the recipe's per-step statistics
    (e.g. ``{"acc": [...]}``) and whether the wall-time stop triggered."""

    losses: list[float] = field(default_factory=list)
    stats: dict[str, list[float]] = field(default_factory=dict)
    stopped_early: bool = False

    def window_mean(self, values: list[float], window: int) -> float:
        """Mean of the last ``window`` entries of ``values``."""
        tail = values[-window:]
        return sum(tail) / len(tail)


def pretrain_loop(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator[Any],
                  step_loss: Callable[[Any], tuple[Tensor, dict[str, float]]], cfg: Any, t0: float,
                  after_step: Optional[Callable[[], None]] = None, log_every: int = 50) -> LoopResult:
    """Run the optimisation steps of a pretraining recipe.

    Args:
        model: the network (put in training mode here).
        optimizer: its optimiser; every group's ``lr`` is set by :func:`warmup_cosine_lr` before each step.
        batches: an endless iterator of batches.
        step_loss: ``step_loss(batch) -> (loss, stats)``: the forward pass and the scalar loss of one
            batch, plus per-step statistics to record and log (floats; e.g. training accuracy).
        cfg: the recipe's config (``steps``, ``lr``, ``warmup_steps``, ``max_minutes``).
        t0: ``time.perf_counter()`` at the start of the recipe (rendering included) for the wall-time stop.
        after_step: called after ``optimizer.step()`` (TinyCLIP clamps its logit scale there).
        log_every: log every this many steps (and the last one).

    Returns:
        The :class:`LoopResult`.
    """
    model.train()
    out = LoopResult()
    t1 = time.perf_counter()
    for step in range(cfg.steps):
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine_lr(step, cfg)
        loss, stats = step_loss(next(batches))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        out.losses.append(float(loss.detach()))
        for key, value in stats.items():
            out.stats.setdefault(key, []).append(value)
        if step % log_every == 0 or step == cfg.steps - 1:
            window = min(log_every, len(out.losses))
            extra = "".join(f", {k} {out.window_mean(v, window):.3f}" for k, v in out.stats.items())
            logger.info("step %d/%d loss %.4f (mean of last %d: %.4f%s) lr %.2e %.0f s", step, cfg.steps,
                        out.losses[-1], window, out.window_mean(out.losses, window), extra,
                        warmup_cosine_lr(step, cfg), time.perf_counter() - t1)
        if (time.perf_counter() - t0) / 60.0 > cfg.max_minutes:
            logger.warning("stopping at step %d: max_minutes=%.1f reached", step + 1, cfg.max_minutes)
            out.stopped_early = True
            break
    return out


def save_weights(model: nn.Module, path: Path) -> dict[str, Any]:
    """Write a module's fp16 state dict atomically; return ``{"path", "sha256", "size_bytes"}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return {"path": str(path), "sha256": sha256_file(path), "size_bytes": path.stat().st_size}


def record_path(weights: Path) -> Path:
    """The JSON record next to a weights file (``tinyclip.pt`` -> ``tinyclip.json``)."""
    return weights.with_suffix(".json")


def hardware_summary() -> str:
    """CPU model, thread/CPU counts and torch version, for the weights record."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} ({platform.machine()}), {torch.get_num_threads()} torch threads, " \
           f"{os.cpu_count()} CPUs visible, torch {torch.__version__}"


def write_record(record: dict[str, Any], weights: Path, eval_report: Optional[dict[str, Any]] = None) -> Path:
    """Write the JSON record next to the weights (``<name>.json``; adds the evaluation numbers if given)."""
    data = dict(record)
    if eval_report is not None:
        data["eval"] = eval_report
    path = record_path(Path(weights))
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
