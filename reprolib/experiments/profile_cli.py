"""``python -m reprolib profile [CONFIG] [--profile P] [--set k=v ...]``: builds a config's model
**without weights** (``model.backbone.pretrained=none``, the config's image size; no dataset:
``--num-classes``/``--num-cameras`` default to HITSZ-VCM's 500 and 13), runs one clip through
``model.extract`` and prints a per-module table, both FLOP conventions per frame
(:mod:`reprolib.utils.macs`), and the papers' reference numbers beside ours
(:mod:`reprolib.experiments.costs`).
"""
from __future__ import annotations

import argparse
from typing import Optional

import pandas as pd

from reprolib.experiments.costs import build_profile_model, example_clip, flop_unit, paper_references, profile_table
from reprolib.utils.macs import CONVENTIONS, count_macs, flops_summary

__all__ = ["main"]


def _parse(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="reprolib profile",
        description="Parameters per module and MACs per frame (paper and full conventions) of a config's "
                    "model, built with random weights (no CLIP weights, no dataset needed).")
    p.add_argument("config", nargs="?", default="baseline", help="YAML config (path or name; default: baseline)")
    p.add_argument("--profile", choices=["smoke", "embedded", "paper"], default="paper",
                   help="config profile (default: paper, the papers' 288x144 ViT-B/16)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--num-classes", type=int, default=500, help="training identities (default 500, HITSZ-VCM)")
    p.add_argument("--num-cameras", type=int, default=13,
                   help="camera-table size, largest camid + 1 (default 13, HITSZ-VCM)")
    p.add_argument("--depth", type=int, default=3, help="module-name depth of the table (default 3)")
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m reprolib profile [CONFIG] [--profile P] [--set k=v] [--num-classes N]
    [--num-cameras C] [--depth D]``: print the per-module table, both conventions per frame and
    the papers' reference numbers. Returns 0."""
    args = _parse(argv)
    model, cfg = build_profile_model(args.config, args.profile, args.overrides, args.num_classes,
                                     args.num_cameras)
    t, h, w = cfg.data.seq_len, cfg.data.height, cfg.data.width
    counts = count_macs(model, example_clip(cfg), forward=getattr(model, "extract", model))

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    pd.set_option("display.width", 200)
    print(f"model '{cfg.model.name}' of config '{args.config}' (profile {args.profile}), "
          f"backbone {cfg.model.backbone.arch} at {h}x{w}, random init; "
          f"num_classes={args.num_classes}, num_cameras={args.num_cameras}")
    print(f"\nparameters per module (depth {args.depth}); MACs per frame of one {t}-frame clip through extract():")
    print(profile_table(model, counts, args.depth).to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\nparameters: {total:,} total, {trainable:,} trainable ({total / 1e6:.2f} M)")
    unit, scale = flop_unit(counts.total("paper") / counts.frames)
    print(f"FLOPs per frame (1 FLOP = 1 MAC; {unit} = {scale:.0e}):")
    for conv in CONVENTIONS:
        s = flops_summary(counts, conv)
        kinds = ", ".join(f"{k} {v / counts.frames / scale:.4f}" for k, v in s["by_kind"].items() if v)
        print(f"  {conv:<5} {s['macs_per_frame'] / scale:.4f} {unit}  ({s['macs_per_frame']:,.0f} MACs; {kinds})")
    if counts.uncounted:
        print("not counted: " + "; ".join(counts.uncounted))
    refs = paper_references(model, counts)
    if len(refs):
        print("\npaper reference numbers:")
        print(refs.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0
