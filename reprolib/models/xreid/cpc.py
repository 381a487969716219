"""X-ReID's Cross-modality Prototype Collaboration (CPC): prototype memories and CPCL.

**Memories** (paper "Memory Initialization"; docs/decisions/xreid.md#memory-extraction-and-cpcl). One L2-normalised
prototype per identity and modality, ``M^vis, M^ir in R^{N_c x D_m}`` with D_m = 1280 =
[BN(f) (768) ; BN(f_p) (512)] at ViT-B/16 (D8). Each prototype is the unweighted mean of that
modality's training-tracklet features of the identity, then normalised. The model re-extracts
them at every epoch start in eval mode without SIE (D9; ``XReIDExtra.memory_refresh="once"``
keeps the first extraction). They are registered **buffers**, so ``last.pt`` restores them.

**Momentum update with the hardest sample** (eqs. 1-2; 2.3). For each label y in the batch
and each memory M: among the candidate samples of label y, ``b* = argmin_i <x_i, M[y]>``
(x_i L2-normalised: the least similar one), then ``M[y] <- mu M[y] + (1 - mu) b*`` and
renormalise. mu = 0.2 (paper, PCL; the released processor uses 0.1: D4). The candidates come
from ``update_source``: ``"other"`` modality (eq. 2, default), ``"same"`` modality (the
"Visual Memories" row), or ``"pooled"`` over both (the released code: D5). The gradient uses
the memory *before* the step's update, as the released autograd function does.

**CPCL** (eqs. 3-4; 2.2): for every clip of both modalities ("*": all samples),
``CE(<x_i, M_j> / tau)`` over **all N_c prototypes** (D7; ``negatives="batch"`` keeps only the
identities of the batch, eq. 3's sum over j = 1..P), tau = 0.05 (D6), averaged over the clips;
``contrast="both"`` adds the terms of both memories (eqs. 3 + 4), ``"own"`` contrasts each clip
only with its own modality's memory.

Table 4 rows (docs/decisions/xreid.md#table-4-variants): ``memory`` none | single | per_modality,
``update_source`` same | other | pooled, ``contrast`` own | both. ``single`` is one memory over
both modalities (the literal PCL port), updated from the pooled batch.
"""
from __future__ import annotations

import logging
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.data.types import Modality
from reprolib.models.xreid.options import NEGATIVES

__all__ = ["PrototypeMemory", "CrossModalityPrototypes", "cpcl_loss"]

logger = logging.getLogger(__name__)

_MODALITY_CODES = {"rgb": int(Modality.RGB), "ir": int(Modality.IR)}


def cpcl_loss(features: Tensor, labels: Tensor, prototypes: Tensor, temperature: float = 0.05,
              negatives: str = "all") -> Tensor:
    """Prototype contrastive loss of one memory (paper eqs. 3-4).

    Args:
        features: ``(N, D)`` clip features b_i (normalised here: <.,.> is the cosine).
        labels: ``(N,)`` identity labels.
        prototypes: ``(N_c, D)`` L2-normalised memory (treated as a constant).
        temperature: tau (0.05).
        negatives: ``"all"`` N_c prototypes in the denominator (code, PCL) or ``"batch"``: only
            the identities present in ``labels`` (eq. 3 as written).

    Returns:
        Scalar mean over the N clips of ``-log softmax_j(<x_i, M_j> / tau)[y_i]``.
    """
    x = F.normalize(features if features.dtype == torch.float64 else features.float(), dim=1)  # (N, D)
    logits = x @ prototypes.to(x.dtype).t() / temperature  # (N, N_c)
    if negatives == "batch":
        present = torch.zeros(prototypes.shape[0], dtype=torch.bool, device=logits.device)  # (N_c,)
        present[labels] = True
        logits = logits.masked_fill(~present, float("-inf"))  # (N, N_c)
    elif negatives != "all":
        raise ValueError(f"model.extra.cpcl_negatives: expected one of {', '.join(NEGATIVES)}, got {negatives!r}")
    return F.cross_entropy(logits, labels)


