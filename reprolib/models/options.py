"""Torch-free helpers shared by the families' ``model.extra`` schemas (``<family>/options.py``).

Config loading validates ``model.extra`` through these schemas (:func:`reprolib.models.registry.family_options`),
so this module and every ``options.py`` import neither torch nor a model.
"""
from __future__ import annotations

from typing import Union

__all__ = ["check_choice", "PROMPT_TEMPLATES", "resolve_template", "BANK_NAMES"]

#: The four templates of VLD Table VII; ``{ctx}`` stands for the M learnable tokens ``X X .. X``.
PROMPT_TEMPLATES: dict[int, str] = {
    1: "{ctx} person.",
    2: "A {ctx} person.",
    3: "A {ctx} person observed in RGB and infrared sequences.",
    4: "A {ctx} person observed in both day and night conditions.",
}

#: Prompt/memory bank names per ``prompt_banks`` / ``memory_banks`` value (CLIP-ReID, TF-CLIP); the row
#: order of the bank buffers.
BANK_NAMES: dict[str, tuple[str, ...]] = {"shared": ("shared",), "per_modality": ("rgb", "ir")}


def check_choice(key: str, value: str, choices: tuple[str, ...], family: str) -> None:
    """Raise a ``ValueError`` naming ``key`` when ``value`` is not one of the ``family``'s ``choices``."""
    if value not in choices:
        raise ValueError(f"{key}: the {family} family supports {', '.join(choices)}; got {value!r}")


def resolve_template(template: Union[int, str]) -> str:
    """The template string of a Table VII index (1-4) or a custom string containing ``{ctx}``.

    Raises:
        ValueError: unknown index, or a custom string without exactly one ``{ctx}``.
    """
    if isinstance(template, bool):
        raise ValueError(f"model.extra.prompt_template: expected 1-4 or a string with '{{ctx}}', got {template!r}")
    if isinstance(template, int):
        if template not in PROMPT_TEMPLATES:
            raise ValueError(f"model.extra.prompt_template: VLD Table VII has templates "
                             f"{sorted(PROMPT_TEMPLATES)}, got {template}")
        return PROMPT_TEMPLATES[template]
    if not isinstance(template, str) or template.count("{ctx}") != 1:
        raise ValueError("model.extra.prompt_template: a custom template must contain '{ctx}' exactly once "
                         f"(where the learnable tokens go), got {template!r}")
    return template
