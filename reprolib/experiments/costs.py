"""Cost tables: parameters per module, test-path parameters and MACs per frame of a config's model,
beside the numbers the papers print (VLD Table X, CMFT Tables 2-3, Table IV/IX cost columns).

MACs come from :mod:`reprolib.utils.macs` (1 "FLOP" = 1 MAC, as in the three papers; "G" is 1e9);
the command line is :mod:`reprolib.experiments.profile_cli`.
"""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from reprolib.config import load_config
from reprolib.data.types import Modality
from reprolib.models import create_model
from reprolib.models.clip_backbone import CLIPVisualEncoder
from reprolib.models.cmft.model import CMFT
from reprolib.models.cmft.options import VARIANTS
from reprolib.models.cmft.profile import cmft_profile
from reprolib.paper import load_numbers, reported
from reprolib.utils.macs import CONVENTIONS, ROOT, MacCount, count_macs, leaf_modules, row_key

__all__ = [
    "count_parameters", "paper_references", "build_profile_model", "example_clip", "path_parameters",
    "PAPER_FLOP_EXCLUSIONS", "config_cost", "profile_table", "VLD_FULL_GFLOPS_RECONSTRUCTED",
    "CMFT_PAPER_ROWS", "cmft_profile_table", "cmft_paper_references", "flop_unit",
]


def count_parameters(model: nn.Module, depth: int = 2) -> pd.DataFrame:
    """Parameters per module, grouped by the first ``depth`` components of their names.

    Every parameter lands in exactly one row, so the columns sum to the model's totals: a leaf
    module's parameters form its row (``neck``), a parameter held directly by a module with
    children is its own row (``vit.class_embedding`` at depth 3). Shared (tied) parameters are
    counted once, under their first name.

    Args:
        model: any module.
        depth: name components kept; 1 gives the top-level children.

    Returns:
        DataFrame indexed by module name with columns ``type`` (the module's class, or
        ``Parameter`` for a bare parameter), ``params`` and ``trainable``, in registration order.

    Raises:
        ValueError: ``depth < 1``.
    """
    if depth < 1:
        raise ValueError(f"count_parameters: depth must be >= 1, got {depth}")
    modules = dict(model.named_modules())
    leaves = leaf_modules(model)
    rows: dict[str, dict[str, Any]] = {}
    for name, p in model.named_parameters():
        key = row_key(name, depth, leaves)
        if key not in rows:
            module = model if key == ROOT else modules.get(key)
            kind = type(module).__name__ if module is not None else "Parameter"
            rows[key] = {"module": key, "type": kind, "params": 0, "trainable": 0}
        rows[key]["params"] += p.numel()
        rows[key]["trainable"] += p.numel() if p.requires_grad else 0
    columns = ["module", "type", "params", "trainable"]
    return pd.DataFrame(list(rows.values()), columns=columns).set_index("module")


#: CLIP ViT-B/16 at 288x144 with attention products counted (docs/decisions/vld.md#flop-convention; not printed
#: in the paper, so it is not in reprolib/paper/numbers.csv).
VLD_FULL_GFLOPS_RECONSTRUCTED = 14.45


def _find_clip_encoder(model: nn.Module) -> Optional[tuple[str, nn.Module]]:
    for name, module in model.named_modules():
        if isinstance(module, CLIPVisualEncoder):
            return name, module
    return None


