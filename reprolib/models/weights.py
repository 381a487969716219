"""Where CLIP weights come from, and ``python -m reprolib weights check``.

The paper profile uses open_clip's ``ViT-B-16-quickgelu`` with the OpenAI weights. QuickGELU
matters: plain ``ViT-B-16`` + OpenAI weights only warns and degrades the features
(docs/decisions/tooling.md#quickgelu-weights). Weights are looked up **locally**, in this order:

1. ``backbone.weights_path`` from the config: a weights file or ``local-dir:/path``;
2. the environment variable ``$CLIP_WEIGHTS`` (same two forms);
3. a pre-filled Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``) holding ``timm/vit_base_patch16_clip_224.openai``, or
   OpenAI's original ``~/.cache/clip/ViT-B-16.pt`` (open_clip's URL cache).

If none is found, :class:`WeightsNotFoundError` says how to supply them; it is raised after a
few file-system checks, with no network access. Downloading is only attempted when the user
explicitly set ``HF_HUB_OFFLINE=0``; open_clip then fetches the tag from the Hub.

Offline by default. ``huggingface_hub`` reads ``HF_HUB_OFFLINE``, ``HF_HUB_ETAG_TIMEOUT`` and
``HF_HUB_DOWNLOAD_TIMEOUT`` into module constants **when it is imported**, and without offline
mode a missing network costs minutes of retries per file (docs/decisions/tooling.md#offline-weights).
:func:`configure_hub_env` therefore runs in ``reprolib/models/__init__.py`` before anything
there imports open_clip: it sets ``HF_HUB_OFFLINE=1`` and short timeouts unless the user set
them, and patches the already-read constant if ``huggingface_hub`` was imported earlier.

All weights are loaded through ``open_clip.create_model(..., require_pretrained=True)``, so a
checkpoint that does not fit the architecture fails loudly (``strict=True``) instead of
leaving a silently random model. Weight formats:

* ``.safetensors`` and open_clip ``.bin``/``.pth`` state dicts: ``torch.load(weights_only=True)``;
* OpenAI's TorchScript archive ``ViT-B-16.pt`` (what CLIP-ReID, VLD and X-ReID load): torch
  refuses TorchScript with ``weights_only=True``. **No file is ever passed to
  ``torch.load(weights_only=False)``**: a zip whose records hold TorchScript's
  ``constants.pkl`` (torch's own test, :func:`detect_format`) is read by :func:`torch.jit.load`
  directly (its C++ unpickler builds TorchScript values only, never arbitrary Python objects) and
  its tensors are handed to open_clip as a state dict; if ``torch.jit.load`` rejects it the load
  fails (:class:`WeightsFormatError`), there is no fallback. Every other file is read with
  ``weights_only=True``; a file holding pickled Python objects is refused with a message that
  names it. A non-OpenAI TorchScript file (SHA-256 mismatch) gets a warning.

``pretrained`` values (``backbone.pretrained``): ``"openai"`` (the lookup above), ``"none"``
(random init, allowed for the smoke/embedded profiles, with a warning), ``"tinyclip"``
(``reprolib/models/weights/tinyclip.pt``, the miniature-world CLIP), or a file /
``local-dir:`` path.

TinyCLIP's weights ship in the repository; their SHA-256 is recorded in ``tinyclip.json`` next
to them and checked on every load (:func:`verify_tinyclip_weights`): a corrupted or replaced
file raises :class:`WeightsChecksumError`, which says how to regenerate it.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import logging
import os
import sys
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

if TYPE_CHECKING:  # annotations only: importing this module (configure_hub_env) must not import torch
    from torch import nn

__all__ = [
    "PAPER_ARCH", "ENV_VAR", "TINYCLIP_ARCH", "TINYCLIP_WEIGHTS", "TINYCLIP_TRAIN_COMMAND", "WeightsNotFoundError",
    "WeightsChecksumError", "WeightsFormatError", "WeightsSource", "verify_tinyclip_weights",
    "configure_hub_env", "register_model_configs", "resolve_weights", "detect_format", "read_state_dict", "sha256_file",
    "create_clip_model", "check_weights", "main", "read_state_shapes", "clip_arch_shapes", "clip_architecture_problem",
]

logger = logging.getLogger(__name__)

PAPER_ARCH = "ViT-B-16-quickgelu"  # open_clip model name of the paper profile
PAPER_TAG = "openai"
ENV_VAR = "CLIP_WEIGHTS"
#: open_clip 3.3's Hub location of (ViT-B-16, openai): ``_PRETRAINED['ViT-B-16']['openai']['hf_hub']``
#: (tests/test_weights.py checks that it still matches the installed open_clip).
PAPER_HF_REPO = "timm/vit_base_patch16_clip_224.openai"
HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # open_clip's preference
#: SHA-256 of OpenAI's TorchScript ViT-B-16.pt (the hash is part of OpenAI's download URL).
OPENAI_VIT_B16_SHA256 = "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"
OPENAI_URL_CACHE_FILE = Path("~/.cache/clip/ViT-B-16.pt")
LOCAL_DIR_PREFIX = "local-dir:"

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
TINYCLIP_ARCH = "TinyCLIP-ViT-8"
TINYCLIP_WEIGHTS = Path(__file__).parent / "weights" / "tinyclip.pt"
TINYCLIP_TRAIN_COMMAND = "python -m reprolib tinyclip train"

_HUB_TIMEOUTS = {"HF_HUB_ETAG_TIMEOUT": "3", "HF_HUB_DOWNLOAD_TIMEOUT": "10"}


class WeightsNotFoundError(FileNotFoundError):
    """CLIP weights could not be found; the message says where we looked and how to supply them."""


class WeightsChecksumError(RuntimeError):
    """A shipped weights file does not match its recorded SHA-256 (corrupted or replaced)."""


class WeightsFormatError(RuntimeError):
    """A weights file is not a format reprolib reads safely (truncated, random bytes, pickled
    Python objects, a forged TorchScript archive); the message names the file and the formats
    accepted."""


@dataclass(frozen=True)
class WeightsSource:
    """Resolved location of CLIP weights.

    Attributes:
        arch: open_clip architecture name the weights are loaded into.
        path: the weights file; ``None`` when open_clip downloads ``tag`` itself.
        origin: where it was found: ``model.backbone.weights_path``, ``$CLIP_WEIGHTS``,
            ``model.backbone.pretrained``, ``hf-cache``, ``clip-url-cache``, ``tinyclip`` or
            ``download``.
        format: ``safetensors``, ``state_dict`` (torch pickle) or ``torchscript``.
        local_dir: the ``local-dir:`` model folder (config + weights), if that form was used.
        tag: the open_clip pretrained tag for ``origin == "download"``.
    """

    arch: str
    path: Optional[str]
    origin: str
    format: str = "state_dict"
    local_dir: Optional[str] = None
    tag: Optional[str] = None

    @property
    def weights_only(self) -> bool:
        """``torch.load(weights_only=...)``: always True. A TorchScript archive is never given to
        ``torch.load`` at all; it is read with ``torch.jit.load`` (see the module doc)."""
        return True


# --------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------


def _hub_offline_explicit() -> Optional[bool]:
    """The user's explicit HF_HUB_OFFLINE choice, or None when unset."""
    value = os.environ.get("HF_HUB_OFFLINE")
    if value is None or value.strip() == "":
        return None
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def configure_hub_env() -> None:
    """Default the Hugging Face Hub to offline mode with short timeouts.

    Sets ``HF_HUB_OFFLINE=1``, ``HF_HUB_ETAG_TIMEOUT=3`` and ``HF_HUB_DOWNLOAD_TIMEOUT=10``
    unless the user set them (``HF_HUB_OFFLINE=0`` keeps downloads enabled). The hub reads
    these at import time, so this must run before ``open_clip``/``timm``/``huggingface_hub``
    are imported; if ``huggingface_hub`` is already imported its offline constant is patched.
    """
    if _hub_offline_explicit() is None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None and not getattr(constants, "HF_HUB_OFFLINE", True):
            constants.HF_HUB_OFFLINE = True
            logger.debug("huggingface_hub was imported before reprolib.models; patched HF_HUB_OFFLINE=True")
    for key, value in _HUB_TIMEOUTS.items():
        os.environ.setdefault(key, value)


