"""Temporal-fusion heads of VLD Table IV: per-frame features ``(B, T, D)`` -> sequence feature ``(B, D)``.

VLD's Table IV replaces temporal average pooling with Conv1D, Transf and Transf_cls "inspired by
TF-CLIP". VLD's code has none of them; their parameter deltas (+0.04 M, +18.91 M, +18.96 M)
identify them as the ActionCLIP ``visual_prompt`` similarity heads at ``embed_dim = 512`` that
TF-CLIP vendors (docs/decisions/vld.md#v22-table-iv-temporal-heads). Being 512-d, they act on the
per-frame **projected** [CLS] ``z_proj`` (D = the CLIP visual ``output_dim``: 512 at ViT-B/16,
128 for TinyCLIP), the feature L_v2t (paper eq. 5) compares with the text prototypes:

* ``tap`` (:data:`TAPHead`): f = (1/T) sum_t z_t (paper eq. 9's AvgPool).
* ``conv1d`` (:class:`Conv1DHead`): depthwise temporal convolution with a residual,
  f = mean_t(z_t + sum_k w_{c,k} z_{t+k-1,c}), initialised as a temporal shift.
* ``transf`` (:class:`TransfHead`): 6 CLIP-style pre-LN residual attention blocks on the
  frames plus learned frame positions, an outer residual, then the mean over time.
* ``transf_cls`` (:class:`TransfClsHead`): a post-LN ``nn.TransformerEncoder`` over
  ``[cls; z_1..z_T]`` with learned positions; f is the output [cls] token.

**Parameter accounting** (:func:`temporal_head_params`, discrepancy 22). ActionCLIP allocates a
77 x D ``frame_position_embeddings`` table for every non-mean head, but only Transf reads it. The
paper's column counts it exactly where it is *unused* (Conv1D: 77*512 + 3*512 = 40,960;
Transf_cls: 18,919,424 + 39,424 = 18,958,848) and leaves it out where it is used (Transf: the six
blocks, 6 x 3,152,384 = 18,914,304; with the table 18,953,728 = 18.95 M). Our modules hold only
the parameters their forward pass uses (no dead weights for DDP or the optimiser), so
``temporal_head_params`` reproduces the paper's numbers from the module plus that rule.

**FLOPs** (:func:`temporal_head_flops`): MACs of :mod:`reprolib.utils.macs`. At D = 512, T = 6 the
paper convention gives 9,216 MACs per sequence for Conv1D, 113,430,528 (0.019 G per frame) for
Transf and 132,353,536 (0.022 G per frame) for Transf_cls; the paper's "+0.04 G" per frame for
both transformers cannot be reproduced (docs/decisions/vld.md#stp-flops).
"""
from __future__ import annotations

from typing import Optional

import torch
from open_clip.transformer import QuickGELU, Transformer
from torch import Tensor, nn

from reprolib.models.heads import TemporalAvgPool
from reprolib.models.options import check_choice
from reprolib.models.vld.options import TEMPORAL_HEADS
from reprolib.utils.macs import count_macs

__all__ = [
    "TEMPORAL_HEADS", "ACTIONCLIP_CONTEXT_LENGTH", "TAPHead", "Conv1DHead", "TransfHead", "TransfClsHead",
    "build_temporal_head", "temporal_head_params", "temporal_head_flops",
]

#: Rows of ActionCLIP's frame-position table (CLIP's text context length).
ACTIONCLIP_CONTEXT_LENGTH = 77
#: Heads whose ActionCLIP module allocates the 77 x D frame-position table without using it; the
#: paper's parameter column counts it for them (discrepancy 22).
_PAPER_COUNTS_UNUSED_FRAME_POSITION = ("conv1d", "transf_cls")
_INIT_STD = 0.02

#: TAP: the shared :class:`~reprolib.models.heads.TemporalAvgPool` (no parameters).
TAPHead = TemporalAvgPool


