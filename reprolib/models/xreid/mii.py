"""X-ReID's Multi-granularity Information Interaction (MII): SII, LII, their fusion and CII.

Everything here runs on the **last-layer tokens after ln_post** of the CLIP encoder
(:meth:`reprolib.models.clip_backbone.CLIPVisualEncoder.head`), laid out per clip as
``cls (B, T, D)`` and ``patches (B, T, N, D)`` (docs/decisions/xreid.md#where-mii-attaches).

* :class:`CrossAttentionBlock` (the released code's "BlockRotation", docs/decisions/xreid.md#cross-attention-block):
  one query token per sample attends to a set of key/value tokens; pre-LN residual block
  ``c = q + MHCA(LN1(q), Y)``, ``c = c + FFN(LN2(c))`` with an extra LayerNorm on the **key**
  path only (values are not normalised), q/k/v without bias, output projection with bias,
  FFN D -> 4D -> D with exact-erf GELU, no dropout, PyTorch's default init. At D = 768 it has
  exactly 7,087,104 parameters (:func:`cross_attention_block_params`).
* :class:`ShortTermInteraction` (SII, paper eqs. 5-6): the patch tokens of frame t exchange
  channel quarters with frames t -/+ S (:func:`channel_shift`, out of place, discrepancy D10)
  and the **original** [CLS] of frame t queries them through ``depth`` stacked blocks
  (2 in the released code, 1 in the paper: D3).
* :class:`LongTermInteraction` (LII, paper eq. 7): the [CLS] of frame tau queries the
  **unshifted** patches of frame ``(tau + S) mod T`` (S = 2 in the paper; S = 0 is Figure 5's
  "no exchange"; S = -1 is the unreleased code's pairing) through one block (D1).
* :func:`fuse_branches` (paper eq. 8): ``O = (BN_S(o^SII) + BN_L(o^LII)) / 2`` or the
  concatenation the commented-out code used (D16).
* :class:`CrossModalityInteraction` (CII, paper section "Cross-Modality Information
  Interaction"; no released code, D2/D22/D23): for each frame t of the same-identity clip of
  the **other** modality, the token sequence ``[O_bar ; z_t^{p,other}]`` ((N + 1) tokens, a token
  concatenation, D23) goes through an MHSA + FFN block whose token-0 output is read out; TAP
  over t gives O_CMII. See :class:`ReadoutAttentionBlock` for the two readout variants and why
  the default differs from the literal residual block (it has a trivial zero-loss solution).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.models.attention import multihead_attention
from reprolib.models.xreid.options import CII_SHARING

__all__ = [
    "FeedForward", "CrossAttentionBlock", "ReadoutAttentionBlock", "ShortTermInteraction",
    "LongTermInteraction", "CrossModalityInteraction", "channel_shift", "lii_partner_frames",
    "fuse_branches", "cross_attention_block_params",
]

def cross_attention_block_params(dim: int, mlp_ratio: int = 4) -> int:
    """Parameter count of one :class:`CrossAttentionBlock` (7,087,104 at D = 768).

    Three LayerNorms (2D each), q/k/v (D^2 each, no bias), output projection (D^2 + D) and the
    FFN (2 * mlp_ratio * D^2 + mlp_ratio * D + D); docs/decisions/xreid.md#parameter-counts.
    """
    hidden = mlp_ratio * dim
    return 3 * 2 * dim + 3 * dim * dim + (dim * dim + dim) + (dim * hidden + hidden) + (hidden * dim + dim)


class FeedForward(nn.Sequential):
    """Linear D -> hidden (bias), exact-erf GELU, Linear hidden -> D (bias); no dropout."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class CrossAttentionBlock(nn.Module):
    """Pre-LN cross-attention block with one query token per sample (docs/decisions/xreid.md#cross-attention-block).

    ``c = q + W_o softmax((W_q LN1(q)) (W_k LN_y(Y))^T / sqrt(d_h)) (W_v Y) + b_o``;
    ``out = c + FFN(LN2(c))``. Keys are normalised by their own LayerNorm, values are not.

    Args:
        dim: token width D.
        heads: attention heads (12 at D = 768; head dim D / heads).
        mlp_ratio: FFN hidden width / D.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"MII block width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm_q = nn.LayerNorm(dim)
        self.norm_k = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, mlp_ratio * dim)

    def forward(self, query: Tensor, tokens: Tensor) -> Tensor:
        """Attend ``(N, D)`` queries to ``(N, L, D)`` key/value tokens; returns ``(N, D)``."""
        q = self.q(self.norm_q(query)).unsqueeze(1)  # (N, 1, D)
        attn = multihead_attention(q, self.k(self.norm_k(tokens)), self.v(tokens), self.heads)  # (N, 1, D)
        c = query + self.proj(attn.squeeze(1))  # (N, D)
        return c + self.ffn(self.norm_ffn(c))  # (N, D)


class ReadoutAttentionBlock(nn.Module):
    """CII's MHSA + FFN block over ``[x_0 ; Y]``, of which only token 0's output is read.

    A pre-LN ViT block (one LN before attention, one before the FFN; qkv without bias, output
    projection with bias, FFN D -> 4D -> D, no dropout: the style of the released, unused
    ``ReUnit``, D22). Token 0 is the only output used, and in a single block the output rows
    are independent, so only token 0's query is computed.

    Two switches select the readout:

    * ``attend_self=True, residual=True`` is the literal block of docs/decisions/xreid.md#d2-cii-and-cmcl:
      ``out_0 = x_0 + Delta``, so CMCL = ||mean_t Delta_t||^2 and the block reaches **zero loss
      for any input** by shrinking its two output layers (W_o, fc2 -> 0), a solution the loss
      gradient itself drives towards; CMCL then stops shaping the branch features
      (tests/test_xreid.py shows the collapse).
    * ``attend_self=False, residual=False`` (default): token 0 queries only the other
      modality's patches and has no identity path, so ``out_0 = h + FFN(LN2(h))`` with h built
      from the other modality's values alone. Zero loss then needs O_bar to be recoverable from
      the same identity's other-modality patches (the cross-modal constraint the paper
      describes), or O_bar to be constant, which the branch's ID and triplet losses prevent.

    Args:
        dim: token width D.
        heads: attention heads.
        mlp_ratio: FFN hidden width / D.
        attend_self: token 0 is among the keys/values.
        residual: add x_0 to the attention output (the usual residual connection).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, attend_self: bool = False,
                 residual: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"CII block width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.attend_self = attend_self
        self.residual = residual
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, mlp_ratio * dim)

    def forward(self, first: Tensor, tokens: Tensor) -> Tensor:
        """Token-0 output of the block on ``[first ; tokens]``.

        Args:
            first: ``(N, D)`` token 0 (CII: the branch's sequence feature O_bar).
            tokens: ``(N, L, D)`` the other tokens (CII: patch tokens of one other-modality frame).

        Returns:
            ``(N, D)``.
        """
        d = first.shape[-1]
        w_q, w_kv = self.qkv.weight[:d], self.qkv.weight[d:]  # (D, D), (2D, D)
        normed_first = self.norm1(first)  # (N, D)
        context = self.norm1(tokens)  # (N, L, D)
        if self.attend_self:
            context = torch.cat([normed_first.unsqueeze(1), context], dim=1)  # (N, 1 + L, D)
        k, v = F.linear(context, w_kv).chunk(2, dim=-1)  # (N, L', D) each
        q = F.linear(normed_first, w_q).unsqueeze(1)  # (N, 1, D)
        h = self.proj(multihead_attention(q, k, v, self.heads).squeeze(1))  # (N, D)
        if self.residual:
            h = first + h
        return h + self.ffn(self.norm2(h))  # (N, D)


