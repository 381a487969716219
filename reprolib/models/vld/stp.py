"""VLD's STP: the spatial-temporal hub (STH) and spatial-temporal aggregation (STA), paper III-D.

**STH** (paper eqs. 6-9; docs/decisions/vld.md#v11-where-h-enters). A learnable hub H in R^{T x T x D}, initialised
N(0, 1) (discrepancy 7), shared by both modalities and all sequences. Frames of a clip are
separate samples of the ViT batch, so attention never mixes them; the hub is the only
cross-frame channel:

* blocks ``0 .. s-1`` run normally on ``(B*T, L, D)``;
* **before block s** (0-based; "insertion layer 9" = the 10th block, discrepancy 10/11) frame
  ``t`` gets row ``t`` of H appended: ``(B*T, L + T, D)``. The hub is inserted once;
* **before every later block** its current tokens are carried over, not re-inserted: the last
  T tokens of every frame are viewed as ``(B, T_frame, T_slot, D)`` and the frame and slot
  axes are swapped, so frame ``t`` holds in slot ``k`` the token that frame ``k`` held in
  slot ``t``. Off-diagonal tokens h_{t,k} thus shuttle between frames t and k; the
  orientation alternates H, H^T, H, ... (for s = 9 in 12 blocks: blocks 9, 10, 11).
  ``as_released=True`` reproduces the released code's guard ``start_layer > 0``: for s = 0 the
  transpose before the last block is skipped (Table VI row 0; discrepancy 10).

**STA** (paper eqs. 10-11; docs/decisions/vld.md#v9-sta-query-and-keyvalue-source, discrepancies 8 and 9). A separate
``nn.MultiheadAttention(D, heads)`` (biases, no dropout, PyTorch's default init) with the
**pre-LN** [CLS] of the last block's output of every frame as the query and all T^2 hub
tokens of the sequence (same output, pre-LN) as key and value; no residual, no LN on Q/K/V.
Its output goes through CLIP's pretrained ``ln_post``, **shared** with the main branch (the
code's ``ln_post2`` copy is never used); ``separate_norm=True`` gives STA its own copy.
``z_H,t = ln_post(MHA(q = CLS_t, k = v = H_hat))``; ``f_H = TAP_t(z_H,t)``.

Parameters (docs/decisions/vld.md#stp-parameters) at ViT-B/16, T = 6: H 27,648 + MHA 2,362,368 = 2,390,016.
"""
from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["SpatialTemporalHub", "SpatialTemporalAggregation", "SpatialTemporalPrompting"]


