"""MAC counter: multiply-accumulates of one traced forward pass, per module and kind, under the
papers' conventions. It imports only torch; the paper cost tables are
:mod:`reprolib.experiments.costs`, the ``python -m reprolib profile`` command
:mod:`reprolib.experiments.profile_cli`.

**Units.** As in the three papers, 1 "FLOP" is one multiply-accumulate (MAC); "G" is 1e9.

**How MACs are counted.** One forward pass is traced by

* forward hooks on the modules that do the arithmetic: ``Conv*d`` (out elements x in/groups
  x kernel), ``ConvTranspose*d``, ``Linear`` (rows x in x out), ``LayerNorm`` (5 per element,
  4 without affine: docs/decisions/vld.md#flop-convention), ``BatchNorm*d`` (1 per element: the inference-time
  per-channel affine), and ``nn.MultiheadAttention``, counted from its input shapes because its
  projections are bare parameters (its ``out_proj`` module is never called): in-projections
  ``Lq*E*E + Lk*E*kdim + Lk*E*vdim``, out-projection ``Lq*E*E`` and the attention products
  ``Lq*Lk*E`` (q.k^T) + ``Lq*Lk*E`` (attn.v), per sample;
* a :class:`~torch.overrides.TorchFunctionMode` for the arithmetic that happens outside those
  modules: ``F.linear`` (open_clip's custom ``Attention``), ``F.scaled_dot_product_attention``
  and every matmul (``@``, ``matmul``, ``mm``, ``bmm``, ``baddbmm``, ``addmm``). A matmul with a
  parameter operand (CLIP's ``x @ proj``) is a *parameter matmul*; a matmul of two activations
  (a hand-written ``q @ k.transpose(-2, -1)``) is an *attention product*. Ops inside a hooked
  module are not counted again. ``einsum`` is not counted and is reported as uncounted.

Softmax, activations, residual and positional additions, pooling and concatenation cost 0.

**Conventions** (:data:`CONVENTIONS`):

* ``paper``: Conv + Linear (incl. MHA in/out projections) + LayerNorm x5, **without** the
  attention products. This is fvcore's count on PyTorch >= 2.0, where the attention runs in
  ``scaled_dot_product_attention`` that fvcore does not count, and reproduces VLD's 13.96 G per
  frame for CLIP ViT-B/16 at 288x144 exactly: 13,956,174,336 MACs (docs/decisions/vld.md#flop-convention). Bare
  parameter matmuls (``proj``) are left out, as the exact reconstruction (docs/decisions/vld.md#flop-convention) does
  (counting ``proj`` on [CLS] would add 393,216 MACs, below the printed precision).
* ``full``: everything above plus the attention products, the parameter matmuls and BatchNorm
  (14.45 G for the same encoder).
"""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

__all__ = ["CONVENTIONS", "KINDS", "ROOT", "MacCount", "count_macs", "count_flops", "flops_summary", "infer_frames",
           "leaf_modules", "row_key"]

logger = logging.getLogger(__name__)

#: MAC kinds recorded by :func:`count_macs`.
KINDS: tuple[str, ...] = ("conv", "linear", "layernorm", "attention", "param_matmul", "batchnorm")
#: Kinds each convention sums (see the module docstring).
CONVENTIONS: dict[str, tuple[str, ...]] = {
    "paper": ("conv", "linear", "layernorm"),
    "full": KINDS,
}
_LAYERNORM_OPS_PER_ELEMENT = 5  # mean, variance, normalise, scale, shift (docs/decisions/vld.md#flop-convention)


ROOT = "(root)"  # row name of what the root module holds or does itself, when it is a leaf


def leaf_modules(model: nn.Module) -> frozenset[str]:
    return frozenset(n for n, m in model.named_modules() if not any(True for _ in m.children()))


