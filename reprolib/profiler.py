"""Model profiler: parameters per module and MACs per frame under the papers' conventions.

``python -m reprolib profile [CONFIG] [--profile P] [--set k=v ...]`` builds a config's model
**without weights** (``model.backbone.pretrained=none``, the config's image size; no dataset:
``--num-classes``/``--num-cameras`` default to HITSZ-VCM's 500 and 13), runs one clip through
``model.extract`` and prints a per-module table, both FLOP conventions per frame, and the
papers' reference numbers beside ours.

**Units.** As in the three papers, 1 "FLOP" is one multiply-accumulate (MAC); "G" is 1e9.

**How MACs are counted.** One forward pass is traced by

* forward hooks on the modules that do the arithmetic: ``Conv*d`` (out elements x in/groups
  x kernel), ``ConvTranspose*d``, ``Linear`` (rows x in x out), ``LayerNorm`` (5 per element,
  4 without affine: reference/vld.md 7.3), ``BatchNorm*d`` (1 per element: the inference-time
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
  frame for CLIP ViT-B/16 at 288x144 exactly: 13,956,174,336 MACs (reference/vld.md 7.3). Bare
  parameter matmuls (``proj``) are left out, as vld.md 7.3's exact reconstruction does
  (counting ``proj`` on [CLS] would add 393,216 MACs, below the printed precision).
* ``full``: everything above plus the attention products, the parameter matmuls and BatchNorm
  (14.45 G for the same encoder).
"""
from __future__ import annotations

import argparse
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

__all__ = [
    "CONVENTIONS", "KINDS", "MacCount", "count_parameters", "count_macs", "count_flops",
    "infer_frames", "paper_references", "main",
]

logger = logging.getLogger(__name__)

#: MAC kinds recorded by :func:`count_macs`.
KINDS: tuple[str, ...] = ("conv", "linear", "layernorm", "attention", "param_matmul", "batchnorm")
#: Kinds each convention sums (see the module docstring).
CONVENTIONS: dict[str, tuple[str, ...]] = {
    "paper": ("conv", "linear", "layernorm"),
    "full": KINDS,
}
_LAYERNORM_OPS_PER_ELEMENT = 5  # mean, variance, normalise, scale, shift (reference/vld.md 7.3)


# --------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------


ROOT = "(root)"  # row name of what the root module holds or does itself, when it is a leaf


def _leaf_modules(model: nn.Module) -> frozenset[str]:
    return frozenset(n for n, m in model.named_modules() if not any(True for _ in m.children()))


def _row_key(name: str, depth: int, leaves: frozenset[str]) -> str:
    """Table row of a module or parameter name: a leaf module and its own parameters share one
    row (``neck``, not ``neck.weight``); otherwise the first ``depth`` name components."""
    owner = name.rsplit(".", 1)[0] if "." in name else ""
    base = name if name in leaves or owner not in leaves else owner
    return ".".join(base.split(".")[:depth]) or ROOT


def count_parameters(model: nn.Module, depth: int = 2) -> pd.DataFrame:
    """Parameters per module, grouped by the first ``depth`` components of their names.

    Every parameter lands in exactly one row, so the columns sum to the model's totals: a leaf
    module's parameters form its row (``neck``), a parameter held directly by a module with
    children is its own row (``vit.class_embedding`` at depth 3). Shared (tied) parameters are
    counted once, under their first name.

    Args:
        model: any module.
        depth: name components kept; 1 gives the top-level children.

    Returns:
        DataFrame indexed by module name with columns ``type`` (the module's class, or
        ``Parameter`` for a bare parameter), ``params`` and ``trainable``, in registration order.

    Raises:
        ValueError: ``depth < 1``.
    """
    if depth < 1:
        raise ValueError(f"count_parameters: depth must be >= 1, got {depth}")
    modules = dict(model.named_modules())
    leaves = _leaf_modules(model)
    rows: dict[str, dict[str, Any]] = {}
    for name, p in model.named_parameters():
        key = _row_key(name, depth, leaves)
        if key not in rows:
            module = model if key == ROOT else modules.get(key)
            kind = type(module).__name__ if module is not None else "Parameter"
            rows[key] = {"module": key, "type": kind, "params": 0, "trainable": 0}
        rows[key]["params"] += p.numel()
        rows[key]["trainable"] += p.numel() if p.requires_grad else 0
    columns = ["module", "type", "params", "trainable"]
    return pd.DataFrame(list(rows.values()), columns=columns).set_index("module")