class SpatialTemporalHub(nn.Module):
    """The hub H (T, T, D) with its insertion, transposition and removal (see the module doc).

    Args:
        seq_len: frames per clip T (``data.seq_len``).
        width: token width D.
        start_layer: 0-based block s before which H is inserted.
        num_blocks: blocks of the ViT (to validate ``start_layer`` and place the s = 0 quirk).
        as_released: skip the transpose before the last block when s = 0 (released code).
    """

    def __init__(self, seq_len: int, width: int, start_layer: int, num_blocks: int,
                 as_released: bool = False) -> None:
        super().__init__()
        if seq_len < 1:
            raise ValueError(f"data.seq_len must be >= 1 for the STH, got {seq_len}")
        if not 0 <= start_layer <= num_blocks - 2:
            raise ValueError(f"model.extra.hub_layer={start_layer}: the STH needs a 0-based block index in "
                             f"[0, {num_blocks - 2}] for a {num_blocks}-block ViT (H must see at least two blocks; "
                             "VLD Table VI uses 0..10 of 12)")
        self.seq_len = seq_len
        self.start_layer = start_layer
        self.num_blocks = num_blocks
        self.as_released = as_released
        self.weight = nn.Parameter(torch.randn(seq_len, seq_len, width))  # (T, T, D), N(0, 1)

    def transposes_before(self, block: int) -> bool:
        """Whether the hub is transposed before block ``block`` (> s; the s = 0 quirk aside)."""
        if block <= self.start_layer:
            return False
        quirk = self.as_released and self.start_layer == 0 and block == self.num_blocks - 1
        return not quirk

    def insert(self, tokens: Tensor) -> Tensor:
        """Append row t of H to every frame t: ``(B*T, L, D) -> (B*T, L + T, D)``."""
        n, _, d = tokens.shape
        t = self.seq_len
        if n % t:
            raise ValueError(f"STH: {n} frames are not a whole number of clips of data.seq_len={t}")
        hub = self.weight.to(tokens.dtype).unsqueeze(0).expand(n // t, t, t, d)  # (B, T_frame, T_slot, D)
        return torch.cat([tokens, hub.reshape(n, t, d)], dim=1)  # (B*T, L + T, D)

    def transpose(self, tokens: Tensor) -> Tensor:
        """Swap the frame and slot axes of the hub tokens (the last T tokens of every frame)."""
        n, length, d = tokens.shape
        t = self.seq_len
        body, hub = tokens[:, :length - t], tokens[:, length - t:]  # (B*T, L, D), (B*T, T, D)
        hub = hub.reshape(n // t, t, t, d).transpose(1, 2).reshape(n, t, d)  # (B*T, T, D), H -> H^T
        return torch.cat([body, hub], dim=1)  # (B*T, L + T, D)

    def split(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """``(B*T, L + T, D) -> (B*T, L, D)`` ordinary tokens and ``(B*T, T, D)`` hub tokens."""
        return tokens[:, :-self.seq_len], tokens[:, -self.seq_len:]


class SpatialTemporalAggregation(nn.Module):
    """STA: per-frame [CLS] queries attend over the T^2 hub tokens of their sequence (eq. 10).

    Args:
        width: token width D.
        num_heads: attention heads (the backbone's: 12 for ViT-B/16).
        norm: an own LayerNorm (``separate_norm``); ``None`` uses the norm passed to
            :meth:`forward` (CLIP's shared ``ln_post``, the code's choice).
    """

    def __init__(self, width: int, num_heads: int, norm: Optional[nn.Module] = None) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"model.extra.sta_heads={num_heads} does not divide the token width {width}")
        self.attn = nn.MultiheadAttention(width, num_heads, batch_first=True)
        self.norm = norm

    def forward(self, cls: Tensor, hub: Tensor, shared_norm: Optional[nn.Module] = None) -> Tensor:
        """Aggregated per-frame features ``z_H``.

        Args:
            cls: ``(B, T, D)`` pre-LN [CLS] tokens of the last block's output.
            hub: ``(B, T*T, D)`` pre-LN hub tokens of the same output (order irrelevant: no
                positional encoding).
            shared_norm: the LayerNorm to apply when STA has none of its own.

        Returns:
            ``(B, T, D)`` = LN(MHA(q = cls, k = v = hub)), no residual.
        """
        norm = self.norm if self.norm is not None else shared_norm
        if norm is None:
            raise ValueError("SpatialTemporalAggregation needs a norm: pass shared_norm (CLIP's ln_post)")
        out, _ = self.attn(cls, hub, hub, need_weights=False)  # (B, T, D)
        return norm(out)  # (B, T, D)


class SpatialTemporalPrompting(nn.Module):
    """STP = STH inside the CLIP visual encoder + optional STA on top of it.

    Args:
        seq_len: frames per clip T.
        width: token width D.
        num_heads: STA heads.
        start_layer: 0-based block s where H enters.
        num_blocks: blocks of the ViT.
        use_sta: build STA (False: Table V's "STH only").
        as_released: the s = 0 quirk of :class:`SpatialTemporalHub`.
        separate_norm: give STA its own copy of this LayerNorm instead of sharing ``ln_post``
            (pass CLIP's ``ln_post`` to copy its pretrained weights).
    """

    def __init__(self, seq_len: int, width: int, num_heads: int, start_layer: int, num_blocks: int,
                 use_sta: bool = True, as_released: bool = False,
                 separate_norm: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.sth = SpatialTemporalHub(seq_len, width, start_layer, num_blocks, as_released)
        self.sta = (SpatialTemporalAggregation(width, num_heads, copy.deepcopy(separate_norm))
                    if use_sta else None)

    @property
    def seq_len(self) -> int:
        return self.sth.seq_len

    def encode(self, encoder: nn.Module, frames: Tensor, camid: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Run a :class:`~reprolib.models.clip_backbone.CLIPVisualEncoder` with the hub.

        Args:
            encoder: the CLIP visual encoder (``embed``, ``forward_blocks``, ``head``).
            frames: ``(B*T, 3, H, W)``, the T frames of every clip contiguous.
            camid: ``(B*T,)`` camera ids (SIE), or ``None``.

        Returns:
            The encoder's per-frame outputs without the hub tokens: ``tokens (B*T, L, D)``,
            ``cls (B*T, D)``, ``proj (B*T, d)``, ``penultimate_cls (B*T, D)`` (the [CLS] entering
            the last block, after its hub transpose: VLD's z_last), plus ``cls_pre_ln (B*T, D)``
            and ``hub (B*T, T, D)`` from the last block's output, pre-LN (STA's inputs).
        """
        s, last = self.sth.start_layer, encoder.num_blocks - 1
        tokens = encoder.forward_blocks(encoder.embed(frames, camid), 0, s)  # (B*T, L, D)
        tokens = self.sth.insert(tokens)  # (B*T, L + T, D)
        for block in range(s, encoder.num_blocks):
            if self.sth.transposes_before(block):
                tokens = self.sth.transpose(tokens)  # (B*T, L + T, D)
            if block == last:
                penultimate_cls = tokens[:, 0]  # (B*T, D)
            tokens = encoder.forward_blocks(tokens, block, block + 1)  # (B*T, L + T, D)
        body, hub = self.sth.split(tokens)  # (B*T, L, D), (B*T, T, D)
        return {**encoder.head(body), "penultimate_cls": penultimate_cls, "cls_pre_ln": body[:, 0], "hub": hub}

    def aggregate(self, cls_pre_ln: Tensor, hub: Tensor, shared_norm: nn.Module) -> Tensor:
        """STA per-frame features ``(B, T, D)`` from :meth:`encode`'s ``cls_pre_ln`` and ``hub``.

        Args:
            cls_pre_ln: ``(B*T, D)``.
            hub: ``(B*T, T, D)``.
            shared_norm: CLIP's ``ln_post`` (used unless STA has its own norm).
        """
        if self.sta is None:
            raise RuntimeError("STA is disabled (model.extra.use_sta=false)")
        t = self.seq_len
        b = cls_pre_ln.shape[0] // t
        cls = cls_pre_ln.view(b, t, -1)  # (B, T, D)
        hub = hub.reshape(b, t * t, -1)  # (B, T^2, D): all hub tokens of the clip
        return self.sta(cls, hub, shared_norm)  # (B, T, D)