def row_key(name: str, depth: int, leaves: frozenset[str]) -> str:
    """Table row of a module or parameter name: a leaf module and its own parameters share one
    row (``neck``, not ``neck.weight``); otherwise the first ``depth`` name components."""
    owner = name.rsplit(".", 1)[0] if "." in name else ""
    base = name if name in leaves or owner not in leaves else owner
    return ".".join(base.split(".")[:depth]) or ROOT


@dataclass
class MacCount:
    """MACs of one traced forward pass, per module and kind.

    Attributes:
        by_module: name -> kind -> MACs. Module ops are booked on the module, a matmul with a
            parameter on the parameter (``visual.vit.proj``), other functional ops on the
            innermost module running them (``""`` = the root).
        frames: frames in the traced input (the per-frame divisor).
        uncounted: descriptions of ops/modules that did arithmetic the tracer does not count.
        leaf_modules: names of the traced model's leaf modules (for :meth:`per_module` rows).
    """

    by_module: dict[str, dict[str, int]] = field(default_factory=dict)
    frames: int = 1
    uncounted: list[str] = field(default_factory=list)
    leaf_modules: frozenset[str] = frozenset()

    def add(self, module: str, kind: str, macs: int) -> None:
        """Book ``macs`` of ``kind`` on ``module``."""
        per_kind = self.by_module.setdefault(module, defaultdict(int))
        per_kind[kind] += int(macs)

    def by_kind(self) -> dict[str, int]:
        """Total MACs per kind (every kind of :data:`KINDS`, zeros included)."""
        out = {k: 0 for k in KINDS}
        for per_kind in self.by_module.values():
            for k, v in per_kind.items():
                out[k] += v
        return out

    def total(self, convention: str = "paper") -> int:
        """Total MACs of the traced pass under ``convention``."""
        kinds = _convention_kinds(convention)
        return sum(v for k, v in self.by_kind().items() if k in kinds)

    def per_module(self, convention: str = "paper", depth: Optional[int] = None) -> dict[str, int]:
        """MACs per module under ``convention``; with ``depth``, per row of :func:`count_parameters`."""
        kinds = _convention_kinds(convention)
        out: dict[str, int] = defaultdict(int)
        for name, per_kind in self.by_module.items():
            key = row_key(name, depth, self.leaf_modules) if depth else name
            out[key] += sum(v for k, v in per_kind.items() if k in kinds)
        return dict(out)


def _convention_kinds(convention: str) -> tuple[str, ...]:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown FLOP convention '{convention}'; expected one of {', '.join(CONVENTIONS)}")
    return CONVENTIONS[convention]


def infer_frames(example_inputs: Sequence[Any]) -> int:
    """Frames in a model input: the first tensor's ``(B, T, 3, H, W)`` -> B*T,
    ``(B, C_clips, T, 3, H, W)`` -> B*C_clips*T, ``(N, C, H, W)`` -> N, anything else 1."""
    for x in example_inputs:
        if isinstance(x, Tensor):
            return math.prod(x.shape[:-3]) if x.dim() >= 4 else 1
    return 1


def _seq_len(x: Tensor, batch_first: bool) -> tuple[int, int]:
    """``(batch, length)`` of an MHA input: ``(N, L, E)`` / ``(L, N, E)`` or unbatched ``(L, E)``."""
    if x.dim() == 2:
        return 1, x.shape[0]
    return (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])


def _mha_macs(module: nn.MultiheadAttention, args: tuple, kwargs: dict) -> tuple[int, int]:
    """(projection MACs, attention-product MACs) of one ``nn.MultiheadAttention`` call."""
    names = ("query", "key", "value")
    q, k, v = (args[i] if len(args) > i else kwargs[n] for i, n in enumerate(names))
    n, lq = _seq_len(q, module.batch_first)
    _, lk = _seq_len(k, module.batch_first)
    e = module.embed_dim
    proj = n * (lq * e * e + lk * e * module.kdim + lk * e * module.vdim + lq * e * e)  # q, k, v in; out
    products = n * (lq * lk * e + lq * lk * e)  # q.k^T over all heads, attn.v
    return proj, products


