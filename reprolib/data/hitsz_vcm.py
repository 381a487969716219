"""HITSZ-VCM: the video visible-infrared person re-identification benchmark.

The on-disk format and every quirk implemented here are specified in
``docs/decisions/data.md#hitsz-vcm`` (read from the official MITML code).
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Optional

from .counts import eval_set_counts, filtered_split_counts
from .errors import DirectoryListing, ProblemLog
from .types import EvalSet, Modality, Tracklet, VideoReIDDataset

logger = logging.getLogger(__name__)

INFO_DIR = "info"
TRAIN_NAMES = f"{INFO_DIR}/train_name.txt"
TRAIN_TRACKS = f"{INFO_DIR}/track_train_info.txt"
TEST_NAMES = f"{INFO_DIR}/test_name.txt"
TEST_TRACKS = f"{INFO_DIR}/track_test_info.txt"
QUERY_IDX = f"{INFO_DIR}/query_IDX.txt"
LAYOUTS = ("auto", "A", "B")
MAX_LISTED_PIDS = 20  # identities spelled out in one problem line

NAME_GRAMMAR = "<pid4>M<modality>D<camera>T<tracklet>F<frame file>, e.g. 0001M1D2T1F7.jpg"
TRACK_GRAMMAR = "5 integers 'modality start end pid camid' (modality 1=IR, 2=RGB; 1-based inclusive lines)"

EXPECTED_TREE = f"""\
Layout B (as the archives unpack; X-ReID, VLD):      Layout A (merged; official MITML code):
  root/Train/0001/ir/D2/1.jpg ...                      root/0001/ir/D2/1.jpg ...
  root/Train/0001/rgb/D3/4.jpg ...                     root/0001/rgb/D3/4.jpg ...
  root/Test/0501/...                                   root/0501/...
  root/info/<the five index files>                     root/info/<the five index files>
Index files in root/info/:
  train_name.txt, test_name.txt  one image name per line: {NAME_GRAMMAR}
                                 (decodes to <pid4>/<ir|rgb>/D<camera>/<frame file>; M1 = ir)
  track_train_info.txt, track_test_info.txt
                                 one tracklet per line: {TRACK_GRAMMAR}
  query_IDX.txt                  1-based row numbers of track_test_info.txt (infrared queries)
"""


def decode_vcm_name(name: str) -> str:
    """Decode a HITSZ-VCM image name into its path relative to the image root.

    The grammar is the official decoder's (MITML ``decoder_pic_path``): characters 0-3 are
    the person folder; character 5 is the modality digit (``1`` = infrared -> ``ir``, any
    other value -> ``rgb``); the camera folder runs from the first ``D`` up to the first
    ``T``; the frame file is everything after the first ``F``. The tracklet number between
    ``T`` and ``F`` is not part of the path.

    Args:
        name: an image name such as ``"0001M1D2T1F7.jpg"``.

    Returns:
        The relative path, e.g. ``"0001/ir/D2/7.jpg"``.

    Raises:
        ValueError: the name does not follow the grammar.
    """
    d, t, f = name.find("D"), name.find("T"), name.find("F")
    if not (len(name) > 6 and name[:4].isdigit() and name[4] == "M"
            and 6 <= d < t - 1 and t < f < len(name) - 1):
        raise ValueError(f"malformed HITSZ-VCM image name '{name}' (expected {NAME_GRAMMAR})")
    modality = "ir" if name[5] == "1" else "rgb"
    return f"{name[:4]}/{modality}/{name[d:t]}/{name[f + 1:]}"


def detect_layout(root: str) -> str:
    """``"B"`` when ``root`` has a ``Train/`` or ``Test/`` folder, else ``"A"``."""
    has_split_dirs = any(os.path.isdir(os.path.join(root, d)) for d in ("Train", "Test"))
    return "B" if has_split_dirs else "A"


@dataclass(frozen=True)
class TrackRow:
    """One row of a ``track_*_info.txt`` file, as written (1-based, inclusive line range)."""

    modality: Modality
    start: int
    end: int
    pid: int
    camid: int
    where: str  # "info/track_train_info.txt:7"

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass
class _ParsedIndex:
    """The validated content of ``info/``: decoded names and track rows per split."""

    names: dict[str, list[str]]  # split -> relative frame path per name-file line
    rows: dict[str, list[TrackRow]]  # split -> track rows in file order
    query_idx: list[int]  # 0-based test row indices, file order
    query_lines: int  # non-blank lines of query_IDX.txt


def _read_lines(path: str) -> list[str]:
    """Lines of a text file without line terminators and without trailing blank lines."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def read_name_file(root: str, rel: str, log: ProblemLog) -> list[Optional[str]]:
    """Read a ``*_name.txt`` file and decode every name.

    Args:
        root: dataset root.
        rel: file path relative to ``root``.
        log: receives one problem per blank or malformed line.

    Returns:
        One decoded relative frame path per line (``None`` where the line is malformed);
        index ``i`` is 1-based line ``i + 1``.
    """
    decoded: list[Optional[str]] = []
    for number, line in enumerate(_read_lines(os.path.join(root, rel)), start=1):
        name = line.strip()
        try:
            decoded.append(decode_vcm_name(name))
        except ValueError:
            decoded.append(None)
            log.add(f"{rel}:{number}: malformed image name '{name}' (expected {NAME_GRAMMAR})")
    return decoded


