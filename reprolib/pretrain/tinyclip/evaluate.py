"""Zero-shot evaluation of TinyCLIP on held-out identities, per modality.

Two measurements, each on visible frames and on infrared frames rendered from the **same**
held-out identities, cameras and poses (pixel-aligned pairs), so any difference is the
modality gap of a CLIP that only ever saw visible images:

* **zero-shot attribute classification** (CLIP's zero-shot protocol, Radford et al. 2021,
  Sec. 3.1.4): every class of an attribute gets a text embedding, the mean of its
  L2-normalised prompt embeddings over an ensemble of neutral fillers ("a photo of a person
  in a red {shirt, t-shirt, jacket, sweater}"); a frame is assigned the class of highest
  cosine similarity. Scored as balanced accuracy (mean per-class recall; chance = 1/K), since
  classes are imbalanced (e.g. 36 % plain upper garments).
* **text-to-image retrieval**: each identity's caption queries the gallery of all held-out
  frames of one modality; R@k is the fraction of queries with a frame of the right identity
  among the top k (chance: hypergeometric, :func:`retrieval_chance`).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reprolib.data.synthetic import IdentityAttributes
from reprolib.data.synthetic.identities import LOWER_COLOURS, LOWER_KINDS, UPPER_COLOURS, UPPER_KINDS

from .data import ImagePool, normalize, render_pool, tinyclip_cameras, tinyclip_identities, tokenize_captions

__all__ = [
    "AttributeTask", "ATTRIBUTE_TASKS", "MODALITY_NAMES", "encode_images", "class_embeddings",
    "zero_shot_attribute", "retrieval_chance", "text_to_image_retrieval", "held_out_pools", "evaluate_tinyclip",
]

logger = logging.getLogger(__name__)

#: reprolib modality code -> name used in reports.
MODALITY_NAMES = {"rgb": "visible", "ir": "infrared"}


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _lower(colour: str, kind: str) -> str:
    phrase = f"{colour} {kind}"
    return phrase if kind.endswith(("trousers", "shorts")) else _article(phrase)


@dataclass(frozen=True)
class AttributeTask:
    """One zero-shot attribute classification task.

    Attributes:
        name: task name in reports.
        classes: class names.
        label: identity -> its class name.
        prompts: class name -> prompt ensemble (neutral fillers for the other attributes).
        visible_only: whether the attribute is invisible in infrared (colours).
    """

    name: str
    classes: tuple[str, ...]
    label: Callable[[IdentityAttributes], str]
    prompts: Callable[[str], list[str]]
    visible_only: bool


_PATTERN_PHRASES = {
    "plain": ("{c} {k}",),
    "hstripes": ("{c} striped {k}", "{c} horizontally striped {k}"),
    "vstripes": ("{c} pinstriped {k}", "{c} vertically striped {k}"),
    "checks": ("{c} checked {k}", "{c} plaid {k}"),
    "two-tone": ("two-tone {c} and {c2} {k}", "{c} {k} with a {c2} lower part"),
}
_ACCESSORY_PROMPTS = {
    "none": ("carrying nothing",),
    "backpack": ("carrying a backpack", "with a backpack"),
    "bag": ("carrying a shoulder bag", "with a bag over the shoulder"),
    "hat": ("wearing a hat", "wearing a cap"),
}


def _upper_colour_prompts(colour: str) -> list[str]:
    return [f"a photo of a person in {_article(f'{colour} {k}')}" for k in UPPER_KINDS]


def _lower_colour_prompts(colour: str) -> list[str]:
    return [f"a photo of a person in {_lower(colour, k)}" for k in LOWER_KINDS]


def _pattern_prompts(pattern: str) -> list[str]:
    out = []
    for i, c in enumerate(UPPER_COLOURS):
        c2 = UPPER_COLOURS[(i + 3) % len(UPPER_COLOURS)]
        for k in ("shirt", "sweater"):
            out += [f"a photo of a person in {_article(p.format(c=c, c2=c2, k=k))}" for p in _PATTERN_PHRASES[pattern]]
    return out


def _accessory_prompts(accessory: str) -> list[str]:
    return [f"a photo of a person in {_article(f'{c} shirt')} and {c2} trousers, {p}"
            for c, c2 in zip(UPPER_COLOURS, LOWER_COLOURS * 2) for p in _ACCESSORY_PROMPTS[accessory]]


def _lower_kind_prompts(kind: str) -> list[str]:
    return [f"a photo of a person in {_article(f'{c} shirt')} and {_lower(c2, kind)}"
            for c, c2 in zip(UPPER_COLOURS, LOWER_COLOURS * 2)]


#: The attribute tasks, from colour (visible only) to geometry (both modalities).
ATTRIBUTE_TASKS: tuple[AttributeTask, ...] = (
    AttributeTask("upper_colour", UPPER_COLOURS, lambda a: a.upper.colour, _upper_colour_prompts, True),
    AttributeTask("lower_colour", LOWER_COLOURS, lambda a: a.lower.colour, _lower_colour_prompts, True),
    AttributeTask("upper_pattern", tuple(_PATTERN_PHRASES), lambda a: a.upper.pattern, _pattern_prompts, False),
    AttributeTask("accessory", tuple(_ACCESSORY_PROMPTS), lambda a: a.accessory, _accessory_prompts, False),
    AttributeTask("lower_kind", LOWER_KINDS, lambda a: a.lower.kind, _lower_kind_prompts, False),
)


@torch.no_grad()
def encode_images(model: nn.Module, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised image embeddings ``(N, D)`` of ``(N, H, W, 3) uint8`` frames."""
    feats = [model.encode_image(normalize(images[i:i + batch_size]), normalize=True)  # (b, D)
             for i in range(0, len(images), batch_size)]
    return torch.cat(feats)


