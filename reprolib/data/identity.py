"""Dataset identity: what a dataset *is*, independent of where it lives.

A run's key (:func:`reprolib.experiments.runstore.run_key`) names its dataset by identity rather than
by path, so the same table rendered with ``DATA_ROOT=/data/vcm`` and with ``REPROLIB_DATA=/data/vcm``
(or from a copy of the dataset on another disk) shares its runs, while a different release or a
hand-edited split does not.

* A real dataset (the ``paper`` profile) is identified by its name and a SHA-256 fingerprint of its
  index files (:data:`INDEX_FILES`): the files that decide which frames belong to which tracklet,
  identity, camera and split. SYSU-MM01 finds its images by listing folders, so its fingerprint
  also covers the sorted list of image paths. Frame *contents* are not read (seconds, not hours,
  on HITSZ-VCM's 463,259 frames); ``python -m reprolib data check`` is the tool that reads them.
* A generated miniature world (the ``smoke`` and ``embedded`` profiles) is identified by how it was
  generated: layout, scale preset, seed and generator version. It is deterministic, so that
  description *is* its content, and the key does not need the world on disk.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

__all__ = ["INDEX_FILES", "LISTED_FRAMES", "dataset_fingerprint", "synthetic_identity"]

#: Index files of each dataset (glob patterns relative to its root): their bytes define the dataset.
INDEX_FILES: dict[str, tuple[str, ...]] = {
    "hitsz-vcm": ("info/*.txt",),
    "bupt": ("data_paths.json", "train.txt", "train_auxiliary.txt", "query.txt", "gallery.txt"),
    "sysu-mm01": ("exp/*.txt",),
    "regdb": ("idx/*.txt",),
}

#: Datasets whose frames are found by listing folders rather than named by an index file
#: (glob patterns of those frames, relative to the root).
LISTED_FRAMES: dict[str, tuple[str, ...]] = {
    "sysu-mm01": ("cam*/*/*",),
}


def _stat_key(root: Path) -> tuple:
    """What changes when an index file changes: (path, size, mtime) of every index file."""
    return tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in root.glob("*") if p.is_file()))


@functools.lru_cache(maxsize=64)
def _fingerprint(dataset: str, root: str, stamp: tuple) -> str:
    h = hashlib.sha256(dataset.encode())
    base = Path(root)
    files = sorted({p for pattern in INDEX_FILES[dataset] for p in base.glob(pattern) if p.is_file()})
    if not files:
        raise FileNotFoundError(
            f"{root}: no index file of {dataset} ({', '.join(INDEX_FILES[dataset])}) found; is this the "
            f"dataset's root? `python -m reprolib data check {dataset} {root}` lists what is expected")
    for path in files:
        h.update(path.relative_to(base).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    for pattern in LISTED_FRAMES.get(dataset, ()):
        for path in sorted(base.glob(pattern)):
            h.update(path.relative_to(base).as_posix().encode() + b"\n")
    return h.hexdigest()[:16]


def dataset_fingerprint(dataset: str, root: str | os.PathLike) -> str:
    """SHA-256 (16 hex digits) of a real dataset's index files (see the module docstring).

    Cached per process while the index files keep their size and modification time.

    Args:
        dataset: ``data.dataset`` (``hitsz-vcm`` | ``bupt`` | ``sysu-mm01`` | ``regdb``).
        root: the dataset root, resolved.

    Raises:
        KeyError: for an unknown dataset name.
        FileNotFoundError: naming the root when it holds none of the dataset's index files.
    """
    if dataset not in INDEX_FILES:
        raise KeyError(f"data.dataset: unknown dataset '{dataset}'; expected one of {', '.join(INDEX_FILES)}")
    root = Path(root).resolve()
    stamp = tuple(_stat_key(d) for d in sorted({(root / pat).parent for pat in INDEX_FILES[dataset]}) if d.is_dir())
    return _fingerprint(dataset, str(root), stamp)


def synthetic_identity(dataset: str, preset: str, fmt: str, seed: int, generator_version: str) -> str:
    """Identity of a generated miniature world: ``synth:<layout>:<preset>:seed<seed>:v<version>``."""
    return f"synth:{fmt}:{preset}:seed{seed}:v{generator_version}:{dataset}"
