"""Write the miniature world in the image benchmarks' on-disk formats: SYSU-MM01 and RegDB.

Both are :class:`~.writers.LayoutWriter` subclasses, so :func:`~.writers.write_world` plans
the identities (:func:`~.world.build_world`), renders every frame in worker processes and
publishes the tree atomically with its ``_COMPLETE`` marker; a layout only names the frames
and writes the index files. Every rendered frame becomes one image (SYSU-MM01's images are
frames of walking persons too). Importing this module registers the formats ``"sysu"`` and
``"regdb"`` in :data:`~.writers.WRITERS`::

    from reprolib.data.synthetic import write_world
    from reprolib.data.synthetic import writers_image  # noqa: F401  (registers the formats)
    root = write_world("data/synth-sysu", scale="smoke", seed=0, fmt="sysu")

The formats are those of ``docs/decisions/data.md#image-benchmarks`` (read by
:class:`reprolib.data.sysu.SYSUMM01` and :class:`reprolib.data.regdb.RegDB`).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Optional

from .world import TrackletPlan, World, WorldSpec, derive_rng
from .writers import WRITERS, FramePaths, LayoutWriter, _write_lines

#: SYSU-MM01 camera folders fed by the miniature world's four physical cameras, per modality.
#: Visible: physical 1, 2 -> cam1, cam2 (indoor), 3, 4 -> cam4, cam5 (outdoor). Infrared:
#: physical 1, 2 -> cam3 (indoor), 3, 4 -> cam6 (outdoor). Physical camera 2 thus films
#: cam2 and (part of) cam3 at the same place, the reason of the official camera-3/camera-2 rule.
SYSU_CAMERA_OF = {"rgb": {1: 1, 2: 2, 3: 4, 4: 5}, "ir": {1: 3, 2: 3, 3: 6, 4: 6}}
SYSU_CAMERAS = (1, 2, 3, 4, 5, 6)
#: RegDB index-file trials written (official 1..10).
REGDB_TRIALS = tuple(range(1, 11))
#: World modality -> (index-file word, image folder, file-name letter).
REGDB_MODALITIES = {"rgb": ("visible", "Visible", "v"), "ir": ("thermal", "Thermal", "t")}


class _ImageNumbering:
    """First image number (1-based) of each planned tracklet within its output folder.

    Tracklets that land in one folder (``key(plan)``) are numbered consecutively in the
    world's file order, so image names never collide. The table is computed once per world.
    """

    def __init__(self, key: Callable[[TrackletPlan], Hashable]) -> None:
        self._key = key
        self._world: Optional[World] = None
        self._first: dict[TrackletPlan, int] = {}

    def first(self, world: World, plan: TrackletPlan) -> int:
        if self._world is not world:
            nxt: dict[Hashable, int] = defaultdict(lambda: 1)
            self._first = {}
            for t in world.tracklets:
                self._first[t] = nxt[self._key(t)]
                nxt[self._key(t)] += t.length
            self._world = world
        return self._first[plan]


class SYSUWriter(LayoutWriter):
    """SYSU-MM01 (``docs/decisions/data.md#image-benchmarks``).

    * images: ``cam<c>/<pid4>/<n4>.jpg``; cameras 1, 2, 4, 5 visible and 3, 6 infrared
      (:data:`SYSU_CAMERA_OF` maps the world's four physical cameras); ``n`` counts the
      images of one (camera, pid) folder from 1;
    * ``exp/train_id.txt``, ``exp/val_id.txt``, ``exp/test_id.txt``: one line of
      comma-separated pids each. The world's training ids are split into train and val (the
      last quarter, at least one id; the real split is 296 + 99) and its test ids are the test
      ids. Every camera folder exists, even when no identity passes that camera.
    """

    fmt = "sysu"
    paired = False

    def __init__(self) -> None:
        self._numbering = _ImageNumbering(lambda t: (self.camera_of(t), t.pid))

    def num_cameras(self, spec: WorldSpec) -> int:
        return 4

    @staticmethod
    def camera_of(plan: TrackletPlan) -> int:
        """SYSU-MM01 camera number (1..6) of a planned (single-modality) tracklet."""
        (modality,) = plan.modalities
        return SYSU_CAMERA_OF[modality][plan.camera]

    def frame_paths(self, world: World, plan: TrackletPlan) -> FramePaths:
        (modality,) = plan.modalities
        first = self._numbering.first(world, plan)
        folder = f"cam{self.camera_of(plan)}/{plan.pid:04d}"
        return {modality: [f"{folder}/{first + i:04d}.jpg" for i in range(plan.length)]}

    @staticmethod
    def id_split(world: World) -> dict[str, list[int]]:
        """``{"train", "val", "test"}`` pids of the world (val: the last quarter of its training ids)."""
        train = world.pids("train")
        if len(train) < 2:
            raise ValueError(f"the SYSU-MM01 layout needs at least 2 training identities (train and val), "
                             f"got {len(train)} in scale '{world.spec.name}'")
        n_val = max(1, len(train) // 4)
        return {"train": train[:-n_val], "val": train[-n_val:], "test": world.pids("test")}

    def write_index(self, world: World, root: Path, paths: dict[TrackletPlan, FramePaths]) -> None:
        for cam in SYSU_CAMERAS:
            (root / f"cam{cam}").mkdir(parents=True, exist_ok=True)
        for split, pids in self.id_split(world).items():
            _write_lines(root / "exp" / f"{split}_id.txt", [",".join(str(p) for p in pids)])


class RegDBWriter(LayoutWriter):
    """RegDB (``docs/decisions/data.md#image-benchmarks``).

    * images: ``Visible/<pid>/<pid>_v_<n5>.jpg`` and ``Thermal/<pid>/<pid>_t_<n5>.jpg`` (JPEG, as
      every miniature frame; the real files are ``.bmp``, which the loader does not assume); the
      world is paired (RegDB's dual camera films both modalities at once), so the visible and
      thermal images of one identity are the same frames, equal in number (the real set has
      10 + 10 per identity; here every rendered frame is kept, 12 or more per modality);
    * ``idx/{train,test}_{visible,thermal}_{t}.txt`` for t = 1..10: ``path label`` per image.
      All identities of the world (its train, auxiliary and test splits alike) are pooled and
      trial ``t`` draws a random half for training (``floor(N/2)``; 206 of 412 on the real set)
      from a generator seeded with (world seed, t). Labels are 0..n-1 in sorted pid order within
      each split file pair.
    """

    fmt = "regdb"
    paired = True

    def __init__(self) -> None:
        self._numbering = _ImageNumbering(lambda t: t.pid)

    def num_cameras(self, spec: WorldSpec) -> int:
        return 2  # the paired planner needs two cameras; both feed the same folders

    def frame_paths(self, world: World, plan: TrackletPlan) -> FramePaths:
        first = self._numbering.first(world, plan)
        out = {}
        for modality in plan.modalities:
            _, folder, letter = REGDB_MODALITIES[modality]
            out[modality] = [f"{folder}/{plan.pid}/{plan.pid}_{letter}_{first + i:05d}.jpg" for i in range(plan.length)]
        return out

    @staticmethod
    def trial_split(world: World, trial: int) -> tuple[list[int], list[int]]:
        """Sorted ``(train pids, test pids)`` of one trial."""
        pids = sorted(world.identities)
        if len(pids) < 2:
            raise ValueError(f"the RegDB layout needs at least 2 identities, got {len(pids)}")
        order = derive_rng(world.seed, "regdb-trial", trial).permutation(len(pids))
        n_train = len(pids) // 2
        return sorted(pids[i] for i in order[:n_train]), sorted(pids[i] for i in order[n_train:])

    def write_index(self, world: World, root: Path, paths: dict[TrackletPlan, FramePaths]) -> None:
        images: dict[str, dict[int, list[str]]] = {m: defaultdict(list) for m in REGDB_MODALITIES}
        for plan in world.tracklets:  # file order: pid, camera, index
            for modality, rel in paths[plan].items():
                images[modality][plan.pid] += rel
        for trial in REGDB_TRIALS:
            for split, pids in zip(("train", "test"), self.trial_split(world, trial)):
                for modality, (word, _, _) in REGDB_MODALITIES.items():
                    lines = [f"{path} {label}" for label, pid in enumerate(pids) for path in images[modality][pid]]
                    _write_lines(root / "idx" / f"{split}_{word}_{trial}.txt", lines)


#: The image layouts, by ``--format`` key; registered in :data:`~.writers.WRITERS` on import.
IMAGE_WRITERS: dict[str, LayoutWriter] = {w.fmt: w for w in (SYSUWriter(), RegDBWriter())}
WRITERS.update(IMAGE_WRITERS)
