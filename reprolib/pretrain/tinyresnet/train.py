"""Classification pretraining of TinyResNet (the ImageNet stand-in of CMFT's narrow streams).

The objective is ImageNet's: softmax cross-entropy over the classes (here the ``num_ids``
pretraining identities) with label smoothing, on globally pooled ``layer4`` features of a plain
ResNet-50-shaped network (no temporal shift, torchvision's last stride 2), trained with SGD and
momentum under a warm-up + cosine schedule. The batches are random visible frames with a random
flip and a small translation (:func:`reprolib.pretrain.tinyclip.data.augment_batch`). The steps run in
the loop shared with TinyCLIP (:func:`reprolib.pretrain.loop.pretrain_loop`).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.data.synthetic.world import GENERATOR_VERSION
from reprolib.models.cmft.resnet import TINYRESNET_WEIGHTS, TSMResNet, parse_arch
from reprolib.pretrain.loop import hardware_summary, pretrain_loop, save_weights
from reprolib.pretrain.tinyclip.data import (ImagePool, augment_batch, normalize, render_pool, tinyclip_cameras,
                                             tinyclip_identities)

__all__ = ["TrainConfig", "Classifier", "classification_batches", "train_tinyresnet"]

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """TinyResNet pretraining recipe (the defaults produce the shipped weights).

    Attributes:
        seed: seed of the model init, batch order and augmentation.
        arch: ``resnet50-w<N>`` (the embedded CMFT streams use ``resnet50-w16``).
        num_ids: classes: TinyCLIP's first ``num_ids`` training identities.
        views_per_id: visible frames rendered per identity (reused every epoch).
        batch_size: frames per step.
        steps: optimisation steps.
        lr: peak SGD learning rate (momentum 0.9).
        weight_decay: SGD weight decay (not on BN parameters and biases).
        label_smoothing: cross-entropy label smoothing.
        warmup_steps: linear warm-up steps before the cosine decay.
        threads: torch CPU threads.
        max_minutes: safety stop on the wall time (recorded if it triggers).
    """

    seed: int = 0
    arch: str = "resnet50-w16"
    num_ids: int = 3000
    views_per_id: int = 6
    batch_size: int = 128
    steps: int = 2000
    lr: float = 0.2
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    warmup_steps: int = 100
    threads: int = 2
    max_minutes: float = 30.0


class Classifier(nn.Module):
    """A ResNet-50-shaped body (torchvision names, no shift) + global average pooling + a linear head.

    Args:
        arch: ``resnet50-w<N>``.
        num_classes: output classes.
    """

    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        self.body = TSMResNet(parse_arch(arch), last_stride=2, shift=False)
        self.fc = nn.Linear(self.body.out_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` images -> ``(B, num_classes)`` logits."""
        feat = self.body(x)["conv6"].mean(dim=(2, 3))  # (B, C)
        return self.fc(feat)  # (B, num_classes)


def classification_batches(pool: ImagePool, batch_size: int, generator: torch.Generator,
                           augment: bool = True) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless ``(images (B, 3, H, W), labels (B,))`` batches of random frames of ``pool``
    (ImageNet normalisation, the CMFT configs' ``data.normalization``)."""
    labels = torch.as_tensor(pool.ids)
    while True:
        idx = torch.randint(len(pool), (batch_size,), generator=generator)  # (B,)
        x = normalize(pool.images[idx.numpy()], "imagenet")  # (B, 3, H, W)
        yield (augment_batch(x, generator) if augment else x), labels[idx]


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on convolution and linear weights only (not on BN parameters and biases)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def train_tinyresnet(cfg: TrainConfig, out: Path = TINYRESNET_WEIGHTS, command: str = "",
                     log_every: int = 50) -> dict[str, Any]:
    """Pretrain a narrow ResNet-50 by identity classification of visible frames; save its body.

    Args:
        cfg: the recipe.
        out: weights file to write (fp16 torchvision-named state dict of the body, no ``fc``).
        command: the command line, stored in the record.
        log_every: log the loss every this many steps.

    Returns:
        The training record (the core of ``tinyresnet.json``): arch, config, losses and training
        accuracy, timings, hardware, file size and SHA-256.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    attrs = tinyclip_identities("train", cfg.num_ids)
    pool = render_pool(attrs, tinyclip_cameras("train"), cfg.views_per_id, ("rgb",), seed=cfg.seed)["rgb"]
    render_s = time.perf_counter() - t0
    logger.info("rendered %d visible frames of %d identities in %.0f s", len(pool), cfg.num_ids, render_s)

    model = Classifier(cfg.arch, cfg.num_ids)
    generator = torch.Generator().manual_seed(cfg.seed)
    batches = classification_batches(pool, cfg.batch_size, generator)
    optimizer = torch.optim.SGD(_param_groups(model, cfg.weight_decay), lr=cfg.lr, momentum=0.9, nesterov=True)

    def step_loss(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
        images, labels = batch  # (B, 3, H, W), (B,)
        logits = model(images)  # (B, num_ids)
        loss = F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
        return loss, {"train acc": float((logits.detach().argmax(1) == labels).float().mean())}

    run = pretrain_loop(model, optimizer, batches, step_loss, cfg, t0, log_every=log_every)
    losses, accs, stopped_early = run.losses, run.stats["train acc"], run.stopped_early
    train_s = time.perf_counter() - t0
    saved = save_weights(model.body.eval(), Path(out))
    window = max(1, min(100, len(losses) // 10))
    return {
        "arch": cfg.arch,
        "file": Path(out).name,
        "sha256": saved["sha256"],
        "size_bytes": saved["size_bytes"],
        "dtype": "float16",
        "names": "torchvision ResNet-50 (no fc)",
        "command": command,
        "seed": cfg.seed,
        "config": dataclasses.asdict(cfg),
        "steps_done": len(losses),
        "stopped_early": stopped_early,
        "loss_first": float(np.mean(losses[:window])),
        "loss_last": float(np.mean(losses[-window:])),
        "train_acc_last": float(np.mean(accs[-window:])),
        "render_seconds": round(render_s, 1),
        "total_train_seconds": round(train_s, 1),
        "hardware": hardware_summary(),
        "trained_on": f"visible (rgb) frames of {cfg.num_ids} TinyCLIP pretraining identities (never a SynthVCM world)",
        "generator_version": GENERATOR_VERSION,
    }
