"""Seeding, determinism switches and RNG-state capture (docs/decisions/tooling.md#determinism).

``get_rng_state``/``set_rng_state`` convert every generator state to tensors, ints, floats
and ``None`` only, so a checkpoint holding them loads with ``torch.load(weights_only=True)``
(Python's ``random.getstate()`` tuple and NumPy's legacy state tuple are not accepted by the
weights-only unpickler as they are).
"""
from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import torch

__all__ = ["seed_everything", "seed_worker", "configure_determinism", "get_rng_state", "set_rng_state"]

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> int:
    """Seed Python ``random``, NumPy's global RNG and torch (CPU and every CUDA device).

    ``PYTHONHASHSEED`` cannot be changed for a running interpreter, so it is not touched; the
    library never depends on ``hash()`` order (pid lists are sorted).

    Args:
        seed: the seed; recorded in the run's provenance and metrics.

    Returns:
        The seed, for chaining and logging.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device (lazily)
    log.debug("seeded python/numpy/torch with %d", seed)
    return seed


def seed_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: derive Python and NumPy seeds from torch's worker seed.

    Since PyTorch 1.9 workers already seed Python ``random``/NumPy from ``base_seed +
    worker_id``; this keeps the behaviour explicit and version independent.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def configure_determinism(device: torch.device, enabled: bool = True) -> None:
    """Select deterministic kernels.

    On CPU this is what makes a resumed run bit-identical to an uninterrupted one (with the same
    thread count). On CUDA it sets ``CUBLAS_WORKSPACE_CONFIG`` (only effective before the CUDA
    context exists), disables cuDNN autotuning and TF32, and uses ``warn_only=True`` because
    fused-attention and adaptive-pooling backward kernels have no deterministic variant (B6):
    the run warns instead of failing.

    Args:
        device: the training device.
        enabled: False restores PyTorch's fast defaults (cuDNN benchmark on).
    """
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = not enabled
        torch.backends.cudnn.allow_tf32 = not enabled
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)


def get_rng_state() -> dict[str, Any]:
    """Snapshot of every global RNG of this process, in ``weights_only``-loadable types."""
    version, internal, gauss_next = random.getstate()
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by :func:`get_rng_state`.

    Raises:
        KeyError: when ``state`` lacks one of the generators (names it).
    """
    for key in ("python", "numpy", "torch"):
        if key not in state:
            raise KeyError(f"RNG state has no '{key}' entry; expected keys python, numpy, torch, cuda")
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"]))
    nps = state["numpy"]
    np.random.set_state(("MT19937", nps["keys"].numpy().astype(np.uint32), nps["pos"],
                         nps["has_gauss"], nps["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) != torch.cuda.device_count():
            log.warning("checkpoint holds %d CUDA RNG states but %d devices are visible; "
                        "CUDA RNG states not restored", len(cuda_states), torch.cuda.device_count())
        else:
            torch.cuda.set_rng_state_all(cuda_states)