def read_track_file(root: str, rel: str, log: ProblemLog) -> list[Optional[TrackRow]]:
    """Read a ``track_*_info.txt`` file (fields split on any whitespace).

    Args:
        root: dataset root.
        rel: file path relative to ``root``.
        log: receives one problem per malformed row.

    Returns:
        One :class:`TrackRow` per line (``None`` where the row is malformed), so that list
        index ``i`` is row ``i + 1`` as ``query_IDX.txt`` counts rows.
    """
    rows: list[Optional[TrackRow]] = []
    for number, line in enumerate(_read_lines(os.path.join(root, rel)), start=1):
        where = f"{rel}:{number}"
        fields = line.split()
        try:
            m, start, end, pid, camid = (int(x) for x in fields)
        except ValueError:  # wrong count or not integers
            rows.append(None)
            log.add(f"{where}: expected {TRACK_GRAMMAR}, got '{line.strip()}'")
            continue
        if m not in (Modality.IR, Modality.RGB):
            log.add(f"{where}: modality (column 1) must be 1 (IR) or 2 (RGB), got {m}")
            rows.append(None)
        elif start < 1 or end < start:
            log.add(f"{where}: expected 1 <= start <= end (1-based inclusive name-file lines), "
                    f"got start={start} end={end}")
            rows.append(None)
        else:
            rows.append(TrackRow(Modality(m), start, end, pid, camid, where))
    return rows


def read_query_idx(root: str, rel: str, log: ProblemLog) -> tuple[list[int], int]:
    """Read ``query_IDX.txt``: every integer in the file, converted from 1-based to 0-based.

    The official reader splits each line on single spaces but overwrites its result on every
    line, so it keeps only the last line. We read all integers of the file, split on any
    whitespace; on the real one-line file both readers agree.

    Args:
        root: dataset root.
        rel: file path relative to ``root``.
        log: receives one problem per token that is not an integer.

    Returns:
        ``(indices, num_lines)``: 0-based row indices into ``track_test_info.txt`` in file
        order, and the number of non-blank lines of the file.
    """
    indices: list[int] = []
    lines = _read_lines(os.path.join(root, rel))
    for number, line in enumerate(lines, start=1):
        for token in line.split():
            try:
                indices.append(int(token) - 1)
            except ValueError:
                log.add(f"{rel}:{number}: expected 1-based integer row numbers of "
                        f"track_test_info.txt, got '{token}'")
    return indices, sum(1 for ln in lines if ln.strip())