def _downloads_allowed() -> bool:
    return _hub_offline_explicit() is False


def _hub_unreachable(timeout: float = 3.0) -> Optional[str]:
    """``None`` if a TCP connection to the Hub endpoint opens within ``timeout`` s, else why not.

    huggingface_hub retries a failed request with back-off (about a minute per file here), so
    an unreachable Hub is detected once, up front.
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as e:
        return f"{url.hostname}: {e}"
    return None


def _hf_cache_dir() -> Path:
    """The Hugging Face hub cache looked in: ``$HF_HUB_CACHE`` as set *now* (so a process can point it at
    another cache after ``huggingface_hub`` was imported, as a rehearsal does), else huggingface_hub's
    own value (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``, read when it
    was imported)."""
    env = os.environ.get("HF_HUB_CACHE", "").strip()
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    from huggingface_hub import constants  # local: imported after configure_hub_env

    return Path(constants.HF_HUB_CACHE)


def register_model_configs() -> None:
    """Add reprolib's open_clip architecture configs (``model_configs/*.json``) to open_clip."""
    import open_clip

    if TINYCLIP_ARCH not in open_clip.list_models():
        open_clip.add_model_config(MODEL_CONFIG_DIR)


# --------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------


def detect_format(path: Path) -> str:
    """``safetensors``, ``torchscript`` or ``state_dict`` (a torch pickle, read with ``weights_only=True``).

    ``torchscript`` is what torch itself calls a TorchScript archive: a zip with a
    ``<archive>/constants.pkl`` record. A ``code/`` folder alone does not make one (a forged
    checkpoint can hold any folder). Whatever this returns, nothing is unpickled with
    ``weights_only=False``: a ``torchscript`` file is only ever read by ``torch.jit.load``.
    """
    if path.suffix == ".safetensors":
        return "safetensors"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return "state_dict"
        if any(n.count("/") == 1 and n.endswith("/constants.pkl") for n in names):
            return "torchscript"
    return "state_dict"


