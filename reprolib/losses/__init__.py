"""ReID losses: identity cross-entropy, batch-hard triplet and weighted regularised triplet.

``build_id_loss(loss_cfg)`` and ``build_metric_loss(loss_cfg)`` turn a ``LossConfig`` into
modules; ``metric_loss_name(loss_cfg)`` is the key under which a model reports the metric term
(``"wrt"`` or ``"triplet"``).
"""
from __future__ import annotations

from typing import Any, Optional

from torch import nn

from reprolib.losses.hetero_center import HeteroCenterTripletLoss
from reprolib.losses.id_loss import CrossEntropyLabelSmooth
from reprolib.losses.triplet import TripletLoss, euclidean_dist, hard_example_mining
from reprolib.losses.wrt import WeightedRegularizedTriplet

__all__ = [
    "CrossEntropyLabelSmooth", "HeteroCenterTripletLoss", "TripletLoss", "WeightedRegularizedTriplet",
    "euclidean_dist", "hard_example_mining",
    "build_id_loss", "build_metric_loss", "metric_loss_name",
]

_METRIC_NAMES = {"wrt": "wrt", "batch_hard": "triplet", "none": None}


def build_id_loss(loss_cfg: Any) -> CrossEntropyLabelSmooth:
    """ID loss of a ``LossConfig`` (``label_smoothing``)."""
    return CrossEntropyLabelSmooth(eps=loss_cfg.label_smoothing)


def metric_loss_name(loss_cfg: Any) -> Optional[str]:
    """Loss-component key of the metric loss: ``"wrt"``, ``"triplet"`` or ``None``."""
    if loss_cfg.triplet not in _METRIC_NAMES:
        raise ValueError(f"loss.triplet: unknown metric loss '{loss_cfg.triplet}'; "
                         f"expected one of {', '.join(_METRIC_NAMES)}")
    return _METRIC_NAMES[loss_cfg.triplet]


def build_metric_loss(loss_cfg: Any) -> Optional[nn.Module]:
    """Metric loss of a ``LossConfig``: WRT (``wrt_legacy_numerics``), batch-hard triplet
    (``triplet_margin``; a margin <= 0 selects the soft margin) or ``None``."""
    name = metric_loss_name(loss_cfg)
    if name == "wrt":
        return WeightedRegularizedTriplet(legacy_numerics=loss_cfg.wrt_legacy_numerics)
    if name == "triplet":
        margin = loss_cfg.triplet_margin
        return TripletLoss(margin=margin, soft_margin=margin <= 0)
    return None
