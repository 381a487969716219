"""Lazy package exports (PEP 562), so that importing a package does not import torch.

Config loading imports ``reprolib.models.<family>.options`` (torch-free) to validate ``model.extra``;
Python imports the enclosing packages first, so ``reprolib.models`` and the family packages export
their torch-backed names lazily, on first attribute access.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<module>`` when ``name`` is first read.

    Args:
        package: the package's ``__name__``.
        exports: ``{name: submodule}`` (relative to ``package``).

    Returns:
        The ``__getattr__`` to assign in the package's ``__init__.py``.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
