"""Held-out evidence for TinyResNet: frame retrieval of unseen identities, per modality.

The features are what CMFT's streams pool: global average of ``layer4`` (last stride 1), L2
normalised. Three nearest-neighbour R@1 numbers over the held-out identities of TinyCLIP's
``eval`` split, seen by its held-out cameras:

* ``visible``: each visible frame against every other visible frame;
* ``infrared``: the same among infrared frames (never seen in pretraining);
* ``ir2rgb``: each infrared frame against the visible frames of the *other* views (its own,
  pixel-aligned visible twin is left out), the cross-modal task CMFT learns.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.pretrain.tinyclip.data import ImagePool, normalize
from reprolib.pretrain.tinyclip.evaluate import held_out_pools

__all__ = ["encode_frames", "nearest_neighbour_r1", "evaluate_tinyresnet"]


@torch.no_grad()
def encode_frames(stream: nn.Module, images: np.ndarray, batch_size: int = 256) -> Tensor:
    """``(N, H, W, 3) uint8`` frames -> ``(N, C)`` L2-normalised pooled ``conv6`` features."""
    stream.eval()
    out = [stream(normalize(images[i:i + batch_size], "imagenet"))["conv6"].mean(dim=(2, 3))  # (b, C)
           for i in range(0, len(images), batch_size)]
    return F.normalize(torch.cat(out), dim=1)  # (N, C)


def nearest_neighbour_r1(query: Tensor, gallery: Tensor, query_ids: np.ndarray, gallery_ids: np.ndarray,
                         exclude: Optional[Tensor] = None) -> float:
    """Fraction of queries whose most similar gallery item has their identity.

    Args:
        query: ``(Q, D)`` normalised features.
        gallery: ``(G, D)`` normalised features.
        query_ids: ``(Q,)`` identities.
        gallery_ids: ``(G,)`` identities.
        exclude: ``(Q, G)`` bool, gallery items a query may not retrieve (itself, its twin).
    """
    sim = query @ gallery.T  # (Q, G)
    if exclude is not None:
        sim = sim.masked_fill(exclude, float("-inf"))
    top = sim.argmax(dim=1).numpy()  # (Q,)
    return float(np.mean(gallery_ids[top] == query_ids))


def evaluate_tinyresnet(stream: nn.Module, num_ids: int = 200, views_per_id: int = 4, seed: int = 0,
                        pools: Optional[dict[str, ImagePool]] = None) -> dict[str, Any]:
    """R@1 of held-out identities within each modality and from infrared to visible.

    Args:
        stream: a :class:`~reprolib.models.cmft.resnet.TSMResNet` (e.g. ``build_tsm_resnet(
            "resnet50-w16", "tinyresnet", shift=False)``).
        num_ids: held-out identities.
        views_per_id: aligned visible/infrared frames per identity.
        seed: seed of the views.
        pools: pre-rendered ``{"rgb", "ir"}`` pools (else rendered here).

    Returns:
        ``{"setup", "R@1": {"visible", "infrared", "ir2rgb", "chance"}}``.
    """
    if pools is None:
        pools = held_out_pools(num_ids, views_per_id, seed)
    ids = pools["rgb"].ids
    feats = {m: encode_frames(stream, pools[m].images) for m in ("rgb", "ir")}
    self_mask = torch.eye(len(ids), dtype=torch.bool)  # (N, N): frame i is the view i of both modalities
    r1 = {"visible": nearest_neighbour_r1(feats["rgb"], feats["rgb"], ids, ids, self_mask),
          "infrared": nearest_neighbour_r1(feats["ir"], feats["ir"], ids, ids, self_mask),
          "ir2rgb": nearest_neighbour_r1(feats["ir"], feats["rgb"], ids, ids, self_mask)}
    per_id = int(np.bincount(ids).min())
    r1["chance"] = (per_id - 1) / (len(ids) - 1)  # a random other frame has the identity
    return {"setup": {"num_ids": len(pools["rgb"].attrs), "views_per_id": per_id, "seed": seed,
                      "cameras": "held-out (eval split)", "features": "GAP of layer4 (last stride 1), cosine"},
            "R@1": r1}
