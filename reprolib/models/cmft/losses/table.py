"""CMFT losses as named single terms, the plug-in table of the ``cmft`` model family.

``reprolib.models.cmft`` looks up ``CMFT_LOSSES[name](features, **options)`` for every term
named in ``model.extra.losses.stage1/stage2`` (the model owns the stage switch and the
weights there; :class:`~reprolib.models.cmft.losses.CMFTCriterion` is the all-in-one alternative).
Each entry returns the **unweighted** term of :meth:`CMFTCriterion.term`; ``options`` are
:class:`~reprolib.models.cmft.losses.CMFTLossOptions` fields (from ``model.extra.loss_options[name]``):

* ``cross``: L_cross (``margin``);
* ``msrl``: L_MSRL (``msrl_form``, ``msrl_distance``, ``msrl_cosine_features``);
* ``mdl``: L_MDL (``mdl_mode``);
* ``wrt``, ``hetero_center``, ``cmt_standin``: the Table-4 comparison losses (``margin``,
  ``wrt_legacy_numerics``); ``cmt_standin`` is an approximation of L_CMT (#16).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Optional

from torch import Tensor

from reprolib.models.cmft.losses.criterion import CMFTCriterion
from reprolib.models.cmft.losses.options import COMPARISONS, CMFTLossOptions

__all__ = ["CMFT_LOSSES"]

_SCHEDULE_KEYS = ("lambda1", "lambda2", "stage2_keep_triplet", "comparison")


@functools.lru_cache(maxsize=64)
def _criterion(options: CMFTLossOptions) -> CMFTCriterion:
    return CMFTCriterion(options)  # parameter-free: one instance per option set serves every device


def _entry(name: str) -> Callable[..., Tensor]:
    comparison = name if name in COMPARISONS else "none"

    def loss(features: Mapping[str, Optional[Tensor]], **options: Any) -> Tensor:
        where = f"model.extra.loss_options.{name}"
        schedule = sorted(set(options) & set(_SCHEDULE_KEYS))
        if schedule:
            raise ValueError(f"{where}: {schedule} belong to the stage schedule (model.extra.losses), "
                             "not to a single loss term")
        opts = CMFTLossOptions.from_dict({**options, "comparison": comparison}, where)
        return _criterion(opts).term(name, features)

    loss.__name__ = loss.__qualname__ = f"cmft_{name}"
    loss.__doc__ = f"Unweighted CMFT term {name!r} of ``features`` (see reprolib.models.cmft.losses.table)."
    return loss


CMFT_LOSSES: dict[str, Callable[..., Tensor]] = {
    name: _entry(name) for name in ("cross", "msrl", "mdl", "wrt", "hetero_center", "cmt_standin")}