def channel_shift(patches: Tensor, stride: int = 1, fold_div: int = 4, as_released: bool = False) -> Tensor:
    """SII's channel exchange (paper eq. 5), out of place.

    For frame t (0-based) with D channels and fold = D / fold_div::

        out_t = [ z_{t-S}[:fold] ; z_{t+S}[fold:2 fold] ; z_t[2 fold:] ]

    A frame without a partner (t - S < 0, or t + S >= T) copies its own channels ("we simply
    copy the current frame").

    ``as_released=True`` gives what the released in-place copy computes on CPU (discrepancy
    D10; docs/decisions/xreid.md#d10-sii-channel-exchange): the forward-in-time copy cascades through
    the aliasing view, so the first quarter of frame t becomes that of frame ``t mod S``; the
    backward-in-time quarter is correct. The input is not modified (the release also mutated
    its detached token copy, which nothing read afterwards); CUDA's racy result is not modelled.

    Args:
        patches: ``(B, T, N, D)`` patch tokens.
        stride: temporal offset S >= 1 (Figure 4).
        fold_div: D is split into ``fold_div`` parts; the first two are exchanged.
        as_released: reproduce the CPU cascade of the released in-place shift.

    Returns:
        ``(B, T, N, D)`` exchanged patch tokens.
    """
    t, d = patches.shape[1], patches.shape[-1]
    if stride < 1:
        raise ValueError(f"model.extra.sii_stride must be >= 1, got {stride}")
    fold = d // fold_div
    frames = torch.arange(t, device=patches.device)  # (T,)
    own = frames
    if as_released:
        prev = frames % stride  # cascade of the overlapping in-place copy
    else:
        prev = torch.where(frames - stride >= 0, frames - stride, own)  # (T,)
    nxt = torch.where(frames + stride < t, frames + stride, own)  # (T,)
    return torch.cat([patches[:, prev, :, :fold], patches[:, nxt, :, fold:2 * fold],
                      patches[:, :, :, 2 * fold:]], dim=-1)  # (B, T, N, D)


