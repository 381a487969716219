"""Atomic file writes: a reader (or a run killed mid-write) never sees a half-written file.

Every writer writes a temporary file in the destination's directory, flushes and fsyncs it,
then ``os.replace``-s it onto the destination (atomic on POSIX and on Windows within one
volume). The temporary name carries the process id so concurrent writers never collide.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, IO

import torch

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "read_json"]


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` atomically through ``write(fileobj)``.

    Args:
        path: destination file; its parent directory is created if missing.
        write: callable that writes the whole content to the binary file object it receives.

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # only when something above raised
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a UTF-8 text file atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (keys in insertion order, trailing newline).

    Floats are written with Python's shortest round-trip repr, so reading the file back gives
    bit-identical values (the resume test relies on it).
    """
    text = json.dumps(obj, indent=indent, allow_nan=True) + "\n"
    return atomic_write_text(path, text)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; the error names the file when it is missing or malformed."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from None


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (the checkpoint is either the old or the new one, never torn)."""
    return atomic_write(path, lambda f: torch.save(obj, f))
