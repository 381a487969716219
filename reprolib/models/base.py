"""The model contract shared by every paper family (docs/architecture.md, "Models").

A :class:`ReIDModel` offers

* ``forward_features(x, camid, modality) -> dict``: per-frame / token / pooled features
  (timm's features-vs-head split);
* ``forward_train(batch) -> dict[str, Tensor]``: the **weighted** loss components of one
  training step (the trainer sums them and logs each one by name);
* ``extract(x, camid, modality) -> (B, D)``: the test representation of a clip batch
  ``(B, T, 3, H, W)`` or of a dense batch ``(B, C_clips, T, 3, H, W)``;
* ``param_groups(optim_cfg) -> list[dict]``: optimiser parameter groups with their peak LRs.

Parameter groups follow one rule for all families (override ``param_groups`` for a
paper-specific scheme): parameters whose names start with ``backbone_prefixes`` are the
pretrained backbone (``optim.lr``; biases ``optim.lr * bias_lr_mult`` with
``bias_weight_decay``); every other trainable parameter is a head or a new module
(``optim.lr * head_lr_mult``, biases included: VLD gives "bias OR classifier" 25x, not 625x,
docs/decisions/vld.md#v4-learning-rate-groups).
"""
from __future__ import annotations

import abc
import logging
from contextlib import nullcontext
from typing import Any, Callable, Iterable, Optional

import torch
from torch import Tensor, nn

from reprolib.data.types import Modality
from reprolib.utils.progress import ProgressLog

__all__ = ["ReIDModel", "build_param_groups", "is_bias_param", "extract_tracklet_features", "stack_modalities"]


def is_bias_param(name: str) -> bool:
    """True for a bias by its name's last component (``bias``, ``in_proj_bias``), as VLD's rule."""
    return "bias" in name.rsplit(".", 1)[-1]


def build_param_groups(named_params: Iterable[tuple[str, nn.Parameter]],
                       is_backbone: Callable[[str], bool], optim_cfg: Any) -> list[dict]:
    """Split trainable parameters into backbone / backbone-bias / head / head-bias groups.

    Args:
        named_params: ``model.named_parameters()``.
        is_backbone: predicate on a parameter name; True for pretrained-backbone parameters.
        optim_cfg: an ``OptimConfig`` (``lr``, ``weight_decay``, ``head_lr_mult``,
            ``bias_lr_mult``, ``bias_weight_decay``).

    Returns:
        Non-empty groups, each ``{"name", "params", "lr", "weight_decay", "lr_mult"}`` where
        ``lr`` is the group's peak learning rate and ``lr_mult = lr / optim.lr``. Frozen
        parameters (``requires_grad=False``) are left out.
    """
    spec = {
        "backbone": (1.0, optim_cfg.weight_decay),
        "backbone_bias": (optim_cfg.bias_lr_mult, optim_cfg.bias_weight_decay),
        "head": (optim_cfg.head_lr_mult, optim_cfg.weight_decay),
        "head_bias": (optim_cfg.head_lr_mult, optim_cfg.bias_weight_decay),
    }
    params: dict[str, list[nn.Parameter]] = {k: [] for k in spec}
    for name, p in named_params:
        if not p.requires_grad:
            continue
        key = "backbone" if is_backbone(name) else "head"
        params[key + "_bias" if is_bias_param(name) else key].append(p)
    return [{"name": k, "params": params[k], "lr": optim_cfg.lr * mult, "weight_decay": wd, "lr_mult": mult}
            for k, (mult, wd) in spec.items() if params[k]]


