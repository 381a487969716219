"""Fast frame decoding: JPEG bytes straight to uint8 arrays with libjpeg-turbo.

Decoding 288x144 JPEG frames is the CPU bottleneck of video ReID training. This module decodes
with ``simplejpeg`` (libjpeg-turbo, accurate integer DCT and fancy upsampling, i.e. the same
pixels as ``PIL.Image.open(...).convert("RGB")``) and falls back to PIL for other formats or
when simplejpeg is not installed. Measured choices (2 vCPU, 288x144 q95 frames, one thread):

* simplejpeg ~0.17 ms/frame, ``torchvision.io.decode_jpeg`` ~0.17 ms (its (3,H,W) output is a
  permuted view of an interleaved buffer, so it saves no transposition), PIL ``open`` +
  ``convert`` + ``asarray`` ~0.25 ms;
* frames stay interleaved ``(H, W, C)``: the one transposition to ``(3, H, W)`` happens later,
  fused with crop/flip (:mod:`reprolib.data.transforms`), so no extra copy is made here;
* single-component (greyscale) JPEGs are decoded as one channel ``(H, W, 1)``, which skips
  libjpeg's colour conversion; consumers broadcast it to 3 identical channels, exactly what
  ``convert("RGB")`` produces;
* only the sampled frames are read, and a frame sampled twice (RRS padding repeats the last
  frame) is decoded once.

DCT-domain downscaling (``min_size``) decodes at 1/2, 1/4 or 1/8 scale inside libjpeg when the
stored frames are at least twice the training size. It changes pixel values (a box-like
prefilter instead of a full-size decode followed by a bilinear resize), so it is opt-in.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Optional

import numpy as np
from PIL import Image

try:  # simplejpeg is in requirements.txt; PIL keeps the library usable without it.
    import simplejpeg
except ImportError:  # pragma: no cover - exercised only on installs without simplejpeg
    simplejpeg = None

logger = logging.getLogger(__name__)

_JPEG_MAGIC = b"\xff\xd8"
#: JPEG colour spaces simplejpeg decodes to RGB; others (CMYK, YCCK) go through PIL.
_SIMPLEJPEG_SPACES = {"YCbCr", "RGB", "Gray"}


def default_backend() -> str:
    """``"simplejpeg"`` when importable, else ``"pil"``."""
    return "simplejpeg" if simplejpeg is not None else "pil"


def _decode_pil(path: str, min_size: Optional[tuple[int, int]]) -> np.ndarray:
    with Image.open(path) as img:
        if min_size is not None and img.format == "JPEG":
            img.draft(img.mode, (min_size[1], min_size[0]))
        if img.mode == "L":
            return np.asarray(img)[:, :, None]  # (H, W, 1)
        return np.asarray(img.convert("RGB"))  # (H, W, 3)


def decode_frame(path: str, min_size: Optional[tuple[int, int]] = None,
                 backend: Optional[str] = None) -> np.ndarray:
    """Decode one image file to an interleaved uint8 array.

    Args:
        path: image file; JPEGs use the fast path, anything else PIL.
        min_size: optional ``(height, width)`` the decoded image must not fall below; enables
            DCT-domain downscaling by 2/4/8 for JPEGs at least that much larger.
        backend: ``"simplejpeg"`` or ``"pil"``; default :func:`default_backend`.

    Returns:
        ``(H, W, 3)`` RGB, or ``(H, W, 1)`` for single-channel (greyscale) images.

    Raises:
        OSError: naming the file, if it is missing or cannot be decoded.
    """
    backend = backend or default_backend()
    try:
        if backend == "simplejpeg":
            if simplejpeg is None:
                raise ValueError("backend 'simplejpeg' requested but simplejpeg is not installed")
            with open(path, "rb") as f:
                data = f.read()
            if data[:2] == _JPEG_MAGIC:
                _, _, space, _ = simplejpeg.decode_jpeg_header(data)
                if space in _SIMPLEJPEG_SPACES:
                    gray = space == "Gray"
                    kwargs = {} if min_size is None else {"min_height": min_size[0],
                                                          "min_width": min_size[1]}
                    return simplejpeg.decode_jpeg(data, colorspace="GRAY" if gray else "RGB",
                                                  **kwargs)
        elif backend != "pil":
            raise ValueError(f"unknown decode backend {backend!r}; expected 'simplejpeg' or 'pil'")
        return _decode_pil(path, min_size)
    except (OSError, ValueError) as err:
        raise OSError(f"cannot decode frame '{path}': {err}") from err


def load_frames(paths: Sequence[str], indices: Sequence[int],
                min_size: Optional[tuple[int, int]] = None,
                backend: Optional[str] = None) -> list[np.ndarray]:
    """Decode the frames ``paths[i]`` for ``i`` in ``indices``, each distinct frame once.

    Args:
        paths: a tracklet's frame paths.
        indices: sampled frame indices (repeats allowed).
        min_size: see :func:`decode_frame`.
        backend: see :func:`decode_frame`.

    Returns:
        One ``(H, W, C)`` uint8 array per index; repeated indices share the same array, so
        callers must not modify them in place.
    """
    decoded: dict[int, np.ndarray] = {}
    for i in indices:
        if i not in decoded:
            decoded[i] = decode_frame(paths[i], min_size, backend)
    return [decoded[i] for i in indices]
