"""The ``mymethod`` template model: the CLIP baseline with a choice of temporal pooling.

    video (B, T, 3, H, W) -> CLIP ViT per frame -> frame features (B, T, D)
    -> temporal pooling (max or mean over T) -> BNNeck -> ID classifier

Losses and the test feature are the baseline's (VLD eq. 3 and 4; pre-BN feature, inner product).
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from reprolib.models.baseline.model import CLIPBaseline
from reprolib.models.registry import register_model

from .options import MyMethodOptions

__all__ = ["MyMethod", "TemporalMaxPool"]


class TemporalMaxPool(nn.Module):
    """Element-wise maximum of the frame features over time."""

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, D)`` frame features -> ``(B, D)``."""
        return x.amax(dim=1)  # (B, D)


@register_model("mymethod", options=MyMethodOptions, results_version=1)
class MyMethod(CLIPBaseline):
    """The baseline with ``model.extra.pool`` temporal pooling (see the module docstring).

    Takes the registry's family-constructor arguments (``model_cfg, num_classes, num_cameras,
    image_size, loss_cfg, seq_len``) unchanged.
    """

    family, options = "mymethod", MyMethodOptions

    def __init__(self, model_cfg: Any, num_classes: int, num_cameras: int, **kwargs: Any) -> None:
        super().__init__(model_cfg, num_classes, num_cameras, **kwargs)
        if self.extra.pool == "max":
            self.temporal_pool = TemporalMaxPool()  # parameter-free: the state dict is the baseline's
