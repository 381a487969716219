"""BUPTCampus: video visible-infrared person re-identification with pixel-aligned pairs.

The on-disk format and every quirk implemented here are specified in
``docs/decisions/data.md#buptcampus`` (read from the official code).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from .counts import eval_set_counts, filtered_split_counts
from .errors import DirectoryListing, ProblemLog
from .types import EvalSet, Modality, Tracklet, VideoReIDDataset

logger = logging.getLogger(__name__)

#: Camera names in the official index order (BUPT ``utils.py`` ``CAMERA``).
CAMERAS = ("LS3", "G25", "CQ1", "W4", "TSG1", "TSG2")
CAMERA_INDEX = {name: i for i, name in enumerate(CAMERAS)}

DATA_DIR = "DATA"
PATHS_JSON = "data_paths.json"
TRAIN_FILE = "train.txt"
AUX_FILE = "train_auxiliary.txt"
QUERY_FILE = "query.txt"
GALLERY_FILE = "gallery.txt"
PAIR = "RGB/IR"
EVAL_MODES = ("official", "full")
LABEL_ORDERS = ("numeric", "official_string")
LINE_GRAMMAR = "4 fields 'obj_id modality camera tracklet_id'"

EXPECTED_TREE = f"""\
root/                      (the official code's --data_root is root/DATA; either is accepted)
  DATA/<pid>/<RGB|IR|FakeIR>/<camera>/<pid>_<MOD>_<camera>_<tid>_<frame>.jpg
  data_paths.json          {{pid: {{"RGB"|"IR": {{camera: {{tid: [frame paths relative to DATA/]}}}}}}}}
  train.txt                lines 'obj_id RGB/IR camera tid', e.g. '1746 RGB/IR TSG2 1'
  train_auxiliary.txt      same format as train.txt
  query.txt, gallery.txt   lines 'obj_id RGB|IR camera tid', e.g. '1911 RGB G25 1'
cameras: {', '.join(CAMERAS)}; obj_id: a decimal person id (not zero-padded)
"""


def resolve_bupt_root(root: str) -> str:
    """The dataset root: ``root`` itself, or its parent when ``root`` is the ``DATA/`` folder.

    The official code is pointed at ``<dataset>/DATA`` and reads ``DATA/../<file>``; VLD and
    X-ReID are pointed at ``<dataset>``. Both are accepted.
    """
    root = os.path.abspath(os.path.expanduser(root))
    parent = os.path.dirname(root)
    if (os.path.isdir(root) and not os.path.exists(os.path.join(root, PATHS_JSON))
            and os.path.exists(os.path.join(parent, PATHS_JSON))
            and os.path.samefile(root, os.path.join(parent, DATA_DIR))):
        return parent
    return root


@dataclass(frozen=True)
class SplitLine:
    """One line of a BUPTCampus split file."""

    obj_id: str  # as written (also the data_paths.json key)
    modality: str  # "RGB/IR", "RGB" or "IR"
    camera: str
    tracklet_id: str
    where: str  # "query.txt:12"

    @property
    def pid(self) -> int:
        return int(self.obj_id)

    @property
    def camid(self) -> int:
        return CAMERA_INDEX[self.camera]


def read_split_file(root: str, rel: str, modalities: Sequence[str], log: ProblemLog) -> list[SplitLine]:
    """Parse a split file (fields split on any whitespace), recording malformed lines.

    Args:
        root: dataset root.
        rel: file name relative to ``root``.
        modalities: modality strings allowed in this file.
        log: receives one problem per malformed line.

    Returns:
        The well-formed lines in file order.
    """
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        raw = f.read().splitlines()
    lines = []
    for number, text in enumerate(raw, start=1):
        where = f"{rel}:{number}"
        fields = text.split()
        if not fields and all(not t.strip() for t in raw[number:]):
            break  # trailing blank lines
        if len(fields) != 4:
            log.add(f"{where}: expected {LINE_GRAMMAR}, got '{text.strip()}'")
            continue
        obj_id, modality, camera, tid = fields
        ok = True
        if not obj_id.isdigit():
            log.add(f"{where}: obj_id must be a decimal person id, got '{obj_id}'")
            ok = False
        if modality not in modalities:
            log.add(f"{where}: modality must be {' or '.join(repr(m) for m in modalities)} in "
                    f"{rel}, got '{modality}'")
            ok = False
        if camera not in CAMERA_INDEX:
            log.add(f"{where}: unknown camera '{camera}' (expected one of {', '.join(CAMERAS)})")
            ok = False
        if ok:
            lines.append(SplitLine(obj_id, modality, camera, tid, where))
    return lines


def relabel(obj_ids: Sequence[str], label_order: str) -> dict[str, int]:
    """Map person ids to contiguous labels 0..N-1.

    Args:
        obj_ids: person ids as written in the split file.
        label_order: ``"numeric"`` sorts by integer value (1 < 2 < 10); ``"official_string"``
            sorts the strings as the official ``sorted(set(pids))`` does ('10' < '2'), which
            only matters to match the classifier rows of official checkpoints.

    Returns:
        ``{obj_id: label}``.
    """
    key = int if label_order == "numeric" else None
    return {pid: label for label, pid in enumerate(sorted(set(obj_ids), key=key))}


def official_rgb_drop(items: Sequence[Tracklet], batch: int) -> tuple[list[Tracklet], int]:
    """The official test sampler's RGB tail drop (``ConsistentModalitySampler``).

    The sampler lists all RGB items, then all IR items, and cuts the RGB list to a multiple
    of the batch size: the last ``N_RGB mod batch`` RGB items in file order are dropped; IR
    items are all kept. When ``N_RGB mod batch == 0`` the official ``[:-0]`` slice would drop
    *every* RGB item; we drop none (the evident intent), and the caller warns.

    Args:
        items: query or gallery tracklets in file order, both modalities.
        batch: the sampler's batch size (official 64).

    Returns:
        ``(kept items in file order, number of RGB items dropped)``.
    """
    rgb = [i for i, t in enumerate(items) if t.modality == Modality.RGB]
    n_drop = len(rgb) % batch
    dropped = set(rgb[len(rgb) - n_drop:]) if n_drop else set()
    return [t for i, t in enumerate(items) if i not in dropped], n_drop


class BUPTCampus(VideoReIDDataset):
    """BUPTCampus video visible-infrared person re-identification dataset.

    Reference:
        Y. Du et al. "Video-based Visible-Infrared Person Re-Identification with Auxiliary
        Samples." IEEE Transactions on Information Forensics and Security, 2024.

    URL: https://github.com/dyhBUPT/BUPTCampus (data on request).

    Statistics: 3,080 identities = 1,074 train (3,574 RGB/IR pairs, 796,138 images) + 930
    auxiliary (930 pairs, single camera each) + 1,076 test; 6 cameras. Query 1,076
    tracklets (536 IR + 540 RGB), gallery 4,844 (2,422 IR + 2,422 RGB). The official test
    sampler evaluates 512 RGB queries and 2,368 RGB gallery tracklets.

    Protocol (``docs/decisions/data.md#buptcampus``):

    * ``root`` is the folder holding ``DATA/``, ``data_paths.json`` and the four split
      files; the ``DATA/`` folder itself is accepted too (the official ``--data_root``).
    * Split lines ``obj_id modality camera tracklet_id``; cameras ``LS3 G25 CQ1 W4 TSG1
      TSG2`` -> 0..5. Frame paths come from ``data_paths.json`` (never built from names).
    * Training items are ``RGB/IR`` pairs: two tracklets (RGB and IR) with the same
      ``pair_id`` and equal lengths (frame-aligned). ``train`` lists them pair by pair
      (RGB, IR, RGB, IR, ...), so ``train_by_modality(RGB)[i]`` and
      ``train_by_modality(IR)[i]`` are the two halves of pair ``i``.
    * Labels are relabelled in sorted pid order: ``label_order="numeric"`` (default) or
      ``"official_string"`` (the official string sort, '10' < '2', to match official
      checkpoints' classifier rows).
    * ``train_auxiliary.txt`` is loaded into :attr:`auxiliary` with its own labels and pair
      ids (the official code uses it only for the triplet loss).
    * Test pids are kept raw (``int(obj_id)``). No camera filter (``rule="bupt"``).
    * ``eval_mode="official"`` reproduces the official ``ConsistentModalitySampler``: the last
      ``N_RGB mod eval_batch`` RGB entries of ``query.txt`` and of ``gallery.txt`` (file
      order) are dropped; IR entries are kept. **Remainder 0:** the official code's ``[:-0]``
      slice would drop *all* RGB entries; we drop none and log a warning saying so.
      ``eval_mode="full"`` keeps every tracklet.
    * No length filter (the official code has none).

    Evaluation sets: ``ir2rgb`` = IR queries vs RGB gallery; ``rgb2ir`` = RGB queries vs IR
    gallery. :attr:`query` and :attr:`gallery` keep both modalities (after the drop) for the
    official same-modality and AllModal modes.

    Extra ``stats`` keys: ``num_auxiliary_pids``, ``dropped`` (``query_rgb``,
    ``gallery_rgb``), ``single_camera_train_identities`` (identities the official training
    sampler never draws, because it needs 2 cameras per identity).

    Args:
        root: dataset root (or its ``DATA/`` folder).
        eval_mode: ``"official"`` or ``"full"``.
        eval_batch: batch size of the official test sampler (official 64; "Please don't
            change it").
        label_order: ``"numeric"`` or ``"official_string"``.

    Raises:
        DatasetFormatError: listing every missing file, malformed line, missing JSON entry,
            unequal pair and missing frame found in ``root``.
    """

    def __init__(self, root: str, eval_mode: str = "official", eval_batch: int = 64,
                 label_order: str = "numeric") -> None:
        if eval_mode not in EVAL_MODES:
            raise ValueError(f"eval_mode must be one of {EVAL_MODES}, got '{eval_mode}'")
        if label_order not in LABEL_ORDERS:
            raise ValueError(f"label_order must be one of {LABEL_ORDERS}, got '{label_order}'")
        if eval_batch < 1:
            raise ValueError(f"eval_batch must be >= 1, got {eval_batch}")
        root = resolve_bupt_root(root)
        self.eval_mode, self.eval_batch, self.label_order = eval_mode, eval_batch, label_order
        self.data_dir = os.path.join(root, DATA_DIR)
        warnings: list[str] = []
        splits, paths = self._validate(root)

        train = self._pairs(splits[TRAIN_FILE], paths)
        self.auxiliary: list[Tracklet] = self._pairs(splits[AUX_FILE], paths)
        self.num_auxiliary_pids = len({t.pid for t in self.auxiliary})
        query_all = self._singles(splits[QUERY_FILE], paths)
        gallery_all = self._singles(splits[GALLERY_FILE], paths)
        dropped = {"query_rgb": 0, "gallery_rgb": 0}
        self.query, self.gallery = query_all, gallery_all
        if eval_mode == "official":
            self.query, dropped["query_rgb"] = official_rgb_drop(query_all, eval_batch)
            self.gallery, dropped["gallery_rgb"] = official_rgb_drop(gallery_all, eval_batch)
            for rel, items in ((QUERY_FILE, query_all), (GALLERY_FILE, gallery_all)):
                n_rgb = sum(t.modality == Modality.RGB for t in items)
                if n_rgb and n_rgb % eval_batch == 0:
                    message = (f"{rel}: {n_rgb} RGB tracklets is a multiple of eval_batch="
                               f"{eval_batch}; the official sampler's [:-0] slice would drop ALL "
                               f"of them, we drop none")
                    logger.warning(message)
                    warnings.append(message)

        eval_sets = self._directions(self.query, self.gallery)
        unfiltered = self._directions(query_all, gallery_all)
        num_train_pids = len({t.pid for t in train})
        stats = {
            "dataset": "bupt",
            "root": root,
            "options": {"eval_mode": eval_mode, "eval_batch": eval_batch,
                        "label_order": label_order},
            "num_train_pids": num_train_pids,
            "num_cameras": len(CAMERAS),
            "paired": True,
            "splits": {
                "train": filtered_split_counts(train, train),
                "auxiliary": filtered_split_counts(self.auxiliary, self.auxiliary),
                "query": filtered_split_counts(query_all, self.query),
                "gallery": filtered_split_counts(gallery_all, self.gallery),
            },
            "eval_sets": {k: eval_set_counts(unfiltered[k], v) for k, v in eval_sets.items()},
            "warnings": warnings,
            "num_auxiliary_pids": self.num_auxiliary_pids,
            "dropped": dropped,
            "single_camera_train_identities": _single_camera_identities(train),
        }
        super().__init__(name="bupt", root=root, train=train, eval_sets=eval_sets,
                         num_train_pids=num_train_pids, num_cameras=len(CAMERAS), paired=True,
                         stats=stats)

    # ------------------------------------------------------------------------------------

    @staticmethod
    def _directions(query: list[Tracklet], gallery: list[Tracklet]) -> dict[str, EvalSet]:
        def of(items: list[Tracklet], m: Modality) -> list[Tracklet]:
            return [t for t in items if t.modality == m]

        return {
            "ir2rgb": EvalSet("ir2rgb", of(query, Modality.IR), of(gallery, Modality.RGB), "bupt"),
            "rgb2ir": EvalSet("rgb2ir", of(query, Modality.RGB), of(gallery, Modality.IR), "bupt"),
        }

    def _frames(self, rel_paths: list[str]) -> tuple[str, ...]:
        prefix = self.data_dir + os.sep
        return tuple(prefix + p for p in rel_paths)

    def _pairs(self, lines: list[SplitLine], paths: dict) -> list[Tracklet]:
        """Two tracklets (RGB then IR) per ``RGB/IR`` line, sharing ``pair_id``."""
        label_of = relabel([ln.obj_id for ln in lines], self.label_order)
        out = []
        for pair_id, ln in enumerate(lines):
            for modality in (Modality.RGB, Modality.IR):
                frames = paths[ln.obj_id][modality.name][ln.camera][ln.tracklet_id]
                out.append(Tracklet(self._frames(frames), label_of[ln.obj_id], ln.camid,
                                    modality, raw_pid=ln.pid, pair_id=pair_id, source=ln.where))
        return out

    def _singles(self, lines: list[SplitLine], paths: dict) -> list[Tracklet]:
        out = []
        for ln in lines:
            frames = paths[ln.obj_id][ln.modality][ln.camera][ln.tracklet_id]
            out.append(Tracklet(self._frames(frames), ln.pid, ln.camid, Modality[ln.modality],
                                raw_pid=ln.pid, source=ln.where))
        return out

    def _validate(self, root: str) -> tuple[dict[str, list[SplitLine]], dict]:
        """Read every file and check every referenced tracklet; raise one error if any problem.

        Returns:
            ``({split file: well-formed lines}, the data_paths.json mapping)``.
        """
        log = ProblemLog()
        if not os.path.isdir(root):
            log.add("the root directory does not exist")
            log.raise_if_any("BUPTCampus", root, EXPECTED_TREE)
        log.require_dir(root, DATA_DIR)
        paths = _load_paths_json(root, log)
        listing = DirectoryListing()
        splits: dict[str, list[SplitLine]] = {}
        for rel, modalities in ((TRAIN_FILE, [PAIR]), (AUX_FILE, [PAIR]),
                                (QUERY_FILE, ["RGB", "IR"]), (GALLERY_FILE, ["RGB", "IR"])):
            splits[rel] = read_split_file(root, rel, modalities, log) if log.require_file(root, rel) else []
            if paths is None:
                continue
            for ln in splits[rel]:
                halves = ["RGB", "IR"] if ln.modality == PAIR else [ln.modality]
                frames = {m: _lookup(paths, ln, m, log) for m in halves}
                for m, rel_paths in frames.items():
                    if rel_paths is not None:
                        log.check_frames(self.data_dir, DATA_DIR, rel_paths, f"{ln.where} ({m})",
                                         listing)
                if ln.modality == PAIR and None not in frames.values() \
                        and len(frames["RGB"]) != len(frames["IR"]):
                    log.add(f"{ln.where}: pair pid {ln.obj_id} camera {ln.camera} tracklet "
                            f"{ln.tracklet_id} has {len(frames['RGB'])} RGB but "
                            f"{len(frames['IR'])} IR frames; RGB/IR pairs must be frame-aligned")
        log.raise_if_any("BUPTCampus", root, EXPECTED_TREE)
        return splits, paths  # type: ignore[return-value]


def _load_paths_json(root: str, log: ProblemLog) -> Optional[dict]:
    """``data_paths.json`` as a mapping, or ``None`` (with a recorded problem)."""
    if not log.require_file(root, PATHS_JSON):
        return None
    try:
        with open(os.path.join(root, PATHS_JSON), encoding="utf-8") as f:
            paths = json.load(f)
    except json.JSONDecodeError as e:
        log.add(f"{PATHS_JSON}:{e.lineno}: not valid JSON ({e.msg})")
        return None
    if not isinstance(paths, dict):
        log.add(f"{PATHS_JSON}: expected a mapping pid -> modality -> camera -> tracklet id -> "
                f"list of paths, got a {type(paths).__name__}")
        return None
    return paths


def _lookup(paths: dict, ln: SplitLine, modality: str, log: ProblemLog) -> Optional[list[str]]:
    """The frame list of one tracklet in ``data_paths.json``, or ``None`` (problem recorded)."""
    keys = (ln.obj_id, modality, ln.camera, ln.tracklet_id)
    node: Any = paths
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            shown = "".join(f"['{k}']" for k in keys[:depth + 1])
            log.add(f"{ln.where}: {PATHS_JSON} has no entry {shown} (needed for "
                    f"{ln.obj_id} {modality} {ln.camera} {ln.tracklet_id})")
            return None
        node = node[key]
    if not (isinstance(node, list) and node and all(isinstance(p, str) for p in node)):
        shown = "".join(f"['{k}']" for k in keys)
        log.add(f"{ln.where}: {PATHS_JSON}{shown} must be a non-empty list of frame paths "
                f"relative to {DATA_DIR}/")
        return None
    return node


def _single_camera_identities(train: list[Tracklet]) -> int:
    """Training identities seen by one camera only (the official sampler never draws them)."""
    cams: dict[int, set[int]] = {}
    for t in train:
        cams.setdefault(t.pid, set()).add(t.camid)
    return sum(1 for c in cams.values() if len(c) < 2)
