"""The result record of one retrieval evaluation and the averaging shared by both backends.

Both backends (:mod:`reprolib.metrics.reference` and :mod:`reprolib.metrics.fast`) reduce a
distance matrix to three per-query quantities (a CMC row, the average precision and the
inverse negative penalty) and hand them to :func:`build_result`, which owns the averaging
over valid queries and the "no valid query" error. Keeping that in one place guarantees the
two backends differ only in how they rank the gallery.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Ranks reported by :meth:`EvalResult.to_dict` (the four ranks every VVI-ReID paper prints).
REPORTED_RANKS = (1, 5, 10, 20)


class NoValidQueryError(ValueError):
    """Raised when no query keeps a true match in the gallery (nothing to average)."""


@dataclass
class EvalResult:
    """Retrieval metrics of one query/gallery direction.

    All metrics are fractions in [0, 1]; :meth:`to_dict` converts them to percentages.

    Attributes:
        cmc: ``(max_rank,)`` cumulative matching characteristic; ``cmc[k-1]`` is the fraction
            of valid queries whose first true match is within the top ``k`` kept gallery
            items. Always ``max_rank`` long: past the number of kept gallery items it stays
            at its last value (1.0), which is what ``P(first match rank <= k)`` means there.
        mAP: mean over valid queries of the average precision.
        mINP: mean over valid queries of the inverse negative penalty ``R / (p_last + 1)``.
        num_valid: number of queries that kept at least one true match.
        ap: ``(num_q,)`` per-query average precision aligned with the query order; ``NaN``
            for skipped queries (so ``np.nanmean(ap) == mAP``).
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid: int
    ap: np.ndarray

    @property
    def num_query(self) -> int:
        """Number of queries evaluated, valid or not."""
        return int(self.ap.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """``(num_q,)`` boolean mask of the queries that counted in the averages."""
        return ~np.isnan(self.ap)

    def to_dict(self, counts: bool = False) -> dict[str, float]:
        """Return Rank-1/5/10/20, mAP and mINP as percentages.

        A rank larger than ``len(cmc)`` (``max_rank`` < 20) is left out. With ``counts`` the
        integers ``num_valid`` and ``num_query`` are added (run metrics keep them, so a reader
        knows how many queries a percentage rests on).
        """
        out = {f"R{k}": 100.0 * float(self.cmc[k - 1]) for k in REPORTED_RANKS if k <= len(self.cmc)}
        out["mAP"] = 100.0 * self.mAP
        out["mINP"] = 100.0 * self.mINP
        if counts:
            out["num_valid"] = int(self.num_valid)
            out["num_query"] = int(self.num_query)
        return out

    def summary(self) -> str:
        """One line such as ``R1 62.31 | R5 ... | mAP 45.10 | mINP 20.33 | 4584/4584 queries``."""
        parts = [f"{key} {value:.2f}" for key, value in self.to_dict().items()]
        parts.append(f"{self.num_valid}/{self.num_query} queries")
        return " | ".join(parts)


def build_result(cmc_sum: np.ndarray, ap: np.ndarray, inp: np.ndarray, rule: str) -> EvalResult:
    """Average per-query metrics over the valid queries (protocol step 5).

    Args:
        cmc_sum: ``(max_rank,)`` sum over valid queries of their 0/1 CMC rows.
        ap: ``(num_q,)`` per-query average precision, ``NaN`` for skipped queries.
        inp: ``(num_q,)`` per-query inverse negative penalty, ``NaN`` for skipped queries.
        rule: the camera rule that was applied, for the error message.

    Returns:
        The :class:`EvalResult`.

    Raises:
        NoValidQueryError: if every query was skipped.
    """
    valid = ~np.isnan(ap)
    num_valid = int(valid.sum())
    if num_valid == 0:
        if rule == "vcm":
            why = "left after rule 'vcm' removed the items that share the query's pid and camera"
            hint = " and the camera ids"
        else:
            why, hint = "(rule 'bupt')", ""
        raise NoValidQueryError(
            f"evaluate: no valid query: none of the {ap.shape[0]} queries has a gallery item with "
            f"its pid {why}; check that query and gallery use the same raw (not relabelled) pids{hint}"
        )
    return EvalResult(
        cmc=np.asarray(cmc_sum, dtype=np.float64) / num_valid,
        mAP=float(ap[valid].mean()),
        mINP=float(inp[valid].mean()),
        num_valid=num_valid,
        ap=ap.astype(np.float64),
    )