_FORMATS_HELP = ("expected a CLIP weights file: .safetensors, an open_clip .bin/.pth state dict of tensors, "
                 "or OpenAI's TorchScript ViT-B-16.pt")


def _load_torchscript_state_dict(path: str) -> dict:
    """Tensors of a TorchScript archive, read with ``torch.jit.load`` only (never ``torch.load``).

    Raises:
        WeightsFormatError: ``torch.jit.load`` rejects the archive (forged, truncated, not TorchScript).
    """
    import torch

    try:
        module = torch.jit.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any rejection is a format error naming the file
        raise WeightsFormatError(
            f"{path} looks like a TorchScript archive (it has constants.pkl) but torch.jit.load rejects it "
            f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}); it is not loaded "
            f"any other way. Re-download the file; {_FORMATS_HELP}.") from None
    state = module.state_dict()
    for key in ("input_resolution", "context_length", "vocab_size"):  # OpenAI's scalar entries
        state.pop(key, None)
    return dict(state)


def read_state_dict(checkpoint_path: Any, device: str = "cpu", weights_only: bool = True) -> dict:
    """The tensors of a CLIP weights file, read without ever unpickling Python objects.

    Replaces ``open_clip.factory.load_state_dict`` while :func:`create_clip_model` runs (same
    signature; ``weights_only`` is ignored: it is always True). ``.safetensors`` through
    safetensors, a TorchScript archive through ``torch.jit.load`` only, anything else through
    ``torch.load(weights_only=True)``; a ``{"state_dict": ...}`` wrapper and a DDP ``module.``
    prefix are removed as open_clip does.

    Raises:
        WeightsFormatError: the file cannot be read that way; the message names it.
    """
    import torch

    path = str(checkpoint_path)
    fmt = detect_format(Path(path))
    try:
        if fmt == "safetensors":
            from safetensors.torch import load_file

            checkpoint: Any = load_file(path, device=device)
        elif fmt == "torchscript":
            checkpoint = _load_torchscript_state_dict(path)
        else:
            checkpoint = torch.load(path, map_location=device, weights_only=True)
    except WeightsFormatError:
        raise
    except Exception as e:  # noqa: BLE001 - every reader error becomes one line naming the file
        raise _format_error(path, e) from None
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not checkpoint or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise WeightsFormatError(f"{path}: cannot read CLIP weights: it holds a {type(checkpoint).__name__}, "
                                 f"not a mapping of parameter names to tensors; {_FORMATS_HELP}.")
    if next(iter(checkpoint)).startswith("module"):
        checkpoint = {k[7:]: v for k, v in checkpoint.items()}
    return checkpoint


def _format_error(path: str, e: BaseException) -> WeightsFormatError:
    """A one-line :class:`WeightsFormatError` for a file torch could not read with ``weights_only=True``."""
    from reprolib.utils.io import describe_load_error

    return WeightsFormatError(f"{path}: cannot read CLIP weights: {describe_load_error(e)}; {_FORMATS_HELP}.")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _weights_in_dir(folder: Path) -> list[Path]:
    """Weights files open_clip's ``local-dir:`` loader considers (it ignores ``.pt``)."""
    return sorted(p for ext in ("*.safetensors", "*.bin", "*.pth") for p in folder.glob(ext))