def lii_partner_frames(seq_len: int, stride: int) -> Tensor:
    """Frame whose patches the [CLS] of frame tau attends to in LII: ``(tau + S) mod T``.

    Paper eq. 7 pairs z_{t-2}^cls with z_t^p, i.e. S = +2; S = 0 keeps each frame's own
    patches (Figure 5); the unreleased code's rotation is S = -1 (D1).

    Returns:
        ``(T,)`` long tensor of partner frame indices.
    """
    return (torch.arange(seq_len) + stride) % seq_len


class ShortTermInteraction(nn.Module):
    """SII (paper eqs. 5-6): [CLS]_t queries the channel-exchanged patches of frame t.

    Args:
        dim: token width D.
        heads: attention heads.
        depth: stacked cross-attention blocks, the second querying with the first's output
            (2 as released, 1 as eq. 6; D3).
        stride: exchange offset S (1 in the paper; Figure 4 varies it).
        as_released: reproduce the released in-place cascade (D10).
    """

    def __init__(self, dim: int, heads: int, depth: int = 2, stride: int = 1, as_released: bool = False) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"model.extra.sii_depth must be >= 1, got {depth}")
        self.stride = stride
        self.as_released = as_released
        self.blocks = nn.ModuleList(CrossAttentionBlock(dim, heads) for _ in range(depth))

    def forward(self, cls: Tensor, patches: Tensor) -> Tensor:
        """``cls (B, T, D)``, ``patches (B, T, N, D)`` -> O^SII ``(B, T, D)``."""
        b, t, d = cls.shape
        shifted = channel_shift(patches, self.stride, as_released=self.as_released).flatten(0, 1)  # (B*T, N, D)
        out = cls.reshape(b * t, d)  # (B*T, D)
        for block in self.blocks:
            out = block(out, shifted)  # (B*T, D)
        return out.view(b, t, d)  # (B, T, D)


class LongTermInteraction(nn.Module):
    """LII (paper eq. 7): [CLS]_tau queries the unshifted patches of frame (tau + S) mod T.

    Outputs are indexed by the query frame tau (only the pairing matters after TAP).

    Args:
        dim: token width D.
        heads: attention heads.
        stride: S (2 in the paper; 0 = no exchange; negative values pair backwards).
        depth: stacked cross-attention blocks (1 in the paper and the code).
    """

    def __init__(self, dim: int, heads: int, stride: int = 2, depth: int = 1) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"model.extra.lii_depth must be >= 1, got {depth}")
        self.stride = stride
        self.blocks = nn.ModuleList(CrossAttentionBlock(dim, heads) for _ in range(depth))

    def forward(self, cls: Tensor, patches: Tensor) -> Tensor:
        """``cls (B, T, D)``, ``patches (B, T, N, D)`` -> O^LII ``(B, T, D)``."""
        b, t, d = cls.shape
        partner = lii_partner_frames(t, self.stride).to(patches.device)  # (T,)
        keys = patches[:, partner].flatten(0, 1)  # (B*T, N, D)
        out = cls.reshape(b * t, d)  # (B*T, D)
        for block in self.blocks:
            out = block(out, keys)  # (B*T, D)
        return out.view(b, t, d)  # (B, T, D)


