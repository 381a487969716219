"""Parameters and FLOPs of CMFT's fusion part (:func:`cmft_profile`); the table beside the paper's
Tables 2-3 is :func:`reprolib.experiments.costs.cmft_profile_table`.

As in the paper, the backbones are excluded: only the fusion module of a variant is counted
(the CCF stack, or the Table 2 baselines). MACs ("FLOPs", 1 FLOP = 1 MAC as in the papers) are
traced by :func:`reprolib.utils.macs.count_macs` for **one RGB/IR frame pair** at 256x128 (the
CCFs attend per frame; docs/decisions/cmft.md#ccf-design) under both conventions of
:mod:`reprolib.utils.macs`: ``paper`` (no attention products) and ``full`` (with them;
docs/decisions/cmft.md#parameter-and-flop-arithmetic counts those). ``concat`` acts once per clip on pooled features; the
score fusions have no parameters and no counted MACs.

Only S6F (8.39 M) and S2 (33.40 M) of the paper's parameter counts can be reproduced by any
design; the intermediate Table 3 rows and every FLOP figure cannot (docs/decisions/cmft.md#parameter-and-flop-arithmetic, #3).

Example::

    >>> from reprolib.models.cmft.profile import cmft_profile
    >>> cmft_profile("S6F")["params"]
"""
from __future__ import annotations

from typing import Any

import torch

from reprolib.models.cmft.ccf import build_fusion
from reprolib.models.cmft.options import CCFOptions
from reprolib.models.cmft.resnet import stage_specs
from reprolib.utils.macs import count_macs

__all__ = ["cmft_profile"]


def _example_inputs(fusion: Any, base_width: int, last_stride: int, height: int, width: int,
                    num_classes: int) -> tuple:
    """Random inputs of one frame pair (CCF), one clip pair (concat) or one logit pair (scores)."""
    g = torch.Generator().manual_seed(0)
    if fusion.kind == "score":
        return torch.randn(1, num_classes, generator=g), torch.randn(1, num_classes, generator=g)
    specs = stage_specs(base_width, last_stride)
    if not hasattr(fusion, "taps"):  # concat: pooled clip features
        c = specs[-1].channels
        return torch.randn(1, c, generator=g), torch.randn(1, c, generator=g)
    maps = [{s.name: torch.randn(1, s.channels, *s.grid(height, width), generator=g)
             for s in specs if s.name in fusion.taps} for _ in range(2)]  # (1, C_s, h_s, w_s) per tap
    return tuple(maps)


def cmft_profile(variant: str, height: int = 256, width: int = 128, last_stride: int = 1,
                 options: CCFOptions = CCFOptions(), base_width: int = 64, num_classes: int = 500,
                 flops: bool = True) -> dict[str, Any]:
    """Parameters and MACs of one variant's fusion module (backbones excluded, as the paper).

    Args:
        variant: one of :data:`~reprolib.models.cmft.options.VARIANTS`.
        height: input frame height (paper 256).
        width: input frame width (paper 128).
        last_stride: ``layer4`` stride of the streams (1: 16x8 Conv6 tokens at 256x128).
        options: CCF hyper-parameters (``model.extra``).
        base_width: stream base width (64 = ResNet-50).
        num_classes: classifier size, only for the score-fusion inputs.
        flops: also trace the MACs (skip for a parameter count only).

    Returns:
        ``{"variant", "params", "flops" (MACs per frame pair, paper convention), "flops_full"
        (with the attention products)}``; the MAC entries are ``None`` with ``flops=False``.
    """
    torch.manual_seed(0)
    fusion = build_fusion(variant, stage_specs(base_width, last_stride), options)
    out: dict[str, Any] = {"variant": variant, "params": sum(p.numel() for p in fusion.parameters()),
                           "flops": None, "flops_full": None}
    if flops:
        counts = count_macs(fusion, _example_inputs(fusion, base_width, last_stride, height, width, num_classes),
                            frames=1)
        out.update(flops=counts.total("paper"), flops_full=counts.total("full"))
    return out
