"""SYSU-MM01: the image visible-infrared person re-identification benchmark.

The on-disk format and the official protocol are specified in ``docs/decisions/data.md#image-benchmarks``
(read from ``mangye16/Cross-Modal-Re-ID-baseline`` ``pre_process_sysu.py``, ``data_manager.py``,
``eval_metrics.py``, ``test.py`` and ``mangye16/DDAG`` ``data_manager.py``). Each image is a
:class:`~reprolib.data.types.Tracklet` with one path, so the video pipeline runs it with T = 1.
"""
from __future__ import annotations

import logging
import os
import random
from collections import Counter
from collections.abc import Sequence

from .counts import count_tracklets, eval_set_counts, filtered_split_counts
from .errors import ProblemLog
from .types import EvalSet, Modality, Tracklet, VideoReIDDataset

logger = logging.getLogger(__name__)

#: Visible cameras: 1 and 2 indoor, 4 and 5 outdoor. Infrared: 3 indoor, 6 outdoor.
RGB_CAMERAS = (1, 2, 4, 5)
IR_CAMERAS = (3, 6)
CAMERAS = (1, 2, 3, 4, 5, 6)
#: Gallery cameras of the two search modes (queries are all infrared images in both).
GALLERY_CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
SEARCH_MODES = tuple(GALLERY_CAMERAS)
ID_FILES = {"train": "exp/train_id.txt", "val": "exp/val_id.txt", "test": "exp/test_id.txt"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
MAX_LISTED_PIDS = 20  # identities spelled out in one problem line

EXPECTED_TREE = """\
root/
  cam1/0001/0001.jpg ...   cam<c>/<pid as 4 digits>/<image>; cameras 1, 2, 4, 5 visible
  ...                      (1, 2 indoor; 4, 5 outdoor), 3 and 6 infrared (3 indoor, 6 outdoor)
  cam6/...
  exp/train_id.txt         one line of comma-separated pids, e.g. '1,2,4,5,7'
  exp/val_id.txt           same format (train + val ids are the training set)
  exp/test_id.txt          same format (the test ids)
"""


def read_id_file(root: str, rel: str, log: ProblemLog) -> tuple[list[int], int]:
    """Read an ``exp/*_id.txt`` file: every integer in it, in file order.

    The official reader keeps only the file's first line and splits it on commas; we read
    the integers of every line, split on commas and whitespace (on the real one-line files
    both readers agree).

    Args:
        root: dataset root.
        rel: file path relative to ``root``.
        log: receives one problem per token that is not an integer.

    Returns:
        ``(pids, num_lines)``: the pids in file order and the number of non-blank lines.
    """
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    pids: list[int] = []
    for number, line in enumerate(lines, start=1):
        for token in line.replace(",", " ").split():
            try:
                pids.append(int(token))
            except ValueError:
                log.add(f"{rel}:{number}: expected comma-separated integer pids, got '{token}'")
    return pids, len(lines)


def list_images(folder: str) -> list[str]:
    """Image file names (by extension) of ``folder`` in sorted order; empty if it is absent.

    The official code lists every entry of the folder and sorts the full paths, which orders
    them by file name as here.
    """
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
    except (FileNotFoundError, NotADirectoryError):
        return []


def sample_single_shot(folder_sizes: Sequence[int], seed: int) -> list[int]:
    """Draw one image per (identity, camera) folder: the official single-shot gallery draw.

    The official ``process_gallery_sysu`` seeds Python's ``random`` with the trial number,
    walks the sorted test pids and, for each, the mode's visible cameras in order, and calls
    ``random.choice`` on the sorted image list of every existing ``cam/pid`` folder. A private
    ``random.Random(seed)`` makes the same draws without touching the global generator.

    Args:
        folder_sizes: number of images of each non-empty folder, in the official walk order
            (sorted pids, then the mode's cameras in order).
        seed: the trial's seed.

    Returns:
        The chosen image index (into the folder's sorted file names) of each folder.
    """
    rng = random.Random(seed)
    # choice() over the index range consumes the generator exactly as choice() over the names
    return [rng.choice(range(n)) for n in folder_sizes]


class SYSUMM01(VideoReIDDataset):
    """SYSU-MM01 visible-infrared person re-identification dataset (images).

    Reference:
        A. Wu et al. "RGB-Infrared Cross-Modality Person Re-Identification." ICCV 2017.

    Statistics (the official split files; CMFT's text says both "419" and "491" identities,
    ``docs/decisions/cmft.md#c20-dataset-facts``): 491 identities; training = ``train_id`` + ``val_id``
    = 395 identities (about 22,258 visible and 11,909 infrared images); test = 96 identities
    with 3,803 infrared queries (cameras 3 and 6) and a single-shot gallery of 301 visible
    images (all-search, cameras 1, 2, 4, 5) or 112 (indoor-search, cameras 1, 2).

    Protocol (``docs/decisions/data.md#image-benchmarks``):

    * Every image is one :class:`Tracklet` with a single path; ``camid`` is the raw camera
      number 1..6 (the camera rule compares raw numbers), ``num_cameras = 7`` (row 0 of a
      camera table unused, as HITSZ-VCM's raw ids).
    * Training: all images of the train and val identities in all six cameras, relabelled
      0..N-1 in sorted pid order (the official code enumerates a ``set`` of the infrared pids,
      which is the same order for the real ints). Every training identity must have visible
      and infrared images.
    * Query: every infrared image (cameras 3, 6) of the test identities, in both modes, in
      the official order (sorted pids, camera 3 then 6, sorted file names).
    * Gallery: one random visible image per (test identity, gallery camera), drawn for trial
      ``t`` with ``random.seed(t)`` as DDAG does (AGW leaves the seed commented out, so its
      galleries are not reproducible); :meth:`gallery_indices` gives the draw of any trial.
    * Evaluation rule ``"sysu"`` (:func:`reprolib.metrics.sysu_rule.evaluate_sysu`): for a camera-3
      query, all camera-2 gallery images are removed; the CMC is identity-unique.
    * Only the infrared-to-visible direction exists: ``eval_sets`` holds ``"ir2rgb"``.

    Extra ``stats`` keys: ``mode``, ``trial``, ``gallery_pool`` (counts of the candidate
    visible images per mode), ``id_file_lines``.

    Args:
        root: dataset root (holding ``cam1`` .. ``cam6`` and ``exp/``).
        mode: ``"all"`` (all-search) or ``"indoor"`` (indoor-search), for ``eval_sets``.
        trial: seed of the single-shot gallery in ``eval_sets`` (official trials 0..9).

    Raises:
        DatasetFormatError: listing every missing file or folder, malformed id file, empty
            image folder and protocol violation found in ``root``.
    """

    def __init__(self, root: str, mode: str = "all", trial: int = 0) -> None:
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}, got '{mode}'")
        root = os.path.abspath(os.path.expanduser(root))
        self.mode = mode
        self.trial = int(trial)
        self._warnings: list[str] = []
        ids, images, id_lines = self._validate(root)

        train_pids = sorted(ids["train"] + ids["val"])
        label_of = {pid: label for label, pid in enumerate(train_pids)}
        train = [t for pid in train_pids for cam in CAMERAS
                 for t in self._images(root, images, pid, cam, label_of[pid])]
        test_pids = sorted(ids["test"])
        #: Infrared queries of both modes, in the official order.
        self.query: list[Tracklet] = [t for pid in test_pids for cam in IR_CAMERAS
                                      for t in self._images(root, images, pid, cam, pid)]
        #: Candidate visible gallery images per mode: ``(pid, camid, tracklets)`` per folder.
        self.gallery_candidates: dict[str, list[tuple[int, int, list[Tracklet]]]] = {
            m: [(pid, cam, self._images(root, images, pid, cam, pid))
                for pid in test_pids for cam in cams if images.get((pid, cam))]
            for m, cams in GALLERY_CAMERAS.items()
        }

        gallery = self.gallery(self.trial, mode)
        eval_sets = {"ir2rgb": EvalSet("ir2rgb", self.query, gallery, rule="sysu")}
        pool = {m: [t for _, _, ts in c for t in ts] for m, c in self.gallery_candidates.items()}
        stats = {
            "dataset": "sysu-mm01",
            "root": root,
            "options": {"mode": mode, "trial": self.trial},
            "num_train_pids": len(label_of),
            "num_cameras": max(CAMERAS) + 1,
            "paired": False,
            "splits": {
                "train": filtered_split_counts(train, train),
                "test": filtered_split_counts(self.query + pool["all"], self.query + pool["all"]),
            },
            "eval_sets": {k: eval_set_counts(v, v) for k, v in eval_sets.items()},
            "warnings": list(self._warnings),
            "mode": mode,
            "trial": self.trial,
            "gallery_pool": {m: count_tracklets(p) for m, p in pool.items()},
            "id_file_lines": id_lines,
        }
        super().__init__(name="sysu-mm01", root=root, train=train, eval_sets=eval_sets,
                         num_train_pids=len(label_of), num_cameras=max(CAMERAS) + 1, paired=False,
                         stats=stats)

    # ------------------------------------------------------------------------------------

    def gallery_indices(self, trial: int, mode: str | None = None) -> list[int]:
        """Indices into :meth:`gallery_pool` of the single-shot gallery of ``trial``.

        Args:
            trial: the trial's seed (official 0..9).
            mode: ``"all"`` or ``"indoor"`` (default: this dataset's ``mode``).

        Returns:
            One index per (test identity, gallery camera) folder, in the official order, so
            features of the whole pool can be extracted once and indexed per trial.
        """
        candidates = self.gallery_candidates[self._mode(mode)]
        picks = sample_single_shot([len(ts) for _, _, ts in candidates], trial)
        offsets, start = [], 0
        for _, _, ts in candidates:
            offsets.append(start)
            start += len(ts)
        return [offset + pick for offset, pick in zip(offsets, picks)]

    def gallery_pool(self, mode: str | None = None) -> list[Tracklet]:
        """Every candidate visible test image of ``mode`` (default: this dataset's), official order."""
        return [t for _, _, ts in self.gallery_candidates[self._mode(mode)] for t in ts]

    def gallery(self, trial: int, mode: str | None = None) -> list[Tracklet]:
        """The single-shot gallery of ``trial``: one visible image per (test identity, camera)."""
        pool = self.gallery_pool(mode)
        return [pool[i] for i in self.gallery_indices(trial, mode)]

    def eval_set(self, trial: int, mode: str | None = None) -> EvalSet:
        """The ``ir2rgb`` evaluation set of ``trial`` and ``mode`` (rule ``"sysu"``)."""
        return EvalSet("ir2rgb", self.query, self.gallery(trial, mode), rule="sysu")

    def _mode(self, mode: str | None) -> str:
        mode = self.mode if mode is None else mode
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}, got '{mode}'")
        return mode

    @staticmethod
    def _images(root: str, images: dict[tuple[int, int], list[str]], pid: int, cam: int,
                label: int) -> list[Tracklet]:
        folder = f"cam{cam}/{pid:04d}"
        modality = Modality.RGB if cam in RGB_CAMERAS else Modality.IR
        base = os.path.join(root, f"cam{cam}", f"{pid:04d}") + os.sep
        return [Tracklet(paths=(base + name,), pid=label, camid=cam, modality=modality, raw_pid=pid,
                         source=f"{folder}/{name}") for name in images.get((pid, cam), [])]

    def _warn(self, message: str) -> None:
        logger.warning(message)
        self._warnings.append(message)

    def _validate(self, root: str) -> tuple[dict[str, list[int]], dict[tuple[int, int], list[str]], dict[str, int]]:
        """Read the id files and list the image folders; raise one error listing all problems."""
        log = ProblemLog()
        if not os.path.isdir(root):
            log.add("the root directory does not exist")
            log.raise_if_any("SYSU-MM01", root, EXPECTED_TREE)
        ids: dict[str, list[int]] = {}
        id_lines: dict[str, int] = {}
        for split, rel in ID_FILES.items():
            ids[split], id_lines[split] = read_id_file(root, rel, log) if log.require_file(root, rel) else ([], 0)
            if id_lines[split] > 1:
                self._warn(f"{rel} has {id_lines[split]} lines; all of its {len(ids[split])} pids are used "
                           f"(the official reader keeps only the first line)")
            if id_lines[split] and not ids[split]:
                log.add(f"{rel} holds no pids")
            elif os.path.isfile(os.path.join(root, rel)) and not id_lines[split]:
                log.add(f"{rel} is empty (the official reader crashes on it)")
        cams_present = [cam for cam in CAMERAS if log.require_dir(root, f"cam{cam}")]

        listed = Counter(pid for split in ID_FILES for pid in ids[split])
        repeated = sorted(pid for pid, n in listed.items() if n > 1)
        if repeated:
            log.add(f"exp/: {len(repeated)} pid(s) listed more than once across train/val/test "
                    f"(their images would be counted twice or leak into the test set): {_pids(repeated)}")
        images: dict[tuple[int, int], list[str]] = {}
        empty: list[str] = []
        for pid in sorted(listed):
            for cam in cams_present:
                folder = os.path.join(root, f"cam{cam}", f"{pid:04d}")
                if os.path.isdir(folder):
                    images[(pid, cam)] = list_images(folder)
                    if not images[(pid, cam)]:
                        empty.append(f"cam{cam}/{pid:04d}")
        if empty:
            log.add(f"{len(empty)} identity folder(s) hold no image ({', '.join(IMAGE_EXTENSIONS)}); the official "
                    f"gallery draw crashes on them: {', '.join(empty[:MAX_LISTED_PIDS])}"
                    f"{' ...' if len(empty) > MAX_LISTED_PIDS else ''}")
        if len(cams_present) == len(CAMERAS):  # coverage is only meaningful on a complete camera set
            self._check_coverage(ids, images, log)
        log.raise_if_any("SYSU-MM01", root, EXPECTED_TREE)
        return ids, images, id_lines

    def _check_coverage(self, ids: dict[str, list[int]], images: dict[tuple[int, int], list[str]],
                        log: ProblemLog) -> None:
        """Training ids have both modalities; test ids have images; queries and gallery exist."""
        def has(pid: int, cams: Sequence[int]) -> bool:
            return any(images.get((pid, cam)) for cam in cams)

        lacking = [(pid, "visible" if not has(pid, RGB_CAMERAS) else "infrared")
                   for pid in sorted(ids["train"] + ids["val"])
                   if not (has(pid, RGB_CAMERAS) and has(pid, IR_CAMERAS))]
        if lacking:
            desc = ", ".join(f"pid {pid} (no {what})" for pid, what in lacking[:MAX_LISTED_PIDS])
            more = f" and {len(lacking) - MAX_LISTED_PIDS} more" if len(lacking) > MAX_LISTED_PIDS else ""
            log.add(f"exp/train_id.txt + exp/val_id.txt: {len(lacking)} training identit"
                    f"{'y lacks' if len(lacking) == 1 else 'ies lack'} a modality: {desc}{more}; the cross-modal "
                    f"identity sampler needs visible and infrared images of every label")
        absent = [pid for pid in sorted(ids["test"]) if not has(pid, CAMERAS)]
        if absent:
            log.add(f"exp/test_id.txt: {len(absent)} test pid(s) have no image folder in any camera: {_pids(absent)}")
        if ids["test"] and not any(has(pid, IR_CAMERAS) for pid in ids["test"]):
            log.add("exp/test_id.txt: no test identity has an infrared image (cam3, cam6): there is no query")
        for pid in sorted(set(ids["test"]) - set(absent)):
            if not has(pid, IR_CAMERAS) or not has(pid, RGB_CAMERAS):
                self._warn(f"test pid {pid} has no {'infrared' if not has(pid, IR_CAMERAS) else 'visible'} image: "
                           f"it {'gives no query' if not has(pid, IR_CAMERAS) else 'never matches a query'}")


def _pids(pids: Sequence[int]) -> str:
    """At most :data:`MAX_LISTED_PIDS` pids, comma-separated, with a count of the rest."""
    text = ", ".join(str(p) for p in pids[:MAX_LISTED_PIDS])
    return text + (f" and {len(pids) - MAX_LISTED_PIDS} more" if len(pids) > MAX_LISTED_PIDS else "")
