"""Temporal Shift Module (TSM; Lin, Gan & Han, ICCV 2019), the "residual shift" CMFT builds on.

CMFT section 3.2 uses TSM ResNet-50 streams (docs/decisions/cmft.md#temporal-shift-module). A clip is a batch of
frames ``(B*T, C, H, W)`` with the T frames of a clip contiguous. Before the first 1x1
convolution of every bottleneck (the residual branch only; the identity shortcut keeps the
unshifted signal), with ``fold = C // shift_div`` (default 8):

* channels ``[0, fold)`` at frame t take the value of frame t+1 (future -> present);
* channels ``[fold, 2*fold)`` at frame t take the value of frame t-1;
* channels ``[2*fold, C)`` are unchanged; frames shifted in from outside the clip are zeros.

The shift adds no parameters and no multiply-accumulates. With T = 1 (image datasets, Fig. 9
with n = 1) it is the identity: a plain ImageNet ResNet-50 (docs/decisions/cmft.md#temporal-shift-module).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["temporal_shift", "TemporalShift"]


def temporal_shift(x: Tensor, n_segment: int, shift_div: int = 8) -> Tensor:
    """Shift 1/``shift_div`` of the channels one frame back and 1/``shift_div`` one frame forward.

    Args:
        x: ``(B*T, C, H, W)`` frame features, the T frames of each clip contiguous.
        n_segment: T, the frames per clip; 1 returns ``x`` unchanged.
        shift_div: the channel fraction divisor (TSM's ``n_div``).

    Returns:
        ``(B*T, C, H, W)``: out-of-place, zero-filled at the clip boundaries.

    Raises:
        ValueError: when ``B*T`` is not a multiple of ``n_segment``.
    """
    if n_segment == 1:
        return x
    nt, c, h, w = x.shape
    if nt % n_segment:
        raise ValueError(f"temporal_shift: {nt} frames is not a multiple of the clip length T={n_segment}")
    fold = c // shift_div
    clip = x.view(nt // n_segment, n_segment, c, h, w)  # (B, T, C, H, W)
    out = torch.zeros_like(clip)
    out[:, :-1, :fold] = clip[:, 1:, :fold]  # frame t <- frame t+1
    out[:, 1:, fold:2 * fold] = clip[:, :-1, fold:2 * fold]  # frame t <- frame t-1
    out[:, :, 2 * fold:] = clip[:, :, 2 * fold:]
    return out.view(nt, c, h, w)


class TemporalShift(nn.Module):
    """Wraps a layer (a bottleneck's ``conv1``) and shifts its input along time first.

    The clip length is set per forward pass by the owning backbone
    (:meth:`~reprolib.models.cmft.resnet.TSMResNet.forward` sets ``n_segment = T``), so the
    same module serves any T.

    Args:
        net: the wrapped layer.
        shift_div: channel fraction divisor (8: 1/8 of the channels move each way).
    """

    def __init__(self, net: nn.Module, shift_div: int = 8) -> None:
        super().__init__()
        if shift_div < 2:
            raise ValueError(f"TemporalShift: shift_div must be >= 2, got {shift_div}")
        self.net = net
        self.shift_div = shift_div
        self.n_segment = 1

    def forward(self, x: Tensor) -> Tensor:
        """``net(temporal_shift(x))`` for ``(B*T, C, H, W)`` input."""
        return self.net(temporal_shift(x, self.n_segment, self.shift_div))

    def extra_repr(self) -> str:
        return f"shift_div={self.shift_div}, n_segment={self.n_segment}"
