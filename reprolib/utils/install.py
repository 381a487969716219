"""Is this the checkout the running Python was installed for? (a moved or copied clone)

``make install`` records absolute paths: the editable install maps ``import reprolib`` to the
checkout it ran in, and the ``reprolib`` Jupyter kernel (registered in ``.venv``) starts that
checkout's ``.venv/bin/python``. After the checkout is moved or copied, its ``.venv`` would import
the *original* checkout's code and notebooks would run, and write results, there.
:func:`install_problems` detects the three ways this shows, without importing anything heavy;
the CLI refuses to run on the first two and names what to rerun.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

__all__ = ["install_problems", "REINSTALL_HINT", "SKIP_ENV"]

#: What to run in the moved checkout (the stamp file would make ``make install`` a no-op).
REINSTALL_HINT = "rm -f .venv/.installed && make install"
#: Set to 1 to skip the check (e.g. a deliberately shared virtual environment).
SKIP_ENV = "REPROLIB_SKIP_INSTALL_CHECK"


def _checkout_of(folder: Path) -> Optional[Path]:
    """The reprolib checkout containing ``folder`` (a folder with ``pyproject.toml`` and
    ``reprolib/__init__.py``), or ``None``."""
    for cand in (folder, *folder.parents):
        if (cand / "pyproject.toml").is_file() and (cand / "reprolib" / "__init__.py").is_file():
            return cand
    return None


def install_problems(cwd: Optional[Path] = None, prefix: Optional[Path] = None) -> list[tuple[str, str]]:
    """What does not match between the running interpreter, the imported package and the checkout.

    Args:
        cwd: the working folder (default: the current one).
        prefix: the running environment (default: ``sys.prefix``).

    Returns:
        ``(kind, message)`` pairs; kinds: ``venv`` (this checkout's ``.venv`` imports another
        checkout's ``reprolib``), ``kernel`` (the registered Jupyter kernel starts another
        checkout's Python), ``cwd`` (working inside another checkout than the imported one).
        Empty when everything matches or ``$REPROLIB_SKIP_INSTALL_CHECK`` is set.
    """
    if os.environ.get(SKIP_ENV, "") not in ("", "0"):
        return []
    from reprolib import PROJECT_ROOT

    project = Path(PROJECT_ROOT).resolve()
    prefix = Path(prefix if prefix is not None else sys.prefix).absolute()
    problems: list[tuple[str, str]] = []
    venv_home = prefix.parent if prefix.name == ".venv" else None
    if venv_home is not None and _checkout_of(venv_home) == venv_home and venv_home.resolve() != project:
        problems.append(("venv", (
            f"{prefix} belongs to the checkout {venv_home} but imports reprolib from {project}: the "
            f"checkout was moved or copied after 'make install' (the editable install records absolute "
            f"paths). Run '{REINSTALL_HINT}' in {venv_home}")))
    kernel = prefix / "share" / "jupyter" / "kernels" / "reprolib" / "kernel.json"
    try:
        argv0 = Path(json.loads(kernel.read_text())["argv"][0])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        argv0 = None
    if argv0 is not None and prefix not in argv0.absolute().parents:
        problems.append(("kernel", (
            f"the Jupyter kernel 'reprolib' registered in {kernel} starts {argv0}, not this environment's "
            f"Python ({prefix}): notebooks would run another checkout's code. Run '{REINSTALL_HINT}' in "
            f"{venv_home or prefix}")))
    here = _checkout_of(Path(cwd if cwd is not None else os.getcwd()).absolute())
    if here is not None and here.resolve() != project:
        problems.append(("cwd", (
            f"working in the checkout {here} but reprolib is imported from {project}; results would be "
            f"written under {project}. Use {here}/.venv/bin/python (after '{REINSTALL_HINT}' there)")))
    return problems
