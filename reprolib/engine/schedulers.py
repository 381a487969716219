"""Per-epoch learning-rate schedules of the papers, written from their formulas.

Both schedulers are stepped **once per epoch, at the start of the epoch**, with the 0-based
epoch index: ``scheduler.step(epoch)`` sets every parameter group's ``lr`` for the whole
epoch. Each group keeps its own peak learning rate (``initial_lr``, the group's ``lr`` when
the scheduler was built), so the per-group multipliers of ``model.param_groups`` survive.

* :class:`WarmupMultiStepLR` (X-ReID, docs/decisions/xreid.md#learning-rate-schedule; the reid-strong-baseline
  schedule). For 0-based epoch ``e``::

      alpha  = e / warmup_epochs                          (e < warmup_epochs)
      warmup = warmup_factor * (1 - alpha) + alpha        (e < warmup_epochs), else 1
      lr_g   = peak_g * warmup * gamma ** #{m in milestones : m <= e}

  X-ReID's 1-based epoch ``E`` is ``e + 1``: warmup 0.1x at E=1 and 0.91x at E=10, x0.1 from
  E=31 with milestones (30, 50).

* :class:`WarmupCosineLR` (VLD, docs/decisions/vld.md#v5-learning-rate-schedule), the schedule of timm's
  ``CosineLRScheduler`` with ``t_in_epochs=True``, ``warmup_prefix=False``, ``cycle_limit=1``,
  ``cycle_mul=1``, ``cycle_decay=1``, no noise. Mapping of timm's arguments to ours::

      t_initial      = train.epochs           (24 in VLD)
      warmup_t       = sched.warmup_epochs    (3)
      lr_min         = sched.min_lr           (absolute, the same for every group: 2.5e-7)
      warmup_lr_init = sched.warmup_lr_init   (absolute; defaults to lr_min, as in VLD)

  For 0-based epoch ``e``::

      e <  warmup_t : lr_g = warmup_lr_init + e * (peak_g - warmup_lr_init) / warmup_t
      e <  t_initial: lr_g = lr_min + (peak_g - lr_min) * (1 + cos(pi * e / t_initial)) / 2
      e >= t_initial: lr_g = lr_min

  With ``warmup_prefix=False`` the cosine uses the absolute epoch, so the first post-warmup
  epoch does not start at the peak (0.962 x peak at e = 3 of 24).
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Optional, Sequence

import torch

__all__ = ["EpochLRScheduler", "WarmupMultiStepLR", "WarmupCosineLR", "StagedLR", "build_scheduler"]


class EpochLRScheduler:
    """Base class: sets every group's learning rate from ``lr_at(epoch)``.

    Args:
        optimizer: the optimizer whose groups are scheduled; each group's current ``lr`` is its
            peak value (stored as ``initial_lr``, as torch's schedulers do).
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_epoch: Optional[int] = None

    def lr_at(self, epoch: int) -> list[float]:
        """Learning rate of every group during 0-based ``epoch``."""
        raise NotImplementedError

    def step(self, epoch: int) -> list[float]:
        """Apply the learning rates of 0-based ``epoch`` (call at the start of the epoch)."""
        lrs = self.lr_at(epoch)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self.last_epoch = epoch
        return lrs

    def get_last_lr(self) -> list[float]:
        """The learning rates currently set on the optimizer."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Serializable state (plain numbers only)."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` and re-apply the learning rates of ``last_epoch``."""
        if len(state["base_lrs"]) != len(self.base_lrs):
            raise ValueError(f"scheduler state has {len(state['base_lrs'])} parameter groups, "
                             f"the optimizer has {len(self.base_lrs)}")
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = lr
        if state["last_epoch"] is not None:
            self.step(int(state["last_epoch"]))


class WarmupMultiStepLR(EpochLRScheduler):
    """Linear warmup from ``warmup_factor`` then step decay at milestones (X-ReID).

    Args:
        optimizer: scheduled optimizer.
        milestones: 0-based epochs from which one more factor ``gamma`` applies.
        gamma: decay factor per milestone.
        warmup_factor: multiplier at epoch 0.
        warmup_epochs: number of warmup epochs (0 disables warmup).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_factor: float = 0.01, warmup_epochs: int = 10) -> None:
        if list(milestones) != sorted(milestones):
            raise ValueError(f"sched.milestones must be increasing, got {list(milestones)}")
        super().__init__(optimizer)
        self.milestones = [int(m) for m in milestones]
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_epochs = warmup_epochs

    def factor(self, epoch: int) -> float:
        """Multiplier of the peak learning rate at 0-based ``epoch``."""
        warmup = 1.0
        if epoch < self.warmup_epochs:
            alpha = epoch / self.warmup_epochs
            warmup = self.warmup_factor * (1.0 - alpha) + alpha
        return warmup * self.gamma ** bisect.bisect_right(self.milestones, epoch)

    def lr_at(self, epoch: int) -> list[float]:
        f = self.factor(epoch)
        return [base * f for base in self.base_lrs]


class WarmupCosineLR(EpochLRScheduler):
    """timm-style per-epoch cosine decay with linear warmup (VLD); see the module docstring.

    Args:
        optimizer: scheduled optimizer.
        t_initial: length of the cosine in epochs (the number of training epochs).
        lr_min: floor of the cosine, absolute and shared by all groups.
        warmup_epochs: linear warmup length (timm's ``warmup_t``).
        warmup_lr_init: absolute start of the warmup, shared by all groups; default ``lr_min``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, t_initial: int, lr_min: float = 0.0,
                 warmup_epochs: int = 0, warmup_lr_init: Optional[float] = None) -> None:
        if t_initial <= 0:
            raise ValueError(f"cosine schedule needs t_initial > 0 (train.epochs), got {t_initial}")
        super().__init__(optimizer)
        self.t_initial = t_initial
        self.lr_min = lr_min
        self.warmup_epochs = warmup_epochs
        self.warmup_lr_init = lr_min if warmup_lr_init is None else warmup_lr_init

    def lr_at(self, epoch: int) -> list[float]:
        if epoch < self.warmup_epochs:
            return [self.warmup_lr_init + epoch * (base - self.warmup_lr_init) / self.warmup_epochs
                    for base in self.base_lrs]
        if epoch >= self.t_initial:
            return [self.lr_min for _ in self.base_lrs]
        cos = 0.5 * (1.0 + math.cos(math.pi * epoch / self.t_initial))
        return [self.lr_min + (base - self.lr_min) * cos for base in self.base_lrs]


class StagedLR(EpochLRScheduler):
    """Two schedules one after the other: ``first`` for epochs ``[0, switch_epoch)``, then
    ``second`` restarted at ``switch_epoch`` (CLIP-ReID: cosine prompt learning, then warmup +
    steps for the image encoder, docs/decisions/clip_baselines.md#clip-reid-two-stages).

    Args:
        optimizer: scheduled optimizer (both stages use its groups' peak learning rates).
        first: schedule of the first stage, over its own epoch count.
        second: schedule of the second stage; its epoch 0 is ``switch_epoch``.
        switch_epoch: first epoch of the second stage.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, first: EpochLRScheduler, second: EpochLRScheduler,
                 switch_epoch: int) -> None:
        super().__init__(optimizer)
        self.first, self.second, self.switch_epoch = first, second, int(switch_epoch)

    def lr_at(self, epoch: int) -> list[float]:
        if epoch < self.switch_epoch:
            return self.first.lr_at(epoch)
        return self.second.lr_at(epoch - self.switch_epoch)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.first.base_lrs = self.second.base_lrs = list(self.base_lrs)


def build_scheduler(optimizer: torch.optim.Optimizer, sched_cfg: Any, epochs: int) -> EpochLRScheduler:
    """Build the scheduler named by ``sched.name``.

    Args:
        optimizer: optimizer whose groups hold their peak learning rates.
        sched_cfg: a ``SchedulerConfig`` (``name``, ``warmup_epochs``, ``warmup_factor``,
            ``milestones``, ``gamma``, ``min_lr``; optional ``warmup_lr_init``;
            ``switch_epoch`` and ``first_warmup_epochs`` for ``cosine_then_multistep``: a cosine
            over the first stage with its own warmup from ``warmup_lr_init``, then warmup and steps
            counted from the switch).
        epochs: ``train.epochs`` (the cosine's ``t_initial``).

    Raises:
        ValueError: for an unknown ``sched.name``.
    """
    name = sched_cfg.name
    if name == "cosine_then_multistep":
        if not 0 < sched_cfg.switch_epoch < epochs:
            raise ValueError(f"sched.switch_epoch must be in (0, train.epochs={epochs}), got {sched_cfg.switch_epoch}")
        first = WarmupCosineLR(optimizer, t_initial=sched_cfg.switch_epoch, lr_min=sched_cfg.min_lr,
                               warmup_epochs=sched_cfg.first_warmup_epochs, warmup_lr_init=sched_cfg.warmup_lr_init)
        second = WarmupMultiStepLR(optimizer, sched_cfg.milestones, sched_cfg.gamma, sched_cfg.warmup_factor,
                                   sched_cfg.warmup_epochs)
        return StagedLR(optimizer, first, second, sched_cfg.switch_epoch)
    if name == "warmup_multistep":
        return WarmupMultiStepLR(optimizer, sched_cfg.milestones, sched_cfg.gamma,
                                 sched_cfg.warmup_factor, sched_cfg.warmup_epochs)
    if name == "cosine":
        return WarmupCosineLR(optimizer, t_initial=epochs, lr_min=sched_cfg.min_lr,
                              warmup_epochs=sched_cfg.warmup_epochs,
                              warmup_lr_init=sched_cfg.warmup_lr_init)
    raise ValueError(f"sched.name: unknown scheduler '{name}'; expected 'cosine', 'warmup_multistep' or "
                     "'cosine_then_multistep'")