# --------------------------------------------------------------------------------------
# MACs
# --------------------------------------------------------------------------------------


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
            key = _row_key(name, depth, self.leaf_modules) if depth else name
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
                      leaf_modules=_leaf_modules(model))
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
            reference/vld.md 7.3) or ``"full"`` (everything counted; module docstring).
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


# --------------------------------------------------------------------------------------
# Paper reference numbers
# --------------------------------------------------------------------------------------

#: CLIP ViT-B/16 at 288x144 with attention products counted (reference/vld.md 7.3; not printed
#: in the paper, so it is not in reprolib/paper/numbers.csv).
VLD_FULL_GFLOPS_RECONSTRUCTED = 14.45


def _find_clip_encoder(model: nn.Module) -> Optional[tuple[str, nn.Module]]:
    from reprolib.models.clip_backbone import CLIPVisualEncoder

    for name, module in model.named_modules():
        if isinstance(module, CLIPVisualEncoder):
            return name, module
    return None


def paper_references(model: nn.Module, counts: MacCount) -> pd.DataFrame:
    """Our numbers beside the papers' where the papers give them for this architecture.

    Today: the CLIP ViT-B/16 visual encoder at an 18x9 grid (288x144, stride 16), i.e. the
    first :class:`~reprolib.models.clip_backbone.CLIPVisualEncoder` of the model, against the
    "Baseline-ViT" row of VLD Table X (86.17 M parameters without SIE; 13.96 G per frame) and
    vld.md 7.3's 14.45 G with the attention products. Its FLOPs are those booked inside the
    encoder (heads and temporal modules excluded), per frame of ``counts``.

    Returns:
        DataFrame with columns ``what``, ``ours``, ``paper``, ``source`` (empty if none apply).
    """
    from reprolib.paper import reported

    rows: list[dict[str, Any]] = []
    found = _find_clip_encoder(model)
    if found is not None:
        name, enc = found
        if (enc.width, enc.num_blocks, enc.vit.patch_size[0], enc.stride, enc.grid_size) == (768, 12, 16, 16, (18, 9)):
            sie = enc.camera_embed.numel() if enc.camera_embed is not None else 0
            params = sum(p.numel() for p in enc.parameters()) - sie
            inside = (lambda n: n == name or n.startswith(name + ".")) if name else (lambda n: True)
            gflops = {conv: sum(v for n, v in counts.per_module(conv).items() if inside(n)) / counts.frames / 1e9
                      for conv in CONVENTIONS}
            rows += [
                {"what": "CLIP ViT-B/16 visual encoder: params (M, no SIE)", "ours": params / 1e6,
                 "paper": reported("vld", "table10", "Baseline-ViT", "params_M"), "source": "VLD Table X"},
                {"what": "visual encoder: GFLOPs/frame, paper convention", "ours": gflops["paper"],
                 "paper": reported("vld", "table10", "Baseline-ViT", "gflops"), "source": "VLD Table X"},
                {"what": "visual encoder: GFLOPs/frame, full convention", "ours": gflops["full"],
                 "paper": VLD_FULL_GFLOPS_RECONSTRUCTED, "source": "reference/vld.md 7.3 (reconstructed)"},
            ]
    from reprolib.models.cmft import CMFT

    if isinstance(model, CMFT):  # the CCF stack of the configured variant (backbones excluded, as the paper)
        from reprolib.models.cmft.profile import cmft_paper_references

        rows += cmft_paper_references(model).to_dict("records")
    return pd.DataFrame(rows, columns=["what", "ours", "paper", "source"])


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _parse(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="reprolib profile",
        description="Parameters per module and MACs per frame (paper and full conventions) of a config's "
                    "model, built with random weights (no CLIP weights, no dataset needed).")
    p.add_argument("config", nargs="?", default="baseline", help="YAML config (path or name; default: baseline)")
    p.add_argument("--profile", choices=["smoke", "embedded", "paper"], default="paper",
                   help="config profile (default: paper, the papers' 288x144 ViT-B/16)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--num-classes", type=int, default=500, help="training identities (default 500, HITSZ-VCM)")
    p.add_argument("--num-cameras", type=int, default=13,
                   help="camera-table size, largest camid + 1 (default 13, HITSZ-VCM)")
    p.add_argument("--depth", type=int, default=3, help="module-name depth of the table (default 3)")
    return p.parse_args(argv)


