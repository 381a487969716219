"""Record types shared by every dataset, sampler and evaluator.

A dataset is parsed once into plain, immutable records (torchreid style): a
:class:`Tracklet` is a tuple of frame paths plus its identity, camera and modality.
Everything downstream (frame sampling, identity samplers, the clip datasets, the
evaluator) consumes these records and never re-reads the index files.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional


class Modality(enum.IntEnum):
    """Imaging modality of a tracklet.

    The integer values follow HITSZ-VCM's track-info column 1 (1 = infrared, 2 = visible).
    """

    IR = 1
    RGB = 2

    @property
    def short(self) -> str:
        return "ir" if self is Modality.IR else "rgb"


@dataclass(frozen=True)
class Tracklet:
    """One tracklet: an ordered tuple of frame paths of one person in one camera.

    Attributes:
        paths: absolute frame paths in temporal order.
        pid: identity. Training splits hold contiguous labels 0..N-1 (relabelled in sorted
            order of the raw pids); test splits keep the raw dataset pid.
        camid: camera index (dataset specific; see each dataset class).
        modality: :class:`Modality` of the frames.
        raw_pid: the pid as written in the dataset files (equal to ``pid`` on test splits).
        pair_id: for datasets whose training items are pixel-aligned RGB/IR pairs
            (BUPTCampus), the index of the pair both halves belong to; ``None`` otherwise.
        source: where the record came from, for error messages (file and row).
    """

    paths: tuple[str, ...]
    pid: int
    camid: int
    modality: Modality
    raw_pid: int | str = -1
    pair_id: Optional[int] = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class EvalSet:
    """A query/gallery pair for one retrieval direction.

    Attributes:
        name: direction name, ``"ir2rgb"`` (infrared query, visible gallery) or ``"rgb2ir"``.
        query: query tracklets.
        gallery: gallery tracklets.
        rule: camera rule of the evaluator (``"vcm"``, ``"bupt"`` or ``"sysu"``; see
            :func:`reprolib.metrics.evaluate`).
    """

    name: str
    query: list[Tracklet]
    gallery: list[Tracklet]
    rule: str


@dataclass
class VideoReIDDataset:
    """A parsed video visible-infrared ReID dataset.

    Attributes:
        name: dataset key (``"hitsz-vcm"``, ``"bupt"``, ``"sysu-mm01"``, ``"regdb"``).
        root: dataset root directory.
        train: training tracklets of both modalities, labels relabelled to 0..num_train_pids-1.
        eval_sets: evaluation directions keyed by name (``"ir2rgb"``, ``"rgb2ir"``).
        num_train_pids: number of training identities (classifier size).
        num_cameras: number of camera ids (size of a camera embedding table).
        paired: True when training tracklets come in pixel-aligned RGB/IR pairs
            sharing frame indices (BUPTCampus); ``pair_id`` links the halves.
        stats: counts before and after filtering, for ``data check`` and notebooks.
    """

    name: str
    root: str
    train: list[Tracklet] = field(repr=False)
    eval_sets: dict[str, EvalSet] = field(repr=False)
    num_train_pids: int
    num_cameras: int
    paired: bool = False
    stats: dict = field(default_factory=dict, repr=False)

    def train_by_modality(self, modality: Modality) -> list[Tracklet]:
        return [t for t in self.train if t.modality == modality]