def _module_macs(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> list[tuple[str, int]]:
    """``[(kind, MACs)]`` of one call of a counted module type (see :data:`_COUNTED`)."""
    if isinstance(module, nn.MultiheadAttention):
        proj, products = _mha_macs(module, args, kwargs)
        return [("linear", proj), ("attention", products)]
    out = output[0] if isinstance(output, (tuple, list)) else output
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        x = args[0]  # (N, C_in, *spatial)
        return [("conv", x.numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size))]
    if isinstance(module, nn.modules.conv._ConvNd):
        return [("conv", out.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size))]
    if isinstance(module, nn.Linear):
        return [("linear", args[0].numel() * module.out_features)]  # rows * in * out
    if isinstance(module, nn.LayerNorm):
        ops = _LAYERNORM_OPS_PER_ELEMENT if module.elementwise_affine else _LAYERNORM_OPS_PER_ELEMENT - 1
        return [("layernorm", ops * out.numel())]
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return [("batchnorm", out.numel())]
    raise TypeError(f"no MAC rule for {type(module).__name__}")


_COUNTED: tuple[type, ...] = (nn.MultiheadAttention, nn.modules.conv._ConvNd, nn.Linear, nn.LayerNorm,
                              nn.modules.batchnorm._BatchNorm)
_MATMULS = {torch.matmul, Tensor.matmul, Tensor.__matmul__, torch.mm, Tensor.mm, torch.bmm, Tensor.bmm}
_ADD_MATMULS = {torch.baddbmm, Tensor.baddbmm, torch.addmm, Tensor.addmm}  # (input, a, b)
_UNCOUNTED_FUNCS = {torch.einsum, F.conv1d, F.conv2d, F.conv3d, F.layer_norm, F.batch_norm, F.group_norm}


class _Tracer(TorchFunctionMode):
    """Books module MACs from hooks and functional MACs from ``__torch_function__``."""

    def __init__(self, model: nn.Module, result: MacCount) -> None:
        super().__init__()
        self.result = result
        self.stack: list[str] = []
        self.counting = 0  # > 0 while a counted module runs: its inner functional ops are booked already
        self.param_names = {p.untyped_storage().data_ptr(): n for n, p in model.named_parameters()}
        self.handles: list[Any] = []
        names: dict[int, str] = {}
        for name, module in model.named_modules():
            if id(module) in names:
                continue  # a shared module is booked under its first name
            names[id(module)] = name
            self.handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
            self.handles.append(module.register_forward_hook(self._post_hook(name), with_kwargs=True))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _pre_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            self.stack.append(name)
            self.counting += isinstance(module, _COUNTED)
        return hook

    def _post_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            self.stack.pop()
            if isinstance(module, _COUNTED):
                self.counting -= 1
                if self.counting == 0:  # an outer counted module books everything inside it
                    for kind, macs in _module_macs(module, args, kwargs, output):
                        self.result.add(name, kind, macs)
            elif (not self.counting and not any(True for _ in module.children())
                  and any(True for _ in module.parameters(recurse=False))
                  and not isinstance(module, nn.Embedding)):
                self._uncounted(f"module {name} ({type(module).__name__})")
        return hook

    def _uncounted(self, what: str) -> None:
        if what not in self.result.uncounted:
            self.result.uncounted.append(what)
            logger.warning("MAC count: %s is not counted", what)

    def _param_name(self, t: Any) -> Optional[str]:
        """Name of the parameter whose storage ``t`` shares (a view, ``.t()``), else None."""
        if not isinstance(t, Tensor) or t.numel() == 0:
            return None
        return self.param_names.get(t.untyped_storage().data_ptr())

    def _book(self, kind: str, macs: int, name: Optional[str] = None) -> None:
        self.result.add(name or (self.stack[-1] if self.stack else ""), kind, macs)

    def __torch_function__(self, func: Callable, types: Iterable, args: tuple = (), kwargs: Optional[dict] = None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.counting:
            return out
        if func in _MATMULS or func in _ADD_MATMULS or func is Tensor.__rmatmul__:
            a, b = args[-2:] if func in _ADD_MATMULS else args[:2]
            if func is Tensor.__rmatmul__:
                a, b = b, a  # other @ self
            k = a.shape[-1] if isinstance(a, Tensor) and a.dim() else 1
            param = self._param_name(a) or self._param_name(b)
            self._book("param_matmul" if param else "attention", out.numel() * k, param)  # n*m*k per batch
        elif func is F.linear:
            x, weight = args[0], args[1] if len(args) > 1 else kwargs["weight"]
            self._book("linear", x.numel() * weight.shape[0])  # rows * in * out
        elif func is F.scaled_dot_product_attention:
            q, k, v = args[:3]  # (..., Lq, E), (..., Lk, E), (..., Lk, Ev)
            batch = math.prod(q.shape[:-2])
            self._book("attention", batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1]))
        elif func in _UNCOUNTED_FUNCS:
            self._uncounted(f"torch function {getattr(func, '__name__', func)} "
                            f"in {self.stack[-1] if self.stack else 'the root'}")
        return out


