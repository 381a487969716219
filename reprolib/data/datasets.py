"""Dataset registry and factory: ``build_dataset(cfg.data)`` -> a parsed dataset."""
from __future__ import annotations

from typing import Any, Callable

from ..config import DataConfig, resolve_path
from .bupt import BUPTCampus
from .hitsz_vcm import HITSZVCM
from .types import VideoReIDDataset

#: Dataset classes by the name used in ``data.dataset`` and on the command line.
DATASETS: dict[str, type[VideoReIDDataset]] = {
    "hitsz-vcm": HITSZVCM,
    "bupt": BUPTCampus,
}

#: Constructor keyword arguments of each dataset, taken from the :class:`DataConfig` fields.
#: Fields that a dataset does not use (e.g. ``min_seq_len`` for BUPTCampus, which has no
#: length filter) are ignored.
_CONFIG_KWARGS: dict[str, Callable[[DataConfig], dict[str, Any]]] = {
    "hitsz-vcm": lambda c: {"layout": c.layout, "min_seq_len": c.min_seq_len},
    "bupt": lambda c: {"eval_mode": c.bupt_eval_mode, "eval_batch": c.bupt_eval_batch},
}


def build_dataset(data_cfg: DataConfig) -> VideoReIDDataset:
    """Parse the dataset that a data config names.

    Args:
        data_cfg: the ``data`` section of an experiment config; uses ``dataset``, ``root``
            (``${VAR}`` expanded, relative to the project root) and, per dataset, ``layout`` and ``min_seq_len`` (HITSZ-VCM) or
            ``bupt_eval_mode`` and ``bupt_eval_batch`` (BUPTCampus).

    Returns:
        The parsed, validated dataset.

    Raises:
        ValueError: unknown ``data.dataset``.
        DatasetFormatError: the root is missing files or holds malformed ones.
    """
    if data_cfg.dataset not in DATASETS:
        raise ValueError(f"unknown data.dataset '{data_cfg.dataset}'; expected one of "
                         f"{', '.join(sorted(DATASETS))}")
    kwargs = _CONFIG_KWARGS[data_cfg.dataset](data_cfg)
    # ${VAR} and relative roots resolve here, not in the config, so run hashes stay path-free
    return DATASETS[data_cfg.dataset](str(resolve_path(data_cfg.root)), **kwargs)
