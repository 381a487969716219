"""Dataset registry and factory: ``build_dataset(cfg.data)`` -> a parsed dataset."""
from __future__ import annotations

from typing import Any, Callable

from ..config import DataConfig, resolve_path
from .bupt import BUPTCampus
from .hitsz_vcm import HITSZVCM
from .regdb import RegDB
from .sysu import SYSUMM01
from .types import VideoReIDDataset

#: Dataset classes by the name used in ``data.dataset`` and on the command line.
DATASETS: dict[str, type[VideoReIDDataset]] = {
    "hitsz-vcm": HITSZVCM,
    "bupt": BUPTCampus,
    "sysu-mm01": SYSUMM01,
    "regdb": RegDB,
}

#: Constructor keyword arguments of each dataset, taken from the :class:`DataConfig` fields.
#: Fields that a dataset does not use (e.g. ``min_seq_len`` for BUPTCampus, which has no
#: length filter) are ignored.
_CONFIG_KWARGS: dict[str, Callable[[DataConfig], dict[str, Any]]] = {
    "hitsz-vcm": lambda c: {"layout": c.layout, "min_seq_len": c.min_seq_len},
    "bupt": lambda c: {"eval_mode": c.bupt_eval_mode, "eval_batch": c.bupt_eval_batch},
    "sysu-mm01": lambda c: {"mode": c.sysu_mode, "trial": c.sysu_trial},
    "regdb": lambda c: {"trial": c.regdb_trial},
}


#: Test frame sampling of each dataset's official protocol (used when a model trained on one
#: dataset is tested on another: VLD Table VIII).
TEST_SAMPLING: dict[str, str] = {"hitsz-vcm": "chunk_first", "bupt": "bupt_uniform"}


def eval_data_config(data_cfg: DataConfig, dataset: str, root: str) -> DataConfig:
    """The data config to test on ``dataset`` at ``root`` (cross-dataset testing).

    Keeps the input size, sequence length and batch size of ``data_cfg`` and takes the test frame
    sampling of the target dataset's protocol (:data:`TEST_SAMPLING`).

    Raises:
        ValueError: unknown ``dataset`` or an empty ``root``.
    """
    from dataclasses import replace

    if dataset not in DATASETS:
        raise ValueError(f"eval.dataset: unknown dataset '{dataset}'; expected one of {', '.join(DATASETS)}")
    if not root:
        raise ValueError(f"eval.root: testing on '{dataset}' needs its root (eval.root)")
    return replace(data_cfg, dataset=dataset, root=root, test_sampling=TEST_SAMPLING[dataset])


def build_dataset(data_cfg: DataConfig) -> VideoReIDDataset:
    """Parse the dataset that a data config names.

    Args:
        data_cfg: the ``data`` section of an experiment config; uses ``dataset``, ``root``
            (``${VAR}`` expanded, relative to the project root) and, per dataset, ``layout`` and ``min_seq_len`` (HITSZ-VCM),
            ``bupt_eval_mode`` and ``bupt_eval_batch`` (BUPTCampus), ``sysu_mode`` and ``sysu_trial``
            (SYSU-MM01) or ``regdb_trial`` (RegDB).

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
