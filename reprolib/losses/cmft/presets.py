"""Optimiser / schedule presets of CMFT as config data (reference/cmft.md 5.6, discrepancy #8).

Each preset maps config sections to keys of ``OptimConfig``, ``SchedulerConfig`` and
``TrainConfig`` (``reprolib.config``), ready to be written into a YAML config or merged as
overrides. Epochs are 0-based in ``sched.milestones`` (the engine's convention).

* ``"recommended"`` (default): SGD, momentum 0.9, weight decay 5e-4; learning rate 0.01 for
  the ImageNet-pretrained streams and 0.1 (``head_lr_mult`` 10) for the new modules (CCFs,
  BNNecks, classifier), AGW/MITML's convention; linear warm-up over 3 epochs from 0.1x, then
  x0.1 at 0-based epochs 10 and 20; 24 epochs on HITSZ-VCM (32 on SYSU-MM01 and RegDB).
  Nesterov momentum, as the notes also recommend (``optim.nesterov``).
* ``"paper_literal"``: the paper's section 4.2 as printed: SGD, momentum 0.9, lr 0.1 for every
  parameter, weight decay 1e-2, "reduced by a factor of 0.01 every 10 epochs" over 60 epochs
  (1e-11 at the end: the reason it is not the default).
* ``"pmt"``: PMT's released recipe (the source of CMFT's losses): AdamW, lr 3e-4 for the new
  modules and 0.5x (1.5e-4) for the pretrained backbone, weight decay 1e-4, timm-style cosine
  with 3 warm-up epochs from 0.01x to a floor of 0.01x, 24 epochs.

The paper's batch of 64 is 8 identities x 4 RGB/IR pairs (``data.num_ids`` 8, ``data.num_pos``
4; reference/cmft.md 5); the stage switch is after the eighth epoch in every preset
(``CMFTLossOptions.stage2_epoch`` = 8).
"""
from __future__ import annotations

import copy
from typing import Any

__all__ = ["CMFT_OPTIM_PRESETS", "cmft_optim_preset"]

CMFT_OPTIM_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "recommended": {
        "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                  "bias_weight_decay": 5e-4, "head_lr_mult": 10.0, "bias_lr_mult": 1.0},
        "sched": {"name": "warmup_multistep", "warmup_epochs": 3, "warmup_factor": 0.1,
                  "milestones": [10, 20], "gamma": 0.1},
        "train": {"epochs": 24},
    },
    "paper_literal": {
        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-2,
                  "bias_weight_decay": 1e-2, "head_lr_mult": 1.0, "bias_lr_mult": 1.0},
        "sched": {"name": "warmup_multistep", "warmup_epochs": 0,
                  "milestones": [10, 20, 30, 40, 50], "gamma": 0.01},
        "train": {"epochs": 60},
    },
    "pmt": {
        "optim": {"name": "adamw", "lr": 1.5e-4, "weight_decay": 1e-4, "bias_weight_decay": 1e-4,
                  "head_lr_mult": 2.0, "bias_lr_mult": 1.0},
        "sched": {"name": "cosine", "warmup_epochs": 3, "warmup_lr_init": 3e-6, "min_lr": 3e-6},
        "train": {"epochs": 24},
    },
}


def cmft_optim_preset(name: str) -> dict[str, dict[str, Any]]:
    """A deep copy of the preset ``name`` (``"recommended"``, ``"paper_literal"`` or ``"pmt"``).

    Raises:
        ValueError: for an unknown preset name.
    """
    if name not in CMFT_OPTIM_PRESETS:
        raise ValueError(f"CMFT optimiser preset: expected one of {', '.join(CMFT_OPTIM_PRESETS)}; got {name!r}")
    return copy.deepcopy(CMFT_OPTIM_PRESETS[name])