def _source_from_spec(spec: str, arch: str, origin: str) -> WeightsSource:
    """A weights file or ``local-dir:`` folder named by the user (config key or env var)."""
    if spec.startswith(LOCAL_DIR_PREFIX):
        folder = Path(spec[len(LOCAL_DIR_PREFIX):]).expanduser()
        files = _weights_in_dir(folder) if folder.is_dir() else []
        problems = [] if folder.is_dir() else ["the folder does not exist"]
        if folder.is_dir() and not (folder / "open_clip_config.json").is_file():
            problems.append("open_clip_config.json is missing")
        if folder.is_dir() and len(files) != 1:
            problems.append(f"found {len(files)} weights files ({', '.join(p.name for p in files) or '-'})")
        if problems:
            raise WeightsNotFoundError(
                f"{origin}='{spec}': a local-dir model folder needs open_clip_config.json (with 'model_cfg') "
                f"and exactly one weights file (.safetensors/.bin/.pth); {'; '.join(problems)}.")
        return WeightsSource(arch=LOCAL_DIR_PREFIX + str(folder.resolve()), path=str(files[0].resolve()),
                             origin=origin, format=detect_format(files[0]), local_dir=str(folder.resolve()))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"{origin}='{spec}' is not a file. Expected a CLIP weights file (.safetensors, open_clip "
            f".bin/.pth, or OpenAI's TorchScript ViT-B-16.pt) or 'local-dir:/path/to/model_dir'.")
    return WeightsSource(arch=arch, path=str(path.resolve()), origin=origin, format=detect_format(path))


def _hub_location(arch: str, tag: str) -> Optional[str]:
    """The HF Hub repo id open_clip would download ``(arch, tag)`` from, if any."""
    if arch == PAPER_ARCH and tag == PAPER_TAG:
        return PAPER_HF_REPO
    from open_clip.pretrained import get_pretrained_cfg

    hub = get_pretrained_cfg(arch, tag).get("hf_hub", "")
    return hub.rstrip("/") or None


def _find_in_caches(arch: str, tag: str) -> tuple[Optional[WeightsSource], list[str]]:
    """Look for ``(arch, tag)`` in the HF cache and OpenAI's URL cache, without network access."""
    from huggingface_hub import try_to_load_from_cache

    looked: list[str] = []
    repo = _hub_location(arch, tag)
    if repo:
        for filename in HF_WEIGHT_FILES:
            hit = try_to_load_from_cache(repo, filename, cache_dir=str(_hf_cache_dir()))
            if isinstance(hit, str) and os.path.isfile(hit):
                return WeightsSource(arch=arch, path=hit, origin="hf-cache", format=detect_format(Path(hit))), looked
        looked.append(f"Hugging Face cache {_hf_cache_dir()}: no snapshot of {repo} "
                      f"({' or '.join(HF_WEIGHT_FILES)})")
    if tag == PAPER_TAG and arch.startswith("ViT-B-16"):
        url_cache = OPENAI_URL_CACHE_FILE.expanduser()
        if url_cache.is_file():
            return WeightsSource(arch=arch, path=str(url_cache), origin="clip-url-cache",
                                 format=detect_format(url_cache)), looked
        looked.append(f"OpenAI download cache {url_cache}: missing")
    return None, looked


def _not_found_message(arch: str, tag: str, looked: list[str]) -> str:
    repo = _hub_location(arch, tag) or PAPER_HF_REPO
    cache = _hf_cache_dir()
    lines = [
        f"CLIP weights for open_clip '{arch}' (pretrained '{tag}') were not found locally "
        f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')}). Looked at:",
        "  - config key model.backbone.weights_path: not set",
        f"  - environment variable ${ENV_VAR}: not set",
        *[f"  - {item}" for item in looked],
        "Supply the weights in one of three ways:",
        "  1. a local weights file (open_clip .safetensors/.bin, or OpenAI's TorchScript ViT-B-16.pt):",
        f"       export {ENV_VAR}=/abs/path/open_clip_model.safetensors",
        "     or per run: --set model.backbone.weights_path=/abs/path/ViT-B-16.pt",
        "  2. a local open_clip model folder (open_clip_config.json + one weights file):",
        f"       export {ENV_VAR}=local-dir:/abs/path/ViT-B-16-quickgelu",
        "  3. a pre-filled Hugging Face cache: on a machine with internet run",
        f"       hf download {repo} {HF_WEIGHT_FILES[0]} open_clip_config.json",
        f"     then copy its ~/.cache/huggingface/hub/models--{repo.replace('/', '--')} folder to",
        f"       {cache / ('models--' + repo.replace('/', '--'))}",
        "     (or point HF_HUB_CACHE / HF_HOME at the copied cache).",
        "To let open_clip download them on a machine with internet access, set HF_HUB_OFFLINE=0.",
        "Check with: python -m reprolib weights check",
    ]
    return "\n".join(lines)