def build_profile_model(config: str, profile: str, overrides: list[str], num_classes: int,
                        num_cameras: int) -> tuple[nn.Module, Any]:
    """The model of a config with random weights (``model.backbone.pretrained=none``).

    Returns:
        ``(model, cfg)``.
    """
    from reprolib.config import load_config
    from reprolib.models import create_model

    cfg = load_config(config, profile=profile, overrides=[*overrides, "model.backbone.pretrained=none"])
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes, num_cameras, image_size=(cfg.data.height, cfg.data.width),
                         loss_cfg=cfg.loss, seq_len=cfg.data.seq_len)
    return model, cfg


def example_clip(cfg: Any) -> tuple[Tensor, Tensor, Tensor]:
    """One RGB clip ``(1, T, 3, H, W)`` of a config's input size, with its camid and modality."""
    from reprolib.data.types import Modality

    clip = torch.randn(1, cfg.data.seq_len, 3, cfg.data.height, cfg.data.width)  # (B=1, T, 3, H, W)
    return clip, torch.zeros(1, dtype=torch.long), torch.full((1,), int(Modality.RGB))  # (B,), (B,)


def test_path_parameters(model: nn.Module, example_inputs: Sequence[Any]) -> int:
    """Parameters of the model's parts that the test representation runs through (``model.extract``).

    A top-level submodule counts, whole, when it or any module inside it runs during ``extract``
    (forward hooks): the visual encoder with all its weights, STP, the BNNecks. Training-only parts (ID classifiers,
    prompt learners, the frozen text encoder) do not run at test time and do not count, which is
    how the papers count their models (VLD Table X: ViT-B/16 86.17 M, + STP 88.56 M).
    """
    called: set[str] = set()
    handles = [m.register_forward_pre_hook(lambda mod, args, n=name: called.add(n.split(".")[0]))
               for name, m in model.named_modules() if name]
    try:
        with torch.no_grad():
            model.eval()
            getattr(model, "extract", model)(*example_inputs)
    finally:
        for h in handles:
            h.remove()
    own = sum(p.numel() for p in model.parameters(recurse=False))
    return own + sum(p.numel() for name, m in model.named_children() if name in called for p in m.parameters())


#: Modules whose MACs a paper's FLOP figure leaves out (VLD Table X's 14.08 G counts the STH tokens
#: but not STA: reference/vld.md 7.4, discrepancy 25).
PAPER_FLOP_EXCLUSIONS: tuple[str, ...] = ("stp.sta",)