class PrototypeMemory(nn.Module):
    """``(N_c, D)`` buffer of L2-normalised identity prototypes.

    Args:
        num_classes: N_c, rows (one per training label).
        dim: prototype width D_m.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("features", torch.zeros(num_classes, dim))

    @torch.no_grad()
    def initialize(self, features: Tensor, labels: Tensor) -> None:
        """Per-label mean of ``features (n, D)`` with ``labels (n,)``, L2-normalised (rows of
        labels without a sample stay zero, with a warning)."""
        num_classes = self.features.shape[0]
        sums = torch.zeros_like(self.features).index_add_(0, labels.to(self.features.device),
                                                         features.to(self.features))  # (N_c, D)
        counts = torch.bincount(labels, minlength=num_classes).to(self.features.device)  # (N_c,)
        if int(counts.lt(1).sum()):
            logger.warning("CPC memory: %d of %d labels have no training tracklet; their prototypes stay zero",
                           int(counts.lt(1).sum()), num_classes)
        means = sums / counts.clamp(min=1).unsqueeze(1).to(sums.dtype)  # (N_c, D)
        self.features.copy_(F.normalize(means, dim=1))

    @torch.no_grad()
    def hard_update(self, features: Tensor, labels: Tensor, momentum: float) -> None:
        """Eqs. 1-2: for each label, blend in its least similar sample and renormalise.

        Args:
            features: ``(n, D)`` L2-normalised candidate features.
            labels: ``(n,)`` their labels.
            momentum: mu, the weight of the old prototype.
        """
        if features.shape[0] == 0:
            return
        features = features.to(self.features)
        sims = (features * self.features[labels]).sum(dim=1)  # (n,) <x_i, M[y_i]>
        for y in labels.unique().tolist():
            idx = (labels == y).nonzero().squeeze(1)  # (n_y,)
            hard = features[idx[sims[idx].argmin()]]  # (D,)
            row = momentum * self.features[y] + (1.0 - momentum) * hard  # (D,)
            self.features[y] = F.normalize(row, dim=0)


class CrossModalityPrototypes(nn.Module):
    """CPC: the memories, their hard-sample momentum update and CPCL (see the module doc).

    Args:
        num_classes: N_c.
        dim: memory width D_m.
        memory: ``"single"`` | ``"per_modality"`` (``"none"`` is handled by the model).
        update_source: ``"same"`` | ``"other"`` | ``"pooled"`` (``"single"`` needs ``"pooled"``).
        contrast: ``"own"`` | ``"both"``.
        momentum: mu.
        temperature: tau.
        negatives: ``"all"`` | ``"batch"`` (see :func:`cpcl_loss`).
    """

    def __init__(self, num_classes: int, dim: int, memory: str = "per_modality", update_source: str = "other",
                 contrast: str = "both", momentum: float = 0.2, temperature: float = 0.05,
                 negatives: str = "all") -> None:
        super().__init__()
        if memory not in ("single", "per_modality"):
            raise ValueError(f"model.extra.memory: CrossModalityPrototypes needs 'single' or 'per_modality', "
                             f"got {memory!r}")
        if memory == "single" and update_source != "pooled":
            raise ValueError("model.extra.update_source: a single memory over both modalities is updated from "
                             f"the pooled batch; set update_source: pooled (got {update_source!r})")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"model.extra.momentum must be in [0, 1), got {momentum}")
        if temperature <= 0:
            raise ValueError(f"model.extra.temperature must be > 0, got {temperature}")
        self.update_source = update_source
        self.contrast = contrast
        self.momentum = momentum
        self.temperature = temperature
        self.negatives = negatives
        names = ("all",) if memory == "single" else ("rgb", "ir")
        self.memories = nn.ModuleDict({n: PrototypeMemory(num_classes, dim) for n in names})
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @property
    def single(self) -> bool:
        """True for one memory over both modalities (``memory="single"``)."""
        return "all" in self.memories

    def _select(self, name: str, modality: Tensor, for_update: bool) -> Tensor:
        """Boolean ``(N,)`` mask of the samples a memory contrasts with or is updated from."""
        everyone = torch.ones_like(modality, dtype=torch.bool)
        if name == "all":
            return everyone
        own = modality == _MODALITY_CODES[name]
        if for_update:
            return {"same": own, "other": ~own, "pooled": everyone}[self.update_source]
        return everyone if self.contrast == "both" else own

    @torch.no_grad()
    def initialize(self, features: Tensor, labels: Tensor, modality: Tensor) -> None:
        """Fill every memory from training features (per modality, or all for ``single``).

        Args:
            features: ``(n, D_m)`` features of training tracklets.
            labels: ``(n,)`` training labels.
            modality: ``(n,)`` modality codes (``Modality.RGB`` / ``Modality.IR``).
        """
        for name, mem in self.memories.items():
            keep = torch.ones_like(modality, dtype=torch.bool) if name == "all" else modality == _MODALITY_CODES[name]
            mem.initialize(features[keep], labels[keep])
        self.initialized.fill_(True)

    def forward(self, features: Tensor, labels: Tensor, modality: Tensor,
                update: Optional[bool] = None) -> dict[str, Tensor]:
        """CPCL terms of a batch, then (in training mode) the momentum update.

        Args:
            features: ``(N, D_m)`` training-mode clip features of both modalities.
            labels: ``(N,)`` labels.
            modality: ``(N,)`` modality codes.
            update: update the memories (default: ``self.training``).

        Returns:
            ``{"cpcl": L}`` for a single memory, else ``{"cpcl_vis": L_vis, "cpcl_ir": L_ir}``
            (each a mean over the clips it contrasts; unweighted).

        Raises:
            RuntimeError: when the memories were never initialised.
        """
        if not bool(self.initialized):
            raise RuntimeError("X-ReID CPC memories are empty: the Trainer fills them in model.on_epoch_start; "
                               "call model.refresh_memories(...) (or model.cpc.initialize(...)) first")
        losses: dict[str, Tensor] = {}
        for name, mem in self.memories.items():
            mask = self._select(name, modality, for_update=False)
            key = "cpcl" if name == "all" else f"cpcl_{'vis' if name == 'rgb' else 'ir'}"
            prototypes = mem.features.clone()  # the pre-update memory (the update below is in place)
            losses[key] = cpcl_loss(features[mask], labels[mask], prototypes, self.temperature, self.negatives)
        if self.training if update is None else update:
            x = F.normalize(features.detach().float(), dim=1)  # (N, D_m)
            for name, mem in self.memories.items():
                mask = self._select(name, modality, for_update=True)
                mem.hard_update(x[mask], labels[mask], self.momentum)
        return losses
