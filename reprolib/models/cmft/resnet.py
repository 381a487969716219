"""TSM ResNet-50 streams of CMFT (section 3.2) and where their ImageNet weights come from.

:class:`TSMResNet` is torchvision's ResNet-50 architecture (torchvision ``Bottleneck`` blocks,
``[3, 4, 6, 3]``, parameter names of ``torchvision.models.resnet50`` without ``fc``) with

* a temporal shift on the residual branch of every bottleneck (:mod:`.tsm`; TSM's default
  "blockres" placement, 1/8 of the channels each way; docs/decisions/cmft.md#temporal-shift-module);
* last stride 1 in ``layer4`` by default (the ReID convention; the paper does not say,
  docs/decisions/cmft.md#dual-stream-extractor): a 16x8 ``layer4`` map at 256x128;
* the five taps of mapping A (docs/decisions/cmft.md#c1-stage-mapping, discrepancy #1): ``conv2`` = stem after
  max-pool, ``conv3`` = ``layer1``, ``conv4`` = ``layer2``, ``conv5`` = ``layer3``, ``conv6`` = ``layer4``.

Architectures (``model.backbone.arch``): ``resnet50`` (base width 64, the paper) and
``resnet50-w<N>``: the same depth and structure with base width N (channels N, 4N, 8N, 16N, 32N),
a miniature for the smoke/embedded profiles (``resnet50-w16``, initialised from TinyResNet).

Weights (``model.backbone.pretrained``): ``imagenet`` (torchvision's ImageNet ResNet-50, found
**locally** in this order: ``model.backbone.weights_path``, ``$RESNET50_WEIGHTS``, torchvision's
download cache ``$TORCH_HOME/hub/checkpoints/resnet50-0676ba61.pth`` (IMAGENET1K_V1, what TSM
used) or ``resnet50-11ad3fa6.pth`` (V2)); ``tinyresnet`` (the miniature world's stand-in for
ImageNet weights, shipped for ``resnet50-w16`` as ``reprolib/models/weights/tinyresnet.pt`` and
SHA-256 verified against ``tinyresnet.json``; see :mod:`reprolib.pretrain.tinyresnet`); ``none`` (random
init); or a weights-file path. When
nothing is found, :class:`~reprolib.models.weights.WeightsNotFoundError` says how to supply the
file; it is raised before any network is built. Files are read with
``torch.load(weights_only=True)`` (or safetensors) and loaded with ``strict=True``.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch
from torch import Tensor, nn
from torchvision.models.resnet import Bottleneck, conv1x1

from reprolib.models.cmft.tsm import TemporalShift
from reprolib.models.weights import (WeightsChecksumError, WeightsNotFoundError, detect_format, misfit_report,
                                     read_state_shapes, sha256_file)

__all__ = [
    "ENV_VAR", "TAPS", "StageSpec", "TSMResNet", "parse_arch", "resolve_resnet_weights",
    "load_resnet_state_dict", "build_tsm_resnet", "stage_specs", "TINYRESNET_WEIGHTS", "verify_tinyresnet",
    "stream_misfit", "stream_shapes", "resnet_architecture_problem",
]

logger = logging.getLogger(__name__)

ENV_VAR = "RESNET50_WEIGHTS"
#: torchvision's file names of ResNet-50 ImageNet weights in its download cache (V1 first: TSM's).
TORCHVISION_FILES = ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth")
TORCHVISION_URL = "https://download.pytorch.org/models/resnet50-0676ba61.pth"
#: The shipped TinyResNet weights (``pretrained: tinyresnet``) and the command that regenerates them.
TINYRESNET_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "tinyresnet.pt"
TINYRESNET_TRAIN_COMMAND = "python -m reprolib tinyresnet train"
#: Tap names of mapping A (docs/decisions/cmft.md#c1-stage-mapping, #1), shallow to deep.
TAPS: tuple[str, ...] = ("conv2", "conv3", "conv4", "conv5", "conv6")
RESNET50_LAYERS = (3, 4, 6, 3)
_ARCH = re.compile(r"^resnet50(?:-w(\d+))?$")


@dataclass(frozen=True)
class StageSpec:
    """One tap of the stream: its name, channels and stride relative to the input frame."""

    name: str
    channels: int
    stride: int

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """``(h, w)`` of this tap for a ``height x width`` input (each stride-2 op rounds up)."""
        h, w = height, width
        for _ in range(int(math.log2(self.stride))):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w


def stage_specs(base_width: int = 64, last_stride: int = 1) -> tuple[StageSpec, ...]:
    """The five taps (mapping A) of a ResNet-50-shaped stream of ``base_width``."""
    return (StageSpec("conv2", base_width, 4), StageSpec("conv3", 4 * base_width, 4),
            StageSpec("conv4", 8 * base_width, 8), StageSpec("conv5", 16 * base_width, 16),
            StageSpec("conv6", 32 * base_width, 16 * last_stride))


def parse_arch(arch: str) -> int:
    """Base width of ``model.backbone.arch``: ``resnet50`` -> 64, ``resnet50-w16`` -> 16.

    Raises:
        ValueError: for any other name, or a width that is not a positive multiple of 8
            (8 attention heads at the stem tap, 1/8 channel folds).
    """
    m = _ARCH.match(arch)
    width = int(m.group(1)) if m and m.group(1) else 64
    if m is None or width <= 0 or width % 8:
        raise ValueError(f"model.backbone.arch: the cmft family supports 'resnet50' and 'resnet50-w<N>' "
                         f"(N a positive multiple of 8, e.g. resnet50-w16); got {arch!r}")
    return width


class TSMResNet(nn.Module):
    """ResNet-50-shaped TSM stream returning the taps of mapping A.

    Args:
        base_width: channels of the stem (64 for ResNet-50).
        last_stride: stride of ``layer4`` (1, the ReID convention; or 2, torchvision's).
        shift_div: TSM channel divisor (8).
        shift: False builds a plain ResNet (no temporal shift).
        zero_init_residual: zero the last BN scale of every bottleneck, so each residual block
            starts as the identity (torchvision's option of the same name; Goyal et al., 2017).
            Only matters for a stream trained from scratch: loaded weights replace it.
    """

    def __init__(self, base_width: int = 64, last_stride: int = 1, shift_div: int = 8, shift: bool = True,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"model.extra.last_stride: expected 1 or 2, got {last_stride}")
        self.base_width = base_width
        self.specs = stage_specs(base_width, last_stride)
        self.conv1 = nn.Conv2d(3, base_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._inplanes = base_width
        strides = (1, 2, 2, last_stride)
        for i, (blocks, stride) in enumerate(zip(RESNET50_LAYERS, strides)):
            setattr(self, f"layer{i + 1}", self._make_layer(base_width * 2 ** i, blocks, stride))
        self._init_weights(zero_init_residual)
        self.shifts: list[TemporalShift] = []
        if shift:
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
                for block in layer:
                    block.conv1 = TemporalShift(block.conv1, shift_div)
                    self.shifts.append(block.conv1)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """torchvision's ``ResNet._make_layer`` for ``Bottleneck`` at any base width."""
        out = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self._inplanes != out:
            downsample = nn.Sequential(conv1x1(self._inplanes, out, stride), nn.BatchNorm2d(out))
        layers = [Bottleneck(self._inplanes, planes, stride, downsample)]
        self._inplanes = out
        layers += [Bottleneck(out, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool = False) -> None:
        """torchvision's ResNet initialisation (Kaiming-normal convolutions, BN weight 1, bias 0;
        with ``zero_init_residual`` each bottleneck's ``bn3`` weight 0)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    @property
    def out_channels(self) -> int:
        """Channels of ``conv6`` (``layer4``): 2048 for ResNet-50."""
        return self.specs[-1].channels

    def load_torchvision_state_dict(self, state: dict[str, Tensor], source: str = "state dict") -> None:
        """Load a torchvision ResNet state dict (``fc.*`` ignored), ``strict=True``.

        torchvision's ``layerX.Y.conv1.weight`` maps onto the shifted ``layerX.Y.conv1.net.weight``.

        Raises:
            RuntimeError: missing/unexpected keys or shape mismatches, naming ``source``.
        """
        expected = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        problem = stream_misfit(expected, {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}, source,
                                self.base_width)
        if problem:  # a short account, not torch's list of every key (tens of kB)
            raise RuntimeError(problem)
        own = _torchvision_names(expected)
        self.load_state_dict({own.get(k, k): v for k, v in state.items() if not k.startswith("fc.")}, strict=True)

    def forward(self, x: Tensor, taps: Iterable[str] = ("conv6",)) -> dict[str, Tensor]:
        """Run a clip batch through the stream.

        Args:
            x: ``(B, T, 3, H, W)`` clips (``(B, 3, H, W)`` is read as T = 1).
            taps: which of :data:`TAPS` to return (``conv6`` always is).

        Returns:
            ``{tap: (B*T, C_s, h_s, w_s)}``.
        """
        if x.dim() == 4:
            x = x.unsqueeze(1)  # (B, 1, 3, H, W)
        t = x.shape[1]
        for s in self.shifts:
            s.n_segment = t
        wanted = set(taps) | {"conv6"}
        unknown = wanted - set(TAPS)
        if unknown:
            raise ValueError(f"TSMResNet: unknown taps {sorted(unknown)}; expected a subset of {TAPS}")
        out: dict[str, Tensor] = {}
        y = self.maxpool(self.relu(self.bn1(self.conv1(x.flatten(0, 1)))))  # (B*T, C, H/4, W/4)
        if "conv2" in wanted:
            out["conv2"] = y
        for name, layer in zip(TAPS[1:], (self.layer1, self.layer2, self.layer3, self.layer4)):
            y = layer(y)  # (B*T, C_s, h_s, w_s)
            if name in wanted:
                out[name] = y
        return out


# --------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------


def _torchvision_names(own_keys: Iterable[str]) -> dict[str, str]:
    """torchvision's parameter name -> the stream's (``layerX.Y.conv1.weight`` -> ``layerX.Y.conv1.net.weight``)."""
    return {k.replace(".conv1.net.", ".conv1."): k for k in own_keys}


def stream_misfit(expected: dict[str, tuple], given: dict[str, tuple], source: str, base_width: int) -> Optional[str]:
    """Whether a torchvision ResNet state dict's ``{name: shape}`` fits a stream's (``fc.*`` ignored, as
    :meth:`TSMResNet.load_torchvision_state_dict` loads it).

    Returns:
        ``None`` when it fits, else a :func:`~reprolib.models.weights.misfit_report` naming ``source``.
    """
    own = _torchvision_names(expected)
    renamed = {own.get(k, k): tuple(v) for k, v in given.items() if not k.startswith("fc.")}
    if renamed.keys() == expected.keys() and all(renamed[k] == tuple(expected[k]) for k in expected):
        return None
    return misfit_report(expected, renamed, source, f"a ResNet-50-shaped stream of base width {base_width}")


@functools.lru_cache(maxsize=4)
def stream_shapes(arch: str = "resnet50") -> dict[str, tuple]:
    """``{name: shape}`` of the stream ``arch`` (:func:`parse_arch`), built on the ``meta`` device
    (no memory, no initialisation)."""
    with torch.device("meta"):
        stream = TSMResNet(parse_arch(arch))
    return {k: tuple(v.shape) for k, v in stream.state_dict().items()}


def resnet_architecture_problem(path: str | os.PathLike, arch: str = "resnet50") -> Optional[str]:
    """Whether a weights file is a torchvision ResNet state dict that fits the stream ``arch``: key names
    and shapes compared, nothing loaded (``.safetensors`` header, ``torch.load(mmap=True)``). Shared by
    :mod:`reprolib.experiments.preflight`; the loader checks the same thing with :func:`stream_misfit`.

    Returns:
        ``None`` when it fits, else a report naming the file.

    Raises:
        WeightsFormatError: the file cannot be read as a state dict of tensors.
    """
    given = read_state_shapes(path, wrappers=("state_dict", "model"))
    return stream_misfit(stream_shapes(arch), given, str(path), parse_arch(arch))


def _torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _not_found_message(looked: list[str]) -> str:
    cache = _torch_hub_checkpoints()
    return "\n".join([
        "ImageNet ResNet-50 weights for the CMFT streams (model.backbone.pretrained='imagenet') were not "
        "found locally. Looked at:",
        "  - config key model.backbone.weights_path: not set",
        f"  - environment variable ${ENV_VAR}: not set",
        *[f"  - {item}" for item in looked],
        "Supply torchvision's ResNet-50 ImageNet checkpoint (IMAGENET1K_V1) in one of three ways:",
        f"  1. export {ENV_VAR}=/abs/path/resnet50-0676ba61.pth",
        "  2. per run: --set model.backbone.weights_path=/abs/path/resnet50-0676ba61.pth",
        f"  3. copy it into torchvision's cache: {cache / TORCHVISION_FILES[0]}",
        f"Download it on a machine with internet access from {TORCHVISION_URL}",
        "(or: python -c 'import torchvision; torchvision.models.resnet50(weights=\"IMAGENET1K_V1\")').",
        "For a randomly initialised stream (smoke/embedded only) use --set model.backbone.pretrained=none.",
    ])


def verify_tinyresnet(path: Path, arch: str) -> Path:
    """Check a TinyResNet weights file against its record (``<name>.json``: ``sha256``, ``arch``).

    Args:
        path: the weights file (default install: :data:`TINYRESNET_WEIGHTS`).
        arch: the ``model.backbone.arch`` that will load it.

    Returns:
        ``path``, verified.

    Raises:
        WeightsNotFoundError: the file is missing.
        WeightsChecksumError: the record is missing or unreadable, or the SHA-256 differs.
        ValueError: the weights are of another architecture than ``arch``.
    """
    regenerate = (f"Restore {path.name} and {path.with_suffix('.json').name} from git, or regenerate both with "
                  f"'{TINYRESNET_TRAIN_COMMAND}' (about 15 minutes on 2 CPU cores).")
    if not path.is_file():
        raise WeightsNotFoundError(f"model.backbone.pretrained='tinyresnet': {path} is missing. {regenerate}")
    try:
        record = json.loads(path.with_suffix(".json").read_text())
        expected, trained_arch = str(record["sha256"]).lower(), str(record["arch"])
    except (OSError, ValueError, KeyError) as e:
        raise WeightsChecksumError(f"cannot verify {path}: its record {path.with_suffix('.json')} with keys "
                                   f"'sha256' and 'arch' is missing or unreadable ({e}). {regenerate}") from e
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsChecksumError(f"{path} is corrupted or was replaced: SHA-256 {actual}, expected {expected} "
                                   f"(recorded in {path.with_suffix('.json')}). {regenerate}")
    if trained_arch != arch:
        raise ValueError(f"model.backbone.pretrained='tinyresnet' holds '{trained_arch}' weights ({path}); "
                         f"model.backbone.arch is {arch!r}")
    return path


def resolve_resnet_weights(arch: str = "resnet50", pretrained: str = "imagenet",
                           weights_path: str = "") -> Optional[Path]:
    """The local weights file ``(arch, pretrained, weights_path)`` asks for, without loading it.

    Args:
        arch: ``model.backbone.arch`` (``resnet50`` or ``resnet50-w<N>``).
        pretrained: ``imagenet``, ``tinyresnet``, ``none`` or a weights-file path
            (``model.backbone.pretrained``).
        weights_path: explicit file (``model.backbone.weights_path``); wins over everything else.

    Returns:
        The file, or ``None`` for ``pretrained="none"``.

    Raises:
        WeightsNotFoundError: a named file does not exist, or nothing was found for
            ``imagenet``; the message says how to supply the weights.
        WeightsChecksumError: the shipped TinyResNet file does not match its record.
        ValueError: ``imagenet`` asked for a ``resnet50-w<N>`` miniature (no such weights), or
            ``tinyresnet`` for another architecture than the shipped one.
    """
    parse_arch(arch)
    if pretrained == "none":
        return None
    if pretrained == "tinyresnet" and not weights_path:
        return verify_tinyresnet(TINYRESNET_WEIGHTS, arch)
    if pretrained not in ("imagenet", "tinyresnet") and os.sep not in pretrained and not Path(pretrained).suffix:
        raise ValueError(f"model.backbone.pretrained: expected 'imagenet', 'tinyresnet', 'none' or a weights-file "
                         f"path, got {pretrained!r}")
    for origin, spec in (("model.backbone.weights_path", weights_path),
                         ("model.backbone.pretrained", "" if pretrained in ("imagenet", "tinyresnet") else pretrained),
                         (f"${ENV_VAR}", os.environ.get(ENV_VAR, "").strip() if pretrained == "imagenet" else "")):
        if spec:
            path = Path(spec).expanduser()
            if not path.is_file():
                raise WeightsNotFoundError(f"{origin}='{spec}' is not a file; expected torchvision's ResNet-50 "
                                           f"ImageNet checkpoint (e.g. {TORCHVISION_FILES[0]}).")
            return path.resolve()
    if arch != "resnet50":
        raise ValueError(f"model.backbone.pretrained='imagenet' needs arch 'resnet50' (ImageNet weights exist only "
                         f"for base width 64); {arch!r} takes pretrained=none or an explicit weights file")
    looked = []
    for name in TORCHVISION_FILES:
        path = _torch_hub_checkpoints() / name
        if path.is_file():
            return path
        looked.append(f"torchvision cache {path}: missing")
    raise WeightsNotFoundError(_not_found_message(looked))


def load_resnet_state_dict(path: Path) -> dict[str, Tensor]:
    """Read a ResNet state dict (``.safetensors`` or a torch pickle, ``weights_only=True``; a
    ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper and a ``module.`` prefix are unwrapped)."""
    if detect_format(path) == "safetensors":
        from safetensors.torch import load_file
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise RuntimeError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def build_tsm_resnet(arch: str = "resnet50", pretrained: str = "imagenet", weights_path: str = "",
                     last_stride: int = 1, shift_div: int = 8, shift: bool = True,
                     zero_init_residual: bool = False) -> TSMResNet:
    """A TSM stream with its weights: resolved first (fast failure), then built and loaded.

    Args:
        arch: ``resnet50`` or ``resnet50-w<N>`` (:func:`parse_arch`).
        pretrained: see :func:`resolve_resnet_weights`.
        weights_path: see :func:`resolve_resnet_weights`.
        last_stride: ``layer4`` stride (1 or 2).
        shift_div: TSM channel divisor.
        shift: insert the temporal shift.
        zero_init_residual: see :class:`TSMResNet` (random initialisation only).

    Returns:
        The stream on CPU in fp32.

    Raises:
        WeightsNotFoundError: weights asked for but not found (before anything is built).
    """
    path = resolve_resnet_weights(arch, pretrained, weights_path)
    stream = TSMResNet(parse_arch(arch), last_stride, shift_div, shift, zero_init_residual)
    if path is None:
        logger.warning("model.backbone.pretrained='none': the CMFT streams ('%s') are RANDOMLY INITIALISED. "
                       "Fine for the smoke/embedded profiles; never for paper numbers.", arch)
    else:
        logger.info("loading ResNet weights for '%s' from %s", arch, path)
        stream.load_torchvision_state_dict(load_resnet_state_dict(path), source=str(path))
    return stream


#: torchvision names its ImageNet files by the first hex digits of their SHA-256.
TORCHVISION_RESNET50_PREFIX = "0676ba61"


def check_resnet_weights(weights_path: str = "", arch: str = "resnet50") -> dict:
    """What CMFT's paper profile would load for its ResNet-50 streams, loaded once to prove it fits.

    Args:
        weights_path: explicit file; else ``$RESNET50_WEIGHTS``, then torchvision's cache.
        arch: the stream architecture (``resnet50``).

    Returns:
        ``{"backbone", "arch", "path", "format", "sha256", "torchvision_sha256_match", "n_params"}``.

    Raises:
        WeightsNotFoundError: no file found (the message says where we looked and how to supply one).
        RuntimeError: the file does not fit (a short report of the misfit, see ``misfit_report``).
    """
    path = resolve_resnet_weights(arch, "imagenet", weights_path)
    stream = build_tsm_resnet(arch, "imagenet", weights_path)
    sha = sha256_file(path)
    return {"backbone": "resnet50", "arch": arch, "path": str(path), "format": detect_format(path), "sha256": sha,
            "torchvision_sha256_match": sha.startswith(TORCHVISION_RESNET50_PREFIX),
            "n_params": sum(p.numel() for p in stream.parameters())}


def weights_main(argv: Optional[list[str]] = None) -> int:
    """``python -m reprolib weights check``: CLIP files (:func:`reprolib.models.weights.main`) and
    ResNet-50 files (:func:`check_resnet_weights`, ``--backbone resnet50`` or recognised by key names)."""
    from reprolib.models.weights import main

    return main(argv, resnet_check=check_resnet_weights)
