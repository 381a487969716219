"""Read an official released checkpoint safely: tensors only, never arbitrary pickled objects.

* ``.safetensors``: :func:`safetensors.torch.load_file`;
* anything else: ``torch.load(map_location="cpu", weights_only=True)``. The official ReID repositories
  save ``model.state_dict()`` (VLD, CLIP-ReID, X-ReID) or a dict holding it (TF-CLIP's ``.pth.tar``:
  ``{"state_dict": ..., "epoch": ..., ...}``); both load this way as long as the file holds tensors,
  numbers, strings and containers only.

A file that needs more (pickled Python objects: an ``argparse.Namespace``, a model object, numpy
scalars) is **refused** with :class:`OfficialFormatError`: unpickling runs whatever code the file names.
The message says how to turn a file one trusts into a tensors-only one, in a separate session.
A TorchScript archive is refused too (no ReID release is one; OpenAI's CLIP is read by
``reprolib.models.weights``, not here).

A wrapper dict is unwrapped when its tensors sit under one of :data:`CONTAINER_KEYS`; a DDP/DataParallel
``module.`` prefix is removed. Both are reported in the returned notes (and so in the import audit).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from reprolib.models.weights import detect_format
from reprolib.utils.io import describe_load_error

__all__ = ["OfficialFormatError", "read_official_state_dict", "strip_module_prefix", "CONTAINER_KEYS"]

logger = logging.getLogger(__name__)

#: Keys of a wrapper dict that hold the state dict (TF-CLIP's ``state_dict``; common ``model``/``net``).
CONTAINER_KEYS = ("state_dict", "model", "net", "model_state_dict")
PREFIX = "module."


class OfficialFormatError(ValueError):
    """An official checkpoint cannot be read as a mapping of names to tensors without unpickling
    Python objects; the message names the file, what it holds and the fix."""


def _trusted_conversion(path: Path) -> str:
    return (f"If you trust {path.name} (it comes from the official release), convert it once in a separate "
            f"Python session, which does run the file's pickled code: "
            f"python -c \"import torch; c = torch.load('{path}', map_location='cpu', weights_only=False); "
            f"sd = c.get('state_dict', c) if isinstance(c, dict) else c.state_dict(); "
            f"torch.save({{k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}}, 'tensors_only.pth')\" "
            f"and import tensors_only.pth")


def strip_module_prefix(state: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Remove a leading ``module.`` (DataParallel/DDP) from every key that has it.

    Returns:
        ``(state, n)``: the renamed dict (order kept) and how many keys had the prefix.

    Raises:
        OfficialFormatError: two keys become equal (``module.x`` and ``x`` both present).
    """
    out: dict[str, Any] = {}
    n = 0
    for key, value in state.items():
        new = key[len(PREFIX):] if key.startswith(PREFIX) else key
        n += new != key
        if new in out:
            raise OfficialFormatError(f"both '{key}' and '{new}' are in the file: after removing the DDP prefix "
                                      f"'{PREFIX}' they collide; the file mixes two state dicts")
        out[new] = value
    return out, n


def read_official_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of an official checkpoint, read without unpickling Python objects.

    Args:
        path: the released file (``.pth``, ``.pth.tar``, ``.pt``, ``.safetensors``).

    Returns:
        ``(state, notes)``: ``{key: tensor}`` with any ``module.`` prefix removed, and notes on
        what was unwrapped or renamed (for the audit).

    Raises:
        FileNotFoundError: the file does not exist.
        OfficialFormatError: it is a TorchScript archive, holds pickled Python objects, is truncated,
            or holds no mapping of names to tensors; the message names the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file (expected an official released .pth/.pth.tar/"
                                f".safetensors state dict)")
    notes: list[str] = []
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path), device="cpu")
        except Exception as e:  # noqa: BLE001 - one line naming the file
            raise OfficialFormatError(f"{path}: unreadable safetensors file ({type(e).__name__}: {e})") from None
    else:
        if detect_format(path) == "torchscript":
            raise OfficialFormatError(f"{path} is a TorchScript archive, not a released state dict; official "
                                      "ReID checkpoints are torch.save(model.state_dict()) files. (OpenAI's CLIP "
                                      "ViT-B-16.pt is backbone weights: model.backbone.weights_path, not this command)")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - never retried with weights_only=False
            why = describe_load_error(e)
            fix = _trusted_conversion(path) if "pickled Python objects" in why else \
                "re-download the file (compare its SHA-256 with the release's)"
            raise OfficialFormatError(f"{path}: cannot be read with torch.load(weights_only=True): {why}. "
                                      f"Pickled objects are refused because unpickling runs code named by the "
                                      f"file. {fix}") from None
    if not isinstance(obj, dict):
        raise OfficialFormatError(f"{path}: holds a {type(obj).__name__}, not a state dict (a mapping of names to "
                                  f"tensors). {_trusted_conversion(path)}")
    if obj and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((k for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            others = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))[:6]
            raise OfficialFormatError(f"{path}: entries {others} are not tensors and no container key "
                                      f"({', '.join(CONTAINER_KEYS)}) holds the state dict; expected the "
                                      f"official torch.save(model.state_dict()) file")
        rest = sorted(k for k in obj if k != inner)
        notes.append(f"state dict read from the file's '{inner}' entry (other entries not used: "
                     f"{', '.join(rest) if rest else 'none'})")
        obj = obj[inner]
        bad = sorted(k for k, v in obj.items() if not isinstance(v, torch.Tensor))[:6]
        if bad:
            raise OfficialFormatError(f"{path}: '{inner}' holds non-tensor entries {bad}; expected a state dict")
    if not obj:
        raise OfficialFormatError(f"{path}: the state dict is empty")
    state, n = strip_module_prefix(obj)
    if n:
        notes.append(f"DataParallel/DDP prefix '{PREFIX}' removed from {n} of {len(state)} keys")
    return state, notes
