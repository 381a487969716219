"""TinyCLIP: the miniature world's own CLIP, pretrained on visible-only synthetic persons.

The three papers transfer knowledge from a pretrained CLIP (X-ReID's prototype memories, VLD's
and CLIP-ReID's prompts through the frozen text encoder). In the embedded profile that CLIP is
``TinyCLIP-ViT-8`` (``reprolib/models/model_configs``), trained by
``python -m reprolib tinyclip train`` on **visible frames only**, like real CLIP, so the
visible/infrared modality gap exists in the miniature world too. The weights ship as
``reprolib/models/weights/tinyclip.pt`` and load through
:func:`reprolib.models.weights.create_clip_model` with ``pretrained="tinyclip"`` (SHA-256
verified against ``tinyclip.json``).

Modules: :mod:`.data` (rendered image/caption pools, held-out split), :mod:`.train`
(contrastive pretraining), :mod:`.evaluate` (zero-shot attributes and retrieval per modality),
:mod:`.cli` (``train`` / ``eval``).
"""
from .data import ImagePool, render_pool, tinyclip_cameras, tinyclip_identities
from .evaluate import ATTRIBUTE_TASKS, evaluate_tinyclip
from .train import TrainConfig, train_tinyclip

__all__ = [
    "ATTRIBUTE_TASKS",
    "ImagePool",
    "TrainConfig",
    "evaluate_tinyclip",
    "render_pool",
    "tinyclip_cameras",
    "tinyclip_identities",
    "train_tinyclip",
]
