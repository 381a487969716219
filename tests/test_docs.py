"""The decision docs (docs/decisions/) are self-contained and everything that cites them resolves.

* no file of the package, the tools or the notebooks cites the external research notes
  (``reference/<name>.md``), which are not part of the repository;
* every ``docs/decisions/<file>.md#<anchor>`` cited in the repository, and every relative
  ``<file>.md#<anchor>`` / ``#<anchor>`` link between the decision docs, names a heading of that
  file (GitHub heading slugs);
* every config key named in backticks on a "Switch:" line of a decision doc is a key that
  :func:`reprolib.config.load_config` accepts (with the value written there, or its current
  value), and ``model.extra.*`` keys are fields of the model family's options class.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
DECISIONS = ROOT / "docs" / "decisions"

#: Folders whose files must not cite the external notes, and folders searched for citations.
NO_NOTES_DIRS = ("reprolib", "tools", "notebooks")
CITING_DIRS = ("reprolib", "tools", "tests", "notebooks", "docs")
SKIP_PARTS = {"__pycache__", ".ipynb_checkpoints", ".pytest_cache"}
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".md", ".ipynb", ".txt", ".toml", ".cfg", ".ini", ""}

NOTES_CITATION = re.compile(r"reference/[A-Za-z_]+\.md")
DOC_CITATION = re.compile(r"docs/decisions/([A-Za-z0-9_]+\.md)#([A-Za-z0-9_-]+)")
RELATIVE_LINK = re.compile(r"\]\(([A-Za-z0-9_]+\.md)?#([A-Za-z0-9_-]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
BACKTICKED = re.compile(r"`([^`]+)`")
KEY_TOKEN = re.compile(r"^(?P<key>[a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_]+)*)(?:=(?P<value>.+))?$")

#: Configs whose families a doc's model.extra switches belong to (a switch line passes when one
#: of them accepts all of the line's keys together).
DOC_CONFIGS: dict[str, tuple[str, ...]] = {
    "vld.md": ("vld", "baseline"),
    "xreid.md": ("xreid",),
    "clip_baselines.md": ("clipreid", "tfclip", "xreid_baseline"),
    "cmft.md": ("cmft",),
    "data.md": ("baseline",),
    "tooling.md": ("baseline",),
}
DEFAULT_CONFIGS: tuple[str, ...] = ("baseline",)


def _files(dirs: tuple[str, ...]) -> Iterator[Path]:
    for d in dirs:
        base = ROOT / d
        if not base.exists():
            continue
        for p in sorted(base.rglob("*")):
            if p.is_file() and p.suffix in TEXT_SUFFIXES and not SKIP_PARTS & set(p.parts):
                yield p


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return ""


def slugify(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to '-'.

    Args:
        heading: the heading text as written (inline markdown is reduced to its text).

    Returns:
        The slug, without the duplicate-suffix GitHub adds to repeated headings.
    """
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters, digits and '_'
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file (with GitHub's -1, -2 suffixes for repeats)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    in_code = False
    for line in _read(path).splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        m = None if in_code else HEADING.match(line)
        if not m:
            continue
        slug = slugify(m.group(1))
        n = seen.get(slug, 0)
        out.add(slug if n == 0 else f"{slug}-{n}")
        seen[slug] = n + 1
    return out


def test_no_file_cites_the_external_notes() -> None:
    offenders = [f"{p.relative_to(ROOT)}:{i}: {m.group(0)}"
                 for p in _files(NO_NOTES_DIRS)
                 for i, line in enumerate(_read(p).splitlines(), 1)
                 for m in NOTES_CITATION.finditer(line)]
    assert not offenders, ("these files cite notes that are not in the repository; cite "
                           "docs/decisions/<file>.md#<anchor> instead:\n" + "\n".join(offenders))


def test_decision_citations_resolve() -> None:
    cache: dict[str, set[str]] = {}

    def known(name: str) -> Optional[set[str]]:
        if name not in cache:
            path = DECISIONS / name
            cache[name] = anchors(path) if path.is_file() else set()
        return cache[name] if (DECISIONS / name).is_file() else None

    bad = []
    cited = 0
    for p in list(_files(CITING_DIRS)) + [ROOT / "README.md"]:
        text = _read(p)
        hits = [(m.group(1), m.group(2)) for m in DOC_CITATION.finditer(text)]
        if p.parent == DECISIONS and p.suffix == ".md":
            hits += [(m.group(1) or p.name, m.group(2)) for m in RELATIVE_LINK.finditer(text)]
        for name, anchor in hits:
            cited += 1
            found = known(name)
            if found is None:
                bad.append(f"{p.relative_to(ROOT)}: docs/decisions/{name} does not exist")
            elif anchor not in found:
                bad.append(f"{p.relative_to(ROOT)}: {name}#{anchor} is not a heading of {name}")
    assert cited > 0
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------------------------
# Switch lines
# --------------------------------------------------------------------------------------------


def switch_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of every ``- **Switch:**`` bullet, continuation lines joined."""
    out: list[tuple[int, str]] = []
    lines = _read(path).splitlines()
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith("- **Switch:**"):
            start, parts = i + 1, [lines[i]]
            i += 1
            # a bullet continues on indented lines that do not start a new bullet or heading
            while i < len(lines) and lines[i].startswith("  ") and not lines[i].lstrip().startswith(("- ", "#")):
                parts.append(lines[i].strip())
                i += 1
            out.append((start, " ".join(parts)))
        else:
            i += 1
    return out


def _top_level_keys() -> set[str]:
    from reprolib.config import ExperimentConfig

    return {f.name for f in dataclasses.fields(ExperimentConfig)}


def switch_keys(text: str) -> list[tuple[str, Optional[str]]]:
    """Config keys named in backticks (``key`` or ``key=value``) on one switch line."""
    top = _top_level_keys()
    keys = []
    for token in BACKTICKED.findall(text.split("Switch:", 1)[1]):
        m = KEY_TOKEN.match(token.strip())
        if not m:
            continue
        key = m.group("key")
        if "." in key or key in top:
            keys.append((key, m.group("value")))
    return keys


def _options_class(family: str) -> Optional[type]:
    """The dataclass validating ``model.extra`` of a family (its ``from_dict`` classmethod)."""
    from reprolib.models import registry

    for attr in ("family_options", "get_options_class", "options_class"):
        getter = getattr(registry, attr, None)
        if callable(getter):
            try:
                cls = getter(family)
            except Exception:  # noqa: BLE001 - fall back to the module scan below
                cls = None
            if cls is not None:
                return cls
    model_cls = registry.get_model_class(family)
    module = sys.modules[model_cls.__module__]
    candidates = [module]
    package = module.__name__.rsplit(".", 1)[0]
    for name in ("options", "extra"):
        try:
            candidates.append(importlib.import_module(f"{package}.{name}"))
        except ImportError:
            pass
    for mod in candidates:
        for obj in vars(mod).values():
            if (isinstance(obj, type) and dataclasses.is_dataclass(obj) and hasattr(obj, "from_dict")
                    and obj.__name__.endswith(("Extra", "Options"))
                    and getattr(obj, "__module__", "").startswith("reprolib.models")
                    and "loss" not in obj.__name__.lower()):
                return obj
    return None


def _cmft_loss_options() -> Optional[type]:
    for mod in ("reprolib.models.cmft.losses", "reprolib.models.cmft.losses.options",
                "reprolib.losses.cmft"):
        try:
            cls = getattr(importlib.import_module(mod), "CMFTLossOptions", None)
        except ImportError:
            continue
        if cls is not None:
            return cls
    return None


def _current_value(config: str, key: str, extra_cls: Optional[type]) -> Any:
    from reprolib.config import load_config, resolve_tree

    parts = key.split(".")
    tree: Any = resolve_tree(config, "smoke")
    for p in parts:
        if isinstance(tree, dict) and p in tree:
            tree = tree[p]
        else:
            break
    else:
        return tree
    if parts[:2] == ["model", "extra"] and len(parts) == 3 and extra_cls is not None:
        fields = {f.name: f for f in dataclasses.fields(extra_cls)}
        if parts[2] in fields:
            f = fields[parts[2]]
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                return f.default_factory()  # type: ignore[misc]
        raise KeyError(f"{key}: not a field of {extra_cls.__name__}")
    node: Any = load_config(config, profile="smoke")
    for p in parts:
        node = getattr(node, p)  # AttributeError: not a config key
    return node


def check_switch(config: str, keys: list[tuple[str, Optional[str]]]) -> None:
    """Load ``config`` with every key of one switch line set; raise when a key is not accepted."""
    from reprolib.config import load_config

    cfg = load_config(config, profile="smoke")
    extra_cls = _options_class(cfg.model.name)
    overrides = []
    for key, value in keys:
        if value is None:
            value = json.dumps(_current_value(config, key, extra_cls), default=list)
        overrides.append(f"{key}={value}")
    cfg = load_config(config, profile="smoke", overrides=overrides)  # unknown sections/keys raise
    extra_keys = [key for key, _ in keys if key.startswith("model.extra.")]
    if not extra_keys:
        return
    if extra_cls is None:
        raise LookupError(f"no options class found for model family {cfg.model.name!r}")
    extra_cls.from_dict(cfg.model.extra)  # unknown keys (nearest-key hint) and bad values raise
    for key in extra_keys:
        parts = key.split(".")
        if len(parts) > 3 and parts[2] == "loss_options":
            opts = _cmft_loss_options()
            if opts is None or len(parts) != 5:
                raise LookupError(f"{key}: cannot validate a loss option of {cfg.model.name!r}")
            opts.from_dict(cfg.model.extra["loss_options"][parts[3]])


def _switch_cases() -> list[tuple[str, int, str]]:
    return [(p.name, line, text)
            for p in sorted(DECISIONS.glob("*.md"))
            for line, text in switch_lines(p)]


def test_decision_docs_exist() -> None:
    names = {p.name for p in DECISIONS.glob("*.md")}
    assert {"README.md", "vld.md", "xreid.md", "cmft.md", "data.md"} <= names
    assert len(_switch_cases()) > 50


def test_switch_keys_are_real() -> None:
    failures = []
    checked = 0
    for doc, line, text in _switch_cases():
        keys = switch_keys(text)
        if not keys:
            if "no switch" not in text.lower() and "no config switch" not in text.lower():
                failures.append(f"{doc}:{line}: a Switch line names no config key and does not say "
                                f"'no switch': {text.strip()}")
            continue
        errors = []
        for config in DOC_CONFIGS.get(doc, DEFAULT_CONFIGS):
            try:
                check_switch(config, keys)
                break
            except Exception as e:  # noqa: BLE001 - collected and reported below
                errors.append(f"[{config}] {type(e).__name__}: {e}")
        else:
            failures.append(f"{doc}:{line}: {[k for k, _ in keys]} rejected: " + "; ".join(errors))
        checked += 1
    assert checked > 40
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("key", ["data.sampler_replce", "model.extra.no_such_switch", "trian.epochs"])
def test_switch_check_rejects_unknown_keys(key: str) -> None:
    configs = ("vld", "xreid", "cmft") if key.startswith("model.extra.") else ("baseline",)
    for config in configs:
        with pytest.raises(Exception):
            check_switch(config, [(key, "1")])
