"""DDP through ``torchrun``: process-group setup from the environment and rank helpers.

``torchrun --nproc_per_node=N -m reprolib.cli train ...`` sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and
joins the group (``nccl`` on CUDA, ``gloo`` on CPU). Without those variables everything runs
as a single process and every helper below degrades to a no-op.

Semantics (docs/decisions/tooling.md#distributed-training): each rank draws its own identity batches (the samplers
take ``rank``/``world_size``), so the global batch is ``world_size`` times the per-process
batch, BatchNorm statistics and triplet mining stay per process, and gradients are averaged
across ranks by DDP. Only rank 0 writes files and evaluates. Single-process training is the
reference configuration; record the world size with the results.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistInfo", "init_distributed", "get_rank", "get_world_size", "is_main_process",
           "barrier", "all_gather_object", "broadcast_object", "broadcast_buffers", "wrap_ddp", "cleanup_distributed"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: global rank (0 for a single process).
        world_size: number of processes.
        local_rank: rank on this node (selects the CUDA device).
        backend: ``"gloo"``/``"nccl"``, or ``None`` when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str = "cpu", timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by torchrun's environment variables.

    Args:
        device_type: ``"cuda"`` selects ``nccl`` (and the device ``LOCAL_RANK``), else ``gloo``.
        timeout_s: collective timeout.

    Returns:
        This process's :class:`DistInfo`; a single-process one when ``WORLD_SIZE`` is unset or 1.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout_s))
        log.info("joined process group: rank %d/%d (%s)", rank, world_size, backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, backend=backend)


def get_rank() -> int:
    """Global rank, 0 outside a process group."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes, 1 outside a process group."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 (the only rank that writes files and evaluates)."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if get_world_size() > 1:
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Gather one picklable object from every rank, in rank order (``[obj]`` when single)."""
    if get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s object on every rank (``obj`` itself when single)."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device,
             find_unused_parameters: bool = True) -> nn.Module:
    """Wrap ``module`` in DDP when distributed, else return it unchanged.

    ``find_unused_parameters=True`` is the safe default: VLD keeps trainable parameters that
    never receive a gradient (``logit_scale``, ``ln_post2``; docs/decisions/vld.md#v4-learning-rate-groups), and some
    variants switch branches off, which would otherwise make DDP's reducer wait forever.
    """
    if not info.distributed:
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward, so after the last training forward
    every rank holds its own running statistics; this makes the replicas identical again.
    """
    if get_world_size() == 1:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=src)


def cleanup_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
