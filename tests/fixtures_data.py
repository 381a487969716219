"""Hand-made HITSZ-VCM and BUPTCampus trees in the real on-disk formats, for tests.

The trees follow ``docs/decisions/data.md#fixtures``. Each writer takes the tracklet specification as plain data (module constants
below are the defaults), so a test can write a variant and still know every count by hand.
Frames are tiny 8x4 JPEGs (the same bytes for every frame), so a tree is written in
milliseconds.

Usage::

    from fixtures_data import write_vcm_tree, write_bupt_tree  # tests/ is on sys.path under pytest
    root = write_vcm_tree(tmp_path / "vcm", layout="B")
"""
from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from PIL import Image

# --------------------------------------------------------------------------------------
# HITSZ-VCM
# --------------------------------------------------------------------------------------

#: Training rows (modality 1=IR / 2=RGB, frames, pid, camid), in file order. Pids are not in
#: sorted order in the file (7 before 3) and not contiguous, to exercise the relabelling.
VCM_TRAIN: tuple[tuple[int, int, int, int], ...] = (
    (1, 12, 7, 2),  # row 1
    (2, 13, 7, 2),  # row 2
    (1, 12, 3, 1),  # row 3
    (2, 12, 3, 3),  # row 4
    (1, 11, 3, 3),  # row 5: 11 frames, dropped by the >=12 filter
    (1, 14, 12, 4),  # row 6
    (2, 12, 12, 5),  # row 7
)

#: Test rows, in file order.
VCM_TEST: tuple[tuple[int, int, int, int], ...] = (
    (1, 12, 501, 2),  # row 1: query; the RGB row 2 of pid 501 shares its camid 2
    (2, 13, 501, 2),  # row 2
    (2, 12, 501, 3),  # row 3
    (1, 12, 502, 1),  # row 4: query
    (2, 11, 502, 4),  # row 5: gallery, 11 frames (dropped)
    (1, 11, 502, 4),  # row 6: query, 11 frames (dropped after the split)
    (2, 12, 502, 1),  # row 7
)

#: 1-based query rows of ``track_test_info.txt``, deliberately not sorted.
VCM_QUERY_IDX: tuple[int, ...] = (4, 1, 6)


