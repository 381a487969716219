"""Clip transforms: resize, pad+crop, flip, erasing and channel augmentations, on whole clips.

A clip is augmented as a batch of ``T`` frames rather than frame by frame through PIL, in two
stages (``docs/decisions/data.md#augmentation-and-normalisation`` lists each codebase's pipeline):

1. **Geometry on uint8 frames, lazily.** :class:`FrameClip` keeps the decoded ``(H, W, C)`` frames
   and, per frame, a pending integer crop window (which may reach into the zero padding) and a
   horizontal-flip flag. ``Resize``, ``Pad(10) + RandomCrop`` and ``RandomHorizontalFlip`` only
   update those numbers. :class:`Normalize` then writes every frame once, cropped, mirrored,
   transposed to ``(3, H, W)`` and broadcast from one channel if greyscale, and normalises the
   whole clip in one vectorised pass. This is exact: padding, cropping and flipping move pixels
   without changing them.
2. **Photometric ops on the normalised float clip** ``(T, 3, H, W)``: random erasing, VLD's
   channel exchange and adaptive grey, PMT/CMFT's colour jitter and Gaussian blur. They modify the clip in place (so a clip can be
   rendered straight into its slice of a batch) and return it. X-ReID erases *before* ``ToTensor``; filling the
   normalised colour afterwards is the same operation because normalisation is per pixel.

Every random op draws its parameters from an explicit :class:`numpy.random.Generator` and has a
``per`` granularity: ``"frame"`` draws independent parameters for each frame (the official
MITML/VLD behaviour, frames of one clip jitter independently), ``"tracklet"`` draws one set
applied to every frame (same crop offset, flip and erasing box across the clip).

Recipes (:func:`build_train_transforms`, selected by ``DataConfig.augment``) assemble these ops
into each codebase's pipeline.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

#: Normalisation constants (mean, std) of ``DataConfig.normalization``.
NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # What every official code uses, CLIP backbones included.
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # OpenAI CLIP's preprocessing statistics.
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}

#: VLD/CAJ ``ChannelRandomErasing`` fill, written into the normalised tensor.
VLD_ERASE_FILL = (0.4914, 0.4822, 0.4465)

#: PMT ``RandomErasing`` fill (the ImageNet mean, written into the normalised tensor; CMFT, docs/decisions/cmft.md#augmentation-and-test-transform).
PMT_ERASE_FILL = (0.485, 0.456, 0.406)

RECIPES = ("none", "mitml", "vld", "xreid", "xreid_released", "bupt", "cmft")
PER_CHOICES = ("frame", "tracklet")


def _check_per(per: str) -> str:
    if per not in PER_CHOICES:
        raise ValueError(f"augmentation granularity must be one of {PER_CHOICES} "
                         f"(data.augment_per), got {per!r}")
    return per


def _draw_count(per: str, num_frames: int) -> int:
    return num_frames if per == "frame" else 1


def _per_frame(values: np.ndarray, num_frames: int) -> np.ndarray:
    """Broadcast one draw (``per="tracklet"``) or keep ``T`` draws (``per="frame"``)."""
    return np.repeat(values, num_frames, axis=0) if len(values) == 1 else values


def _frame_groups(per: str, num_frames: int) -> list[list[int]]:
    """Frames that share one draw: each frame alone (``"frame"``) or the whole clip (``"tracklet"``)."""
    return [[t] for t in range(num_frames)] if per == "frame" else [list(range(num_frames))]


# --------------------------------------------------------------------------------------
# Stage 1: geometry on uint8 frames
# --------------------------------------------------------------------------------------


@dataclass
class FrameClip:
    """Decoded frames plus the pending geometry of each output frame.

    Output pixel ``(y, x)`` of frame ``t`` is source pixel ``(top[t] + y, left[t] + x')`` with
    ``x' = width - 1 - x`` if ``flip[t]`` else ``x``; source pixels outside the frame are 0
    (``Pad``'s constant fill).

    Attributes:
        frames: ``T`` arrays ``(Hs, Ws, C)`` uint8, ``C`` 1 (grey) or 3; never written to.
        height: output height.
        width: output width.
        top: ``(T,)`` window row offsets in source pixels.
        left: ``(T,)`` window column offsets.
        flip: ``(T,)`` horizontal flip flags (applied after the crop).
        cropped: whether a crop window has been set (crops do not compose; see ``RandomPadCrop``).
    """

    frames: list[np.ndarray]
    height: int
    width: int
    top: np.ndarray
    left: np.ndarray
    flip: np.ndarray
    cropped: bool = False

    @classmethod
    def from_frames(cls, frames: Sequence[np.ndarray]) -> "FrameClip":
        """A clip showing the frames unchanged (all frames must share one size)."""
        if not frames:
            raise ValueError("cannot build a clip from zero frames")
        num = len(frames)
        height, width = frames[0].shape[:2]
        return cls(list(frames), height, width, np.zeros(num, np.int64), np.zeros(num, np.int64),
                   np.zeros(num, bool))

    def __len__(self) -> int:
        return len(self.frames)


class Resize:
    """Resize every frame to ``(height, width)`` (bilinear with antialiasing, like PIL's resize).

    Frames already at the target size are left untouched (no copy), which is the common case of
    288x144 HITSZ-VCM frames. Must run before any crop or flip.
    """

    def __init__(self, height: int, width: int) -> None:
        self.size = (height, width)

    def __call__(self, clip: FrameClip, rng: np.random.Generator) -> FrameClip:
        if clip.cropped or clip.flip.any():
            raise ValueError("Resize must come before crop and flip in a clip transform")
        if all(f.shape[:2] == self.size for f in clip.frames):
            clip.height, clip.width = self.size
            return clip
        resized = []
        for frame in clip.frames:
            chw = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)  # (C, Hs, Ws)
            out = TF.resize(chw, list(self.size), antialias=True)  # (C, H, W) uint8
            resized.append(out.permute(1, 2, 0).numpy())  # (H, W, C) view
        return FrameClip.from_frames(resized)


class RandomPadCrop:
    """``Pad(padding)`` with zeros then ``RandomCrop`` back to the frame size.

    The crop offset is uniform in ``[0, 2 * padding]`` per axis (torchvision ``RandomCrop``),
    i.e. the window moves by ``-padding..padding`` pixels.

    Args:
        padding: pixels of zero padding on each side (official: 10).
        per: ``"frame"`` or ``"tracklet"`` offset draws.
    """

    def __init__(self, padding: int = 10, per: str = "frame") -> None:
        self.padding = padding
        self.per = _check_per(per)

    def __call__(self, clip: FrameClip, rng: np.random.Generator) -> FrameClip:
        if clip.cropped:
            raise ValueError("RandomPadCrop cannot be applied twice to a clip")
        num = len(clip)
        n = _draw_count(self.per, num)
        dy = _per_frame(rng.integers(0, 2 * self.padding + 1, size=n) - self.padding, num)
        dx = _per_frame(rng.integers(0, 2 * self.padding + 1, size=n) - self.padding, num)
        clip.top = clip.top + dy
        # A window moved right in a mirrored frame moves left in the source.
        clip.left = clip.left + np.where(clip.flip, -dx, dx)
        clip.cropped = True
        return clip


class RandomHorizontalFlip:
    """Mirror frames horizontally with probability ``p``.

    Args:
        p: flip probability.
        per: ``"frame"`` (MITML/VLD ``RandomHorizontalFlip`` per image) or ``"tracklet"``
            (X-ReID's sequence flip, BUPT's pair flip).
    """

    def __init__(self, p: float = 0.5, per: str = "frame") -> None:
        self.p = p
        self.per = _check_per(per)

    def __call__(self, clip: FrameClip, rng: np.random.Generator) -> FrameClip:
        num = len(clip)
        flips = _per_frame(rng.random(_draw_count(self.per, num)) < self.p, num)
        clip.flip = clip.flip ^ flips
        return clip


class Normalize:
    """Materialise a :class:`FrameClip` as a normalised float tensor (``ToTensor`` + ``Normalize``).

    Args:
        mean: per-channel mean on the [0, 1] scale.
        std: per-channel standard deviation on the [0, 1] scale.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(mean)
        self.std = tuple(std)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)  # (1, 3, 1, 1)
        self._shift = -mean_t / std_t  # (1, 3, 1, 1)

    @classmethod
    def named(cls, name: str) -> "Normalize":
        """The constants of ``DataConfig.normalization`` (``"imagenet"`` or ``"clip"``)."""
        if name not in NORMALIZATION:
            raise ValueError(f"unknown data.normalization '{name}'; "
                             f"expected one of {sorted(NORMALIZATION)}")
        return cls(*NORMALIZATION[name])

    def pixel_to_normalized(self, rgb: np.ndarray) -> np.ndarray:
        """Map ``(..., 3)`` colours on the 0..255 scale to normalised values."""
        return (rgb / 255.0 - np.asarray(self.mean)) / np.asarray(self.std)

    @staticmethod
    def render(clip: FrameClip) -> np.ndarray:
        """Apply the pending geometry: ``(T, 3, H, W)`` uint8, zeros where padding shows."""
        sizes = {frame.shape[:2] for frame in clip.frames}
        if len(sizes) > 1:
            raise ValueError(f"clip frames have different sizes {sorted(sizes)}; a clip transform "
                             f"over such frames must start with Resize")
        h, w = clip.height, clip.width
        out = np.zeros((len(clip), 3, h, w), np.uint8)  # (T, 3, H, W)
        for t, frame in enumerate(clip.frames):
            top, left = int(clip.top[t]), int(clip.left[t])
            src_h, src_w = frame.shape[:2]
            y0, y1 = max(0, -top), min(h, src_h - top)
            x0, x1 = max(0, -left), min(w, src_w - left)
            if y1 <= y0 or x1 <= x0:
                continue
            region = frame[top + y0:top + y1, left + x0:left + x1]  # (h', w', C)
            if clip.flip[t]:
                region, x0, x1 = region[:, ::-1], w - x1, w - x0
            out[t, :, y0:y1, x0:x1] = region.transpose(2, 0, 1)  # C = 1 broadcasts to 3
        return out

    def __call__(self, clip: FrameClip, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``(T, 3, H, W)`` float32 normalised clip, written into ``out`` when given."""
        pixels = torch.from_numpy(self.render(clip))  # (T, 3, H, W) uint8
        x = pixels.float() if out is None else out.copy_(pixels)
        return x.mul_(self._scale).add_(self._shift)


# --------------------------------------------------------------------------------------
# Stage 2: photometric ops on the normalised float clip
# --------------------------------------------------------------------------------------


def sample_erase_box(rng: np.random.Generator, height: int, width: int,
                     scale: tuple[float, float], ratio: tuple[float, float], log_ratio: bool,
                     attempts: int) -> Optional[tuple[int, int, int, int]]:
    """Draw an erasing rectangle ``(top, left, h, w)``, or ``None`` if no attempt fits.

    Area fraction uniform in ``scale``; aspect ratio ``h / w`` uniform in ``ratio`` (CAJ/VLD,
    X-ReID) or log-uniform (torchvision); accepted when ``h < H`` and ``w < W``; position uniform.
    """
    area = height * width
    for _ in range(attempts):
        target = rng.uniform(*scale) * area
        if log_ratio:
            aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        else:
            aspect = rng.uniform(*ratio)
        h = int(round(math.sqrt(target * aspect)))
        w = int(round(math.sqrt(target / aspect)))
        if 0 < h < height and 0 < w < width:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    return None


class RandomErasing:
    """Random erasing of a rectangle, in the variants of the three codebases.

    Args:
        p: probability that a frame (or the clip, ``per="tracklet"``) is erased.
        scale: range of the erased area as a fraction of the frame.
        ratio: range of the aspect ratio ``h / w``.
        fill: normalised per-channel fill values, or ``"random"`` for one uniformly random
            0..255 colour per erased box (X-ReID), converted with ``normalize``.
        log_ratio: draw the aspect ratio log-uniformly (torchvision) instead of uniformly.
        attempts: tries to find a box that fits (CAJ/X-ReID loop 100 times, torchvision 10).
        as_released: X-ReID's ``RandomSizedEarser`` bug: the patch lands at ``(top, left) =
            (h, w)``, its own size, instead of the sampled position (clipped at the border).
        normalize: needed for ``fill="random"``.
        per: ``"frame"`` or ``"tracklet"``.
    """

    def __init__(self, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.4),
                 ratio: tuple[float, float] = (0.3, 1 / 0.3),
                 fill: Union[Sequence[float], str] = VLD_ERASE_FILL, log_ratio: bool = False,
                 attempts: int = 100, as_released: bool = False,
                 normalize: Optional[Normalize] = None, per: str = "frame") -> None:
        if fill == "random" and normalize is None:
            raise ValueError("RandomErasing(fill='random') needs the normalisation constants")
        self.p, self.scale, self.ratio, self.fill = p, scale, ratio, fill
        self.log_ratio, self.attempts, self.as_released = log_ratio, attempts, as_released
        self.normalize = normalize
        self.per = _check_per(per)

    @classmethod
    def vld(cls, per: str = "frame") -> "RandomErasing":
        """VLD/CAJ ``ChannelRandomErasing``: p 0.5, area 2-40%, aspect 0.3-3.33, fixed fill."""
        return cls(0.5, (0.02, 0.4), (0.3, 1 / 0.3), VLD_ERASE_FILL, per=per)

    @classmethod
    def xreid(cls, normalize: Normalize, as_released: bool = False,
              per: str = "frame") -> "RandomErasing":
        """X-ReID ``RandomSizedEarser``: p 0.5, area 2-20%, aspect 0.3-3.33, random colour."""
        return cls(0.5, (0.02, 0.2), (0.3, 1 / 0.3), "random", as_released=as_released,
                   normalize=normalize, per=per)

    @classmethod
    def pmt(cls, per: str = "frame") -> "RandomErasing":
        """PMT ``RandomErasing`` (CMFT's recipe): p 0.5, area 2-40%, aspect 0.3-3.33, ImageNet-mean fill."""
        return cls(0.5, (0.02, 0.4), (0.3, 1 / 0.3), PMT_ERASE_FILL, per=per)

    @classmethod
    def torchvision(cls, per: str = "frame") -> "RandomErasing":
        """``torchvision.transforms.RandomErasing`` defaults: area 2-33%, log aspect, fill 0."""
        return cls(0.5, (0.02, 0.33), (0.3, 3.3), (0.0, 0.0, 0.0), log_ratio=True, attempts=10,
                   per=per)

    def _fill_values(self, rng: np.random.Generator) -> torch.Tensor:
        if self.fill == "random":
            colour = rng.integers(0, 256, size=3)
            values = self.normalize.pixel_to_normalized(colour)
        else:
            values = np.asarray(self.fill)
        return torch.as_tensor(values, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        num, _, height, width = x.shape  # (T, 3, H, W)
        for group in _frame_groups(self.per, num):
            if rng.random() >= self.p:
                continue
            box = sample_erase_box(rng, height, width, self.scale, self.ratio, self.log_ratio,
                                   self.attempts)
            if box is None:
                continue
            top, left, h, w = box
            if self.as_released:
                top, left = h, w
            fill = self._fill_values(rng)
            x[group, :, top:top + h, left:left + w] = fill  # clipped at the border by slicing
        return x


class ChannelExchange:
    """VLD ``ChannelExchange(gray=2)``: replace all three channels by one random channel.

    With ``gray=2`` the official draw ``randint(0, 2)`` always selects R, G or B, so the clip is
    always replaced by a single-channel image and the greyscale branch is unreachable
    (``docs/decisions/vld.md#v17-augmentation``); this class implements exactly that.

    Args:
        per: ``"frame"`` (official) or ``"tracklet"``.
    """

    def __init__(self, per: str = "frame") -> None:
        self.per = _check_per(per)

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        num = x.shape[0]
        channel = _per_frame(rng.integers(0, 3, size=_draw_count(self.per, num)), num)
        picked = x[torch.arange(num), torch.as_tensor(channel)]  # (T, H, W)
        return x.copy_(picked.unsqueeze(1).expand_as(x))


class ChannelAdapGray:
    """VLD ``ChannelAdapGray(p)`` for infrared clips.

    One draw of ``randint(0, 3)``: 0, 1 or 2 (probability 3/4) copies that channel to all three;
    3 converts to luminance grey ``0.2989 R + 0.587 G + 0.114 B`` with probability ``p`` (computed
    on the normalised values, as the official code does), else leaves the frame unchanged.

    Args:
        p: probability of the grey conversion in the fourth case (official: 0.5).
        per: ``"frame"`` (official) or ``"tracklet"``.
    """

    def __init__(self, p: float = 0.5, per: str = "frame") -> None:
        self.p = p
        self.per = _check_per(per)

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        num = x.shape[0]
        n = _draw_count(self.per, num)
        choice = _per_frame(rng.integers(0, 4, size=n), num)
        gray = _per_frame(rng.random(n) < self.p, num)
        for t in range(num):
            if choice[t] < 3:
                x[t] = x[t, int(choice[t])]
            elif gray[t]:
                x[t] = 0.2989 * x[t, 0] + 0.587 * x[t, 1] + 0.114 * x[t, 2]
        return x


class _GroupOp:
    """A photometric op that draws its parameters once per frame group (see ``per``).

    Subclasses implement :meth:`apply_group`, which draws from ``rng`` and modifies the frames
    ``group`` of the clip in place; :class:`RandomChoice` calls it for the group it picked.
    """

    per: str = "frame"

    def apply_group(self, x: torch.Tensor, group: list[int], rng: np.random.Generator) -> None:
        """Draw once and apply to the frames ``group`` of ``x`` ``(T, 3, H, W)`` in place."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        for group in _frame_groups(self.per, x.shape[0]):
            self.apply_group(x, group, rng)
        return x


class ColorJitter(_GroupOp):
    """torchvision ``ColorJitter(brightness, contrast)`` on the normalised clip.

    Factors ``b`` and ``c`` are uniform in ``[1 - brightness, 1 + brightness]`` and
    ``[1 - contrast, 1 + contrast]`` and applied in a random order (torchvision draws a random
    permutation of its four adjustments): brightness ``clamp(b * v, 0, 1)``, contrast
    ``clamp(c * v + (1 - c) * mean_grey, 0, 1)`` with ``mean_grey`` the mean of the frame's
    luminance ``0.2989 R + 0.587 G + 0.114 B``, on pixel values ``v`` in [0, 1] recovered from the
    normalisation. Unlike the PIL pipeline the result is not re-quantised to 8 bits.

    Args:
        normalize: the clip's normalisation (to reach the [0, 1] pixel scale).
        brightness: brightness jitter (PMT/CMFT: 0.3).
        contrast: contrast jitter (PMT/CMFT: 0.3).
        per: ``"frame"`` or ``"tracklet"``.
    """

    def __init__(self, normalize: Normalize, brightness: float = 0.3, contrast: float = 0.3,
                 per: str = "frame") -> None:
        self.brightness, self.contrast = brightness, contrast
        self.mean = torch.tensor(normalize.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(normalize.std, dtype=torch.float32).view(1, 3, 1, 1)
        self.per = _check_per(per)

    def apply_group(self, x: torch.Tensor, group: list[int], rng: np.random.Generator) -> None:
        brightness_first = rng.random() < 0.5
        b = rng.uniform(1 - self.brightness, 1 + self.brightness)
        c = rng.uniform(1 - self.contrast, 1 + self.contrast)

        def adjust_brightness(v: torch.Tensor) -> torch.Tensor:
            return (v * b).clamp_(0.0, 1.0)

        def adjust_contrast(v: torch.Tensor) -> torch.Tensor:
            grey = (0.2989 * v[:, 0] + 0.587 * v[:, 1] + 0.114 * v[:, 2]).mean(dim=(1, 2))  # (G,)
            return (c * v + (1 - c) * grey.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)

        v = x[group] * self.std + self.mean  # (G, 3, H, W) pixels in [0, 1]
        for adjust in (adjust_brightness, adjust_contrast) if brightness_first else (adjust_contrast, adjust_brightness):
            v = adjust(v)
        x[group] = (v - self.mean) / self.std


class GaussianBlur(_GroupOp):
    """torchvision ``GaussianBlur(kernel_size, sigma)`` on the normalised clip.

    ``sigma`` is uniform in ``sigma_range``; the separable kernel has ``kernel_size`` taps with
    reflect padding. Blurring commutes with the per-channel affine normalisation (the kernel
    sums to 1), so the normalised clip is blurred directly. On frames too small for the kernel
    (reflect padding needs fewer than ``min(H, W)`` pixels) the kernel is cut to the largest odd
    size that fits.

    Args:
        kernel_size: odd number of taps (PMT/CMFT: 21).
        sigma_range: ``(min, max)`` of the standard deviation in pixels (PMT/CMFT: 0.1-3).
        per: ``"frame"`` or ``"tracklet"``.
    """

    def __init__(self, kernel_size: int = 21, sigma_range: tuple[float, float] = (0.1, 3.0),
                 per: str = "frame") -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"GaussianBlur: kernel_size must be odd and positive, got {kernel_size}")
        self.kernel_size, self.sigma_range = kernel_size, sigma_range
        self.per = _check_per(per)

    def apply_group(self, x: torch.Tensor, group: list[int], rng: np.random.Generator) -> None:
        sigma = rng.uniform(*self.sigma_range)
        _, _, height, width = x.shape
        radius = min(self.kernel_size // 2, min(height, width) - 1)
        taps = torch.arange(-radius, radius + 1, dtype=torch.float32)  # (k,)
        kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
        kernel = kernel / kernel.sum()  # (k,)
        v = x[group]  # (G, 3, H, W)
        g = v.shape[0]
        v = v.reshape(g * 3, 1, height, width)  # (G*3, 1, H, W): one depthwise pass
        v = torch.nn.functional.pad(v, (radius, radius, radius, radius), mode="reflect")
        v = torch.nn.functional.conv2d(v, kernel.view(1, 1, 1, -1))  # (G*3, 1, H+2r, W) rows
        v = torch.nn.functional.conv2d(v, kernel.view(1, 1, -1, 1))  # (G*3, 1, H, W) columns
        x[group] = v.view(g, 3, height, width)


class RandomChoice:
    """Apply one of ``ops``, chosen uniformly, to each frame group (torchvision ``RandomChoice``).

    The choice and the chosen op's parameters are drawn once per frame (``per="frame"``) or once
    per clip (``"tracklet"``).

    Args:
        ops: :class:`_GroupOp` instances (e.g. :class:`ColorJitter`, :class:`GaussianBlur`).
        per: ``"frame"`` or ``"tracklet"``.
    """

    def __init__(self, ops: Sequence[_GroupOp], per: str = "frame") -> None:
        if not ops:
            raise ValueError("RandomChoice needs at least one op")
        self.ops = list(ops)
        self.per = _check_per(per)

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        for group in _frame_groups(self.per, x.shape[0]):
            self.ops[int(rng.integers(len(self.ops)))].apply_group(x, group, rng)
        return x


class RandomApply:
    """Apply ``op`` to the whole clip with probability ``p`` (one draw per clip).

    VLD's RGB pipeline chooses per tracklet between pipeline A and B = A + ChannelExchange.
    """

    def __init__(self, op, p: float = 0.5) -> None:
        self.op, self.p = op, p

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return self.op(x, rng) if rng.random() < self.p else x


# --------------------------------------------------------------------------------------
# Pipelines and recipes
# --------------------------------------------------------------------------------------


@dataclass
class ClipTransform:
    """Geometry ops, then :class:`Normalize`, then photometric ops.

    Attributes:
        geometry: ops on :class:`FrameClip` (``Resize`` first).
        normalize: the materialising normalisation.
        photometric: ops on the normalised ``(T, 3, H, W)`` float clip.
    """

    geometry: list
    normalize: Normalize
    photometric: list = field(default_factory=list)

    def prepare(self, frames: Sequence[np.ndarray], rng: np.random.Generator,
                flip: bool = False) -> FrameClip:
        """First half: draw the geometry (cheap; no pixel is touched yet).

        Args:
            frames: ``T`` decoded ``(H, W, C)`` uint8 frames (not modified).
            rng: the generator every random op draws from, in order.
            flip: mirror the whole clip after the geometry ops (BUPT's joint pair flip).
        """
        clip = FrameClip.from_frames(frames)
        for op in self.geometry:
            clip = op(clip, rng)
        if flip:
            clip.flip = ~clip.flip
        return clip

    def finish(self, clip: FrameClip, rng: np.random.Generator,
               out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Second half: render, normalise and apply the photometric ops.

        Args:
            clip: the result of :meth:`prepare`.
            rng: the same generator, continued.
            out: optional ``(T, 3, H, W)`` float32 destination (e.g. a slice of a batch).

        Returns:
            ``(T, 3, H, W)`` float32, normalised (``out`` when given).
        """
        x = self.normalize(clip, out)  # (T, 3, H, W)
        for op in self.photometric:
            x = op(x, rng)
        return x

    def __call__(self, frames: Sequence[np.ndarray], rng: np.random.Generator,
                 flip: bool = False) -> torch.Tensor:
        """Augment one clip: :meth:`prepare` then :meth:`finish`; ``(T, 3, H, W)`` float32."""
        return self.finish(self.prepare(frames, rng, flip), rng)


@dataclass
class TrainTransforms:
    """The training transforms of a recipe: one per modality plus BUPT's joint pair flip.

    Attributes:
        rgb: transform of visible clips.
        ir: transform of infrared clips.
        joint_flip: probability of mirroring an RGB/IR pair together (BUPT's ``--random_flip``).
    """

    rgb: ClipTransform
    ir: ClipTransform
    joint_flip: float = 0.0


def build_test_transform(height: int, width: int, normalization: str = "imagenet") -> ClipTransform:
    """Resize -> ToTensor -> Normalize, the test pipeline of every codebase."""
    return ClipTransform([Resize(height, width)], Normalize.named(normalization))


def build_train_transforms(recipe: str, height: int, width: int, normalization: str = "imagenet",
                           per: str = "frame", paired: bool = False, padding: int = 10) -> TrainTransforms:
    """Assemble a named augmentation recipe (``DataConfig.augment``).

    Recipes (``docs/decisions/data.md#augmentation-and-normalisation``, ``docs/decisions/vld.md#v17-augmentation``, ``docs/decisions/xreid.md#d14-augmentation``):

    * ``"none"``: Resize -> Normalize.
    * ``"mitml"``: Resize -> Pad(10)+RandomCrop -> HFlip(0.5) -> Normalize, both modalities.
    * ``"vld"``: A = Resize -> Pad(10)+RandomCrop -> HFlip(0.5) -> Normalize ->
      ChannelRandomErasing. RGB: A, then per tracklet with p=0.5 ChannelExchange; IR: A ->
      ChannelAdapGray(0.5). On paired data (BUPT) the joint pair flip is added, as VLD does.
    * ``"xreid"``: Resize -> sequence-level HFlip(0.5) -> RandomSizedEarser (p 0.5, area 2-20%,
      random colour) at the sampled position -> Normalize (X-ReID D14: the erasing bug fixed;
      no crop, as in the released code).
    * ``"xreid_released"``: as ``"xreid"`` with the released erasing position bug.
    * ``"bupt"``: Resize -> Pad(10)+RandomCrop -> Normalize, plus the joint pair flip.
    * ``"cmft"``: PMT's pipeline, which CMFT adopts (``docs/decisions/cmft.md#augmentation-and-test-transform``): Resize -> HFlip(0.5)
      -> Normalize -> RandomErasing (p 0.5, area 2-40%, aspect 0.3-3.33, ImageNet-mean fill); IR
      clips get, before the erasing, one of ColorJitter(brightness 0.3, contrast 0.3) or
      GaussianBlur(21, sigma 0.1-3), chosen uniformly. No pad/crop. CMFT draws once per tracklet
      ("tracklet", set by ``configs/cmft.yaml``); ``"frame"`` gives PMT's per-image draws on each frame.

    Args:
        recipe: one of :data:`RECIPES`.
        height: output height.
        width: output width.
        normalization: ``"imagenet"`` or ``"clip"``.
        per: ``"frame"``: each codebase's official granularity (per-frame crop, flip, erasing and
            channel ops; X-ReID's flip, VLD's A/B choice and BUPT's pair flip stay per tracklet
            as released). ``"tracklet"``: every random op draws once per clip.
        paired: training items are pixel-aligned RGB/IR pairs (BUPTCampus).
        padding: the ``Pad`` of pad+crop (official: 10 pixels at 288x144 / 256x128).

    Returns:
        The :class:`TrainTransforms`.
    """
    _check_per(per)
    norm = Normalize.named(normalization)
    resize = Resize(height, width)

    def crop_flip(flip: bool = True) -> list:
        ops = [resize, RandomPadCrop(padding, per)]
        return ops + [RandomHorizontalFlip(0.5, per)] if flip else ops

    if recipe == "none":
        plain = ClipTransform([resize], norm)
        return TrainTransforms(plain, plain)
    if recipe == "mitml":
        both = ClipTransform(crop_flip(), norm)
        return TrainTransforms(both, both)
    if recipe == "vld":
        rgb = ClipTransform(crop_flip(), norm,
                            [RandomErasing.vld(per), RandomApply(ChannelExchange(per), 0.5)])
        ir = ClipTransform(crop_flip(), norm, [RandomErasing.vld(per), ChannelAdapGray(0.5, per)])
        return TrainTransforms(rgb, ir, joint_flip=0.5 if paired else 0.0)
    if recipe in ("xreid", "xreid_released"):
        both = ClipTransform([resize, RandomHorizontalFlip(0.5, "tracklet")], norm,
                             [RandomErasing.xreid(norm, recipe == "xreid_released", per)])
        return TrainTransforms(both, both)
    if recipe == "bupt":
        both = ClipTransform(crop_flip(flip=False), norm)
        return TrainTransforms(both, both, joint_flip=0.5)
    if recipe == "cmft":
        geometry = [resize, RandomHorizontalFlip(0.5, per)]
        ir_mix = RandomChoice([ColorJitter(norm, 0.3, 0.3, per), GaussianBlur(21, (0.1, 3.0), per)], per)
        rgb = ClipTransform(geometry, norm, [RandomErasing.pmt(per)])
        ir = ClipTransform(geometry, norm, [ir_mix, RandomErasing.pmt(per)])
        return TrainTransforms(rgb, ir)
    raise ValueError(f"unknown data.augment recipe '{recipe}'; expected one of {RECIPES}")
