"""Contrastive pretraining of TinyCLIP on visible frames of the miniature world.

The objective is CLIP's symmetric InfoNCE (Radford et al., 2021, Eq. in Fig. 3): for a batch
of ``B`` image/caption pairs with L2-normalised embeddings ``u_i`` (image) and ``v_j`` (text),

    L = 1/2 [ CE(s * U V^T, I) + CE(s * V U^T, I) ],

with a learnable temperature ``s = exp(t)`` (initialised to 1/0.07, clamped at 100). Each
batch holds distinct identities (:func:`~reprolib.pretrain.tinyclip.data.contrastive_batches`). The
steps run in the loop shared with TinyResNet (:func:`reprolib.pretrain.loop.pretrain_loop`).

``python -m reprolib tinyclip train`` writes ``reprolib/models/weights/tinyclip.pt`` (fp16
open_clip state dict) and its record ``tinyclip.json`` (SHA-256, size, command, seed, time,
hardware, evaluation numbers).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reprolib.data.synthetic.world import GENERATOR_VERSION
from reprolib.models.weights import TINYCLIP_ARCH, TINYCLIP_WEIGHTS, register_model_configs
from reprolib.pretrain.loop import hardware_summary, pretrain_loop, save_weights
from reprolib.pretrain.tinyclip.data import (contrastive_batches, render_pool, tinyclip_cameras, tinyclip_identities,
                                             tokenize_captions)

__all__ = ["TrainConfig", "clip_loss", "build_model", "train_tinyclip"]

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """TinyCLIP pretraining recipe (the defaults produce the shipped weights).

    Attributes:
        seed: seed of the model init, batch order and augmentation.
        num_ids: training identities.
        views_per_id: visible frames rendered per identity (reused every epoch).
        captions_per_id: caption phrasings per identity.
        batch_size: identities (= pairs) per batch.
        steps: optimisation steps.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay (not on gains, biases, embeddings, logit scale).
        warmup_steps: linear warm-up steps before the cosine decay.
        threads: torch CPU threads.
        max_minutes: safety stop on the training loop's wall time (recorded if it triggers).
        grey_prob: probability that a training image is shown as its luminance (random
            greyscale, a standard CLIP augmentation). 0 for the shipped weights: 0.25 left the
            infrared zero-shot accuracy at chance and did not help the embedded baseline.
    """

    seed: int = 0
    num_ids: int = 3000
    views_per_id: int = 6
    captions_per_id: int = 12
    batch_size: int = 128
    steps: int = 800
    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup_steps: int = 60
    threads: int = 2
    max_minutes: float = 19.0
    grey_prob: float = 0.0


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of CLIP over L2-normalised features ``(B, D)``; pair ``i`` is positive."""
    logits = logit_scale * image_features @ text_features.t()  # (B, B)
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def build_model(seed: int) -> nn.Module:
    """A randomly initialised ``TinyCLIP-ViT-8`` open_clip model (seeded)."""
    register_model_configs()
    import open_clip

    torch.manual_seed(seed)
    return open_clip.create_model(TINYCLIP_ARCH, pretrained=None)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "embedding" in name or "logit_scale" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_tinyclip(cfg: TrainConfig, out: Path = TINYCLIP_WEIGHTS, command: str = "",
                   log_every: int = 50) -> dict[str, Any]:
    """Pretrain TinyCLIP contrastively on visible frames and save its weights.

    Args:
        cfg: the recipe.
        out: weights file to write (fp16 state dict).
        command: the command line, stored in the record.
        log_every: log the loss every this many steps.

    Returns:
        The training record (also the core of ``tinyclip.json``): config, losses, timings,
        hardware, file size and SHA-256.
    """
    import open_clip

    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    model = build_model(cfg.seed)
    tokenizer = open_clip.get_tokenizer(TINYCLIP_ARCH)
    attrs = tinyclip_identities("train", cfg.num_ids)
    pool = render_pool(attrs, tinyclip_cameras("train"), cfg.views_per_id, ("rgb",), seed=cfg.seed)["rgb"]
    tokens, _ = tokenize_captions(attrs, tokenizer, cfg.captions_per_id, seed=cfg.seed)
    render_s = time.perf_counter() - t0
    logger.info("rendered %d visible frames of %d identities in %.0f s", len(pool), cfg.num_ids, render_s)

    generator = torch.Generator().manual_seed(cfg.seed)
    batches = contrastive_batches(pool, tokens, cfg.batch_size, generator, grey_prob=cfg.grey_prob)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)

    def step_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        images, text = batch  # (B, 3, H, W), (B, L)
        image_features, text_features, scale = model(images, text)  # (B, D), (B, D), exp(t)
        return clip_loss(image_features, text_features, scale), {"scale": float(scale.detach())}

    def clamp_scale() -> None:
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100.0))

    run = pretrain_loop(model, optimizer, batches, step_loss, cfg, t0, after_step=clamp_scale, log_every=log_every)
    losses, stopped_early = run.losses, run.stopped_early
    train_s = time.perf_counter() - t0
    saved = save_weights(model.eval(), Path(out))
    window = max(1, min(100, len(losses) // 10))
    return {
        "arch": TINYCLIP_ARCH,
        "file": Path(out).name,
        "sha256": saved["sha256"],
        "size_bytes": saved["size_bytes"],
        "dtype": "float16",
        "command": command,
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "steps_done": len(losses),
        "stopped_early": stopped_early,
        "loss_first": sum(losses[:window]) / window,
        "loss_last": sum(losses[-window:]) / window,
        "render_seconds": round(render_s, 1),
        "total_train_seconds": round(train_s, 1),
        "hardware": hardware_summary(),
        "trained_on": "visible (rgb) frames only",
        "generator_version": GENERATOR_VERSION,  # the SynthVCM renderer whose frames it saw
    }