@torch.no_grad()
def _encode_texts(model: nn.Module, tokenizer, texts: Sequence[str], batch_size: int = 512) -> torch.Tensor:
    tokens = tokenizer(list(texts))  # (T, L)
    return torch.cat([model.encode_text(tokens[i:i + batch_size], normalize=True)
                      for i in range(0, len(tokens), batch_size)])  # (T, D)


def class_embeddings(model: nn.Module, tokenizer, task: AttributeTask) -> torch.Tensor:
    """Zero-shot classifier weights ``(K, D)``: each class's normalised mean prompt embedding."""
    rows = [F.normalize(_encode_texts(model, tokenizer, task.prompts(c)).mean(0), dim=-1) for c in task.classes]
    return torch.stack(rows)  # (K, D)


def zero_shot_attribute(image_features: torch.Tensor, labels: Sequence[str], weights: torch.Tensor,
                        classes: Sequence[str]) -> dict[str, float]:
    """Balanced and plain accuracy of zero-shot classification.

    Args:
        image_features: ``(N, D)`` normalised embeddings.
        labels: true class name per image.
        weights: ``(K, D)`` class embeddings.
        classes: class names (rows of ``weights``).

    Returns:
        ``{"balanced_acc", "acc"}``; classes absent from ``labels`` are left out of the mean.
    """
    pred = (image_features @ weights.t()).argmax(1).numpy()  # (N,)
    y = np.array([classes.index(lbl) for lbl in labels])
    recalls = [float((pred[y == k] == k).mean()) for k in range(len(classes)) if (y == k).any()]
    return {"balanced_acc": float(np.mean(recalls)), "acc": float((pred == y).mean())}


def retrieval_chance(n_gallery: int, n_relevant: int, k: int) -> float:
    """Probability that a random ranking has one of ``n_relevant`` items in its top ``k``."""
    if k >= n_gallery - n_relevant + 1:
        return 1.0
    return 1.0 - math.comb(n_gallery - n_relevant, k) / math.comb(n_gallery, k)