class HITSZVCM(VideoReIDDataset):
    """HITSZ-VCM video visible-infrared person re-identification dataset.

    Reference:
        X. Lin et al. "Learning Modal-Invariant and Temporal-Memory for Video-based
        Visible-Infrared Person Re-Identification." CVPR 2022 (MITML).

    URL: https://github.com/VCM-project233/HITSZ-VCM-data (data on request);
    official code https://github.com/VCM-project233/MITML.

    Statistics (paper and official code): 927 identities (500 train, 427 test), 12 cameras,
    21,863 tracklets (11,061 train + 10,802 test), 463,259 frames. After the >=12-frame
    filter: train 9,751 tracklets (IR 4,291 / RGB 5,460); IR->RGB query 4,584 and gallery
    5,099 tracklets.

    Protocol (``docs/decisions/data.md#hitsz-vcm``):

    * Both layouts are read: B (``Train/``, ``Test/``, ``info/``, as the archives unpack)
      and A (all person folders merged in ``root`` plus ``info/``, as MITML's code expects).
      ``layout="auto"`` picks B when ``Train/`` or ``Test/`` exists.
    * Track rows ``modality start end pid camid`` select 1-based inclusive lines of the
      split's name file; fields may be separated by any whitespace.
    * ``query_IDX.txt``: every integer of the file (1-based rows of ``track_test_info.txt``);
      a file with several lines is accepted with a warning (the official reader would keep
      only its last line).
    * The ``min_seq_len`` filter (official 12) is applied to train and test, **after** the
      query/gallery split.
    * Queries must be infrared rows and every other test row visible; this is checked.
    * Training pids are relabelled 0..N-1 in sorted raw-pid order (the official
      ``list(set(pids))`` gives the same order for the real ints 1..500, but nothing
      guarantees it); test pids are kept raw.
    * Camera ids are kept raw, as MITML does (the VCM camera rule compares them as they
      are). ``num_cameras`` is the largest camid + 1 over all rows, so raw ids index a camera
      embedding table directly (13 rows on the real 1..12 ids; row 0 unused). X-ReID's
      ``camid - 1`` with 12 cameras is the same table shifted.
    * Every training identity must keep at least one IR and one RGB tracklet after the
      filter: the cross-modal identity sampler draws both modalities for every label, and
      the official one crashes on an empty list mid-training. A violation is reported as a
      :class:`~reprolib.data.errors.DatasetFormatError` naming the pids (lower
      ``min_seq_len`` or fix the index files).

    Evaluation sets (``rule="vcm"``: drop gallery items with the query's pid and camid):
    ``ir2rgb``: query = the ``query_IDX`` rows in file order, gallery = every other test row
    in ascending row order; ``rgb2ir``: the same two sets with their roles swapped.

    Extra ``stats`` keys: ``layout``, ``query_idx_lines``.

    Args:
        root: dataset root (holding ``info/``).
        layout: ``"auto"``, ``"A"`` or ``"B"``.
        min_seq_len: tracklets with fewer frames are dropped (official value 12).

    Raises:
        DatasetFormatError: listing every missing file, malformed row, out-of-range index,
            missing frame and protocol violation found in ``root``.
    """

    def __init__(self, root: str, layout: str = "auto", min_seq_len: int = 12) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got '{layout}'")
        if min_seq_len < 0:
            raise ValueError(f"min_seq_len must be >= 0, got {min_seq_len}")
        root = os.path.abspath(os.path.expanduser(root))
        self.layout = detect_layout(root) if layout == "auto" else layout
        self.min_seq_len = min_seq_len
        self._warnings: list[str] = []
        index = self._validate(root)
        train_rows, test_rows = index.rows["train"], index.rows["test"]

        label_of = {pid: label for label, pid in enumerate(sorted({r.pid for r in train_rows}))}
        all_train = [self._tracklet(root, "train", index, r, label_of[r.pid]) for r in train_rows]
        all_test = [self._tracklet(root, "test", index, r, r.pid) for r in test_rows]
        qset = set(index.query_idx)
        query = [all_test[i] for i in index.query_idx]
        gallery = [t for i, t in enumerate(all_test) if i not in qset]
        # The length filter runs after the query/gallery split (protocol 7.1.4).
        train = [t for t in all_train if len(t) >= min_seq_len]
        query_kept = [t for t in query if len(t) >= min_seq_len]
        gallery_kept = [t for t in gallery if len(t) >= min_seq_len]

        eval_sets = {
            "ir2rgb": EvalSet("ir2rgb", query_kept, gallery_kept, rule="vcm"),
            "rgb2ir": EvalSet("rgb2ir", list(gallery_kept), list(query_kept), rule="vcm"),
        }
        unfiltered = {
            "ir2rgb": EvalSet("ir2rgb", query, gallery, rule="vcm"),
            "rgb2ir": EvalSet("rgb2ir", gallery, query, rule="vcm"),
        }
        num_cameras = max(r.camid for r in train_rows + test_rows) + 1
        stats = {
            "dataset": "hitsz-vcm",
            "root": root,
            "options": {"layout": self.layout, "min_seq_len": min_seq_len},
            "num_train_pids": len(label_of),
            "num_cameras": num_cameras,
            "paired": False,
            "splits": {
                "train": filtered_split_counts(all_train, train),
                "test": filtered_split_counts(all_test, query_kept + gallery_kept),
            },
            "eval_sets": {k: eval_set_counts(unfiltered[k], v) for k, v in eval_sets.items()},
            "warnings": list(self._warnings),
            "layout": self.layout,
            "query_idx_lines": index.query_lines,
        }
        super().__init__(name="hitsz-vcm", root=root, train=train, eval_sets=eval_sets,
                         num_train_pids=len(label_of), num_cameras=num_cameras, paired=False,
                         stats=stats)

    # ------------------------------------------------------------------------------------

    def _image_root(self, root: str, split: str) -> tuple[str, str]:
        """(absolute image root, its name in messages) of ``split`` for this layout."""
        if self.layout == "A":
            return root, "."
        sub = "Train" if split == "train" else "Test"
        return os.path.join(root, sub), sub

    def _tracklet(self, root: str, split: str, index: _ParsedIndex, row: TrackRow,
                  pid: int) -> Tracklet:
        base, _ = self._image_root(root, split)
        rel = index.names[split][row.start - 1:row.end]
        prefix = base + os.sep
        return Tracklet(paths=tuple(prefix + p for p in rel), pid=pid,
                        camid=row.camid, modality=row.modality, raw_pid=row.pid,
                        source=row.where)

    def _warn(self, message: str) -> None:
        logger.warning(message)
        self._warnings.append(message)

    def _validate(self, root: str) -> _ParsedIndex:
        """Read and cross-check every index file; raise one error listing all problems."""
        log = ProblemLog()
        if not os.path.isdir(root):
            log.add("the root directory does not exist")
            log.raise_if_any("HITSZ-VCM", root, EXPECTED_TREE)
        present = {rel: log.require_file(root, rel)
                   for rel in (TRAIN_NAMES, TRAIN_TRACKS, TEST_NAMES, TEST_TRACKS, QUERY_IDX)}
        if self.layout == "B":
            log.require_dir(root, "Train")
            log.require_dir(root, "Test")
        elif detect_layout(root) == "B":
            log.add("layout 'A' was requested but the root has Train/ or Test/ folders "
                    "(layout B); pass layout='B' or 'auto'")

        names: dict[str, list[Optional[str]]] = {}
        rows: dict[str, list[Optional[TrackRow]]] = {}
        for split, names_rel, tracks_rel in (("train", TRAIN_NAMES, TRAIN_TRACKS),
                                             ("test", TEST_NAMES, TEST_TRACKS)):
            names[split] = read_name_file(root, names_rel, log) if present[names_rel] else []
            rows[split] = read_track_file(root, tracks_rel, log) if present[tracks_rel] else []
            if present[tracks_rel] and not rows[split]:
                log.add(f"{tracks_rel} has no rows")
            if present[names_rel]:
                self._check_rows(root, split, names_rel, names[split], rows[split], log)
        query_idx, query_lines = (read_query_idx(root, QUERY_IDX, log) if present[QUERY_IDX]
                                  else ([], 0))
        if query_lines > 1:
            self._warn(f"{QUERY_IDX} has {query_lines} lines; all of its {len(query_idx)} "
                       f"integers are used as queries (the official reader keeps only the "
                       f"last line)")
        if present[QUERY_IDX] and not query_idx:
            log.add(f"{QUERY_IDX} holds no row numbers")
        if present[TEST_TRACKS] and present[QUERY_IDX]:
            self._check_query_split(rows["test"], query_idx, log)
        if not log:  # identity coverage is only meaningful on well-formed rows
            self._check_train_modalities(rows["train"], log)
        log.raise_if_any("HITSZ-VCM", root, EXPECTED_TREE)
        # No problem was recorded, so no entry is None below.
        return _ParsedIndex(names, rows, query_idx, query_lines)  # type: ignore[arg-type]

    def _check_rows(self, root: str, split: str, names_rel: str, names: list[Optional[str]],
                    rows: list[Optional[TrackRow]], log: ProblemLog) -> None:
        """Row ranges inside the name file, frames present on disk, names consistent."""
        base, label = self._image_root(root, split)
        listing = DirectoryListing()
        mismatched: list[str] = []
        for row in rows:
            if row is None:
                continue
            if row.end > len(names):
                log.add(f"{row.where}: lines {row.start}..{row.end} point past the end of "
                        f"{names_rel} ({len(names)} lines)")
                continue
            rel = names[row.start - 1:row.end]
            if any(p is None for p in rel):
                continue  # the malformed names are already reported
            log.check_frames(base, label, rel, row.where, listing)
            pid_dir, modality_dir = rel[0].split("/")[:2]
            if int(pid_dir) != row.pid or modality_dir != row.modality.short:
                mismatched.append(row.where)
        if mismatched:
            self._warn(f"{len(mismatched)} track row(s) disagree with their image names on "
                       f"pid or modality (the row's values are used), e.g. {mismatched[0]}")
        covered = bytearray(len(names))
        for row in rows:
            if row is not None and row.end <= len(names):
                covered[row.start - 1:row.end] = b"\x01" * (row.end - row.start + 1)
        unreferenced = [i + 1 for i, c in enumerate(covered) if not c]
        if unreferenced and len(covered):
            self._warn(f"{names_rel}: {len(unreferenced)} line(s) are in no track row's range (unreferenced "
                       f"index rows, never read), e.g. line {unreferenced[0]}")

    def _check_query_split(self, test_rows: list[Optional[TrackRow]], query_idx: list[int],
                           log: ProblemLog) -> None:
        """Query indices in range and unique; queries infrared, gallery rows visible."""
        n = len(test_rows)
        for idx, count in Counter(query_idx).items():
            if count > 1:
                log.add(f"{QUERY_IDX}: row {idx + 1} is listed {count} times")
        for idx in query_idx:
            if not 0 <= idx < n:
                log.add(f"{QUERY_IDX}: row {idx + 1} is out of range ({TEST_TRACKS} has {n} rows)")
            elif test_rows[idx] is not None and test_rows[idx].modality != Modality.IR:
                log.add(f"{QUERY_IDX}: row {idx + 1} selects {test_rows[idx].where}, a visible "
                        f"row (modality 2); queries must be infrared (modality 1)")
        qset = set(query_idx)
        for i, row in enumerate(test_rows):
            if i not in qset and row is not None and row.modality != Modality.RGB:
                log.add(f"{row.where}: infrared row (modality 1) that is not listed in "
                        f"{QUERY_IDX}; gallery rows must be visible (modality 2)")

    def _check_train_modalities(self, train_rows: list[Optional[TrackRow]], log: ProblemLog) -> None:
        """Every training identity keeps an IR and an RGB tracklet after the length filter."""
        seen: dict[int, set[Modality]] = {}
        for row in train_rows:
            seen.setdefault(row.pid, set())
            if row.length >= self.min_seq_len:
                seen[row.pid].add(row.modality)
        lacking = {pid: [m.short for m in Modality if m not in mods]
                   for pid, mods in sorted(seen.items()) if len(mods) < 2}
        if lacking:
            listed = list(lacking.items())
            desc = ", ".join(f"pid {pid} (no {'/'.join(m)})" for pid, m in listed[:MAX_LISTED_PIDS])
            if len(listed) > MAX_LISTED_PIDS:
                desc += f" and {len(listed) - MAX_LISTED_PIDS} more"
            log.add(f"{TRAIN_TRACKS}: after the min_seq_len={self.min_seq_len} filter, "
                    f"{len(lacking)} training identit{'y lacks' if len(lacking) == 1 else 'ies lack'} "
                    f"a modality: {desc}; the cross-modal identity sampler needs at least one IR "
                    f"and one RGB tracklet per label (lower min_seq_len or fix the index files)")
