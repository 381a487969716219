"""RegDB: the dual-camera visible-thermal person re-identification benchmark (images).

The on-disk format and the official protocol are specified in ``docs/decisions/data.md#image-benchmarks``
(read from ``mangye16/Cross-Modal-Re-ID-baseline`` ``data_loader.py``, ``data_manager.py``,
``test.py`` and ``eval_metrics.py``). Each image is a
:class:`~reprolib.data.types.Tracklet` with one path, so the video pipeline runs it with T = 1.
"""
from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass

from .counts import eval_set_counts, filtered_split_counts
from .errors import DirectoryListing, ProblemLog
from .types import EvalSet, Modality, Tracklet, VideoReIDDataset

logger = logging.getLogger(__name__)

IDX_DIR = "idx"
SPLITS = ("train", "test")
#: Index-file modality word -> (modality, image folder, camera id of the dual-camera rig).
MODALITIES = {"visible": (Modality.RGB, "Visible", 0), "thermal": (Modality.IR, "Thermal", 1)}
LINE_GRAMMAR = "'<image path relative to the root> <integer label>'"
_IDX_NAME = re.compile(r"^train_visible_(\d+)\.txt$")
MAX_LISTED = 20  # labels spelled out in one problem line

EXPECTED_TREE = f"""\
root/
  Visible/<id>/<image>     e.g. Visible/1/male_front_v_00007_1.bmp (10 images per identity)
  Thermal/<id>/<image>     e.g. Thermal/1/male_front_t_00007_1.bmp
  idx/train_visible_<t>.txt, idx/train_thermal_<t>.txt, idx/test_visible_<t>.txt,
  idx/test_thermal_<t>.txt for every trial t = 1..10; one image per line: {LINE_GRAMMAR}
"""


def idx_file(split: str, modality: str, trial: int) -> str:
    """Path of one index file relative to the root, e.g. ``idx/train_visible_1.txt``."""
    return f"{IDX_DIR}/{split}_{modality}_{trial}.txt"


def available_trials(root: str) -> list[int]:
    """Trials ``t`` for which ``root/idx/train_visible_{t}.txt`` exists, sorted."""
    try:
        names = os.listdir(os.path.join(root, IDX_DIR))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(m.group(1)) for m in map(_IDX_NAME.match, names) if m)


@dataclass(frozen=True)
class IdxLine:
    """One line of a RegDB index file."""

    path: str  # relative to the root, '/'-separated
    label: int
    where: str  # "idx/test_thermal_3.txt:12"


def read_idx_file(root: str, rel: str, log: ProblemLog) -> list[IdxLine]:
    """Parse an index file (fields split on any whitespace), recording malformed lines.

    The official reader splits each line on a single space and takes field 0 as the path
    and field 1 as the integer label.

    Args:
        root: dataset root.
        rel: file path relative to ``root``.
        log: receives one problem per malformed line.

    Returns:
        The well-formed lines in file order.
    """
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        raw = f.read().splitlines()
    lines = []
    for number, text in enumerate(raw, start=1):
        fields = text.split()
        if not fields:
            if any(t.strip() for t in raw[number:]):
                log.add(f"{rel}:{number}: blank line inside the file (the official reader crashes on it)")
            continue
        label = None
        if len(fields) == 2 and re.fullmatch(r"[+-]?\d+", fields[1]):
            label = int(fields[1])
        if label is None:
            log.add(f"{rel}:{number}: expected {LINE_GRAMMAR}, got '{text.strip()}'")
            continue
        lines.append(IdxLine(fields[0], label, f"{rel}:{number}"))
    return lines


