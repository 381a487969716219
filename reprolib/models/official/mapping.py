"""Key mappings from official released checkpoints onto reprolib's model families, with a strict audit.

A :class:`FamilyMapping` says, for one family, where every tensor of an official state dict goes:

* :class:`Rule` ``official -> ours``: an exact key, or a prefix ending in ``*`` (``"image_encoder.*"``
  -> ``"visual.vit.*"``), optionally with a shape transform both ways (``token_prefix (1, P, d)`` ->
  ``prefix (P, d)``). ``per_identity`` marks tensors whose first dimension is the number of training
  identities (classifiers, per-identity prompt contexts): they fit only a config with the same
  training set.
* :class:`Drop` ``official``: a tensor of the official file that is intentionally **not** loaded,
  with the reason (a parameter the official forward never uses, a dead copy). A drop is allowed,
  never required: a file without that tensor is fine.
* :class:`Derived` ``ours``: a tensor of our model that the official file has no counterpart for,
  with the reason and how it is filled (recomputed from the loaded weights by
  :attr:`FamilyMapping.finalize`, or an empty training-time state).

:func:`apply_mapping` checks the whole file against the model: every official tensor must be
mapped or dropped, every tensor of ours mapped or derived, and every mapped shape equal. Anything
else raises one :class:`ImportAuditError` listing **all** problems, grouped (``resblocks.#`` for
the repeated blocks) and short, each with the official key, our key and a hint. Nothing is ignored
silently: drops, derived tensors, identity heads left at their initialisation
(``identity_heads="fresh"``) and dtype casts are returned in the :class:`ImportAudit`, logged and
recorded in the imported run's ``provenance.json``.

:func:`invert_mapping` produces an official-named state dict from one of ours (test fixtures, and
a check that a mapping is a bijection on the keys it maps).
"""
from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from torch import Tensor

__all__ = ["Rule", "Drop", "Derived", "FamilyMapping", "ImportAudit", "ImportAuditError", "apply_mapping",
           "invert_mapping", "group_keys", "IDENTITY_HEADS"]

logger = logging.getLogger(__name__)

#: Values of ``identity_heads``: ``load`` (the identity-sized tensors must fit; default) or ``fresh``
#: (they are left at our initialisation; the test features do not use them).
IDENTITY_HEADS = ("load", "fresh")

Transform = Callable[[Tensor], Tensor]


def _match(pattern: str, key: str) -> Optional[str]:
    """The part of ``key`` matched by ``*`` in ``pattern`` (``""`` for an exact match), else ``None``."""
    if pattern.endswith("*"):
        stem = pattern[:-1]
        return key[len(stem):] if key.startswith(stem) else None
    return "" if key == pattern else None


def _fill(pattern: str, rest: str) -> str:
    return pattern[:-1] + rest if pattern.endswith("*") else pattern


@dataclass(frozen=True)
class Rule:
    """One official tensor (or a prefix of many) and where it goes in our model.

    Attributes:
        official: official key, or a prefix ending in ``*``.
        ours: our key, or a prefix ending in ``*`` (then ``official`` must end in ``*`` too).
        note: what the tensor is (shown in the documentation and in errors).
        to_ours: shape transform official -> ours (default: none).
        to_official: the inverse transform (for :func:`invert_mapping`).
        per_identity: the first dimension is the number of training identities C.
        hint: what a shape mismatch of this tensor usually means, and the fix.
    """

    official: str
    ours: str
    note: str = ""
    to_ours: Optional[Transform] = None
    to_official: Optional[Transform] = None
    per_identity: bool = False
    hint: str = ""

    def __post_init__(self) -> None:
        if self.ours.endswith("*") != self.official.endswith("*"):
            raise ValueError(f"Rule {self.official} -> {self.ours}: both sides or neither must end in '*'")


@dataclass(frozen=True)
class Drop:
    """An official tensor that is intentionally not loaded.

    Attributes:
        official: official key, or a prefix ending in ``*``.
        reason: why (named in the audit and in provenance).
    """

    official: str
    reason: str


@dataclass(frozen=True)
class Derived:
    """A tensor of ours without an official counterpart.

    Attributes:
        ours: our key, or a prefix ending in ``*``.
        reason: why the official file has none, and how it is filled.
    """

    ours: str
    reason: str


