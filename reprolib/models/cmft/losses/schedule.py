"""The two-stage progressive schedule of CMFT (section 3.4.4, eqs. 18 and 19) as a pure function.

Stage 1 (the "warm phase", 1-based epochs 1-8; the ``cmft`` model switches at
``model.extra.warm_epochs``)::

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

__all__ = ["cmft_loss_weights", "STAGES"]

#: The two training stages; which one is active is the model's (``model.extra.warm_epochs``,
#: :meth:`reprolib.models.cmft.model.CMFT.on_epoch_start`).
STAGES = (1, 2)


def cmft_loss_weights(stage: int, cfg: Any) -> dict[str, float]:
    """Weight of every CMFT loss term in training ``stage`` 1 or 2 (eqs. 18 and 19).

    Args:
        stage: 1 (the warm phase, ``epoch < model.extra.warm_epochs``) or 2.
        cfg: a :class:`~reprolib.models.cmft.losses.CMFTLossOptions` (or any object with
            ``stage2_keep_triplet``, ``lambda1``, ``lambda2`` and ``stage1_term``).

    Returns:
        ``{stage1_term: w, "msrl": w1, "mdl": w2}`` with ``stage1_term`` = ``"cross"`` (L_cross)
        or the Table-4 comparison loss's name. A weight of 0 means the term is inactive.
        Stage 1: ``{term: 1, "msrl": 0, "mdl": 0}``; stage 2:
        ``{term: 1 if stage2_keep_triplet else 0, "msrl": lambda1, "mdl": lambda2}``.

    Raises:
        ValueError: for a stage other than 1 or 2.
    """
    if stage not in STAGES:
        raise ValueError(f"stage: expected 1 or 2; got {stage!r}")
    if stage == 1:
        return {cfg.stage1_term: 1.0, "msrl": 0.0, "mdl": 0.0}
    return {cfg.stage1_term: 1.0 if cfg.stage2_keep_triplet else 0.0,
            "msrl": float(cfg.lambda1), "mdl": float(cfg.lambda2)}