class ReIDModel(nn.Module, abc.ABC):
    """Abstract base of every reprolib model (see the module docstring for the contract)."""

    #: Parameter-name prefixes of the pretrained backbone (1x LR); the rest are heads/new modules.
    backbone_prefixes: tuple[str, ...] = ("visual.",)

    @abc.abstractmethod
    def forward_features(self, x: Tensor, camid: Optional[Tensor] = None,
                         modality: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Per-frame, token and pooled features of a clip batch ``(B, T, 3, H, W)``."""

    @abc.abstractmethod
    def forward_train(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted loss components of one training batch (``rgb``, ``ir``, ``label``,
        ``camid_rgb``, ``camid_ir``)."""

    @abc.abstractmethod
    def extract_clip(self, x: Tensor, camid: Optional[Tensor] = None,
                     modality: Optional[Tensor] = None) -> Tensor:
        """Test representation ``(B, D)`` of a clip batch ``(B, T, 3, H, W)``."""

    def extract(self, x: Tensor, camid: Optional[Tensor] = None, modality: Optional[Tensor] = None) -> Tensor:
        """Test representation of a clip batch or a dense multi-clip batch.

        Args:
            x: ``(B, T, 3, H, W)``, or ``(B, C_clips, T, 3, H, W)`` from dense test sampling,
                whose clip features are averaged.
            camid: ``(B,)`` camera ids (used by models with a camera embedding).
            modality: ``(B,)`` modality codes (``Modality.IR = 1``, ``Modality.RGB = 2``).

        Returns:
            ``(B, D)`` features.
        """
        if x.dim() == 5:
            return self.extract_clip(x, camid, modality)
        if x.dim() != 6:
            raise ValueError(f"extract: expected (B, T, 3, H, W) or (B, C_clips, T, 3, H, W), got {tuple(x.shape)}")
        b, n_clips = x.shape[:2]
        def rep(v: Optional[Tensor]) -> Optional[Tensor]:
            return None if v is None else v.repeat_interleave(n_clips)  # (B * C_clips,)

        feats = self.extract_clip(x.flatten(0, 1), rep(camid), rep(modality))  # (B * C_clips, D)
        return feats.view(b, n_clips, -1).mean(dim=1)  # (B, D)

    def forward(self, x: Tensor, camid: Optional[Tensor] = None, modality: Optional[Tensor] = None) -> Tensor:
        """Same as :meth:`extract`, so ``model(x)`` works with hooks and Grad-CAM wrappers."""
        return self.extract(x, camid, modality)

    def on_epoch_start(self, epoch: int, trainer: Any) -> None:
        """Hook the trainer calls on every rank before the first step of ``epoch`` (0-based).

        Families with state built from the whole training set override it (X-ReID's CPC
        memories are re-extracted each epoch; CMFT switches to its second stage). It is not
        called again when a run resumes inside an epoch, so such state must live in buffers
        (saved in ``last.pt``). ``trainer`` offers ``dataset``, ``cfg``, ``device`` and
        ``amp.dtype``; leave the model in training mode.
        """

    def param_groups(self, optim_cfg: Any) -> list[dict]:
        """Optimiser groups by :func:`build_param_groups` with :attr:`backbone_prefixes`."""
        return build_param_groups(self.named_parameters(),
                                  lambda n: n.startswith(self.backbone_prefixes), optim_cfg)

    def num_parameters(self, prefix: str = "", trainable_only: bool = False) -> int:
        """Number of parameters whose names start with ``prefix``."""
        return sum(p.numel() for n, p in self.named_parameters()
                   if n.startswith(prefix) and (p.requires_grad or not trainable_only))


def extract_tracklet_features(encode: Callable[..., Tensor], model: nn.Module, batches: Iterable[dict[str, Tensor]],
                              device: torch.device, amp_dtype: Optional[torch.dtype] = None,
                              use_camid: bool = False, desc: str = "extracting training-set features",
                              ) -> tuple[Tensor, Tensor, Tensor]:
    """One feature per tracklet, with the test transform and ``model`` in eval mode (then restored).

    What every family with state built from the training set uses at an epoch start: X-ReID's CPC
    memories, CLIP-ReID's stage-1 feature cache, TF-CLIP's CLIP-Memory. Dense sampling (several
    clips per tracklet) averages the clip features, as TF-CLIP's memory does.

    Args:
        encode: ``encode(clips (B, T, 3, H, W), camid (B,) | None) -> (B, d)`` clip features.
        model: the module whose mode is switched to eval and back.
        batches: test batches of the tracklets (training: both modalities, labels 0..N_c-1) with
            ``frames``, ``pid``, ``camid``, ``modality``: the engine's
            ``Trainer.tracklet_loader(tracklets, sampling)`` (the test transform, a
            ``data.test_sampling`` name for the clips). Iterated after the switch to eval mode.
        device: where the model lives.
        amp_dtype: autocast dtype (``trainer.amp.dtype``), or ``None``.
        use_camid: pass the tracklets' cameras to ``encode`` (SIE); else ``None``.
        desc: what the pass is, for its progress (a bar on a terminal, a log line every
            ``$REPROLIB_PROGRESS_EVERY`` seconds off one: a pass over a real training set takes minutes).

    Returns:
        ``(features (n, d) float32, labels (n,), modality (n,))`` on ``device``.
    """
    was_training = model.training
    model.eval()
    feats, labels, modality = [], [], []
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    total = len(batches) if hasattr(batches, "__len__") else None
    bar = ProgressLog(total, desc, unit="batch", logger=logging.getLogger("reprolib.models"))
    try:
        with torch.no_grad(), autocast:
            for batch in batches:
                x = batch["frames"].to(device)
                camid = batch["camid"].to(device) if use_camid else None
                if x.dim() == 6:  # dense: (B, C_clips, T, 3, H, W), clip features averaged
                    b, c = x.shape[:2]
                    cam = camid.repeat_interleave(c) if camid is not None else None  # (B*C,)
                    f = encode(x.flatten(0, 1), cam).view(b, c, -1).mean(dim=1)  # (B, d)
                else:
                    f = encode(x, camid)  # (B, d)
                feats.append(f.float())
                labels.append(batch["pid"])
                modality.append(batch["modality"])
                bar.update(1)
    finally:
        bar.close()
        model.train(was_training)
    return torch.cat(feats), torch.cat(labels).to(device), torch.cat(modality).to(device)


def stack_modalities(batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """RGB clips then IR clips of a training batch, as one batch (the order every family uses).

    Args:
        batch: ``rgb (B, T, 3, H, W)``, ``ir (B, T, 3, H, W)``, ``label (B,)``, ``camid_rgb (B,)``,
            ``camid_ir (B,)``.

    Returns:
        ``(clips (2B, T, 3, H, W), labels (2B,), camid (2B,), modality (2B,))``.
    """
    x = torch.cat([batch["rgb"], batch["ir"]], dim=0)  # (2B, T, 3, H, W)
    labels = torch.cat([batch["label"], batch["label"]], dim=0)  # (2B,)
    camid = torch.cat([batch["camid_rgb"], batch["camid_ir"]], dim=0)  # (2B,)
    n = batch["label"].shape[0]
    modality = torch.cat([torch.full((n,), int(Modality.RGB)),
                          torch.full((n,), int(Modality.IR))]).to(labels.device)  # (2B,)
    return x, labels, camid, modality
