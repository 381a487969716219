"""Atomic file writes: a reader (or a run killed mid-write) never sees a half-written file.

Every writer writes a temporary file in the destination's directory, flushes and fsyncs it,
then ``os.replace``-s it onto the destination (atomic on POSIX and on Windows within one
volume). The temporary name carries the process id so concurrent writers never collide.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Callable, Optional

import torch

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "read_json",
           "describe_load_error"]


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
    except (OSError, RuntimeError) as e:
        full = _disk_full_error(path, e)
        if full is None:
            raise
        raise full from None
    finally:
        if tmp.exists():  # only when something above raised
            tmp.unlink()
    return path


#: Below this many free bytes a failed write is reported as a full disk.
_FULL_DISK_BYTES = 64 << 20


def _disk_full_error(path: Path, error: BaseException) -> Optional[OSError]:
    """An ``OSError(ENOSPC)`` naming ``path``'s folder when ``error`` comes from a full disk (torch's
    writer reports it as ``enforce fail at inline_container.cc`` / ``file write failed``), else None."""
    import errno
    import shutil

    enospc = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
    torch_write = isinstance(error, RuntimeError) and any(
        key in str(error) for key in ("inline_container", "file write failed", "unexpected pos"))
    if not (enospc or torch_write):
        return None
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if not enospc and (free is None or free > _FULL_DISK_BYTES):
        return None
    left = f"{free / 2**20:.1f} MiB free" if free is not None else "free space unknown"
    return OSError(errno.ENOSPC, f"no space left on {path.parent} ({left}) while writing {path.name}; free some "
                                 f"space and run the same command again (the previous {path.name}, if any, is "
                                 f"unchanged)", str(path))


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


def describe_load_error(error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line that never passes on torch's
    advice to retry with ``weights_only=False`` (which would run whatever the file holds)."""
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Weights only load failed" in text:
        import re

        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            return f"it holds pickled Python objects ({found.group(1)}), which are never unpickled"
        return "it is not a torch file of tensors (random bytes, or a pickle torch cannot read safely)"
    if isinstance(error, (PermissionError, FileNotFoundError, IsADirectoryError)):
        return lines[0][:200] if lines else type(error).__name__
    if "central directory" in text or "PytorchStreamReader" in text or isinstance(error, (EOFError, OSError)):
        return "it is truncated or corrupted (not a complete torch file)"
    return f"it is not a readable torch file ({type(error).__name__}: {lines[0][:160] if lines else '-'})"