@dataclass(frozen=True)
class FamilyMapping:
    """The mapping of one family's official checkpoint (see the module docstring).

    Attributes:
        family: our family name (``model.name``).
        official_name: the official method/repository, for messages.
        source: the repository, commit and files the key names and shapes were read from.
        default_config: the config imported weights are placed in unless ``--config`` is given.
        rules: official -> ours.
        drops: official tensors not loaded.
        derived: our tensors filled without the file.
        finalize: called with the model after the mapped tensors are loaded (fills
            :attr:`derived` tensors); ``None``: nothing to do.
        implied_overrides: ``--set`` strings implied by the file's keys (a structural option the
            file decides, e.g. whether it has a camera table); applied before the user's own.
        identity_config_hint: what to do when the identity count differs (names the configs).
        missing_hints: ``(pattern of ours, hint)`` pairs: the hint is shown when a tensor of ours
            matching the pattern (exact, or a prefix ending in ``*``) is missing from the file (a
            module the release does not have or never trained, and the option that removes it).
    """

    family: str
    official_name: str
    source: str
    default_config: str
    rules: tuple[Rule, ...]
    drops: tuple[Drop, ...] = ()
    derived: tuple[Derived, ...] = ()
    finalize: Optional[Callable[[Any], None]] = None
    implied_overrides: Optional[Callable[[Iterable[str]], list[str]]] = None
    identity_config_hint: str = ""
    missing_hints: tuple[tuple[str, str], ...] = ()

    def rule_for_official(self, key: str) -> Optional[tuple[Rule, str]]:
        """The first rule whose ``official`` pattern matches ``key``, and our key."""
        for rule in self.rules:
            rest = _match(rule.official, key)
            if rest is not None:
                return rule, _fill(rule.ours, rest)
        return None

    def rule_for_ours(self, key: str) -> Optional[tuple[Rule, str]]:
        """The first rule whose ``ours`` pattern matches ``key``, and the official key."""
        for rule in self.rules:
            rest = _match(rule.ours, key)
            if rest is not None:
                return rule, _fill(rule.official, rest)
        return None

    def drop_for(self, key: str) -> Optional[Drop]:
        return next((d for d in self.drops if _match(d.official, key) is not None), None)

    def derived_for(self, key: str) -> Optional[Derived]:
        return next((d for d in self.derived if _match(d.ours, key) is not None), None)


class ImportAuditError(ValueError):
    """An official checkpoint does not fit the model: every missing, unexpected and wrongly shaped
    tensor, grouped, with the fix."""


