"""The two-stage progressive schedule of CMFT (section 3.4.4, eqs. 18 and 19) as a pure function.

Stage 1 (the "warm phase", 1-based epochs 1-8)::

    L_1 = L_ID + L_cross                                   (eq. 18)

Stage 2 (1-based epochs 9-end)::

    L_2 = L_ID + lambda1 * L_MSRL + lambda2 * L_MDL        (eq. 19)

L_ID is computed by the model and is not part of this schedule. The paper's "lambda1 and
lambda2 are set to 0.5 during the warm phase" is meaningless since neither term is active in
stage 1 (discrepancy #9): the weights below are lambda1 and lambda2 in stage 2 and 0 before.
PMT's code keeps its triplet in stage 2; eq. 19 drops it, which is the default here, and
``stage2_keep_triplet`` keeps the stage-1 term with weight 1 (discrepancy #10).
"""
from __future__ import annotations

from typing import Any

__all__ = ["cmft_loss_weights", "cmft_stage"]


def cmft_stage(epoch: int, cfg: Any) -> int:
    """Stage (1 or 2) of 0-based ``epoch``: 2 from ``cfg.stage2_epoch`` on.

    Raises:
        ValueError: for a negative epoch.
    """
    if epoch < 0:
        raise ValueError(f"epoch: expected a 0-based epoch >= 0; got {epoch}")
    return 2 if epoch >= cfg.stage2_epoch else 1


def cmft_loss_weights(epoch: int, cfg: Any) -> dict[str, float]:
    """Weight of every CMFT loss term at 0-based ``epoch`` (eqs. 18 and 19).

    Args:
        epoch: 0-based training epoch (the engine's convention).
        cfg: a :class:`~reprolib.losses.cmft.CMFTLossOptions` (or any object with
            ``stage2_epoch``, ``stage2_keep_triplet``, ``lambda1``, ``lambda2`` and
            ``stage1_term``).

    Returns:
        ``{stage1_term: w, "msrl": w1, "mdl": w2}`` with ``stage1_term`` = ``"cross"`` (L_cross)
        or the Table-4 comparison loss's name. A weight of 0 means the term is inactive.
        Stage 1: ``{term: 1, "msrl": 0, "mdl": 0}``; stage 2:
        ``{term: 1 if stage2_keep_triplet else 0, "msrl": lambda1, "mdl": lambda2}``.
    """
    if cmft_stage(epoch, cfg) == 1:
        return {cfg.stage1_term: 1.0, "msrl": 0.0, "mdl": 0.0}
    return {cfg.stage1_term: 1.0 if cfg.stage2_keep_triplet else 0.0,
            "msrl": float(cfg.lambda1), "mdl": float(cfg.lambda2)}
