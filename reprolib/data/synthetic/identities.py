"""Identity attributes of the miniature world (SynthVCM).

An identity is a small, frozen record of what a person looks like and how they walk:
body shape, two garments (colour, pattern, material), accessory, hair and gait. The
renderer (:mod:`.renderer`) turns it into visible or near-infrared frames, the caption
module (:mod:`.captions`) into sentences.

What each modality sees is decided here, as data:

* colour (``Garment.colour``, ``Garment.pattern_colour``, hair colour, skin tone) exists
  only in the visible modality;
* a garment's infrared brightness follows its dye's luminance and its **material** (near-infrared
  reflectance), never its hue (``renderer.garment_level``);
  patterns keep a material-dependent texture contrast in infrared (``pattern_contrast``);
* shape, sleeve/leg length, accessories and gait are geometric, so both modalities show them.

Colour palettes are deliberately small, so many identities share a colour and only the
pattern, shape, accessories and gait tell them apart: learnable, but not trivial.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Visible colours (sRGB, 0..255). Upper garments draw from all of them.
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 32),
    "white": (228, 228, 222),
    "grey": (128, 128, 132),
    "navy": (30, 40, 92),
    "blue": (52, 98, 190),
    "red": (186, 36, 40),
    "green": (46, 128, 62),
    "yellow": (222, 190, 46),
    "pink": (222, 128, 170),
    "brown": (110, 70, 40),
    "beige": (200, 178, 140),
}
#: Lower garments use a smaller, realistic palette (more sharing).
LOWER_COLOURS: tuple[str, ...] = ("black", "navy", "blue", "grey", "beige", "brown", "white")
UPPER_COLOURS: tuple[str, ...] = tuple(COLOURS)

#: Garment material -> near-infrared reflectance (0..1 of skin); with the dye's luminance it sets
#: the garment's infrared level (``renderer.garment_level``), never the hue.
MATERIALS: dict[str, float] = {
    "cotton": 0.70,
    "wool": 0.56,
    "denim": 0.62,
    "nylon": 0.44,
    "leather": 0.34,
}
PATTERNS: tuple[str, ...] = ("plain", "hstripes", "vstripes", "checks", "two-tone")
PATTERN_PROBS: tuple[float, ...] = (0.36, 0.16, 0.16, 0.16, 0.16)
#: Stripe/check period range (fraction of body height).
PATTERN_PERIOD: tuple[float, float] = (0.035, 0.07)
#: Infrared texture contrast of a pattern's secondary regions (random sign), on top of the level
#: difference that the two dyes' luminance makes (renderer.garment_level).
PATTERN_TEXTURE: tuple[float, float] = (0.12, 0.28)
UPPER_KINDS: tuple[str, ...] = ("shirt", "t-shirt", "jacket", "sweater")
LOWER_KINDS: tuple[str, ...] = ("trousers", "shorts", "skirt")
ACCESSORIES: tuple[str, ...] = ("none", "backpack", "bag", "hat")
HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (24, 20, 18),
    "brown": (92, 58, 34),
    "blonde": (210, 178, 110),
    "grey": (160, 158, 152),
}
HAIR_LENGTHS: tuple[str, ...] = ("short", "long", "bald")
SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (238, 200, 170),
    (214, 170, 130),
    (170, 120, 86),
    (112, 76, 52),
)
SHOE_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (26, 26, 26),
    "white": (232, 232, 232),
    "brown": (90, 56, 32),
}


@dataclass(frozen=True)
class Garment:
    """One garment (upper or lower).

    Attributes:
        kind: garment type (``"shirt"``, ``"trousers"``, ``"shorts"``, ...).
        colour: main colour name (key of :data:`COLOURS`), visible modality only.
        pattern: one of :data:`PATTERNS`.
        pattern_colour: secondary colour name of the pattern (equal to ``colour`` when plain).
        material: key of :data:`MATERIALS`; sets the infrared brightness.
        pattern_period: stripe/check period as a fraction of body height.
        pattern_contrast: infrared brightness difference of the secondary pattern regions
            (texture contrast, as a fraction of skin brightness).
    """

    kind: str
    colour: str
    pattern: str
    pattern_colour: str
    material: str
    pattern_period: float
    pattern_contrast: float


@dataclass(frozen=True)
class Gait:
    """Walking style.

    Attributes:
        frequency: gait cycles per frame.
        stride: leg swing amplitude (fraction of body height).
        arm_swing: arm swing amplitude (fraction of body height).
        bounce: vertical bob amplitude (fraction of body height).
    """

    frequency: float
    stride: float
    arm_swing: float
    bounce: float


@dataclass(frozen=True)
class IdentityAttributes:
    """Everything that defines how one synthetic person looks and walks.

    Attributes:
        pid: raw person id (1-based, as written to the dataset files).
        height: body height as a fraction of the camera's person scale (0.84..1.0).
        build: width multiplier (0.8 slim .. 1.25 broad).
        upper: upper garment.
        lower: lower garment.
        long_sleeves: whether the upper garment covers the forearms.
        accessory: one of :data:`ACCESSORIES`.
        hair_colour: key of :data:`HAIR_COLOURS` (visible only).
        hair_length: one of :data:`HAIR_LENGTHS`.
        skin_tone: index into :data:`SKIN_TONES` (visible only; skin is uniformly bright in IR).
        shoes: key of :data:`SHOE_COLOURS`.
        accessory_colour: colour name of the accessory (visible only).
        gait: walking style.
    """

    pid: int
    height: float
    build: float
    upper: Garment
    lower: Garment
    long_sleeves: bool
    accessory: str
    hair_colour: str
    hair_length: str
    skin_tone: int
    shoes: str
    accessory_colour: str
    gait: Gait

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable mapping (nested dataclasses become dicts)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "IdentityAttributes":
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["upper"] = Garment(**d["upper"])
        d["lower"] = Garment(**d["lower"])
        d["gait"] = Gait(**d["gait"])
        return cls(**d)


def _choice(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _sample_garment(rng: np.random.Generator, kinds, colours, materials) -> Garment:
    kind = _choice(rng, kinds)
    colour = _choice(rng, colours)
    pattern = _choice(rng, PATTERNS, p=PATTERN_PROBS)
    if pattern == "plain":
        pattern_colour = colour
    else:
        others = [c for c in UPPER_COLOURS if c != colour]
        pattern_colour = _choice(rng, others)
    contrast = 0.0 if pattern == "plain" else float(rng.uniform(*PATTERN_TEXTURE)) * float(rng.choice([-1, 1]))
    return Garment(
        kind=kind,
        colour=colour,
        pattern=pattern,
        pattern_colour=pattern_colour,
        material=_choice(rng, materials),
        pattern_period=float(rng.uniform(*PATTERN_PERIOD)),
        pattern_contrast=round(contrast, 4),
    )


def sample_identity(pid: int, rng: np.random.Generator) -> IdentityAttributes:
    """Draw the attributes of one identity.

    Args:
        pid: raw person id stored in the record.
        rng: generator; the caller seeds it from (world seed, pid) for reproducibility.

    Returns:
        A frozen :class:`IdentityAttributes`.
    """
    upper = _sample_garment(rng, UPPER_KINDS, UPPER_COLOURS, ("cotton", "wool", "nylon", "leather", "denim"))
    lower_kind = _choice(rng, LOWER_KINDS, p=[0.7, 0.15, 0.15])
    lower = _sample_garment(rng, (lower_kind,), LOWER_COLOURS, ("denim", "cotton", "wool", "nylon"))
    if lower.pattern in ("vstripes", "checks", "hstripes") and rng.random() < 0.5:
        # Patterned trousers are rarer than patterned shirts.
        lower = dataclasses.replace(lower, pattern="plain", pattern_colour=lower.colour, pattern_contrast=0.0)
    long_sleeves = upper.kind in ("jacket", "sweater") or (upper.kind == "shirt" and rng.random() < 0.6)
    if upper.kind == "t-shirt":
        long_sleeves = False
    gait = Gait(
        frequency=round(float(rng.uniform(0.07, 0.13)), 4),
        stride=round(float(rng.uniform(0.07, 0.16)), 4),
        arm_swing=round(float(rng.uniform(0.02, 0.11)), 4),
        bounce=round(float(rng.uniform(0.004, 0.018)), 4),
    )
    return IdentityAttributes(
        pid=int(pid),
        height=round(float(rng.uniform(0.84, 1.0)), 4),
        build=round(float(rng.uniform(0.8, 1.25)), 4),
        upper=upper,
        lower=lower,
        long_sleeves=bool(long_sleeves),
        accessory=_choice(rng, ACCESSORIES, p=[0.4, 0.25, 0.2, 0.15]),
        hair_colour=_choice(rng, tuple(HAIR_COLOURS), p=[0.45, 0.3, 0.15, 0.1]),
        hair_length=_choice(rng, HAIR_LENGTHS, p=[0.55, 0.35, 0.1]),
        skin_tone=int(rng.integers(len(SKIN_TONES))),
        shoes=_choice(rng, tuple(SHOE_COLOURS)),
        accessory_colour=_choice(rng, ("black", "grey", "navy", "brown", "red", "green")),
        gait=gait,
    )