@lru_cache(maxsize=1)
def tiny_jpeg() -> bytes:
    """Bytes of an 8x4 (HxW) JPEG."""
    buf = io.BytesIO()
    Image.new("RGB", (4, 8), (120, 60, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def _write_frame(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tiny_jpeg())


def vcm_names(rows: Sequence[tuple[int, int, int, int]]) -> list[list[str]]:
    """Image names of each row, e.g. ``0007M1D2T1F1.jpg``.

    Frame numbers (the ``F`` token) are sparse (1, 6, 11, ...) and unique per
    (pid, modality, camera) across tracklets; the ``T`` token counts tracklets per key.
    """
    next_frame: dict[tuple, int] = defaultdict(lambda: 1)
    next_tid: dict[tuple, int] = defaultdict(lambda: 1)
    out = []
    for m, n, pid, cam in rows:
        key = (pid, m, cam)
        tid = next_tid[key]
        next_tid[key] += 1
        names = []
        for _ in range(n):
            names.append(f"{pid:04d}M{m}D{cam}T{tid}F{next_frame[key]}.jpg")
            next_frame[key] += 5
        out.append(names)
    return out


def vcm_rel_path(name: str) -> str:
    """Relative frame path of a fixture name (written independently of the library decoder)."""
    pid, rest = name[:4], name[5:]
    modality = "ir" if rest[0] == "1" else "rgb"
    camera = "D" + rest[rest.index("D") + 1:rest.index("T")]
    return f"{pid}/{modality}/{camera}/{rest[rest.index('F') + 1:]}"


def write_vcm_tree(root: Path, layout: str = "B",
                   train: Sequence[tuple[int, int, int, int]] = VCM_TRAIN,
                   test: Sequence[tuple[int, int, int, int]] = VCM_TEST,
                   query_idx: Sequence[int] = VCM_QUERY_IDX,
                   query_idx_lines: int = 1, separator: str = " ") -> Path:
    """Write a HITSZ-VCM tree.

    Args:
        root: directory to create.
        layout: ``"B"`` (``Train/``, ``Test/``, ``info/``) or ``"A"`` (merged person folders
            in ``root`` plus ``info/``).
        train: training rows ``(modality, frames, pid, camid)``.
        test: test rows.
        query_idx: 1-based query rows.
        query_idx_lines: write ``query_IDX.txt`` over this many lines.
        separator: field separator of the track rows and ``query_IDX.txt``.

    Returns:
        ``root``.
    """
    info = root / "info"
    info.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", train), ("test", test)):
        image_root = root if layout == "A" else root / split.capitalize()
        names = vcm_names(rows)
        track_lines, start = [], 1
        for (m, n, pid, cam), tracklet in zip(rows, names):
            track_lines.append(separator.join(str(v) for v in (m, start, start + n - 1, pid, cam)))
            start += n
            for name in tracklet:
                _write_frame(image_root / vcm_rel_path(name))
        (info / f"{split}_name.txt").write_text("".join(f"{nm}\n" for t in names for nm in t))
        (info / f"track_{split}_info.txt").write_text("".join(f"{ln}\n" for ln in track_lines))
    size = -(-len(query_idx) // query_idx_lines)  # consecutive slices keep the file order
    chunks = [list(query_idx[i:i + size]) for i in range(0, len(query_idx), size)]
    (info / "query_IDX.txt").write_text(
        "\n".join(separator.join(str(q) for q in c) for c in chunks) + "\n")
    return root


# --------------------------------------------------------------------------------------
# BUPTCampus
# --------------------------------------------------------------------------------------

#: ``train.txt`` pairs (obj_id, camera, tracklet id, frames), in file order. Identity 10 is
#: seen by one camera only; '10' < '2' in the official string sort.
BUPT_TRAIN: tuple[tuple[str, str, str, int], ...] = (
    ("2", "LS3", "1", 3),
    ("2", "G25", "1", 4),
    ("1", "CQ1", "1", 3),
    ("1", "W4", "1", 3),
    ("10", "TSG1", "1", 5),
)

#: ``train_auxiliary.txt`` pairs: one camera per identity.
BUPT_AUX: tuple[tuple[str, str, str, int], ...] = (
    ("20", "TSG2", "1", 3),
    ("21", "LS3", "1", 2),
)

#: ``query.txt`` (obj_id, modality, camera, tracklet id, frames): 6 RGB + 3 IR, interleaved;
#: the RGB entries in file order are 100, 101, 102, 103, 104, 105.
BUPT_QUERY: tuple[tuple[str, str, str, str, int], ...] = (
    ("100", "RGB", "LS3", "1", 3),
    ("106", "IR", "G25", "1", 3),
    ("101", "RGB", "CQ1", "1", 3),
    ("102", "RGB", "W4", "1", 3),
    ("107", "IR", "TSG1", "1", 3),
    ("103", "RGB", "TSG2", "1", 3),
    ("104", "RGB", "LS3", "1", 3),
    ("105", "RGB", "G25", "1", 3),
    ("108", "IR", "CQ1", "1", 3),
)

#: ``gallery.txt``: an RGB and an IR tracklet (2 frames each) for identities 100..107.
BUPT_GALLERY: tuple[tuple[str, str, str, str, int], ...] = tuple(
    (str(pid), modality, cam, "2", 2)
    for pid, cam in zip(range(100, 108), ("G25", "CQ1", "W4", "TSG1", "TSG2", "LS3", "LS3", "G25"))
    for modality in ("RGB", "IR")
)


def bupt_frames(pid: str, modality: str, camera: str, tid: str, n: int) -> list[str]:
    """Frame paths relative to ``DATA/``, in the real naming scheme."""
    return [f"{pid}/{modality}/{camera}/{pid}_{modality}_{camera}_{tid}_{1000 + 5 * i}.jpg"
            for i in range(n)]


def write_bupt_tree(root: Path,
                    train: Sequence[tuple[str, str, str, int]] = BUPT_TRAIN,
                    auxiliary: Sequence[tuple[str, str, str, int]] = BUPT_AUX,
                    query: Sequence[tuple[str, str, str, str, int]] = BUPT_QUERY,
                    gallery: Sequence[tuple[str, str, str, str, int]] = BUPT_GALLERY) -> Path:
    """Write a BUPTCampus tree (``DATA/``, ``data_paths.json`` and the four split files).

    Args:
        root: directory to create (the dataset root holding ``DATA/``).
        train: ``train.txt`` pairs ``(obj_id, camera, tid, frames)``.
        auxiliary: ``train_auxiliary.txt`` pairs.
        query: ``query.txt`` lines ``(obj_id, modality, camera, tid, frames)``.
        gallery: ``gallery.txt`` lines.

    Returns:
        ``root``.
    """
    paths: dict = {}

    def add(pid: str, modality: str, camera: str, tid: str, n: int) -> None:
        frames = bupt_frames(pid, modality, camera, tid, n)
        paths.setdefault(pid, {}).setdefault(modality, {}).setdefault(camera, {})[tid] = frames
        for f in frames:
            _write_frame(root / "DATA" / f)

    lines: dict[str, list[str]] = {}
    for fname, pairs in (("train.txt", train), ("train_auxiliary.txt", auxiliary)):
        lines[fname] = []
        for pid, cam, tid, n in pairs:
            add(pid, "RGB", cam, tid, n)
            add(pid, "IR", cam, tid, n)
            lines[fname].append(f"{pid} RGB/IR {cam} {tid}")
    for fname, singles in (("query.txt", query), ("gallery.txt", gallery)):
        lines[fname] = []
        for pid, modality, cam, tid, n in singles:
            add(pid, modality, cam, tid, n)
            lines[fname].append(f"{pid} {modality} {cam} {tid}")
    root.mkdir(parents=True, exist_ok=True)
    for fname, content in lines.items():
        (root / fname).write_text("".join(f"{ln}\n" for ln in content))
    (root / "data_paths.json").write_text(json.dumps(paths))
    return root
