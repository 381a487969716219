"""In-memory image/caption data of TinyCLIP pretraining and evaluation.

TinyCLIP is the miniature world's stand-in for OpenAI's CLIP. Real CLIP saw (almost) only
visible-light photos; TinyCLIP is therefore trained on **visible frames only**, so the
modality gap that X-ReID, VLD and CMFT attack also exists in the miniature world.

Identities and cameras come from their own seed space (:data:`TINYCLIP_SEED` and the
``"tinyclip"`` key path), disjoint from the SynthVCM worlds' ``(seed, "identity", pid)``
streams. A fixed set of held-out identities, seen by held-out cameras, is used for evaluation.

Frames are rendered at the renderer's native 128x64 and downsampled (bilinear, antialiased,
like :class:`reprolib.data.transforms.Resize`) to the embedded input size 64x32; they are kept
as ``uint8`` arrays and normalised per batch with OpenAI CLIP's statistics.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from reprolib.data.synthetic import IdentityAttributes, identity_captions, render_frame, sample_camera, sample_identity
from reprolib.data.synthetic.world import CameraSpec, derive_rng
from reprolib.data.transforms import NORMALIZATION

__all__ = [
    "TINYCLIP_SEED", "IMAGE_SIZE", "RENDER_SIZE", "SPLITS", "ImagePool", "tinyclip_identities",
    "tinyclip_cameras", "render_pool", "normalize", "tokenize_captions", "contrastive_batches", "augment_batch",
]

logger = logging.getLogger(__name__)

#: Root seed of TinyCLIP's identities and cameras (never a SynthVCM world seed).
TINYCLIP_SEED = 7919
#: Model input ``(H, W)`` (the embedded profile's frame size) and the render size.
IMAGE_SIZE = (64, 32)
RENDER_SIZE = (128, 64)
#: split -> (first camera index, number of cameras); held-out identities use held-out cameras.
SPLITS: dict[str, tuple[int, int]] = {"train": (1, 24), "eval": (101, 6)}


@dataclass
class ImagePool:
    """Rendered frames of a set of identities.

    Attributes:
        images: ``(N, H, W, 3) uint8`` frames.
        ids: ``(N,) int64`` index into ``attrs`` of each frame's identity.
        attrs: the identities.
        modality: ``"rgb"`` or ``"ir"``.
    """

    images: np.ndarray
    ids: np.ndarray
    attrs: list[IdentityAttributes]
    modality: str

    def __len__(self) -> int:
        return len(self.ids)


def tinyclip_identities(split: str, n: int) -> list[IdentityAttributes]:
    """The first ``n`` identities of a TinyCLIP split (deterministic, independent of ``n``).

    Args:
        split: ``"train"`` or ``"eval"`` (disjoint identity streams).
        n: number of identities.

    Returns:
        ``n`` identities with pids ``1..n`` (pids are local to the split).
    """
    _check_split(split)
    return [sample_identity(pid, derive_rng(TINYCLIP_SEED, "tinyclip", split, "identity", pid))
            for pid in range(1, n + 1)]


def tinyclip_cameras(split: str) -> list[CameraSpec]:
    """The cameras of a TinyCLIP split (:data:`SPLITS`), drawn from :data:`TINYCLIP_SEED`."""
    first, count = SPLITS[_check_split(split)]
    return [sample_camera(TINYCLIP_SEED, index) for index in range(first, first + count)]


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown TinyCLIP split '{split}'; expected one of {sorted(SPLITS)}")
    return split


def _downsample(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3) uint8`` -> ``size`` (bilinear with antialiasing, as PIL reduces)."""
    if frame.shape[:2] == tuple(size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.BILINEAR))


def render_pool(attrs: Sequence[IdentityAttributes], cameras: Sequence[CameraSpec], views_per_id: int,
                modalities: Sequence[str] = ("rgb",), seed: int = 0,
                size: tuple[int, int] = IMAGE_SIZE) -> dict[str, ImagePool]:
    """Render ``views_per_id`` random views of every identity, pixel-aligned across modalities.

    A view is a (camera, gait phase, walking direction, background offset) draw; every
    modality renders the same view, so visible and infrared frames differ only in appearance.

    Args:
        attrs: the identities.
        cameras: cameras to draw from.
        views_per_id: frames per identity.
        modalities: ``"rgb"`` and/or ``"ir"``.
        seed: seed of the view draws (and sensor noise).
        size: output ``(H, W)``.

    Returns:
        modality -> :class:`ImagePool` with ``len(attrs) * views_per_id`` frames.
    """
    n = len(attrs) * views_per_id
    images = {m: np.empty((n, *size, 3), np.uint8) for m in modalities}
    ids = np.repeat(np.arange(len(attrs), dtype=np.int64), views_per_id)
    rng = derive_rng(TINYCLIP_SEED, "tinyclip", "views", seed)
    for i, k in enumerate(ids):
        camera = cameras[int(rng.integers(len(cameras)))]
        view = dict(phase=float(rng.uniform(0, 2 * np.pi)), facing=int(rng.choice([-1, 1])),
                    bg_offset=float(rng.uniform(0, 400)), height=RENDER_SIZE[0], width=RENDER_SIZE[1],
                    seed=TINYCLIP_SEED)
        noise_seed = int(rng.integers(2**63))
        for m in modalities:
            frame = render_frame(attrs[int(k)], m, camera, rng=np.random.default_rng(noise_seed), **view)
            images[m][i] = _downsample(frame, size)
    return {m: ImagePool(images[m], ids, list(attrs), m) for m in modalities}


