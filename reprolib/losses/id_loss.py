"""Identity (classification) loss: cross-entropy with optional label smoothing.

VLD eq. (3): L_id = -(1/n_b) sum_i q_i log W_id(f_i), with q_i the one-hot label. With label
smoothing (Szegedy et al., used by CLIP-ReID and TF-CLIP with eps = 0.1) the target becomes
q = (1 - eps) * onehot + eps / K over K classes. VLD and X-ReID's released code train
without smoothing (docs/decisions/vld.md#v18-label-smoothing, docs/decisions/xreid.md#loss-composition): eps = 0 by default.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CrossEntropyLabelSmooth"]


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against label-smoothed targets ((1 - eps) one-hot + eps / K), batch mean.

    Equal to ``F.cross_entropy(logits, labels, label_smoothing=eps)``; eps = 0 is plain CE.

    Args:
        eps: smoothing mass spread uniformly over the K classes, in [0, 1).
    """

    def __init__(self, eps: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= eps < 1.0:
            raise ValueError(f"loss.label_smoothing must be in [0, 1), got {eps}")
        self.eps = eps

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Loss of ``(N, K)`` logits against ``(N,)`` integer labels (a scalar)."""
        log_probs = F.log_softmax(logits.float(), dim=1)  # (N, K)
        nll = -log_probs.gather(1, labels.view(-1, 1)).squeeze(1)  # (N,)
        uniform = -log_probs.mean(dim=1)  # (N,)
        return ((1.0 - self.eps) * nll + self.eps * uniform).mean()

    def extra_repr(self) -> str:
        return f"eps={self.eps}"
