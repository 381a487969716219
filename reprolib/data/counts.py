"""Summary counts shared by the dataset classes (``stats``) and ``data check``.

Kept apart from :mod:`reprolib.data.check`, which builds the datasets: the dataset modules import
these helpers, so they must not import ``check`` (an import cycle).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .types import EvalSet, Modality, Tracklet

__all__ = ["count_tracklets", "split_counts", "filtered_split_counts", "eval_set_counts"]


def count_tracklets(tracklets: Iterable[Tracklet]) -> dict[str, int]:
    """Identities (distinct raw pids), tracklets and images of a list of tracklets."""
    tracklets = list(tracklets)
    return {
        "identities": len({t.raw_pid for t in tracklets}),
        "tracklets": len(tracklets),
        "images": sum(len(t) for t in tracklets),
    }


def split_counts(tracklets: Sequence[Tracklet]) -> dict[str, dict[str, int]]:
    """:func:`count_tracklets` for all tracklets and per modality (keys ``all``, ``ir``, ``rgb``)."""
    return {
        "all": count_tracklets(tracklets),
        "ir": count_tracklets(t for t in tracklets if t.modality == Modality.IR),
        "rgb": count_tracklets(t for t in tracklets if t.modality == Modality.RGB),
    }


def filtered_split_counts(before: Sequence[Tracklet], after: Sequence[Tracklet]) -> dict[str, Any]:
    """``{before_filter: split_counts(before), after_filter: split_counts(after)}``."""
    return {"before_filter": split_counts(before), "after_filter": split_counts(after)}


def eval_set_counts(before: EvalSet, after: EvalSet) -> dict[str, Any]:
    """Query and gallery counts of one direction, before and after the dataset's filter."""
    return {
        "rule": after.rule,
        "query": {"before_filter": count_tracklets(before.query),
                  "after_filter": count_tracklets(after.query)},
        "gallery": {"before_filter": count_tracklets(before.gallery),
                    "after_filter": count_tracklets(after.gallery)},
    }