def config_cost(config: str, profile: str = "paper", overrides: Sequence[str] = (), num_classes: int = 500,
                num_cameras: int = 12) -> dict[str, float]:
    """Test-path parameters (M) and MACs per frame (G) of a config's model, both conventions.

    Args:
        config: config name (``baseline``, ``vld``, ...).
        profile: whose architecture and input size (``paper``: ViT-B/16 at 288x144).
        overrides: extra ``key=value`` overrides.
        num_classes, num_cameras: classifier and camera-table sizes (HITSZ-VCM: 500 identities).

    Returns:
        ``{"params_M", "gflops" (paper convention), "gflops_full", "gflops_paper_accounting"}``:
        the last is the paper convention without :data:`PAPER_FLOP_EXCLUSIONS` (what the papers
        printed; equal to ``gflops`` for models without those modules).
    """
    model, cfg = build_profile_model(config, profile, list(overrides), num_classes, num_cameras)
    inputs = example_clip(cfg)
    counts = count_macs(model, inputs, forward=getattr(model, "extract", model))
    per_frame = {conv: counts.total(conv) / counts.frames / 1e9 for conv in CONVENTIONS}
    excluded = sum(v for name, v in counts.per_module("paper").items()
                   if any(name == p or name.startswith(p + ".") for p in PAPER_FLOP_EXCLUSIONS))
    return {"params_M": test_path_parameters(model, inputs) / 1e6, "gflops": per_frame["paper"],
            "gflops_full": per_frame["full"],
            "gflops_paper_accounting": per_frame["paper"] - excluded / counts.frames / 1e9}


def _unit(macs_per_frame: float) -> tuple[str, float]:
    """``("G", 1e9)`` from 1e9 MACs per frame up, else ``("M", 1e6)`` (TinyCLIP's scale)."""
    return ("G", 1e9) if macs_per_frame >= 1e9 else ("M", 1e6)


def profile_table(model: nn.Module, counts: MacCount, depth: int) -> pd.DataFrame:
    """:func:`count_parameters` joined with FLOPs (MACs) per frame of both conventions, plus a
    ``TOTAL`` row; the FLOP unit (G or M) follows the paper-convention total."""
    table = count_parameters(model, depth)
    unit, scale = _unit(counts.total("paper") / counts.frames)
    for conv in CONVENTIONS:
        per_module = counts.per_module(conv, depth)
        extra = [k for k in per_module if k not in table.index and per_module[k]]  # MACs, no parameters
        for key in extra:
            table.loc[key] = {"type": "", "params": 0, "trainable": 0}
        table[f"{unit}FLOPs/frame {conv}"] = [per_module.get(k, 0) / counts.frames / scale for k in table.index]
    total = table.select_dtypes("number").sum()
    table.loc["TOTAL"] = {"type": "", **total.to_dict()}
    table[["params", "trainable"]] = table[["params", "trainable"]].astype(int)
    return table


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m reprolib profile [CONFIG] [--profile P] [--set k=v] [--num-classes N]
    [--num-cameras C] [--depth D]``: print the per-module table, both conventions per frame and
    the papers' reference numbers. Returns 0."""
    args = _parse(argv)
    model, cfg = build_profile_model(args.config, args.profile, args.overrides, args.num_classes,
                                     args.num_cameras)
    t, h, w = cfg.data.seq_len, cfg.data.height, cfg.data.width
    counts = count_macs(model, example_clip(cfg), forward=getattr(model, "extract", model))

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    pd.set_option("display.width", 200)
    print(f"model '{cfg.model.name}' of config '{args.config}' (profile {args.profile}), "
          f"backbone {cfg.model.backbone.arch} at {h}x{w}, random init; "
          f"num_classes={args.num_classes}, num_cameras={args.num_cameras}")
    print(f"\nparameters per module (depth {args.depth}); MACs per frame of one {t}-frame clip through extract():")
    print(profile_table(model, counts, args.depth).to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\nparameters: {total:,} total, {trainable:,} trainable ({total / 1e6:.2f} M)")
    unit, scale = _unit(counts.total("paper") / counts.frames)
    print(f"FLOPs per frame (1 FLOP = 1 MAC; {unit} = {scale:.0e}):")
    for conv in CONVENTIONS:
        s = flops_summary(counts, conv)
        kinds = ", ".join(f"{k} {v / counts.frames / scale:.4f}" for k, v in s["by_kind"].items() if v)
        print(f"  {conv:<5} {s['macs_per_frame'] / scale:.4f} {unit}  ({s['macs_per_frame']:,.0f} MACs; {kinds})")
    if counts.uncounted:
        print("not counted: " + "; ".join(counts.uncounted))
    refs = paper_references(model, counts)
    if len(refs):
        print("\npaper reference numbers:")
        print(refs.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0