def resolve_weights(arch: str = PAPER_ARCH, pretrained: str = PAPER_TAG,
                    weights_path: Optional[str] = None) -> Optional[WeightsSource]:
    """Find the weights that ``(arch, pretrained, weights_path)`` asks for, without loading them.

    Args:
        arch: open_clip architecture name (``backbone.arch``).
        pretrained: ``"openai"`` (or another open_clip tag), ``"none"``, ``"tinyclip"``, or a
            weights file / ``local-dir:`` path (``backbone.pretrained``).
        weights_path: explicit weights file or ``local-dir:`` folder (``backbone.weights_path``);
            it takes precedence over ``$CLIP_WEIGHTS`` and the caches.

    Returns:
        The :class:`WeightsSource`, or ``None`` for ``pretrained="none"`` (random init).

    Raises:
        WeightsNotFoundError: nothing found; the message lists where we looked and how to
            supply the weights.
    """
    if pretrained == "none":
        return None
    if weights_path:
        return _source_from_spec(weights_path, arch, "model.backbone.weights_path")
    if pretrained == "tinyclip":
        if not TINYCLIP_WEIGHTS.is_file():
            raise WeightsNotFoundError(
                f"model.backbone.pretrained='tinyclip': {TINYCLIP_WEIGHTS} does not exist yet (the TinyCLIP "
                f"weights are trained by the TinyCLIP issue and shipped in the repository). Use "
                f"model.backbone.pretrained=none for a randomly initialised '{TINYCLIP_ARCH}' meanwhile.")
        verify_tinyclip_weights(TINYCLIP_WEIGHTS)
        return WeightsSource(arch=arch, path=str(TINYCLIP_WEIGHTS), origin="tinyclip",
                             format=detect_format(TINYCLIP_WEIGHTS))
    if pretrained.startswith(LOCAL_DIR_PREFIX) or os.sep in pretrained or Path(pretrained).suffix:
        return _source_from_spec(pretrained, arch, "model.backbone.pretrained")
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return _source_from_spec(env, arch, f"${ENV_VAR}")
    found, looked = _find_in_caches(arch, pretrained)
    if found is not None:
        return found
    if _downloads_allowed():
        problem = _hub_unreachable()
        if problem is None:
            return WeightsSource(arch=arch, path=None, origin="download", tag=pretrained)
        looked.append(f"HF_HUB_OFFLINE=0 but the Hub is unreachable ({problem}); not retrying for minutes")
    raise WeightsNotFoundError(_not_found_message(arch, pretrained, looked))


def verify_tinyclip_weights(path: Path) -> str:
    """Check a TinyCLIP weights file against the SHA-256 recorded next to it (``<name>.json``).

    Args:
        path: the weights file (``reprolib/models/weights/tinyclip.pt``).

    Returns:
        The verified hex SHA-256.

    Raises:
        WeightsChecksumError: the record is missing/unreadable or the hash differs; the
            message names the file, the expected and actual hashes and how to regenerate it.
    """
    path = Path(path)
    record = path.with_suffix(".json")
    regenerate = f"Restore {path.name} and {record.name} from git, or regenerate both with " \
                 f"'{TINYCLIP_TRAIN_COMMAND}' (5-20 minutes on 2 CPU cores)."
    try:
        expected = str(json.loads(record.read_text())["sha256"]).lower()
    except (OSError, ValueError, KeyError) as e:
        raise WeightsChecksumError(f"cannot verify {path}: its record {record} with key 'sha256' is missing or "
                                   f"unreadable ({e}). {regenerate}") from e
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsChecksumError(
            f"{path} is corrupted or was replaced: SHA-256 {actual}, expected {expected} (recorded in {record}). "
            f"{regenerate}")
    return actual


# --------------------------------------------------------------------------------------
# Misfits
# --------------------------------------------------------------------------------------


def guess_weights_kind(keys: Iterable[str]) -> str:
    """What a state dict's key names look like: a CLIP model, a torchvision ResNet, or unknown."""
    keys = list(keys)
    if any(k.startswith(("visual.transformer.", "visual.conv1.")) for k in keys):
        return "a CLIP model (open_clip/OpenAI key names)"
    if any(k.startswith(("layer1.0.conv1.", "layer4.")) for k in keys):
        return "a torchvision ResNet (layer1..layer4 key names)"
    if any(k.startswith("module.") for k in keys):
        return "a DataParallel/DDP-wrapped state dict (module. prefix)"
    return "neither a CLIP model nor a torchvision ResNet"