def normalize(images: np.ndarray | torch.Tensor, normalization: str = "clip") -> torch.Tensor:
    """``(B, H, W, 3) uint8`` frames -> ``(B, 3, H, W) float32`` normalised with CLIP's statistics."""
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, H, W)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZATION[normalization])
    return (x - mean) / std


def tokenize_captions(attrs: Sequence[IdentityAttributes], tokenizer, captions_per_id: int,
                      seed: int = 0) -> tuple[torch.Tensor, list[list[str]]]:
    """Several captions per identity (:func:`identity_captions`), tokenized.

    Args:
        attrs: the identities.
        tokenizer: open_clip tokenizer of the model.
        captions_per_id: captions per identity.
        seed: seed of the phrasing draws.

    Returns:
        ``((n_ids, captions_per_id, L) int64 tokens, the caption strings)``.
    """
    texts = [identity_captions(a, captions_per_id, derive_rng(TINYCLIP_SEED, "tinyclip", "captions", seed, a.pid))
             for a in attrs]
    flat = [t for caps in texts for t in caps]
    tokens = tokenizer(flat)  # (n_ids * captions_per_id, L)
    return tokens.view(len(attrs), captions_per_id, -1), texts


def contrastive_batches(pool: ImagePool, tokens: torch.Tensor, batch_size: int, generator: torch.Generator,
                        augment: bool = True, grey_prob: float = 0.0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (image, caption) batches; each batch holds ``batch_size`` **distinct** identities.

    One random frame and one random caption per identity, so the only positive of an image in
    the batch is its own caption (up to identities that share every described attribute).
    Augmentation: random greyscale (the visible frame's luminance, probability ``grey_prob``),
    random horizontal flip and a random translation of up to 2 pixels.

    Args:
        pool: visible training frames.
        tokens: ``(n_ids, n_caps, L)`` caption tokens of ``pool.attrs``.
        batch_size: identities per batch (at most ``len(pool.attrs)``).
        generator: torch generator (fixed seed -> reproducible batches).
        augment: apply flip/translation (and greyscale with ``grey_prob``).
        grey_prob: probability of showing an image as its luminance (never infrared).

    Yields:
        ``(images (B, 3, H, W) float32 normalised, tokens (B, L) int64)``.
    """
    n_ids, n_caps = tokens.shape[:2]
    if batch_size > n_ids:
        raise ValueError(f"batch_size={batch_size} exceeds the {n_ids} training identities")
    frames_of = [np.flatnonzero(pool.ids == k) for k in range(n_ids)]
    counts = torch.tensor([len(f) for f in frames_of])
    starts = torch.tensor([int(f[0]) for f in frames_of])  # frames of an identity are contiguous
    if not all(np.array_equal(f, np.arange(f[0], f[0] + len(f))) for f in frames_of):
        raise ValueError("ImagePool frames must be grouped by identity (as render_pool writes them)")
    images = torch.from_numpy(pool.images)  # (N, H, W, 3) uint8
    while True:
        ids = torch.randperm(n_ids, generator=generator)[:batch_size]  # (B,)
        frame = starts[ids] + (torch.rand(batch_size, generator=generator) * counts[ids]).long()
        cap = torch.randint(n_caps, (batch_size,), generator=generator)
        raw = images[frame]  # (B, H, W, 3) uint8
        if augment and grey_prob > 0:
            grey = torch.rand(batch_size, generator=generator) < grey_prob  # (B,)
            lum = (raw.float() @ torch.tensor([0.299, 0.587, 0.114])).round().clamp(0, 255)  # (B, H, W)
            raw = torch.where(grey.view(-1, 1, 1, 1), lum.to(torch.uint8).unsqueeze(-1).expand_as(raw), raw)
        x = normalize(raw)  # (B, 3, H, W)
        if augment:
            x = augment_batch(x, generator)
        yield x, tokens[ids, cap]


def augment_batch(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random horizontal flip and translation (replicate padding) of a batch ``(B, 3, H, W)``."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=generator) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    padded = torch.nn.functional.pad(x, (max_shift,) * 4, mode="replicate")  # (B, 3, H+2s, W+2s)
    dy, dx = (torch.randint(2 * max_shift + 1, (2,), generator=generator).tolist())
    return padded[:, :, dy:dy + h, dx:dx + w]