def fuse_branches(bn_sii: Optional[Tensor], bn_lii: Optional[Tensor], mode: str = "mean") -> Optional[Tensor]:
    """Paper eq. 8 at test time: ``O = (BN_S(o^SII) + BN_L(o^LII)) / 2`` (``mode="mean"``) or
    ``[BN_S ; BN_L]`` (``"concat"``, the commented-out released code; D16). A single present
    branch is returned as is; ``None`` when both are absent.

    Args:
        bn_sii: ``(B, D)`` BN'd SII sequence feature, or ``None``.
        bn_lii: ``(B, D)`` BN'd LII sequence feature, or ``None``.
        mode: ``"mean"`` | ``"concat"``.
    """
    present = [f for f in (bn_sii, bn_lii) if f is not None]
    if len(present) < 2:
        return present[0] if present else None
    if mode == "concat":
        return torch.cat(present, dim=1)  # (B, 2D)
    return 0.5 * (bn_sii + bn_lii)  # (B, D)


class CrossModalityInteraction(nn.Module):
    """CII: O_bar of one modality interacts with the paired clip's other-modality patches.

    For clip i of modality m with branch feature O_bar_i (TAP of O^{branch,m}) and the
    same-identity clip i of the other modality with patches z_t^{p,other} (t = 1..T)::

        O_hat_{i,t} = block([O_bar_i ; z_{i,t}^{p,other}])[0]      O_CMII_i = mean_t O_hat_{i,t}

    Args:
        dim: token width D.
        heads: attention heads.
        sharing: one of :data:`CII_SHARING` (blocks keyed by branch ``"sii"``/``"lii"`` and
            direction ``"rgb"``/``"ir"``, the modality of O_bar).
        attend_self: see :class:`ReadoutAttentionBlock`.
        residual: see :class:`ReadoutAttentionBlock`.
    """

    def __init__(self, dim: int, heads: int, sharing: str = "shared", attend_self: bool = False,
                 residual: bool = False) -> None:
        super().__init__()
        if sharing not in CII_SHARING:
            raise ValueError(f"model.extra.cii_sharing: expected one of {', '.join(CII_SHARING)}, got {sharing!r}")
        self.sharing = sharing
        keys = {"shared": ("all",), "per_branch": ("sii", "lii"), "per_direction": ("rgb", "ir"),
                "none": ("sii_rgb", "sii_ir", "lii_rgb", "lii_ir")}[sharing]
        self.blocks = nn.ModuleDict({k: ReadoutAttentionBlock(dim, heads, attend_self=attend_self,
                                                              residual=residual) for k in keys})

    def block(self, branch: str, direction: str) -> ReadoutAttentionBlock:
        """The block of ``branch`` (``"sii"``/``"lii"``) and O_bar's modality ``direction``."""
        key = {"shared": "all", "per_branch": branch, "per_direction": direction,
               "none": f"{branch}_{direction}"}[self.sharing]
        return self.blocks[key]

    def forward(self, seq_feat: Tensor, other_patches: Tensor, branch: str, direction: str) -> Tensor:
        """O_CMII of a batch of clips.

        Args:
            seq_feat: ``(B, D)`` O_bar, the TAP of the branch output of each clip.
            other_patches: ``(B, T, N, D)`` patch tokens of the paired other-modality clips.
            branch: ``"sii"`` | ``"lii"``.
            direction: modality of ``seq_feat``: ``"rgb"`` | ``"ir"``.

        Returns:
            ``(B, D)`` O_CMII.
        """
        b, t = other_patches.shape[:2]
        first = seq_feat.repeat_interleave(t, dim=0)  # (B*T, D)
        out = self.block(branch, direction)(first, other_patches.flatten(0, 1))  # (B*T, D)
        return out.view(b, t, -1).mean(dim=1)  # (B, D)