def misfit_report(expected: dict[str, tuple], given: dict[str, tuple], source: str, target: str,
                  examples: int = 3) -> str:
    """A short account of why state dict ``given`` does not fit model ``target``: counts of missing,
    unexpected and wrongly shaped keys with a few examples each, and what the file looks like
    (instead of torch's list of every key, tens of kB for a ViT-B/16).

    Args:
        expected: ``{key: shape}`` of the model.
        given: ``{key: shape}`` of the file.
        source: the file (named in the message).
        target: the architecture it was loaded into.
        examples: keys shown per kind of problem.
    """
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [k for k in expected if k in given and tuple(expected[k]) != tuple(given[k])]

    def some(keys: list[str], shape: bool = False) -> str:
        shown = [f"{k} (file {tuple(given[k])}, model {tuple(expected[k])})" if shape else k for k in keys[:examples]]
        more = f", ... {len(keys) - examples} more" if len(keys) > examples else ""
        return ", ".join(shown) + more

    parts = [f"{source} does not fit {target}: the file has {len(given)} tensors, the model {len(expected)}"]
    if missing:
        parts.append(f"{len(missing)} missing from the file (e.g. {some(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {some(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} with another shape (e.g. {some(shapes, shape=True)})")
    parts.append(f"the file looks like {guess_weights_kind(given)}")
    return "; ".join(parts)


def _state_shapes(state: dict) -> dict[str, tuple]:
    return {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}


def _safetensors_shapes(path: Path) -> dict[str, tuple]:
    """``{name: shape}`` from a ``.safetensors`` header (8-byte little-endian length + JSON), no tensor read."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("shorter than a safetensors header")
        size = int.from_bytes(head, "little")
        if size > 100 << 20:
            raise ValueError(f"header length {size} is implausible (not a safetensors file?)")
        header = json.loads(f.read(size))
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def read_state_shapes(path: str | os.PathLike, wrappers: Sequence[str] = ("state_dict",)) -> dict[str, tuple]:
    """Parameter names and shapes of a weights file, in seconds, without building a model.

    ``.safetensors``: the header only. A torch pickle: ``torch.load(weights_only=True, mmap=True)``
    (tensors are mapped, not read; a legacy non-zip file is read whole). A TorchScript archive:
    ``torch.jit.load`` on the CPU (:func:`_load_torchscript_state_dict`). A wrapper dict
    (``wrappers``, e.g. ``{"state_dict": ...}``) and a DDP ``module.`` prefix are removed, as the
    loaders do.

    Args:
        path: the weights file.
        wrappers: keys whose dict value is the real state dict.

    Returns:
        ``{name: shape}``.

    Raises:
        WeightsFormatError: the file cannot be read this way, or holds something other than
            tensors; the message names it.
    """
    import torch

    path = Path(path)
    fmt = detect_format(path)
    try:
        if fmt == "safetensors":
            return _safetensors_shapes(path)
        if fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
                state: Any = _load_torchscript_state_dict(str(path))
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e) and "zip" not in str(e):
                    raise
                state = torch.load(path, map_location="cpu", weights_only=True)  # legacy format: no mmap
    except WeightsFormatError:
        raise
    except Exception as e:  # noqa: BLE001 - every reader error becomes one line naming the file
        raise _format_error(str(path), e) from None
    for key in wrappers:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFormatError(f"{path}: holds a {type(state).__name__}, not a mapping of parameter names to "
                                 f"tensors; expected a state dict of weights")
    return {k.removeprefix("module."): tuple(v.shape) for k, v in state.items()}


@functools.lru_cache(maxsize=8)
def clip_arch_shapes(arch: str) -> dict[str, tuple]:
    """``{name: shape}`` of open_clip's ``arch`` at its native input size, built on the ``meta``
    device (no memory, no initialisation: a fraction of a second for a ViT-B/16)."""
    import torch

    register_model_configs()
    import open_clip

    root = logging.getLogger()
    quiet = _DropRecords("No pretrained weights loaded")  # open_clip's warning about the random init
    root.addFilter(quiet)
    try:
        with torch.device("meta"):
            model = open_clip.create_model(arch, pretrained=None, device="meta")
    finally:
        root.removeFilter(quiet)
    return _state_shapes(model.state_dict())


class _DropRecords(logging.Filter):
    """Drops log records whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def clip_architecture_problem(arch: str, path: str | os.PathLike) -> Optional[str]:
    """Whether a CLIP weights file fits open_clip's ``arch``: key names and shapes compared, nothing loaded.

    Shared by the loader's error message, ``python -m reprolib weights check`` and the preflight of
    :mod:`reprolib.experiments.preflight`.

    Args:
        arch: open_clip architecture name (``ViT-B-16-quickgelu``).
        path: the weights file (any format of :func:`read_state_shapes`).

    Returns:
        ``None`` when every tensor of ``arch`` is in the file with its shape and nothing else is,
        else a :func:`misfit_report` naming the file.

    Raises:
        WeightsFormatError: the file cannot be read (see :func:`read_state_shapes`).
    """
    given = read_state_shapes(path)
    expected = clip_arch_shapes(arch)
    if given.keys() == expected.keys() and all(tuple(given[k]) == tuple(expected[k]) for k in expected):
        return None
    return misfit_report(expected, given, str(path), f"open_clip '{arch}'")