def text_to_image_retrieval(text_features: torch.Tensor, text_ids: np.ndarray, image_features: torch.Tensor,
                            image_ids: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """R@k of caption queries ``(Q, D)`` against a gallery ``(N, D)``: a hit is any frame of the
    query's identity among the top ``k``."""
    sim = text_features @ image_features.t()  # (Q, N)
    order = sim.argsort(dim=1, descending=True)[:, :max(ks)].numpy()  # (Q, kmax)
    hits = image_ids[order] == text_ids[:, None]  # (Q, kmax)
    return {f"R@{k}": float(hits[:, :k].any(1).mean()) for k in ks}


def held_out_pools(num_ids: int = 200, views_per_id: int = 4, seed: int = 0) -> dict[str, ImagePool]:
    """Aligned visible/infrared frames of the first ``num_ids`` held-out identities, from the
    held-out cameras (what :func:`evaluate_tinyclip` renders when given no pools)."""
    attrs = tinyclip_identities("eval", num_ids)
    return render_pool(attrs, tinyclip_cameras("eval"), views_per_id, ("rgb", "ir"), seed=1000 + seed)


def evaluate_tinyclip(model: nn.Module, tokenizer, num_ids: int = 200, views_per_id: int = 4,
                      captions_per_id: int = 2, seed: int = 0,
                      pools: Optional[dict[str, ImagePool]] = None) -> dict[str, Any]:
    """Zero-shot attributes and text-to-image retrieval on held-out identities, per modality.

    Args:
        model: an open_clip CLIP model (e.g. ``create_clip_model("TinyCLIP-ViT-8", "tinyclip")``).
        tokenizer: its tokenizer.
        num_ids: held-out identities (the first ``num_ids`` of the ``"eval"`` split).
        views_per_id: frames per identity and modality (aligned visible/infrared pairs).
        captions_per_id: retrieval queries per identity.
        seed: seed of the views and caption phrasings.
        pools: pre-rendered ``{"rgb", "ir"}`` pools (else rendered here).

    Returns:
        ``{"setup", "zero_shot": {task: {"classes", "chance", "visible", "infrared",
        "visible_acc", "infrared_acc", "visible_only"}}, "zero_shot_mean": {...},
        "retrieval": {"R@k": {"visible", "infrared", "chance"}}, "gap": {...}}``.
    """
    model.eval()
    if pools is None:
        pools = held_out_pools(num_ids, views_per_id, seed)
    attrs = pools["rgb"].attrs
    feats = {m: encode_images(model, pools[m].images) for m in ("rgb", "ir")}
    labels_of = [pools["rgb"].attrs[int(k)] for k in pools["rgb"].ids]

    zero_shot: dict[str, Any] = {}
    for task in ATTRIBUTE_TASKS:
        weights = class_embeddings(model, tokenizer, task)
        labels = [task.label(a) for a in labels_of]
        row: dict[str, Any] = {"classes": len(task.classes), "chance": 1.0 / len(task.classes),
                               "visible_only": task.visible_only}
        for m, name in MODALITY_NAMES.items():
            scores = zero_shot_attribute(feats[m], labels, weights, task.classes)
            row[name] = scores["balanced_acc"]
            row[f"{name}_acc"] = scores["acc"]
        zero_shot[task.name] = row
    mean = {key: float(np.mean([r[key] for r in zero_shot.values()])) for key in ("visible", "infrared", "chance")}

    tokens, _ = tokenize_captions(attrs, tokenizer, captions_per_id, seed=1000 + seed)  # (n, c, L)
    with torch.no_grad():
        text_feats = model.encode_text(tokens.flatten(0, 1), normalize=True)  # (n * c, D)
    text_ids = np.repeat(np.arange(len(attrs)), captions_per_id)
    retrieval: dict[str, Any] = {}
    for m, name in MODALITY_NAMES.items():
        for key, value in text_to_image_retrieval(text_feats, text_ids, feats[m], pools[m].ids).items():
            retrieval.setdefault(key, {})[name] = value
    n_gallery, n_rel = len(pools["rgb"]), int(np.bincount(pools["rgb"].ids).min())
    for key in retrieval:
        retrieval[key]["chance"] = retrieval_chance(n_gallery, n_rel, int(key[2:]))

    gap = {"zero_shot_mean": mean["visible"] - mean["infrared"],
           **{f"zero_shot_{t}": r["visible"] - r["infrared"] for t, r in zero_shot.items()},
           **{f"retrieval_{k}": r["visible"] - r["infrared"] for k, r in retrieval.items()}}
    return {
        "setup": {"num_ids": len(attrs), "views_per_id": n_rel,
                  "captions_per_id": captions_per_id, "seed": seed, "cameras": "held-out (eval split)",
                  "metric": "zero-shot: balanced accuracy (mean per-class recall); retrieval: R@k over frames"},
        "zero_shot": zero_shot,
        "zero_shot_mean": mean,
        "retrieval": retrieval,
        "gap": gap,
    }