@dataclass
class ImportAudit:
    """What an import did with every tensor (recorded in provenance; see :meth:`summary`).

    Attributes:
        mapped: ``{official key: our key}``.
        dropped: ``{official key: reason}``.
        fresh: ``{official key: reason}`` identity-sized tensors left at our initialisation.
        derived: ``{our key: reason}``.
        cast: ``{official key: "float16 -> float32"}``.
        notes: file-level facts (a container unwrapped, a ``module.`` prefix removed).
    """

    mapped: dict[str, str] = field(default_factory=OrderedDict)
    dropped: dict[str, str] = field(default_factory=OrderedDict)
    fresh: dict[str, str] = field(default_factory=OrderedDict)
    derived: dict[str, str] = field(default_factory=OrderedDict)
    cast: dict[str, str] = field(default_factory=OrderedDict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A short, JSON-able record: counts, and the dropped/fresh/derived/cast tensors grouped
        with their reasons."""
        def grouped(d: dict[str, str]) -> dict[str, str]:
            out: dict[str, str] = {}
            for pattern, keys in group_keys(d).items():
                out[pattern if len(keys) == 1 else f"{pattern} (x{len(keys)})"] = d[keys[0]]
            return out

        return {"mapped": len(self.mapped), "dropped": grouped(self.dropped), "fresh": grouped(self.fresh),
                "derived": grouped(self.derived), "cast": grouped(self.cast), "notes": list(self.notes)}

    def log(self, name: str) -> None:
        """Log the audit: one line of counts, one per dropped/fresh/derived group."""
        s = self.summary()
        logger.info("%s: %d tensors mapped, %d dropped, %d left fresh, %d derived, %d cast", name, s["mapped"],
                    len(self.dropped), len(self.fresh), len(self.derived), len(self.cast))
        for what in ("dropped", "fresh", "derived", "cast"):
            for pattern, reason in s[what].items():
                logger.info("  %s %s: %s", what, pattern, reason)
        for note in self.notes:
            logger.info("  %s", note)


_INDEX = re.compile(r"\.\d+(?=\.|$)")


def group_keys(keys: Iterable[str]) -> "OrderedDict[str, list[str]]":
    """Keys grouped by their pattern with block indices replaced by ``#``
    (``image_encoder.transformer.resblocks.#.ln_1.weight``), in first-seen order."""
    out: "OrderedDict[str, list[str]]" = OrderedDict()
    for k in keys:
        out.setdefault(_INDEX.sub(".#", k), []).append(k)
    return out


def _format_group(items: dict[str, str], limit: int = 8) -> str:
    """``items`` (``{key: detail}``) grouped by pattern, at most ``limit`` groups, one per line."""
    lines = []
    groups = group_keys(items)
    for i, (pattern, keys) in enumerate(groups.items()):
        if i == limit:
            lines.append(f"    ... {len(groups) - limit} more group(s)")
            break
        count = f" (x{len(keys)})" if len(keys) > 1 else ""
        detail = items[keys[0]] if len(keys) == 1 else _INDEX.sub(".#", items[keys[0]])
        lines.append(f"    {pattern}{count}{': ' + detail if detail else ''}")
    return "\n".join(lines)


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def apply_mapping(mapping: FamilyMapping, official: dict[str, Tensor], target: dict[str, Tensor],
                  identity_heads: str = "load", source: str = "the file",
                  target_name: str = "the model") -> tuple[dict[str, Tensor], ImportAudit]:
    """Map an official state dict onto our model's keys, auditing every tensor.

    Args:
        mapping: the family's mapping.
        official: the official tensors (``module.`` prefixes already removed).
        target: our model's ``state_dict()`` (keys, shapes and dtypes to produce).
        identity_heads: ``load`` (identity-sized tensors must fit) or ``fresh`` (they are left at
            our initialisation and listed in the audit).
        source: the file, for messages.
        target_name: the model/config, for messages.

    Returns:
        ``(ours, audit)``: the tensors of ``target`` the file provides (mapped, transformed and
        cast to the target dtype) and the audit. Derived and fresh tensors are not in ``ours``.

    Raises:
        ImportAuditError: any missing, unexpected or wrongly shaped tensor; the message lists all
            of them, grouped.
        ValueError: ``identity_heads`` is not one of :data:`IDENTITY_HEADS`.
    """
    if identity_heads not in IDENTITY_HEADS:
        raise ValueError(f"identity_heads={identity_heads!r}: expected one of {', '.join(IDENTITY_HEADS)}")
    audit = ImportAudit()
    ours: dict[str, Tensor] = {}
    origin: dict[str, str] = {}  # our key -> official key
    unexpected: dict[str, str] = OrderedDict()
    not_in_model: dict[str, str] = OrderedDict()
    mismatched: dict[str, str] = OrderedDict()
    hints: list[str] = []
    identity_rows: dict[str, tuple[int, int]] = {}
    fresh_ours: set[str] = set()
    seen_ours: set[str] = set()  # our keys the file has, with another shape or dtype (not "missing" too)
    for key, tensor in official.items():
        drop = mapping.drop_for(key)
        if drop is not None:
            audit.dropped[key] = drop.reason
            continue
        found = mapping.rule_for_official(key)
        if found is None:
            unexpected[key] = ""
            continue
        rule, our_key = found
        if rule.per_identity and identity_heads == "fresh":
            audit.fresh[key] = (f"{rule.note or 'identity-sized'}: left at its initialisation "
                                f"(--identity-heads fresh); the test features do not use it")
            fresh_ours.add(our_key)
            continue
        if our_key not in target:
            not_in_model[key] = f"-> {our_key}, which this config's model does not have"
            continue
        if our_key in origin:
            raise ImportAuditError(f"{source}: both {origin[our_key]} and {key} map to {our_key}; the mapping of "
                                   f"'{mapping.family}' is ambiguous (a bug in reprolib.models.official)")
        if not isinstance(tensor, Tensor):
            mismatched[key] = f"holds a {type(tensor).__name__}, not a tensor"
            continue
        value = rule.to_ours(tensor) if rule.to_ours is not None and tensor.dim() > 0 else tensor
        want = target[our_key]
        if _shape(value) != _shape(want):
            mapped_as = f" -> {_shape(value)}" if _shape(value) != _shape(tensor) else ""
            mismatched[key] = f"file {_shape(tensor)}{mapped_as}, model {_shape(want)} ({our_key})"
            seen_ours.add(our_key)
            if rule.per_identity and value.dim() > 0 and want.dim() > 0:
                identity_rows[key] = (value.shape[0], want.shape[0])
            elif rule.hint and rule.hint not in hints:
                hints.append(rule.hint)
            continue
        if value.dtype != want.dtype:
            if value.is_floating_point() and want.is_floating_point():
                audit.cast[key] = f"{str(value.dtype).removeprefix('torch.')} -> {str(want.dtype).removeprefix('torch.')}"
                value = value.to(want.dtype)
            else:
                mismatched[key] = f"dtype {value.dtype}, model {want.dtype} ({our_key})"
                seen_ours.add(our_key)
                continue
        ours[our_key] = value
        origin[our_key] = key
        audit.mapped[key] = our_key
    missing: dict[str, str] = OrderedDict()
    for our_key in target:
        if our_key in ours or our_key in fresh_ours or our_key in seen_ours:
            continue
        derived = mapping.derived_for(our_key)
        if derived is not None:
            audit.derived[our_key] = derived.reason
            continue
        found = mapping.rule_for_ours(our_key)
        if found is not None and found[0].per_identity and identity_heads == "fresh":
            audit.fresh[found[1]] = "identity-sized; absent from the file, left at its initialisation"
            continue
        missing[found[1] if found else our_key] = (f"-> {our_key}" if found else
                                                   f"{our_key} has no official counterpart in the mapping")
        for pattern, hint in mapping.missing_hints:
            if _match(pattern, our_key) is not None and hint not in hints:
                hints.append(hint)
    if unexpected or not_in_model or mismatched or missing:
        parts = [f"{source} does not fit {target_name} ({mapping.official_name} -> reprolib '{mapping.family}'); "
                 f"nothing was written:"]
        if missing:
            parts.append(f"  missing from the file ({len(missing)}):\n{_format_group(missing)}")
        if unexpected:
            parts.append(f"  unexpected in the file, no rule maps them ({len(unexpected)}):\n"
                         f"{_format_group(unexpected)}")
        if not_in_model:
            parts.append(f"  mapped onto tensors this config's model lacks ({len(not_in_model)}):\n"
                         f"{_format_group(not_in_model)}")
        if mismatched:
            parts.append(f"  shape mismatch ({len(mismatched)}):\n{_format_group(mismatched)}")
        if identity_rows:
            rows = sorted({v for v in identity_rows.values()})
            parts.append("  identity-sized tensors: the file was trained on "
                         + ", ".join(f"{a} identities (the config's training set has {b})" for a, b in rows)
                         + f"; {mapping.identity_config_hint or 'use the config of the dataset it was trained on'}, "
                           "or pass --identity-heads fresh to leave classifiers and prompt contexts at their "
                           "initialisation (the test features do not use them)")
        parts += [f"  hint: {h}" for h in hints]
        if not_in_model or missing:
            parts.append("  hint: the config's model options (model.extra.*, model.backbone.sie, data.seq_len) "
                         "must describe the released model; compare them with the keys above")
        raise ImportAuditError("\n".join(parts))
    return ours, audit


def invert_mapping(mapping: FamilyMapping, ours: dict[str, Tensor]) -> dict[str, Tensor]:
    """An official-named state dict from one of ours (derived tensors are left out).

    Args:
        mapping: the family's mapping.
        ours: our model's state dict.

    Returns:
        ``{official key: tensor}`` as the official code would have saved it.

    Raises:
        KeyError: a tensor of ours that is neither mapped nor derived (the mapping is incomplete).
    """
    out: dict[str, Tensor] = OrderedDict()
    for key, tensor in ours.items():
        found = mapping.rule_for_ours(key)
        if found is None:
            if mapping.derived_for(key) is not None:
                continue
            raise KeyError(f"{key}: no rule of the '{mapping.family}' mapping produces it")
        rule, official_key = found
        out[official_key] = (rule.to_official(tensor) if rule.to_official is not None else tensor).clone()
    return out


def squeeze_leading(t: Tensor) -> Tensor:
    """``(1, ...) -> (...)`` (the official prompt buffers keep a batch axis of 1)."""
    return t.squeeze(0) if t.dim() > 1 and t.shape[0] == 1 else t


def unsqueeze_leading(t: Tensor) -> Tensor:
    """``(...) -> (1, ...)``."""
    return t.unsqueeze(0)