def _clip_misfit(arch: str, source: "WeightsSource") -> Optional[str]:
    """:func:`misfit_report` of a CLIP weights file against ``arch`` (``None`` if it cannot be read)."""
    try:
        return clip_architecture_problem(arch, source.path)
    except Exception:  # noqa: BLE001 - the caller keeps the original error
        return None


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def create_clip_model(arch: str = PAPER_ARCH, pretrained: str = PAPER_TAG,
                      weights_path: Optional[str] = None) -> tuple[nn.Module, Optional[WeightsSource]]:
    """Build an open_clip CLIP model at its native input size and load its weights.

    Weights are always loaded with ``require_pretrained=True`` and ``strict=True``; only
    ``pretrained="none"`` gives a random model (with a warning).

    Args:
        arch: open_clip architecture name (``ViT-B-16-quickgelu``, ``TinyCLIP-ViT-8``).
        pretrained: see :func:`resolve_weights`.
        weights_path: see :func:`resolve_weights`.

    Returns:
        ``(model, source)``: the ``open_clip.CLIP`` model on CPU in fp32, and where its weights
        came from (``None`` for random init).

    Raises:
        WeightsNotFoundError: no weights found.
        RuntimeError: the weights do not fit ``arch`` (the message names the file).
    """
    source = resolve_weights(arch, pretrained, weights_path)
    register_model_configs()
    import open_clip

    if source is None:
        logger.warning("model.backbone.pretrained='none': '%s' is RANDOMLY INITIALISED (no pretrained weights). "
                       "Fine for the smoke/embedded profiles; never for paper numbers.", arch)
        return open_clip.create_model(arch, pretrained=None), None
    if source.format == "torchscript" and sha256_file(Path(source.path)) != OPENAI_VIT_B16_SHA256:
        logger.warning("%s is a TorchScript archive but not OpenAI's ViT-B-16.pt (SHA-256 differs); "
                       "loading it with torch.jit.load", source.path)
    logger.info("loading CLIP '%s' weights from %s (%s, %s)", arch, source.path or source.tag,
                source.origin, source.format)
    kwargs = {"require_pretrained": True, "weights_only": True}  # never False, whatever the file
    import open_clip.factory as oc_factory

    with warnings.catch_warnings(), _patched(oc_factory, "load_state_dict", read_state_dict):
        # every file open_clip reads (a path, a local-dir's file, a download) goes through
        # read_state_dict: open_clip's own reader retries torch.load without weights_only on a TypeError
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
        try:
            if source.origin == "download":
                model = open_clip.create_model(arch, pretrained=source.tag, **kwargs)
            elif source.local_dir is not None:  # config and weights come from the folder
                model = open_clip.create_model(source.arch, **kwargs)
            else:
                model = open_clip.create_model(arch, pretrained=source.path, **kwargs)
        except WeightsFormatError:
            raise
        except RuntimeError as e:
            short = _clip_misfit(source.arch, source) if source.path and source.local_dir is None else None
            detail = short or str(e)
            if len(detail) > 2000:
                detail = detail[:2000] + " ..."
            raise RuntimeError(f"could not load CLIP weights {source.path or source.tag} ({source.origin}) "
                               f"into open_clip '{source.arch}': {detail}") from None
    openai_weights = source.format == "torchscript" or (
        pretrained == PAPER_TAG and source.origin in ("hf-cache", "clip-url-cache", "download"))
    if openai_weights and not _uses_quick_gelu(model):
        logger.warning("OpenAI CLIP weights were trained with QuickGELU but '%s' uses GELU: features degrade; "
                       "use '%s' (backbone.arch)", arch, PAPER_ARCH)
    return model, source


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any):
    """Temporarily replace ``module.name`` with ``value``."""
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def _uses_quick_gelu(model: nn.Module) -> bool:
    block = model.visual.transformer.resblocks[0]
    return type(block.mlp.gelu).__name__ == "QuickGELU"