def count_macs(model: nn.Module, example_inputs: Sequence[Any], forward: Optional[Callable[..., Any]] = None,
               frames: Optional[int] = None) -> MacCount:
    """Trace one forward pass (eval mode, no grad) and count its MACs per module and kind.

    Args:
        model: the module whose submodules are hooked.
        example_inputs: positional inputs of ``forward``.
        forward: what to run (default ``model``); e.g. ``model.extract``.
        frames: frames in the input (default :func:`infer_frames`).

    Returns:
        The :class:`MacCount` (both conventions are read from it).
    """
    result = MacCount(frames=frames if frames is not None else infer_frames(example_inputs),
                      leaf_modules=leaf_modules(model))
    tracer = _Tracer(model, result)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), tracer:
            (forward or model)(*example_inputs)
    finally:
        tracer.remove()
        model.train(was_training)
    return result


def count_flops(model: nn.Module, example_inputs: Sequence[Any], convention: str = "paper",
                forward: Optional[Callable[..., Any]] = None, frames: Optional[int] = None) -> dict[str, Any]:
    """MACs ("FLOPs", as the papers) of one forward pass under a convention, and per frame.

    Args:
        model: the model to trace.
        example_inputs: positional inputs of ``forward``; for a video model a clip batch
            ``(B, T, 3, H, W)`` so that ``per_frame`` divides by B*T.
        convention: ``"paper"`` (Conv + Linear + LayerNorm x5, no attention products;
            docs/decisions/vld.md#flop-convention) or ``"full"`` (everything counted; module docstring).
        forward: what to run (default ``model``).
        frames: frames in the input (default :func:`infer_frames`).

    Returns:
        ``{"convention", "macs" (int, whole pass), "frames", "macs_per_frame",
        "gflops_per_frame" (1e9 MACs), "by_kind" (kind -> MACs, this convention's kinds),
        "by_module" (module -> MACs), "uncounted"}``.
    """
    counts = count_macs(model, example_inputs, forward, frames)
    return flops_summary(counts, convention)


def flops_summary(counts: MacCount, convention: str) -> dict[str, Any]:
    """The :func:`count_flops` dictionary of an existing :class:`MacCount`."""
    kinds = _convention_kinds(convention)
    macs = counts.total(convention)
    return {
        "convention": convention,
        "macs": macs,
        "frames": counts.frames,
        "macs_per_frame": macs / counts.frames,
        "gflops_per_frame": macs / counts.frames / 1e9,
        "by_kind": {k: v for k, v in counts.by_kind().items() if k in kinds},
        "by_module": {k: v for k, v in counts.per_module(convention).items() if v},
        "uncounted": list(counts.uncounted),
    }
