"""Optimiser factory over the model's parameter groups.

The model decides the groups and their learning rates (``model.param_groups(optim_cfg)``:
VLD's 25x bias/classifier/prompt groups, X-ReID's 2x/10x/100x groups); this module only
instantiates the optimiser named by ``optim.name``:

* ``adam``: ``torch.optim.Adam`` with L2 weight decay added to the gradient (X-ReID,
  docs/decisions/xreid.md#optimiser-and-learning-rate-groups);
* ``adamw``: ``torch.optim.AdamW``, decoupled weight decay (VLD's code; its paper says Adam,
  docs/decisions/vld.md#v3-optimiser);
* ``sgd``: ``torch.optim.SGD`` with ``optim.momentum`` (CMFT-style CNN training).

Frozen parameters (``requires_grad=False``) are dropped from every group, and empty groups
are dropped, so the optimizer state only holds trainable tensors.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["build_optimizer", "default_param_groups"]


def default_param_groups(model: nn.Module, optim_cfg: Any) -> list[dict]:
    """One group with every trainable parameter at ``optim.lr`` (for models without groups)."""
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": optim_cfg.lr,
             "weight_decay": optim_cfg.weight_decay, "name": "all"}]


def build_optimizer(model: nn.Module, optim_cfg: Any) -> torch.optim.Optimizer:
    """Build the optimiser of ``optim_cfg`` over ``model.param_groups(optim_cfg)``.

    Args:
        model: the (unwrapped) model; ``param_groups`` is used when it exists.
        optim_cfg: an ``OptimConfig`` (``name``, ``lr``, ``weight_decay``, ``momentum``,
            ``betas``).

    Returns:
        The optimiser; each group's ``lr`` is its peak learning rate (the scheduler scales it).

    Raises:
        ValueError: for an unknown ``optim.name`` or a parameter present in two groups.
    """
    groups = model.param_groups(optim_cfg) if hasattr(model, "param_groups") else default_param_groups(model, optim_cfg)
    seen: set[int] = set()
    cleaned = []
    for group in groups:
        params = [p for p in group["params"] if p.requires_grad]
        for p in params:
            if id(p) in seen:
                raise ValueError(f"parameter group '{group.get('name', '?')}' repeats a parameter "
                                 "already placed in another group")
            seen.add(id(p))
        if params:
            cleaned.append({**group, "params": params})
    name = optim_cfg.name.lower()
    if name == "adam":
        return torch.optim.Adam(cleaned, lr=optim_cfg.lr, betas=tuple(optim_cfg.betas),
                                weight_decay=optim_cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(cleaned, lr=optim_cfg.lr, betas=tuple(optim_cfg.betas),
                                 weight_decay=optim_cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(cleaned, lr=optim_cfg.lr, momentum=optim_cfg.momentum,
                               weight_decay=optim_cfg.weight_decay, nesterov=optim_cfg.nesterov)
    raise ValueError(f"optim.name: unknown optimizer '{optim_cfg.name}'; expected adam, adamw or sgd")