# --------------------------------------------------------------------------------------
# `python -m reprolib weights check`
# --------------------------------------------------------------------------------------


def check_weights(arch: str = PAPER_ARCH, weights_path: Optional[str] = None,
                  pretrained: str = PAPER_TAG) -> dict[str, Any]:
    """Report what the paper profile would load, loading it once to prove it fits.

    Args:
        arch: open_clip architecture name.
        weights_path: explicit weights file or ``local-dir:`` folder; else ``$CLIP_WEIGHTS``
            and the caches.
        pretrained: open_clip tag (``openai``) or one of the other values of
            :func:`resolve_weights`.

    Returns:
        ``{"arch", "path", "origin", "format", "sha256", "openai_sha256_match", "n_params",
        "n_params_visual", "quick_gelu", "image_size"}``.

    Raises:
        WeightsNotFoundError: nothing found (raised before open_clip is imported, in seconds).
        RuntimeError: the file does not fit the architecture.
    """
    if pretrained == "none":
        raise WeightsNotFoundError("weights check: pretrained='none' means random init; nothing to check")
    model, source = create_clip_model(arch, pretrained, weights_path)
    path = source.path
    if path is None:  # downloaded by open_clip just now: report the cached file
        found, _ = _find_in_caches(arch, source.tag or PAPER_TAG)
        path = found.path if found else None
    sha = sha256_file(Path(path)) if path else None
    return {
        **{k: v for k, v in asdict(source).items() if k in ("arch", "origin", "format")},
        "path": path,
        "sha256": sha,
        "openai_sha256_match": sha == OPENAI_VIT_B16_SHA256,
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_params_visual": sum(p.numel() for p in model.visual.parameters()),
        "quick_gelu": _uses_quick_gelu(model),
        "image_size": list(model.visual.image_size),
    }


def _guess_backbone(weights_path: Optional[str]) -> str:
    """``resnet50`` for a given file whose key names are a torchvision ResNet's, else ``clip``."""
    if not weights_path or weights_path.startswith(LOCAL_DIR_PREFIX) or not Path(weights_path).is_file():
        return "clip"
    if detect_format(Path(weights_path)) == "torchscript":
        return "clip"
    try:
        keys = read_state_dict(weights_path).keys()
    except WeightsFormatError:
        return "clip"
    return "resnet50" if "ResNet" in guess_weights_kind(keys) else "clip"


def main(argv: Optional[Sequence[str]] = None, resnet_check: Optional[Any] = None) -> int:
    """``python -m reprolib weights check [--backbone auto|clip|resnet50] [--arch A] [--weights-path P]``:
    JSON report, or the error on stderr and exit status 1.

    ``resnet_check`` is :func:`reprolib.models.cmft.resnet.check_resnet_weights`, passed in by the
    command line entry :func:`reprolib.models.cmft.resnet.weights_main` (this module sits below the
    ResNet streams and does not import them)."""
    parser = argparse.ArgumentParser(prog="python -m reprolib weights check",
                                     description="Report which CLIP (or ResNet-50) weights the paper profile would load.")
    parser.add_argument("--arch", default=PAPER_ARCH, help="open_clip architecture (default: %(default)s)")
    parser.add_argument("--pretrained", default=PAPER_TAG, help="open_clip tag, tinyclip or a path")
    parser.add_argument("--weights-path", default=None,
                        help=f"weights file or local-dir:/path (default: ${ENV_VAR}, then the HF cache)")
    parser.add_argument("--backbone", default="auto", choices=["auto", "clip", "resnet50"],
                        help="which backbone's weights to check: CLIP (the ViT families) or ResNet-50 (CMFT's "
                             "streams; default file $RESNET50_WEIGHTS, then torchvision's cache); auto: from the "
                             "file's key names, else clip")
    args = parser.parse_args(argv)
    configure_hub_env()
    try:
        backbone = args.backbone
        if backbone == "auto":
            backbone = _guess_backbone(args.weights_path)
        if backbone == "resnet50":
            if resnet_check is None:
                raise WeightsNotFoundError("weights check: ResNet-50 files are checked by "
                                           "`python -m reprolib weights check --backbone resnet50`")
            report = resnet_check(args.weights_path or "")
        else:
            report = check_weights(args.arch, args.weights_path, args.pretrained)
    except (WeightsNotFoundError, RuntimeError) as e:
        sys.stderr.write(f"weights check failed: {e}\n")
        return 1
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