def paper_references(model: nn.Module, counts: MacCount) -> pd.DataFrame:
    """Our numbers beside the papers' where the papers give them for this architecture.

    Today: the CLIP ViT-B/16 visual encoder at an 18x9 grid (288x144, stride 16), i.e. the
    first :class:`~reprolib.models.clip_backbone.CLIPVisualEncoder` of the model, against the
    "Baseline-ViT" row of VLD Table X (86.17 M parameters without SIE; 13.96 G per frame) and
    the 14.45 G of docs/decisions/vld.md#flop-convention with the attention products. Its FLOPs are those booked inside the
    encoder (heads and temporal modules excluded), per frame of ``counts``.

    Returns:
        DataFrame with columns ``what``, ``ours``, ``paper``, ``source`` (empty if none apply).
    """
    rows: list[dict[str, Any]] = []
    found = _find_clip_encoder(model)
    if found is not None:
        name, enc = found
        if (enc.width, enc.num_blocks, enc.vit.patch_size[0], enc.stride, enc.grid_size) == (768, 12, 16, 16, (18, 9)):
            sie = enc.camera_embed.numel() if enc.camera_embed is not None else 0
            params = sum(p.numel() for p in enc.parameters()) - sie
            inside = (lambda n: n == name or n.startswith(name + ".")) if name else (lambda n: True)
            gflops = {conv: sum(v for n, v in counts.per_module(conv).items() if inside(n)) / counts.frames / 1e9
                      for conv in CONVENTIONS}
            rows += [
                {"what": "CLIP ViT-B/16 visual encoder: params (M, no SIE)", "ours": params / 1e6,
                 "paper": reported("vld", "table10", "Baseline-ViT", "params_M"), "source": "VLD Table X"},
                {"what": "visual encoder: GFLOPs/frame, paper convention", "ours": gflops["paper"],
                 "paper": reported("vld", "table10", "Baseline-ViT", "gflops"), "source": "VLD Table X"},
                {"what": "visual encoder: GFLOPs/frame, full convention", "ours": gflops["full"],
                 "paper": VLD_FULL_GFLOPS_RECONSTRUCTED, "source": "docs/decisions/vld.md#flop-convention (reconstructed)"},
            ]
    if isinstance(model, CMFT):  # the CCF stack of the configured variant (backbones excluded, as the paper)
        rows += cmft_paper_references(model).to_dict("records")
    return pd.DataFrame(rows, columns=["what", "ours", "paper", "source"])


def build_profile_model(config: str, profile: str, overrides: list[str], num_classes: int,
                        num_cameras: int) -> tuple[nn.Module, Any]:
    """The model of a config with random weights (``model.backbone.pretrained=none``).

    Returns:
        ``(model, cfg)``.
    """
    cfg = load_config(config, profile=profile, overrides=[*overrides, "model.backbone.pretrained=none"])
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes, num_cameras, image_size=(cfg.data.height, cfg.data.width),
                         loss_cfg=cfg.loss, seq_len=cfg.data.seq_len)
    return model, cfg


def example_clip(cfg: Any) -> tuple[Tensor, Tensor, Tensor]:
    """One RGB clip ``(1, T, 3, H, W)`` of a config's input size, with its camid and modality."""
    clip = torch.randn(1, cfg.data.seq_len, 3, cfg.data.height, cfg.data.width)  # (B=1, T, 3, H, W)
    return clip, torch.zeros(1, dtype=torch.long), torch.full((1,), int(Modality.RGB))  # (B,), (B,)