def _check_frames(x: Tensor, dim: int, head: str) -> None:
    if x.dim() != 3 or x.shape[-1] != dim:
        raise ValueError(f"{head} expects per-frame features (B, T, {dim}), got {tuple(x.shape)}")


def _init_linear_and_norm(module: nn.Module, truncated: bool) -> None:
    """ActionCLIP's init, applied with ``module.apply``: Linear weights N(0, 0.02^2) (``truncated``:
    cut at +-2 std, TAggregate's variant), Linear biases 0, LayerNorm weight 1 and bias 0.

    ``nn.MultiheadAttention``'s packed ``in_proj`` is not an ``nn.Linear`` and keeps PyTorch's
    xavier-uniform init with zero bias, as in ActionCLIP; its ``out_proj`` is an ``nn.Linear``.
    """
    if isinstance(module, nn.Linear):
        if truncated:
            nn.init.trunc_normal_(module.weight, std=_INIT_STD, a=-2 * _INIT_STD, b=2 * _INIT_STD)
        else:
            nn.init.normal_(module.weight, std=_INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class Conv1DHead(nn.Module):
    """Depthwise temporal convolution with a residual, then the mean over time (Table IV "Conv1D").

    ``y = z + DWConv1d_k3(z)`` along T (zero padding 1, no bias, one 3-tap filter per channel),
    ``f = mean_t y_t``. The filters start as ActionCLIP's temporal shift: the first D/4 channels
    copy frame t-1, the middle D/2 frame t, the last D/4 frame t+1; the residual keeps the input
    frame, so at initialisation the head is 2x TAP up to the shifted channels' boundary frames.

    Args:
        dim: feature width D.
        as_released: reshape ``(B, T, D)`` to ``(B, D, T)`` with a ``view``, as ActionCLIP's
            code does; it scrambles frames and channels, so the convolution is no longer
            per-channel over time (discrepancy 22). Default: a transpose (a true temporal conv).
    """

    def __init__(self, dim: int, as_released: bool = False) -> None:
        super().__init__()
        self.dim = dim
        self.as_released = as_released
        self.conv = nn.Conv1d(dim, dim, kernel_size=3, padding=1, groups=dim, bias=False)
        quarter = dim // 4
        with torch.no_grad():  # temporal-shift init; kernel taps (t-1, t, t+1)
            self.conv.weight.zero_()  # (D, 1, 3)
            self.conv.weight[:quarter, 0, 0] = 1.0
            self.conv.weight[quarter:quarter + dim // 2, 0, 1] = 1.0
            self.conv.weight[dim - quarter:, 0, 2] = 1.0

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, D)`` frame features -> ``(B, D)``."""
        _check_frames(x, self.dim, "Conv1DHead")
        b, t, d = x.shape
        z = x.reshape(b, d, t) if self.as_released else x.transpose(1, 2)  # (B, D, T)
        y = self.conv(z).transpose(1, 2)  # (B, T, D)
        return (x + y).mean(dim=1)  # (B, D)


class TransfHead(nn.Module):
    """CLIP-style temporal transformer with an outer residual, then the mean (Table IV "Transf").

    ``u = z + P[:T]`` (learned frame positions, N(0, 0.02^2)), ``v = Blocks(u)`` with
    ``num_layers`` pre-LN residual attention blocks (``x + MHA(LN(x))``, ``x + MLP(LN(x))``,
    MLP D -> 4D -> D with QuickGELU, no mask, no dropout; open_clip's CLIP block), then the outer
    residual on the position-free input and TAP: ``f = mean_t(v_t + z_t)``. Init as ActionCLIP:
    Linear N(0, 0.02^2) with zero biases, LayerNorm (1, 0) (the LN epsilon is CLIP's 1e-5, not
    ActionCLIP's 1e-12).

    The frame positions are used, as in ActionCLIP/TF-CLIP's forward (without them the head is a
    set function and ignores the frame order); the paper's +18.91 M leaves them out
    (:func:`temporal_head_params`, discrepancy 22). ``frame_position=False`` drops them: the
    head is then exactly the 6 x 3,152,384 parameters the paper counts.

    Args:
        dim: feature width D.
        num_layers: residual attention blocks (6).
        heads: attention heads (8).
        frame_position: learn the 77 x D frame-position table (ActionCLIP) or use none.
    """

    def __init__(self, dim: int, num_layers: int = 6, heads: int = 8, frame_position: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.frame_position = (nn.Parameter(torch.empty(ACTIONCLIP_CONTEXT_LENGTH, dim))  # (77, D)
                               if frame_position else None)
        self.transformer = Transformer(dim, num_layers, heads, mlp_ratio=4.0, act_layer=QuickGELU, batch_first=True)
        self.apply(lambda m: _init_linear_and_norm(m, truncated=False))
        if self.frame_position is not None:
            nn.init.normal_(self.frame_position, std=_INIT_STD)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, D)`` frame features (T <= 77) -> ``(B, D)``."""
        _check_frames(x, self.dim, "TransfHead")
        t = x.shape[1]
        u = x
        if self.frame_position is not None:
            if t > ACTIONCLIP_CONTEXT_LENGTH:
                raise ValueError(f"TransfHead has {ACTIONCLIP_CONTEXT_LENGTH} frame positions, got T={t}")
            u = x + self.frame_position[:t].to(x.dtype)  # (B, T, D)
        v = self.transformer(u)  # (B, T, D)
        return (v + x).mean(dim=1)  # (B, D)


class TransfClsHead(nn.Module):
    """Transformer encoder over ``[cls; frames]``; the output [cls] is the feature (Table IV "Transf_cls").

    ActionCLIP's ``TAggregate``: ``u = [c; z_1; ..; z_T] + P`` (learned token c and positions
    ``P (T+1, D)``, both truncated N(0, 0.02^2)), ``num_layers`` ``nn.TransformerEncoderLayer``
    (post-LN ``LN(x + Drop(MHA(x)))``, ``LN(x + Drop(FF(x)))``, FF D -> 4D -> D with ReLU,
    dropout 0.1 as PyTorch's default that TAggregate keeps), a final LayerNorm, ``f = u'_0``.
    No outer residual. Init: Linear truncated N(0, 0.02^2) with zero biases, LayerNorm (1, 0).
    The frame order reaches the output only through ``P``.

    Args:
        dim: feature width D.
        seq_len: frames T (``P`` has T + 1 rows, so clips must have exactly T frames).
        num_layers: encoder layers (6).
        heads: attention heads (8).
        dropout: the encoder layers' dropout (0.1).
    """

    def __init__(self, dim: int, seq_len: int, num_layers: int = 6, heads: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.dim, self.seq_len = dim, seq_len
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=dropout)  # (L, B, D)
        # sequence-first layout: never PyTorch's fused fast path, so the profiler sees every module
        self.encoder = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.cls_token = nn.Parameter(torch.empty(dim))  # (D,)
        self.pos_embed = nn.Parameter(torch.empty(seq_len + 1, dim))  # (T + 1, D)
        self.apply(lambda m: _init_linear_and_norm(m, truncated=True))
        for p in (self.cls_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=_INIT_STD, a=-2 * _INIT_STD, b=2 * _INIT_STD)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, D)`` frame features (T = ``seq_len``) -> ``(B, D)``."""
        _check_frames(x, self.dim, "TransfClsHead")
        b, t, d = x.shape
        if t != self.seq_len:
            raise ValueError(f"TransfClsHead was built for clips of data.seq_len={self.seq_len} frames, got {t}")
        cls = self.cls_token.to(x.dtype).expand(b, 1, d)  # (B, 1, D)
        u = torch.cat([cls, x], dim=1) + self.pos_embed.to(x.dtype)  # (B, T + 1, D)
        u = self.encoder(u.transpose(0, 1))  # (T + 1, B, D)
        return u[0]  # (B, D)


def build_temporal_head(name: str, dim: int, seq_len: Optional[int], num_layers: int = 6, heads: int = 8, *,
                        conv1d_as_released: bool = False, transf_frame_position: bool = True) -> nn.Module:
    """The Table IV temporal head ``name`` for D-dimensional frame features.

    Args:
        name: ``tap`` | ``conv1d`` | ``transf`` | ``transf_cls`` (``model.extra.temporal_head``).
        dim: feature width D (512 at ViT-B/16: the projected [CLS]).
        seq_len: frames per clip T (``data.seq_len``); required by ``transf_cls``.
        num_layers: blocks of ``transf`` / encoder layers of ``transf_cls`` (6).
        heads: attention heads of ``transf`` / ``transf_cls`` (8).
        conv1d_as_released: :class:`Conv1DHead` ``as_released`` (ActionCLIP's view reshape).
        transf_frame_position: :class:`TransfHead` ``frame_position``.

    Returns:
        A module mapping ``(B, T, D)`` to ``(B, D)``.

    Raises:
        ValueError: unknown ``name``, ``heads`` not dividing ``dim``, or ``transf_cls`` without ``seq_len``.
    """
    check_choice("model.extra.temporal_head", name, TEMPORAL_HEADS, "vld")
    if name in ("transf", "transf_cls") and dim % heads:
        raise ValueError(f"model.extra.temporal_head={name!r}: {heads} heads do not divide the feature width {dim}")
    if name == "tap":
        return TAPHead()
    if name == "conv1d":
        return Conv1DHead(dim, as_released=conv1d_as_released)
    if name == "transf":
        return TransfHead(dim, num_layers, heads, frame_position=transf_frame_position)
    if seq_len is None or seq_len < 1:
        raise ValueError("model.extra.temporal_head='transf_cls' needs the clip length (its T + 1 position "
                         f"embeddings): create_model(..., seq_len=cfg.data.seq_len); got seq_len={seq_len}")
    return TransfClsHead(dim, seq_len, num_layers, heads)


def temporal_head_params(name: str, dim: int = 512, seq_len: int = 6, num_layers: int = 6, heads: int = 8) -> int:
    """Parameters of a temporal head as VLD Table IV counts them (discrepancy 22).

    The head's own parameters, without Transf's (used) frame positions, plus the 77 x D
    frame-position table that ActionCLIP allocates but does not use for Conv1D and Transf_cls.
    At D = 512, T = 6: tap 0, conv1d 40,960, transf 18,914,304, transf_cls 18,958,848.

    Args:
        name: a :data:`TEMPORAL_HEADS` name.
        dim: feature width D.
        seq_len: frames T (Transf_cls's position embedding has T + 1 rows).
        num_layers: transformer depth.
        heads: attention heads.

    Returns:
        The parameter count of the paper's Params column (delta over TAP).
    """
    with torch.device("meta"):  # shapes only, no memory
        head = build_temporal_head(name, dim, seq_len, num_layers, heads, transf_frame_position=False)
    own = sum(p.numel() for p in head.parameters())
    unused = ACTIONCLIP_CONTEXT_LENGTH * dim if name in _PAPER_COUNTS_UNUSED_FRAME_POSITION else 0
    return own + unused


def temporal_head_flops(name: str, dim: int = 512, seq_len: int = 6, convention: str = "paper",
                        num_layers: int = 6, heads: int = 8) -> int:
    """MACs of one T-frame sequence through a temporal head (:mod:`reprolib.utils.macs` conventions).

    Divide by ``seq_len`` for the per-frame figure of Table IV's FLOPs column.

    Args:
        name: a :data:`TEMPORAL_HEADS` name.
        dim: feature width D.
        seq_len: frames T.
        convention: ``"paper"`` (Conv + Linear + LayerNorm x5) or ``"full"`` (also the
            attention products).
        num_layers: transformer depth.
        heads: attention heads.

    Returns:
        MACs ("FLOPs" as the papers) of one sequence, ``(1, T, D) -> (1, D)``.
    """
    head = build_temporal_head(name, dim, seq_len, num_layers, heads)
    return count_macs(head, (torch.zeros(1, seq_len, dim),), frames=seq_len).total(convention)
