"""The package's import graph is acyclic and one-way (docs/architecture.md, "Layers").

Every ``import`` of the package, at module level and inside functions (read with ``ast``, so
nothing is imported), is an edge between two modules. The test fails on any cycle between
modules and on any edge that goes up the layer order

    leaves (config, utils, paper, models.registry) -> data -> models, losses -> engine, eval, viz
    -> experiments, workbook, pretrain, bench -> cli

with three further rules: models and losses read only data's records and frame-sampling names
(``data.types``, ``data.frames``), never its loaders; viz does not import engine; the leaves import
only leaves. An import inside a function is still an edge: a lazy import may defer a heavy
dependency, never hide a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Optional

import pytest

PACKAGE = "reprolib"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: ``(module-name prefix, layer)``; the longest matching prefix wins.
LAYERS: tuple[tuple[str, int], ...] = (
    ("reprolib", 0), ("reprolib.config", 0), ("reprolib.utils", 0), ("reprolib.paper", 0),
    ("reprolib.models.registry", 0),
    ("reprolib.data", 1),
    ("reprolib.models", 2), ("reprolib.losses", 2),
    ("reprolib.engine", 3), ("reprolib.metrics", 3), ("reprolib.viz", 3),
    ("reprolib.experiments", 4), ("reprolib.workbook", 4), ("reprolib.pretrain", 4), ("reprolib.bench", 4),
    ("reprolib.cli", 5), ("reprolib.__main__", 5),
)
#: What models and losses may read from data: records and frame-sampling names, not loaders.
MODEL_DATA_ALLOWED = ("reprolib.data", "reprolib.data.types", "reprolib.data.frames")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _target(name: str) -> Optional[str]:
    """The package module an imported name lives in (its longest known prefix), or None."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in MODULES:
            return candidate
    return None


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """``(imported package module, line)`` of every import in ``module``, module level and in functions."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = _target(name)
                if target is not None and target != module:
                    yield target, node.lineno


def graph() -> dict[str, set[str]]:
    return {m: {t for t, _ in imports_of(m)} for m in MODULES}


def layer(module: str) -> int:
    """The layer of ``module``: its longest prefix in :data:`LAYERS` (the package itself only exactly,
    so a new subpackage must be given a layer here)."""
    hits = [p for p, _ in LAYERS if module == p or (p != PACKAGE and module.startswith(p + "."))]
    if not hits:
        raise AssertionError(f"{module}: no layer in tests/test_imports.py LAYERS; add its subpackage")
    return dict(LAYERS)[max(hits, key=len)]


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Every edge that breaks the layer rules, as ``"a -> b: why"``."""
    out = []
    for a, targets in sorted(edges.items()):
        for b in sorted(targets):
            la, lb = layer(a), layer(b)
            if lb > la:
                out.append(f"{a} -> {b}: layer {la} imports layer {lb}")
            elif la in (2,) and layer(b) == 1 and b not in MODEL_DATA_ALLOWED:
                out.append(f"{a} -> {b}: models/losses read data's records and frame names, not its loaders")
            elif a.startswith("reprolib.viz") and b.startswith("reprolib.engine"):
                out.append(f"{a} -> {b}: viz does not import engine")
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_import_graph_has_no_cycle():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_go_down_the_layers():
    bad = violations(graph())
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_the_checks_catch_a_reintroduced_import():
    edges = graph()
    assert cycles({**edges, "reprolib.models.registry": {"reprolib.config"}}) != []  # config -> registry -> config
    assert violations({"reprolib.models.base": {"reprolib.data.video"}})  # a model reading the loaders
    assert violations({"reprolib.viz.retrieval": {"reprolib.engine.evaluator"}})
    assert violations({"reprolib.models.vld.temporal": {"reprolib.experiments.costs"}})


@pytest.mark.parametrize("module", ["reprolib.config", "reprolib.models.registry",
                                    *[f"reprolib.models.{f}.options" for f in
                                      ("baseline", "vld", "xreid", "clipreid", "tfclip", "cmft")]])
def test_config_loading_does_not_import_torch(module):
    """Config loading validates ``model.extra`` with the families' options (no torch, no model)."""
    import subprocess
    import sys

    code = f"import sys, {module}; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:3]"
    subprocess.run([sys.executable, "-c", code], check=True)
