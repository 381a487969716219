"""Parameters and FLOPs of CMFT's fusion part beside the paper's Tables 2-3.

As in the paper, the backbones are excluded: only the fusion module of a variant is counted
(the CCF stack, or the Table 2 baselines). MACs ("FLOPs", 1 FLOP = 1 MAC as in the papers) are
traced by :func:`reprolib.profiler.count_macs` for **one RGB/IR frame pair** at 256x128 (the
CCFs attend per frame; reference/cmft.md 3.2.7) under both conventions of
:mod:`reprolib.profiler`: ``paper`` (no attention products) and ``full`` (with them;
reference/cmft.md 3.4 counts those). ``concat`` acts once per clip on pooled features; the
score fusions have no parameters and no counted MACs.

Only S6F (8.39 M) and S2 (33.40 M) of the paper's parameter counts can be reproduced by any
design; the intermediate Table 3 rows and every FLOP figure cannot (reference/cmft.md 3.4, #3).

Example::

    >>> from reprolib.models.cmft import cmft_profile_table
    >>> print(cmft_profile_table().to_string())
"""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
import torch

from reprolib.models.cmft.ccf import VARIANTS, CCFOptions, build_fusion
from reprolib.models.cmft.resnet import stage_specs

__all__ = ["PAPER_ROWS", "cmft_profile", "cmft_profile_table", "cmft_paper_references"]

#: ``variant -> (item, row)`` of ``reprolib/paper/numbers.csv``.
PAPER_ROWS: dict[str, tuple[str, str]] = {
    "score_avg": ("table2", "Score average"), "score_mul": ("table2", "Score Multiplication"),
    "concat": ("table2", "Feature concatenation"), "S6F": ("table2", "CMFT_S6F"), "D6F": ("table2", "CMFT_D6F"),
    **{f"S{i}": ("table3", f"CMFT_S{i}") for i in range(6, 1, -1)},
}


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
        variant: one of :data:`~reprolib.models.cmft.ccf.VARIANTS`.
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
    from reprolib.profiler import count_macs

    torch.manual_seed(0)
    fusion = build_fusion(variant, stage_specs(base_width, last_stride), options)
    out: dict[str, Any] = {"variant": variant, "params": sum(p.numel() for p in fusion.parameters()),
                           "flops": None, "flops_full": None}
    if flops:
        counts = count_macs(fusion, _example_inputs(fusion, base_width, last_stride, height, width, num_classes),
                            frames=1)
        out.update(flops=counts.total("paper"), flops_full=counts.total("full"))
    return out


def _paper_value(numbers: pd.DataFrame, variant: str, metric: str) -> float:
    item, row = PAPER_ROWS[variant]
    hit = numbers[(numbers["item"] == item) & (numbers["row"] == row) & (numbers["metric"] == metric)]
    return float(hit["value"].iloc[0]) if len(hit) == 1 else float("nan")


def cmft_profile_table(variants: Sequence[str] = VARIANTS, **kwargs: Any) -> pd.DataFrame:
    """Every variant's fusion-part Params (M) and GFLOPs per frame pair beside the paper's.

    Args:
        variants: which rows.
        **kwargs: passed to :func:`cmft_profile` (``height``, ``width``, ``last_stride``, ``options``).

    Returns:
        DataFrame indexed by variant with ``item`` (paper table), ``params_M``,
        ``paper_params_M``, ``gflops`` (paper convention), ``gflops_full`` and ``paper_gflops``
        (NaN where the paper prints '-').
    """
    from reprolib.paper import load_numbers

    numbers = load_numbers("cmft")
    rows = []
    for v in variants:
        p = cmft_profile(v, **kwargs)
        rows.append({"variant": v, "item": PAPER_ROWS[v][0], "params_M": p["params"] / 1e6,
                     "paper_params_M": _paper_value(numbers, v, "params_M"), "gflops": p["flops"] / 1e9,
                     "gflops_full": p["flops_full"] / 1e9, "paper_gflops": _paper_value(numbers, v, "gflops")})
    return pd.DataFrame(rows).set_index("variant")


def cmft_paper_references(model: Any) -> pd.DataFrame:
    """Rows for :func:`reprolib.profiler.paper_references` when ``model`` is a CMFT.

    The fusion part of the model's variant (at the paper's 256x128 and the model's stream width
    and last stride) against Table 2/3.

    Returns:
        DataFrame with columns ``what``, ``ours``, ``paper``, ``source``.
    """
    variant = model.extra.variant
    row = cmft_profile_table([variant], last_stride=model.extra.last_stride, options=model.extra.ccf_options(),
                             base_width=model.stream_rgb.base_width).iloc[0]
    source = f"CMFT {row['item'].replace('table', 'Table ')}"
    what = f"CMFT {variant} fusion part"
    return pd.DataFrame([
        {"what": f"{what}: params (M)", "ours": row["params_M"], "paper": row["paper_params_M"], "source": source},
        {"what": f"{what}: GFLOPs/frame pair at 256x128, paper convention", "ours": row["gflops"],
         "paper": row["paper_gflops"], "source": source},
        {"what": f"{what}: GFLOPs/frame pair at 256x128, full convention", "ours": row["gflops_full"],
         "paper": row["paper_gflops"], "source": source},
    ], columns=["what", "ours", "paper", "source"])
