"""Benchmark: VLD's text branch with the exact EOT truncation vs the full text context.

VLD runs the frozen CLIP text encoder on the prompts of **all** training identities every
iteration, forward and input-gradient backward (docs/decisions/vld.md#v19-text-encoder-cost). The encoder is causal
and the feature is read at EOT, so only the first EOT+1 tokens matter (16 of 77 for template 4);
:class:`~reprolib.models.prompts.FrozenTextEncoder` with ``truncate=True`` runs just those.
This times both on a **randomly initialised** text tower of the given architecture (weights do
not change the cost) with HITSZ-VCM's 500 identities, and checks that the features agree.

Run: ``python -m reprolib bench text --device cpu --num-ids 500`` (or
``python -m reprolib.bench.text``).
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from typing import Optional, Sequence, Union

import torch
from torch import nn

from reprolib.models.prompts import FrozenTextEncoder, PromptLearner

__all__ = ["build_text_tower", "run_benchmark", "main"]

logger = logging.getLogger(__name__)


def build_text_tower(arch: str = "ViT-B-16-quickgelu") -> nn.Module:
    """A randomly initialised open_clip ``TextTransformer`` with ``arch``'s text configuration.

    Args:
        arch: an open_clip architecture (reprolib's ``TinyCLIP-ViT-8`` included).

    Returns:
        The text tower (``token_embedding``, ``transformer``, ``positional_embedding``,
        ``ln_final``, ``text_projection``, causal ``attn_mask``) on CPU, fp32.
    """
    import open_clip
    from open_clip.transformer import QuickGELU, TextTransformer

    from reprolib.models.weights import register_model_configs

    register_model_configs()
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"bench text: unknown open_clip architecture '{arch}'")
    text = cfg["text_cfg"]
    return TextTransformer(context_length=text["context_length"], vocab_size=text["vocab_size"], width=text["width"],
                           heads=text["heads"], layers=text["layers"], output_dim=cfg["embed_dim"],
                           act_layer=QuickGELU if cfg.get("quick_gelu") else nn.GELU)


def _time(fn, repeats: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def run_benchmark(arch: str = "ViT-B-16-quickgelu", num_ids: int = 500, template: Union[int, str] = 4,
                  n_ctx: int = 4, device: str = "cpu", repeats: int = 3, backward: bool = True,
                  seed: int = 0, threads: Optional[int] = None) -> dict:
    """Time full-context vs EOT-truncated text encoding of all identities' prompts.

    Args:
        arch: open_clip architecture of the text tower (random init).
        num_ids: identities C (500 for HITSZ-VCM, 1074 for BUPTCampus).
        template: VLD Table VII template (1-4) or a custom string with ``{ctx}``.
        n_ctx: learnable tokens per identity.
        device: ``cpu`` or ``cuda``.
        repeats: timed repetitions per mode (after one warm-up); the median is reported.
        backward: also run the input-gradient backward into the prompt context (as training does).
        seed: RNG seed of the random tower and prompts.
        threads: torch intra-op threads (``None``: unchanged).

    Returns:
        ``{"arch", "num_ids", "context_length", "truncated_length", "full_s", "truncated_s",
        "speedup", "max_abs_diff", "mac_ratio", ...}`` (times in seconds, medians).
    """
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    dev = torch.device(device)
    tower = build_text_tower(arch)
    learner = PromptLearner(tower.token_embedding, num_ids, tower.context_length, template, n_ctx).to(dev)
    full = FrozenTextEncoder(tower, truncate=False).to(dev)
    truncated = FrozenTextEncoder(tower, truncate=True).to(dev)
    eot = learner.eot_index()

    def step(encoder: FrozenTextEncoder) -> torch.Tensor:
        learner.ctx.grad = None
        with torch.set_grad_enabled(backward):
            feats = encoder(learner(), eot)  # (C, d)
            if backward:
                feats.square().sum().backward()
        return feats.detach()

    with torch.no_grad():
        diff = float((full(learner(), eot) - truncated(learner(), eot)).abs().max())
    out: dict = {"arch": arch, "num_ids": num_ids, "template": learner.template, "device": str(dev),
                 "backward": backward, "threads": torch.get_num_threads(),
                 "context_length": tower.context_length, "truncated_length": learner.eot_position + 1,
                 "max_abs_diff": diff}
    for name, encoder in (("full", full), ("truncated", truncated)):
        step(encoder)  # warm-up
        times = _time(lambda: step(encoder), repeats, dev)
        out[f"{name}_s"] = statistics.median(times)
        out[f"{name}_times_s"] = times
    out["speedup"] = out["full_s"] / out["truncated_s"]
    width, layers = tower.positional_embedding.shape[1], len(tower.transformer.resblocks)

    def macs(n: int) -> int:  # linear layers + QK^T, AV of n tokens
        return layers * (n * 12 * width ** 2 + 2 * n * n * width)

    out["mac_ratio"] = macs(tower.context_length) / macs(out["truncated_length"])
    logger.info("text encoder, %d prompts: full %.3f s, truncated %.3f s, speed-up %.2fx (MAC ratio %.2fx)",
                num_ids, out["full_s"], out["truncated_s"], out["speedup"], out["mac_ratio"])
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: ``--arch --num-ids --template --device --repeats --no-backward --seed --threads``; prints JSON."""
    parser = argparse.ArgumentParser(prog="reprolib bench text", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="ViT-B-16-quickgelu")
    parser.add_argument("--num-ids", type=int, default=500)
    parser.add_argument("--template", type=int, default=4, choices=(1, 2, 3, 4))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-backward", action="store_true", help="time the forward only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: unchanged)")
    ns = parser.parse_args(argv)
    out = run_benchmark(ns.arch, ns.num_ids, ns.template, device=ns.device, repeats=ns.repeats,
                        backward=not ns.no_backward, seed=ns.seed, threads=ns.threads)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main())