def path_parameters(model: nn.Module, example_inputs: Sequence[Any]) -> int:
    """Parameters of the model's parts that the test representation runs through (``model.extract``).

    A top-level submodule counts, whole, when it or any module inside it runs during ``extract``
    (forward hooks): the visual encoder with all its weights, STP, the BNNecks. Training-only parts (ID classifiers,
    prompt learners, the frozen text encoder) do not run at test time and do not count, which is
    how the papers count their models (VLD Table X: ViT-B/16 86.17 M, + STP 88.56 M).
    """
    called: set[str] = set()
    handles = [m.register_forward_pre_hook(lambda mod, args, n=name: called.add(n.split(".")[0]))
               for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            model.eval()
            getattr(model, "extract", model)(*example_inputs)
    finally:
        for h in handles:
            h.remove()
    own = sum(p.numel() for p in model.parameters(recurse=False))
    return own + sum(p.numel() for name, m in model.named_children() if name in called for p in m.parameters())


#: Modules whose MACs a paper's FLOP figure leaves out (VLD Table X's 14.08 G counts the STH tokens
#: but not STA: docs/decisions/vld.md#stp-flops).
PAPER_FLOP_EXCLUSIONS: tuple[str, ...] = ("stp.sta",)


def config_cost(config: str, profile: str = "paper", overrides: Sequence[str] = (), num_classes: int = 500,
                num_cameras: int = 12) -> dict[str, float]:
    """Test-path parameters (M) and MACs per frame (G) of a config's model, both conventions.

    Args:
        config: config name (``baseline``, ``vld``, ...).
        profile: whose architecture and input size (``paper``: ViT-B/16 at 288x144).
        overrides: extra ``key=value`` overrides.
        num_classes, num_cameras: classifier and camera-table sizes (HITSZ-VCM: 500 identities).

    Returns:
        ``{"params_M", "gflops" (paper convention), "gflops_full", "gflops_paper_accounting"}``:
        the last is the paper convention without :data:`PAPER_FLOP_EXCLUSIONS` (what the papers
        printed; equal to ``gflops`` for models without those modules).
    """
    model, cfg = build_profile_model(config, profile, list(overrides), num_classes, num_cameras)
    inputs = example_clip(cfg)
    counts = count_macs(model, inputs, forward=getattr(model, "extract", model))
    per_frame = {conv: counts.total(conv) / counts.frames / 1e9 for conv in CONVENTIONS}
    excluded = sum(v for name, v in counts.per_module("paper").items()
                   if any(name == p or name.startswith(p + ".") for p in PAPER_FLOP_EXCLUSIONS))
    return {"params_M": path_parameters(model, inputs) / 1e6, "gflops": per_frame["paper"],
            "gflops_full": per_frame["full"],
            "gflops_paper_accounting": per_frame["paper"] - excluded / counts.frames / 1e9}


def flop_unit(macs_per_frame: float) -> tuple[str, float]:
    """``("G", 1e9)`` from 1e9 MACs per frame up, else ``("M", 1e6)`` (TinyCLIP's scale)."""
    return ("G", 1e9) if macs_per_frame >= 1e9 else ("M", 1e6)


def profile_table(model: nn.Module, counts: MacCount, depth: int) -> pd.DataFrame:
    """:func:`count_parameters` joined with FLOPs (MACs) per frame of both conventions, plus a
    ``TOTAL`` row; the FLOP unit (G or M) follows the paper-convention total."""
    table = count_parameters(model, depth)
    unit, scale = flop_unit(counts.total("paper") / counts.frames)
    for conv in CONVENTIONS:
        per_module = counts.per_module(conv, depth)
        extra = [k for k in per_module if k not in table.index and per_module[k]]  # MACs, no parameters
        for key in extra:
            table.loc[key] = {"type": "", "params": 0, "trainable": 0}
        table[f"{unit}FLOPs/frame {conv}"] = [per_module.get(k, 0) / counts.frames / scale for k in table.index]
    total = table.select_dtypes("number").sum()
    table.loc["TOTAL"] = {"type": "", **total.to_dict()}
    table[["params", "trainable"]] = table[["params", "trainable"]].astype(int)
    return table


# -- CMFT: the fusion part against Tables 2-3 -----------------------------------------------

#: ``variant -> (item, row)`` of ``reprolib/paper/numbers.csv``.
CMFT_PAPER_ROWS: dict[str, tuple[str, str]] = {
    "score_avg": ("table2", "Score average"), "score_mul": ("table2", "Score Multiplication"),
    "concat": ("table2", "Feature concatenation"), "S6F": ("table2", "CMFT_S6F"), "D6F": ("table2", "CMFT_D6F"),
    **{f"S{i}": ("table3", f"CMFT_S{i}") for i in range(6, 1, -1)},
}


def _paper_value(numbers: pd.DataFrame, variant: str, metric: str) -> float:
    item, row = CMFT_PAPER_ROWS[variant]
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
    numbers = load_numbers("cmft")
    rows = []
    for v in variants:
        p = cmft_profile(v, **kwargs)
        rows.append({"variant": v, "item": CMFT_PAPER_ROWS[v][0], "params_M": p["params"] / 1e6,
                     "paper_params_M": _paper_value(numbers, v, "params_M"), "gflops": p["flops"] / 1e9,
                     "gflops_full": p["flops_full"] / 1e9, "paper_gflops": _paper_value(numbers, v, "gflops")})
    return pd.DataFrame(rows).set_index("variant")


def cmft_paper_references(model: Any) -> pd.DataFrame:
    """Rows for :func:`paper_references` when ``model`` is a CMFT.

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
