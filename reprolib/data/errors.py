"""Dataset-format validation: the error type and the helpers that collect its problems.

A dataset class validates its whole root before it builds a single record: it collects every
missing file, malformed row, out-of-range index and missing frame into a :class:`ProblemLog`
and then raises one :class:`DatasetFormatError` that lists all of them, followed by a picture
of a correct tree. A user fixing a broken download thus sees everything at once instead of
one problem per run.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

#: Number of problems spelled out in an error message; the rest are counted (all of them
#: stay available in :attr:`DatasetFormatError.problems`).
MAX_LISTED_PROBLEMS = 100


class DatasetFormatError(ValueError):
    """A dataset root is missing files or holds malformed ones.

    Attributes:
        dataset: dataset name (``"HITSZ-VCM"``, ``"BUPTCampus"``).
        root: the root directory that was checked.
        problems: every problem found, one human-readable line each (``file:line: ...``).
        expected_tree: a description of what a correct root looks like.
    """

    def __init__(self, dataset: str, root: str, problems: Sequence[str], expected_tree: str = ""):
        self.dataset = dataset
        self.root = root
        self.problems = list(problems)
        self.expected_tree = expected_tree
        super().__init__(self._format())

    def _format(self) -> str:
        n = len(self.problems)
        lines = [f"{self.dataset} root '{self.root}' is not a valid dataset tree "
                 f"({n} problem{'s' if n != 1 else ''}):"]
        for i, problem in enumerate(self.problems[:MAX_LISTED_PROBLEMS], start=1):
            lines.append(f"  {i}. {problem}")
        if n > MAX_LISTED_PROBLEMS:
            lines.append(f"  ... and {n - MAX_LISTED_PROBLEMS} more (all are in the exception's "
                         f".problems list)")
        if self.expected_tree:
            lines.append("A correct tree looks like this:")
            lines.extend("  " + line for line in self.expected_tree.strip("\n").splitlines())
        return "\n".join(lines)


class ProblemLog:
    """Collects format problems while a dataset root is validated.

    Example::

        log = ProblemLog()
        log.require_file(root, "info/train_name.txt")
        ...
        log.raise_if_any("HITSZ-VCM", root, EXPECTED_TREE)
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.problems)

    def __len__(self) -> int:
        return len(self.problems)

    def add(self, message: str) -> None:
        """Record one problem (a full sentence naming the file, and the line where known)."""
        self.problems.append(message)

    def require_file(self, root: str, rel: str) -> bool:
        """Record a problem unless ``root/rel`` is a regular file; returns whether it is."""
        if os.path.isfile(os.path.join(root, rel)):
            return True
        what = "is a directory, expected a file" if os.path.isdir(os.path.join(root, rel)) else "is missing"
        self.add(f"{rel} {what}")
        return False

    def require_dir(self, root: str, rel: str) -> bool:
        """Record a problem unless ``root/rel`` is a directory; returns whether it is."""
        if os.path.isdir(os.path.join(root, rel)):
            return True
        self.add(f"{rel}/ (directory) is missing")
        return False

    def check_frames(self, base: str, base_label: str, rel_paths: Sequence[str], where: str,
                     listing: "DirectoryListing") -> None:
        """Record one problem for a tracklet whose frames are not all present on disk.

        Args:
            base: directory the frame paths are relative to.
            base_label: how ``base`` is named in messages (e.g. ``"Train"``, ``"DATA"``).
            rel_paths: the tracklet's frame paths, relative to ``base``, with ``/`` separators.
            where: the row that defines the tracklet (``"info/track_train_info.txt:7"``).
            listing: shared directory-listing cache.
        """
        missing = listing.missing(base, rel_paths)
        if missing:
            self.add(f"{where}: {len(missing)} of {len(rel_paths)} frame images are missing on "
                     f"disk, e.g. {base_label}/{missing[0]}")

    def raise_if_any(self, dataset: str, root: str, expected_tree: str) -> None:
        """Raise one :class:`DatasetFormatError` listing every recorded problem, if any."""
        if self.problems:
            raise DatasetFormatError(dataset, root, self.problems, expected_tree)


class DirectoryListing:
    """Answers "which of these frames are missing?" with one directory listing per folder.

    Real roots hold hundreds of thousands (HITSZ-VCM) to millions (BUPTCampus) of frames.
    Instead of one ``stat`` call per frame, each folder that a frame path names is listed once
    with :func:`os.scandir` and kept as a set of file names, so checking every frame costs one
    system call per folder. Folders that no index references (e.g. BUPT's ``FakeIR``) are
    never visited.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], frozenset[str]] = {}

    def files_in(self, base: str, rel_dir: str) -> frozenset[str]:
        """Names of the regular files (or links to them) in ``base/rel_dir``; empty if absent."""
        key = (base, rel_dir)
        names = self._cache.get(key)
        if names is None:
            try:
                with os.scandir(os.path.join(base, rel_dir)) as it:
                    names = frozenset(e.name for e in it if e.is_file())
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                names = frozenset()
            self._cache[key] = names
        return names

    def missing(self, base: str, rel_paths: Sequence[str]) -> list[str]:
        """The paths of ``rel_paths`` (relative to ``base``, ``/``-separated) that are not files."""
        out = []
        for path in rel_paths:
            rel_dir, _, name = path.rpartition("/")
            if name not in self.files_in(base, rel_dir):
                out.append(path)
        return out
