"""Cross-modal Cross-scale Fusion (CCF, CMFT section 3.3.2, eqs. 4-6) and the Table 2 baselines.

One CCF at stage s takes the two streams' maps ``Z_1^s`` (RGB) and ``Z_2^s`` (IR), each flattened
to tokens ``(M, N_s, C_s)`` with M = B*T frame pairs (frame t of the RGB clip paired with frame
t of the IR clip; attention runs per frame over the N_s = h_s*w_s cells, docs/decisions/cmft.md#ccf-design),
and the previous stage's fused tokens ``F^{s-1}`` when there is one:

1. cross-scale alignment of ``F^{s-1}`` (the paper is silent; #4): average-pool its grid down to
   ``(h_s, w_s)`` when it is larger, and match channels when ``2 d_{s-1} != C_s`` (only
   Conv2 -> Conv3, 128 -> 256 on ResNet-50): ``align="repeat"`` tiles the channels (no
   parameters; the default because only it reproduces the paper's S2 = 33.40 M, #3),
   ``align="linear"`` is a token-wise Linear (docs/decisions/cmft.md#c4-shapes-in-eq-6) (S2 = 33.43 M). Result ``G^s``;
2. eq. 6, modulation: ``Z~_i = Z_i * G`` (``modulation="product"``, literal, default; #4), or
   ``Z_i * (1 + G)`` / ``Z_i * sigmoid(G)`` as options (G is LayerNorm output, so the literal
   product flips signs; docs/decisions/cmft.md#ccf-design). ``Z~_i = Z_i`` at the first CCF;
3. final stage only: a pair of FC layers ``C_6 -> d`` (d = 1024 on ResNet-50), one per modality,
   after the product (``F^5`` has 2*1024 = C_6 channels) and before the attention;
4. eq. 5 (post-LN; the printed bracketing is garbled, and eq. 2's ``K^N`` is ``K^T``):
   ``z_12 = LN(MHA_a(Q=Z~_1, K=Z~_2, V=Z~_2) + Z~_1)`` and ``z_21 = LN(MHA_b(Q=Z~_2, K=Z~_1,
   V=Z~_1) + Z~_2)``, 8 heads, no FFN, no positional encoding, no dropout (#22); L layers per
   branch (default 1, #19), each feeding ``(z_12, z_21)`` to the next;
5. eq. 4: ``F^s = LN(FC_{2d->2d}([z_12 || z_21]) + [z_12 || z_21])``, ``(M, N_s, 2d)``.

Variants (``model.extra.variant``; docs/decisions/cmft.md#ccf-variants, discrepancies #2 and #14):

* ``S2`` ... ``S6``: dual-branch CCFs at Conv_i ... Conv6, cascaded (``S5``, CCFs at layer3 and
  layer4, is the final model, #2);
* ``D6F``: one dual-branch CCF at Conv6, the same network as ``S6`` (#2);
* ``S6F``: one single-branch CCF at Conv6 (RGB queries attend to IR; output ``z_12``, d-wide;
  no second MHSA, no fusion FC; #14). Its LN is parameter-free by default
  (``single_branch_ln_affine=False``): with an affine LN the stack has 8,396,800 parameters
  (8.40 M), without it 8,394,752 (8.39 M, the paper; #3);
* Table 2 baselines (#21): ``score_avg`` and ``score_mul`` (:class:`ScoreFusion`: no fused
  feature, a fused posterior) and ``concat`` (:class:`ConcatFusion`: ``FC_{2C->C}`` of the two
  pooled stream features).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.models.cmft.options import CCF_VARIANTS, VARIANTS, CCFOptions
from reprolib.models.cmft.resnet import TAPS, StageSpec
from reprolib.models.options import check_choice

__all__ = [
    "CrossAttention", "CCF", "CCFCascade", "ScoreFusion", "ConcatFusion", "build_fusion", "variant_layout",
]

def variant_layout(variant: str) -> tuple[tuple[str, ...], bool]:
    """Taps carrying a CCF and whether the CCFs are dual-branch, for a CCF variant.

    ``S5`` -> ``(("conv5", "conv6"), True)``; ``D6F`` = ``S6`` -> ``(("conv6",), True)``;
    ``S6F`` -> ``(("conv6",), False)``.
    """
    check_choice("model.extra.variant", variant, CCF_VARIANTS, "cmft (CCF)")
    if variant in ("S6F", "D6F"):
        return ("conv6",), variant == "D6F"
    return TAPS[TAPS.index(f"conv{variant[1]}"):], True


def _modulate(z: Tensor, g: Tensor, mode: str) -> Tensor:
    """Eq. 6: ``z * g`` (literal), ``z * (1 + g)`` or ``z * sigmoid(g)``."""
    if mode == "product":
        return z * g
    if mode == "one_plus":
        return z * (1.0 + g)
    return z * torch.sigmoid(g)


class CrossAttention(nn.Module):
    """One branch layer of eq. 5: ``LN(MHA(Q=q, K=kv, V=kv) + q)``.

    Args:
        dim: token width d.
        num_heads: heads (d_h = d / heads).
        ln_affine: learnable LN scale and shift.
    """

    def __init__(self, dim: int, num_heads: int, ln_affine: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"CCF: width {dim} is not divisible by model.extra.num_heads={num_heads}")
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm = nn.LayerNorm(dim, elementwise_affine=ln_affine)

    def forward(self, q: Tensor, kv: Tensor) -> Tensor:
        """``(M, N, d)`` queries attend to ``(M, N, d)`` keys/values; returns ``(M, N, d)``."""
        return self.norm(self.attn(q, kv, kv, need_weights=False)[0] + q)  # (M, N, d)


class CCF(nn.Module):
    """One cross-modal cross-scale fusion stage (eqs. 4-6; see the module docstring).

    Args:
        spec: this stage's tap (channels C_s).
        prev_dim: width of the previous CCF's fused tokens, or ``None`` for the first CCF.
        dual: two branches + fusion FC (eq. 4), or one branch (S6F).
        reduce_to: d of the FC pair applied before the attention (final stage), or ``None``.
        options: :class:`CCFOptions`.
    """

    def __init__(self, spec: StageSpec, prev_dim: Optional[int], dual: bool, reduce_to: Optional[int],
                 options: CCFOptions) -> None:
        super().__init__()
        c = spec.channels
        self.name, self.dual, self.modulation = spec.name, dual, options.modulation
        self.align: Optional[nn.Module] = None
        self.repeat = 1
        if prev_dim is not None and prev_dim != c:
            if options.align == "linear":
                self.align = nn.Linear(prev_dim, c)
            elif c % prev_dim == 0:
                self.repeat = c // prev_dim
            else:
                raise ValueError(f"CCF at {spec.name}: previous fused width {prev_dim} does not divide C={c}; "
                                 "use model.extra.align=linear")
        d = reduce_to or c
        self.reduce_rgb = nn.Linear(c, d) if reduce_to else nn.Identity()
        self.reduce_ir = nn.Linear(c, d) if reduce_to else nn.Identity()
        affine = dual or options.single_branch_ln_affine
        self.branch_rgb = nn.ModuleList(CrossAttention(d, options.num_heads, affine)
                                        for _ in range(options.num_layers))
        self.branch_ir = nn.ModuleList(CrossAttention(d, options.num_heads) for _ in range(options.num_layers)) \
            if dual else None
        self.fuse = nn.Linear(2 * d, 2 * d) if dual else None
        self.fuse_norm = nn.LayerNorm(2 * d) if dual else None
        self.out_dim = 2 * d if dual else d

    def _aligned(self, prev: Tensor, prev_grid: tuple[int, int], grid: tuple[int, int]) -> Tensor:
        """``G^s``: ``F^{s-1}`` pooled to this grid and matched to C_s channels, ``(M, N_s, C_s)``."""
        if prev_grid != grid:
            m, _, cp = prev.shape
            fmap = prev.transpose(1, 2).reshape(m, cp, *prev_grid)  # (M, C', h', w')
            prev = F.adaptive_avg_pool2d(fmap, grid).flatten(2).transpose(1, 2)  # (M, N_s, C')
        if self.align is not None:
            return self.align(prev)  # (M, N_s, C_s)
        return prev.repeat(1, 1, self.repeat) if self.repeat > 1 else prev  # (M, N_s, C_s)

    def forward(self, z_rgb: Tensor, z_ir: Tensor, prev: Optional[Tensor] = None,
                prev_grid: Optional[tuple[int, int]] = None) -> Tensor:
        """Fuse one stage.

        Args:
            z_rgb: ``(M, C_s, h, w)`` RGB tap (M = B*T frames).
            z_ir: ``(M, C_s, h, w)`` IR tap.
            prev: ``(M, N', 2d')`` fused tokens of the previous CCF, or ``None``.
            prev_grid: ``(h', w')`` of ``prev``.

        Returns:
            ``(M, h*w, out_dim)`` fused tokens ``F^s`` (``z_12`` for a single branch).
        """
        grid = tuple(z_rgb.shape[-2:])
        z1 = z_rgb.flatten(2).transpose(1, 2)  # (M, N, C)
        z2 = z_ir.flatten(2).transpose(1, 2)  # (M, N, C)
        if prev is not None:
            g = self._aligned(prev, prev_grid, grid)  # (M, N, C)
            z1, z2 = _modulate(z1, g, self.modulation), _modulate(z2, g, self.modulation)  # eq. 6
        z1, z2 = self.reduce_rgb(z1), self.reduce_ir(z2)  # (M, N, d)
        if self.branch_ir is None:
            for layer in self.branch_rgb:
                z1 = layer(z1, z2)  # (M, N, d), eq. 5 with (i, j) = (1, 2)
            return z1
        for layer_rgb, layer_ir in zip(self.branch_rgb, self.branch_ir):
            z1, z2 = layer_rgb(z1, z2), layer_ir(z2, z1)  # (M, N, d) each, eq. 5
        u = torch.cat([z1, z2], dim=-1)  # (M, N, 2d)
        return self.fuse_norm(self.fuse(u) + u)  # (M, N, 2d), eq. 4


class CCFCascade(nn.Module):
    """The CMFT fusion path: CCFs at consecutive taps, each modulated by the previous one.

    Args:
        specs: the stream's taps (:func:`~reprolib.models.cmft.resnet.stage_specs`).
        variant: one of :data:`CCF_VARIANTS`.
        options: :class:`CCFOptions`.
    """

    kind = "feature"

    def __init__(self, specs: Sequence[StageSpec], variant: str, options: CCFOptions = CCFOptions()) -> None:
        super().__init__()
        options.validate()
        taps, dual = variant_layout(variant)
        by_name = {s.name: s for s in specs}
        final = by_name["conv6"].channels
        final_dim = options.final_dim or final // 2
        self.stages = nn.ModuleDict()
        prev_dim: Optional[int] = None
        for name in taps:
            ccf = CCF(by_name[name], prev_dim, dual, final_dim if name == "conv6" else None, options)
            self.stages[name] = ccf
            prev_dim = ccf.out_dim
        self.taps: tuple[str, ...] = taps
        self.out_dim: int = prev_dim

    def forward(self, taps_rgb: dict[str, Tensor], taps_ir: dict[str, Tensor]) -> Tensor:
        """``{tap: (M, C_s, h_s, w_s)}`` of both streams -> final fused tokens ``(M, N_6, out_dim)``."""
        prev, prev_grid = None, None
        for name, ccf in self.stages.items():
            prev = ccf(taps_rgb[name], taps_ir[name], prev, prev_grid)  # (M, N_s, D_s)
            prev_grid = tuple(taps_rgb[name].shape[-2:])
        return prev


class ScoreFusion(nn.Module):
    """Score-level fusion of the two streams' ID posteriors (Table 2 baselines; #21).

    Args:
        mode: ``average``: p = (softmax_R + softmax_I) / 2; ``product``: p proportional to
            softmax_R * softmax_I (renormalised).
    """

    kind = "score"

    def __init__(self, mode: str) -> None:
        super().__init__()
        check_choice("ScoreFusion.mode", mode, ("average", "product"), "cmft")
        self.mode = mode

    def forward(self, logits_rgb: Tensor, logits_ir: Tensor) -> Tensor:
        """``(B, K)`` logits of each stream -> ``(B, K)`` log-probabilities of the fused posterior."""
        log_r = F.log_softmax(logits_rgb.float(), dim=1)  # (B, K)
        log_i = F.log_softmax(logits_ir.float(), dim=1)  # (B, K)
        if self.mode == "average":
            return torch.logsumexp(torch.stack([log_r, log_i]), dim=0) - math.log(2.0)  # (B, K)
        return F.log_softmax(log_r + log_i, dim=1)  # (B, K)

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


class ConcatFusion(nn.Module):
    """Feature-concatenation fusion (Table 2): ``Z^Fusion = FC_{2C->C}([z_R || z_I])``.

    Args:
        dim: C, the width of each pooled stream feature.
    """

    kind = "feature"

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(2 * dim, dim)
        self.out_dim = dim

    def forward(self, z_rgb: Tensor, z_ir: Tensor) -> Tensor:
        """``(B, C)`` + ``(B, C)`` -> ``(B, C)``."""
        return self.fc(torch.cat([z_rgb, z_ir], dim=1))  # (B, C)


def build_fusion(variant: str, specs: Sequence[StageSpec], options: CCFOptions = CCFOptions()) -> nn.Module:
    """The fusion module of ``model.extra.variant`` for a stream with taps ``specs``.

    Returns:
        :class:`CCFCascade` (S2..S6, D6F, S6F), :class:`ScoreFusion` (``score_avg``,
        ``score_mul``) or :class:`ConcatFusion` (``concat``); each has ``kind``
        (``"feature"`` | ``"score"``) and, for features, ``out_dim``.
    """
    check_choice("model.extra.variant", variant, VARIANTS, "cmft")
    if variant == "score_avg":
        return ScoreFusion("average")
    if variant == "score_mul":
        return ScoreFusion("product")
    if variant == "concat":
        return ConcatFusion(specs[-1].channels)
    return CCFCascade(specs, variant, options)
