"""Heads shared by the CLIP ReID models: temporal average pooling, BNNeck, ID classifier.

* :class:`TemporalAvgPool` (TAP): f = (1/T) sum_t z_t, the sequence feature of VLD and X-ReID
  (docs/decisions/vld.md#per-frame-outputs, docs/decisions/xreid.md#backbone).
* :class:`BNNeck`: BatchNorm1d between the metric-learning feature and the classifier
  (Luo et al., "Bag of Tricks and a Strong Baseline for Deep Person Re-ID"). Weight 1, bias 0;
  the bias is frozen by default as in the strong baseline, CLIP-ReID and X-ReID
  (docs/decisions/xreid.md#bnneck-and-classifiers); VLD keeps it trainable (docs/decisions/vld.md#v28-bnneck-bias).
* :class:`IDClassifier`: bias-free linear layer, weights ~ N(0, 0.001^2) (all three lineages).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["TemporalAvgPool", "BNNeck", "IDClassifier"]


class TemporalAvgPool(nn.Module):
    """Temporal average pooling (TAP) over the frame axis."""

    def forward(self, x: Tensor) -> Tensor:
        """Average ``(B, T, D)`` frame features into ``(B, D)`` sequence features."""
        if x.dim() != 3:
            raise ValueError(f"TemporalAvgPool expects (B, T, D) frame features, got {tuple(x.shape)}")
        return x.mean(dim=1)  # (B, D)


class BNNeck(nn.BatchNorm1d):
    """BatchNorm1d neck with weight 1, bias 0 and an optionally frozen bias.

    Args:
        dim: feature width.
        bias_trainable: False (default) freezes the shift, as the strong baseline, CLIP-ReID
            and X-ReID do; VLD's code trains it.
    """

    def __init__(self, dim: int, bias_trainable: bool = False) -> None:
        super().__init__(dim)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        self.bias.requires_grad_(bias_trainable)


class IDClassifier(nn.Linear):
    """Bias-free identity classifier with weights drawn from N(0, std^2), std = 0.001.

    Args:
        dim: input feature width.
        num_classes: number of training identities.
        std: standard deviation of the initial weights.
    """

    def __init__(self, dim: int, num_classes: int, std: float = 0.001) -> None:
        super().__init__(dim, num_classes, bias=False)
        with torch.no_grad():
            nn.init.normal_(self.weight, std=std)
