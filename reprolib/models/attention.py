"""Attention primitive shared by the families (X-ReID's MII blocks, TF-CLIP's SSP)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["multihead_attention"]


def multihead_attention(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """Scaled dot-product attention of ``(N, Lq, D)`` queries over ``(N, Lk, D)`` keys/values."""
    n, lq, d = q.shape

    def split(x: Tensor) -> Tensor:
        return x.reshape(n, x.shape[1], heads, d // heads).transpose(1, 2)  # (N, h, L, D/h)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))  # (N, h, Lq, D/h)
    return out.transpose(1, 2).reshape(n, lq, d)  # (N, Lq, D)
