"""Attribute captions of synthetic identities (text side of TinyCLIP pretraining).

Captions describe what a *visible* image shows (colours included), e.g. "a photo of a tall
person in a red striped shirt and black trousers, carrying a backpack". Several templates
and synonyms give varied phrasings of the same identity, as in web captions.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .identities import Garment, IdentityAttributes

_PATTERN_WORDS = {
    "hstripes": ("striped", "horizontally striped"),
    "vstripes": ("pinstriped", "vertically striped"),
    "checks": ("checked", "plaid"),
}
_ACCESSORY_PHRASES = {
    "backpack": ("carrying a backpack", "with a backpack", "wearing a {c} backpack"),
    "bag": ("carrying a shoulder bag", "with a {c} bag", "with a bag over the shoulder"),
    "hat": ("wearing a hat", "wearing a {c} cap", "with a {c} hat"),
    "none": ("", "", "carrying nothing"),
}
_TEMPLATES = (
    "a photo of {who} in {upper} and {lower}{acc}",
    "{who} wearing {upper} and {lower}, with {hair}{acc}",
    "a surveillance image of {who} in {lower} and {upper}{acc}",
    "{who} with {hair}, dressed in {upper} and {lower}{acc}",
    "a pedestrian in {upper}, {lower} and {shoes}{acc}",
    "a photo of someone walking in {upper} and {lower}{acc}",
)


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def describe_garment(g: Garment, rng: np.random.Generator, sleeves: Optional[bool] = None) -> str:
    """Noun phrase for one garment, e.g. "a red striped shirt" or "blue and white checked trousers"."""
    kind = g.kind
    sleeve = ""
    if sleeves is not None and kind in ("shirt", "t-shirt") and rng.random() < 0.5:
        sleeve = "long-sleeved " if sleeves else "short-sleeved "
    if g.pattern == "plain":
        desc = f"{sleeve}{g.colour} {kind}"
    elif g.pattern == "two-tone":
        desc = _pick(rng, (f"{sleeve}two-tone {g.colour} and {g.pattern_colour} {kind}",
                           f"{sleeve}{g.colour} {kind} with a {g.pattern_colour} lower part"))
    else:
        word = _pick(rng, _PATTERN_WORDS[g.pattern])
        desc = sleeve + _pick(rng, (f"{g.colour} and {g.pattern_colour} {word} {kind}", f"{g.colour} {word} {kind}"))
    plural = kind.endswith(("trousers", "shorts"))
    return desc if plural else f"a {desc}"


def _who(a: IdentityAttributes, rng: np.random.Generator) -> str:
    """Noun phrase with its article, e.g. "a tall slim person"."""
    words = []
    if a.height >= 0.95:
        words.append(_pick(rng, ("tall", "tall")))
    elif a.height <= 0.88:
        words.append(_pick(rng, ("short", "small")))
    if a.build <= 0.9:
        words.append(_pick(rng, ("slim", "thin")))
    elif a.build >= 1.14:
        words.append(_pick(rng, ("broad", "heavy-set")))
    noun = _pick(rng, ("person", "person", "pedestrian", "individual"))
    phrase = " ".join(words + [noun])
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _hair(a: IdentityAttributes) -> str:
    return "no hair" if a.hair_length == "bald" else f"{a.hair_length} {a.hair_colour} hair"


def identity_captions(attrs: IdentityAttributes, n: int = 5, rng: Optional[np.random.Generator] = None) -> list[str]:
    """Several phrasings that describe one identity's visible appearance.

    Args:
        attrs: the identity.
        n: number of captions (templates are cycled when ``n`` exceeds their number).
        rng: generator for template order and synonyms (seeded from the pid when None).

    Returns:
        ``n`` lower-case captions.
    """
    rng = np.random.default_rng(attrs.pid) if rng is None else rng
    order = rng.permutation(len(_TEMPLATES))
    out = []
    for i in range(n):
        template = _TEMPLATES[int(order[i % len(order)])]
        acc = _pick(rng, _ACCESSORY_PHRASES[attrs.accessory]).format(c=attrs.accessory_colour)
        text = template.format(
            who=_who(attrs, rng),
            upper=describe_garment(attrs.upper, rng, attrs.long_sleeves),
            lower=describe_garment(attrs.lower, rng),
            hair=_hair(attrs),
            shoes=f"{attrs.shoes} shoes",
            acc=f", {acc}" if acc else "",
        )
        out.append(text)
    return out
