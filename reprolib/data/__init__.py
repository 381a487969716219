"""Data: real-format dataset classes, frame sampling, identity samplers, transforms, clip datasets.

The dataset classes read the exact on-disk formats of HITSZ-VCM and BUPTCampus
(``docs/decisions/data.md#hitsz-vcm``) and of the image benchmarks SYSU-MM01 and RegDB
(``docs/decisions/data.md#image-benchmarks``); the miniature world (:mod:`reprolib.data.synthetic`)
is written in those formats, so the same classes read it with no special case.
"""
from reprolib.data.bupt import BUPTCampus
from reprolib.data.datasets import DATASETS, build_dataset
from reprolib.data.errors import DatasetFormatError
from reprolib.data.hitsz_vcm import HITSZVCM
from reprolib.data.regdb import RegDB
from reprolib.data.sysu import SYSUMM01
from reprolib.data.types import EvalSet, Modality, Tracklet, VideoReIDDataset

__all__ = ["BUPTCampus", "HITSZVCM", "RegDB", "SYSUMM01", "DATASETS", "build_dataset", "DatasetFormatError",
           "EvalSet", "Modality", "Tracklet", "VideoReIDDataset"]