class RegDB(VideoReIDDataset):
    """RegDB visible-thermal person re-identification dataset (one trial).

    Reference:
        D. T. Nguyen et al. "Person Recognition System Based on a Combination of Body Images
        from Visible Light and Thermal Cameras." Sensors 2017. (CMFT cites it as Park et al.
        2021; ``docs/decisions/cmft.md#c16-comparison-losses-and-citations``.)

    Statistics: 412 identities x (10 visible + 10 thermal) images. Each trial t = 1..10 splits
    them into 206 training identities (2,060 images per modality) and 206 test identities
    (2,060 query and 2,060 gallery images).

    Protocol (``docs/decisions/data.md#image-benchmarks``):

    * The trial's four files ``idx/{train,test}_{visible,thermal}_{t}.txt`` list
      ``path label`` per image; paths are relative to the root.
    * Training labels are relabelled 0..N-1 in sorted label order (the identity on the real
      files, whose labels are 0..205); test pids are the labels as written.
    * ``camid``: 0 for the visible and 1 for the thermal camera of the dual-camera rig;
      ``num_cameras = 2``.
    * Evaluation sets, with no camera filter (official ``eval_regdb``; the evaluator's
      ``"bupt"`` rule removes nothing): ``"rgb2ir"`` (visible to thermal: query =
      test_visible, gallery = test_thermal) and ``"ir2rgb"`` (thermal to visible, AGW
      ``--tvsearch``: the roles swapped).
    * One model is trained per trial and the ten results are averaged
      (:func:`reprolib.metrics.trials.run_trials` with :data:`~reprolib.metrics.trials.REGDB_TRIALS`).

    Extra ``stats`` keys: ``trial``, ``available_trials``.

    Args:
        root: dataset root (holding ``Visible/``, ``Thermal/`` and ``idx/``).
        trial: which split to read (official 1..10).

    Raises:
        DatasetFormatError: listing every missing or malformed index file and line, missing
            image and protocol violation found in ``root`` for this trial.
    """

    def __init__(self, root: str, trial: int = 1) -> None:
        root = os.path.abspath(os.path.expanduser(root))
        self.trial = int(trial)
        self._warnings: list[str] = []
        lines = self._validate(root)

        label_of = {label: i for i, label in enumerate(sorted({ln.label for m in MODALITIES
                                                               for ln in lines[("train", m)]}))}
        train = [self._tracklet(root, ln, m, label_of[ln.label]) for m in MODALITIES for ln in lines[("train", m)]]
        test_visible = [self._tracklet(root, ln, "visible", ln.label) for ln in lines[("test", "visible")]]
        test_thermal = [self._tracklet(root, ln, "thermal", ln.label) for ln in lines[("test", "thermal")]]
        eval_sets = {
            "rgb2ir": EvalSet("rgb2ir", test_visible, test_thermal, rule="bupt"),
            "ir2rgb": EvalSet("ir2rgb", test_thermal, test_visible, rule="bupt"),
        }
        num_cameras = len(MODALITIES)
        stats = {
            "dataset": "regdb",
            "root": root,
            "options": {"trial": self.trial},
            "num_train_pids": len(label_of),
            "num_cameras": num_cameras,
            "paired": False,
            "splits": {
                "train": filtered_split_counts(train, train),
                "test": filtered_split_counts(test_visible + test_thermal, test_visible + test_thermal),
            },
            "eval_sets": {k: eval_set_counts(v, v) for k, v in eval_sets.items()},
            "warnings": list(self._warnings),
            "trial": self.trial,
            "available_trials": available_trials(root),
        }
        super().__init__(name="regdb", root=root, train=train, eval_sets=eval_sets,
                         num_train_pids=len(label_of), num_cameras=num_cameras, paired=False, stats=stats)

    # ------------------------------------------------------------------------------------

    @staticmethod
    def _tracklet(root: str, line: IdxLine, modality: str, pid: int) -> Tracklet:
        mod, _, camid = MODALITIES[modality]
        return Tracklet(paths=(os.path.join(root, *line.path.split("/")),), pid=pid, camid=camid, modality=mod,
                        raw_pid=line.label, source=line.where)

    def _warn(self, message: str) -> None:
        logger.warning(message)
        self._warnings.append(message)

    def _validate(self, root: str) -> dict[tuple[str, str], list[IdxLine]]:
        """Read and cross-check the trial's four index files; raise one error listing all problems."""
        log = ProblemLog()
        if not os.path.isdir(root):
            log.add("the root directory does not exist")
            log.raise_if_any("RegDB", root, EXPECTED_TREE)
        for _, folder, _ in MODALITIES.values():
            log.require_dir(root, folder)
        lines: dict[tuple[str, str], list[IdxLine]] = {}
        trials = available_trials(root)
        for split in SPLITS:
            for modality in MODALITIES:
                rel = idx_file(split, modality, self.trial)
                if not os.path.isfile(os.path.join(root, rel)):
                    have = f" (idx/ holds trials {', '.join(map(str, trials))})" if trials else ""
                    log.add(f"{rel} is missing{have}")
                    lines[(split, modality)] = []
                    continue
                lines[(split, modality)] = read_idx_file(root, rel, log)
                if not lines[(split, modality)]:
                    log.add(f"{rel} lists no image")
        self._check_images(root, lines, log)
        for split in SPLITS:
            self._check_modalities(split, lines, log)
        log.raise_if_any("RegDB", root, EXPECTED_TREE)
        return lines

    def _check_images(self, root: str, lines: dict[tuple[str, str], list[IdxLine]], log: ProblemLog) -> None:
        """Every listed image exists; no image in both splits; images under their modality folder."""
        listing = DirectoryListing()
        misplaced: list[str] = []
        for (split, modality), items in lines.items():
            missing = listing.missing(root, [ln.path for ln in items])
            if missing:
                rel = idx_file(split, modality, self.trial)
                log.add(f"{rel}: {len(missing)} of {len(items)} images are missing on disk, e.g. {missing[0]}")
            folder = MODALITIES[modality][1]
            misplaced += [ln.where for ln in items if not ln.path.startswith(folder + "/")]
        if misplaced:
            self._warn(f"{len(misplaced)} index line(s) point outside their modality's folder, e.g. {misplaced[0]}")
        for modality in MODALITIES:
            both = ({ln.path for ln in lines[("train", modality)]} & {ln.path for ln in lines[("test", modality)]})
            if both:
                log.add(f"{len(both)} {modality} image(s) are listed in both {idx_file('train', modality, self.trial)} "
                        f"and {idx_file('test', modality, self.trial)}, e.g. {sorted(both)[0]}")

    def _check_modalities(self, split: str, lines: dict[tuple[str, str], list[IdxLine]], log: ProblemLog) -> None:
        """Every label of a split has visible and thermal images (train: the cross-modal sampler
        needs both; test: a query identity absent from the gallery would be skipped silently)."""
        visible = {ln.label for ln in lines[(split, "visible")]}
        thermal = {ln.label for ln in lines[(split, "thermal")]}
        if not visible or not thermal:
            return  # an empty or missing file is already reported
        lacking: dict[str, list[int]] = defaultdict(list)
        for label in sorted(visible ^ thermal):
            lacking["thermal" if label in visible else "visible"].append(label)
        for modality, labels in lacking.items():
            shown = ", ".join(map(str, labels[:MAX_LISTED])) + (" ..." if len(labels) > MAX_LISTED else "")
            other = "visible" if modality == "thermal" else "thermal"
            log.add(f"{idx_file(split, modality, self.trial)}: {len(labels)} label(s) of "
                    f"{idx_file(split, other, self.trial)} have no {modality} image: {shown}")
