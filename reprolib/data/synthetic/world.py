"""The miniature world: scale presets, cameras, identities, tracklets and splits.

This module decides *what* exists (who walks past which camera, for how long, in which
modality, in which split); :mod:`.renderer` decides what the frames look like and
:mod:`.writers` how they are laid out on disk. A :class:`World` is pure data and fully
determined by ``(WorldSpec, seed, paired)``.

Every random draw is seeded from a key path (:func:`derive_rng`), e.g.
``(seed, "motion", pid, camera, modality, index)``, never from a shared stream, so the result
does not depend on the order in which tracklets are generated (multiprocessing-safe).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .identities import IdentityAttributes, sample_identity

#: The loaders' minimum tracklet length (``min_seq_len``, docs/decisions/data.md#minimum-tracklet-length);
#: shorter tracklets are generated on purpose to exercise that filter.
MIN_SEQ_LEN = 12
#: Bumped whenever the generator's output changes for a given (spec, seed).
#: 1.1: near-infrared garment levels (dye luminance + material) replace 1.0's thermal model
#: (insulation, emissivity, dye darkness), under which the embedded baseline barely beat chance
#: across modalities (renderer.garment_level).
GENERATOR_VERSION = "1.1"


@dataclass(frozen=True)
class WorldSpec:
    """Size and statistics of a generated world (a scale preset is just an instance).

    Attributes:
        name: preset name (``"smoke"``, ``"embedded"``) or a custom label.
        num_train_ids: training identities (pids ``1..num_train_ids``).
        num_test_ids: test identities (pids continue after the training and auxiliary ones).
        num_aux_ids: auxiliary training identities (BUPTCampus ``train_auxiliary.txt`` only).
        num_cameras: physical cameras (HITSZ-VCM-like: each records IR and RGB).
        cams_per_modality: (min, max) cameras one identity is seen by, per modality.
        tracklets_per_camera: (min, max) tracklets per identity, modality and camera.
        length_range: (min, max) frames of a regular tracklet (min >= MIN_SEQ_LEN = 12).
        short_length_range: (min, max) frames of a short tracklet (max < 12: dropped by the loaders).
        short_fraction: probability that a non-protected tracklet is short.
        occlusion_prob: probability that a tracklet passes an occluder (pole or box).
        height: frame height on disk (pixels).
        width: frame width on disk (pixels).
        workers: render processes (0: in the calling process).
        still_images: a world for the image benchmarks (SYSU-MM01, RegDB): every tracklet is a
            short burst of stills (``length_range`` may lie below ``MIN_SEQ_LEN``), and there
            are no short tracklets, since image loaders have no length filter to exercise
            (``short_fraction`` must be 0 and ``short_length_range`` is unused).
    """

    name: str
    num_train_ids: int
    num_test_ids: int
    num_aux_ids: int
    num_cameras: int
    cams_per_modality: tuple[int, int]
    tracklets_per_camera: tuple[int, int]
    length_range: tuple[int, int]
    short_length_range: tuple[int, int]
    short_fraction: float
    occlusion_prob: float
    height: int = 128
    width: int = 64
    workers: int = 0
    still_images: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.num_train_ids < 1 or self.num_test_ids < 1:
            problems.append("num_train_ids and num_test_ids must be >= 1")
        if not 1 <= self.cams_per_modality[0] <= self.cams_per_modality[1] <= self.num_cameras:
            problems.append(f"cams_per_modality {self.cams_per_modality} must lie in 1..num_cameras={self.num_cameras}")
        if not 1 <= self.tracklets_per_camera[0] <= self.tracklets_per_camera[1]:
            problems.append(f"tracklets_per_camera {self.tracklets_per_camera} must be 1 <= min <= max")
        if self.still_images:
            if not 1 <= self.length_range[0] <= self.length_range[1]:
                problems.append(f"length_range {self.length_range} must be 1 <= min <= max")
            if self.short_fraction:
                problems.append(f"still-image worlds have no short tracklets: short_fraction must be 0, "
                                f"got {self.short_fraction}")
        elif not (2 <= self.short_length_range[0] <= self.short_length_range[1] < MIN_SEQ_LEN
                  <= self.length_range[0] <= self.length_range[1]):
            problems.append(
                f"need 2 <= short_length_range {self.short_length_range} < {MIN_SEQ_LEN} <= length_range {self.length_range}"
            )
        if problems:
            raise ValueError(f"invalid WorldSpec '{self.name}': " + "; ".join(problems))

    def fingerprint(self) -> str:
        """Short hash of every field that changes the generated content (not ``workers``).

        ``still_images`` enters only when set, so the video presets keep the fingerprint they
        had before the field existed (their trees on disk stay valid).
        """
        d = dataclasses.asdict(self)
        d.pop("workers")
        if not self.still_images:
            d.pop("still_images")
        d["generator_version"] = GENERATOR_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


#: Scale presets. ``smoke`` generates in about a second; ``embedded`` trains a tiny model.
WORLD_SPECS: dict[str, WorldSpec] = {
    "smoke": WorldSpec(
        name="smoke",
        num_train_ids=5,
        num_test_ids=4,
        num_aux_ids=2,
        num_cameras=3,
        cams_per_modality=(1, 2),
        tracklets_per_camera=(1, 2),
        length_range=(12, 15),
        short_length_range=(6, 11),
        short_fraction=0.2,
        occlusion_prob=0.3,
        workers=0,
    ),
    "embedded": WorldSpec(
        name="embedded",
        num_train_ids=300,
        num_test_ids=80,
        num_aux_ids=20,
        num_cameras=4,
        cams_per_modality=(2, 3),
        tracklets_per_camera=(1, 2),
        length_range=(12, 24),
        short_length_range=(8, 11),
        short_fraction=0.12,
        occlusion_prob=0.25,
        workers=2,
    ),
}


#: The rehearsal's world (``docs/rehearsal.md``): the papers' frame size (288x144), just large enough
#: that every sampler and protocol has non-empty sets (X-ReID's P x K = 2 x 2, BUPTCampus's tail drop
#: at the rehearsal's test batch, SYSU-MM01's trials, RegDB's splits), and small enough that a
#: ViT-B/16 passes over it on a CPU in seconds.
WORLD_SPECS["rehearsal"] = WorldSpec(
    name="rehearsal",
    num_train_ids=2,
    num_test_ids=2,
    num_aux_ids=1,
    num_cameras=3,
    cams_per_modality=(2, 2),
    tracklets_per_camera=(1, 1),
    length_range=(12, 13),
    short_length_range=(6, 8),
    short_fraction=0.0,
    occlusion_prob=0.3,
    height=288,
    width=144,
    workers=0,
)

#: BUPTCampus's rehearsal world: five test identities, so that with world seed 2 the query holds both
#: modalities (one query tracklet per identity, its modality drawn) and the official tail drop at the
#: rehearsal's test batch of 2 drops one RGB query and leaves non-empty sets.
WORLD_SPECS["rehearsal-bupt"] = dataclasses.replace(WORLD_SPECS["rehearsal"], name="rehearsal-bupt", num_test_ids=5)

#: Frames (images) per tracklet of the still-image presets: a burst of consecutive frames. The
#: image benchmarks need only a few images per (identity, camera); rendering costs about 2.5 ms
#: per frame, so planning short bursts (rather than rendering whole walks and keeping every k-th
#: frame) keeps the embedded SYSU-MM01 and RegDB worlds at a few thousand images, generated in
#: seconds. Every planned frame is written, as in the video layouts.
STILL_BURST = (2, 3)
#: Still-image preset of each video preset, used for the SYSU-MM01 and RegDB layouts.
IMAGE_SCALES = {"smoke": "smoke-image", "embedded": "embedded-image", "rehearsal": "rehearsal-image"}
WORLD_SPECS.update({
    image: dataclasses.replace(WORLD_SPECS[video], name=image, still_images=True, length_range=STILL_BURST,
                               short_length_range=STILL_BURST, short_fraction=0.0)
    for video, image in IMAGE_SCALES.items()
})


def get_world_spec(scale: str | WorldSpec) -> WorldSpec:
    """Return the preset named ``scale`` (or ``scale`` itself when it is a :class:`WorldSpec`)."""
    if isinstance(scale, WorldSpec):
        return scale
    try:
        return WORLD_SPECS[scale]
    except KeyError:
        raise ValueError(f"unknown SynthVCM scale '{scale}'; expected one of {sorted(WORLD_SPECS)}") from None


def derive_rng(seed: int, *keys: int | str) -> np.random.Generator:
    """A generator seeded from ``seed`` and a key path (strings hashed with CRC-32)."""
    entropy = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(entropy))


# --------------------------------------------------------------------------------------
# Cameras and motion
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraSpec:
    """One physical camera; it can record visible (day) and infrared (night) video.

    Attributes:
        index: 1-based physical camera id (written as ``camid`` / ``D<index>``).
        view: 0 = side view (people walk across), 1 = frontal (people walk towards/away).
        scale: person height as a fraction of the frame height.
        y_offset: vertical shift of the person in pixels.
        brightness: additive visible brightness offset (0..255 scale).
        contrast: multiplicative visible contrast.
        cast: per-channel visible colour cast (R, G, B multipliers).
        blur_rgb: Gaussian blur radius of visible frames (pixels).
        blur_ir: Gaussian blur radius of infrared frames (pixels).
        noise_rgb: sensor noise standard deviation of visible frames (0..255 scale).
        noise_ir: sensor noise standard deviation of infrared frames.
        jpeg_quality: JPEG quality of the saved frames.
        ir_gain: infrared contrast.
        ir_offset: infrared black level.
        background: background style (``"brick"``, ``"panels"``, ``"foliage"``).
        wall_colour: visible wall colour.
        ground_colour: visible ground colour.
        horizon: wall/ground boundary as a fraction of the frame height.
        occluder_colour: visible colour of poles and boxes.
        frame_step: frame-number step between consecutive frames (sparse numbering).
    """

    index: int
    view: float
    scale: float
    y_offset: float
    brightness: float
    contrast: float
    cast: tuple[float, float, float]
    blur_rgb: float
    blur_ir: float
    noise_rgb: float
    noise_ir: float
    jpeg_quality: int
    ir_gain: float
    ir_offset: float
    background: str
    wall_colour: tuple[int, int, int]
    ground_colour: tuple[int, int, int]
    horizon: float
    occluder_colour: tuple[int, int, int]
    frame_step: int

    def to_dict(self) -> dict:
        """Plain JSON-serialisable mapping."""
        return dataclasses.asdict(self)


def _colour(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int, int]:
    base = rng.uniform(lo, hi)
    return tuple(int(np.clip(base + rng.uniform(-25, 25), 0, 255)) for _ in range(3))


def sample_camera(seed: int, index: int) -> CameraSpec:
    """Draw camera ``index`` (1-based) of the world with ``seed``."""
    rng = derive_rng(seed, "camera", index)
    # Alternate side-ish and frontal-ish viewpoints so every world has both.
    view = float(rng.uniform(0.0, 0.3) if index % 2 else rng.uniform(0.55, 0.95))
    return CameraSpec(
        index=int(index),
        view=round(view, 4),
        scale=round(float(rng.uniform(0.76, 0.9)), 4),
        y_offset=round(float(rng.uniform(-4, 4)), 3),
        brightness=round(float(rng.uniform(-30, 25)), 3),
        contrast=round(float(rng.uniform(0.75, 1.15)), 4),
        cast=tuple(round(float(c), 4) for c in rng.uniform(0.85, 1.15, size=3)),
        blur_rgb=round(float(rng.uniform(0.2, 0.8)), 3),
        blur_ir=round(float(rng.uniform(0.6, 1.3)), 3),
        noise_rgb=round(float(rng.uniform(1.5, 6.0)), 3),
        noise_ir=round(float(rng.uniform(3.0, 9.0)), 3),
        jpeg_quality=int(rng.integers(72, 93)),
        ir_gain=round(float(rng.uniform(0.8, 1.1)), 4),
        ir_offset=round(float(rng.uniform(-12, 12)), 3),
        background=("brick", "panels", "foliage")[int(rng.integers(3))],
        wall_colour=_colour(rng, 70, 190),
        ground_colour=_colour(rng, 60, 150),
        horizon=round(float(rng.uniform(0.45, 0.68)), 4),
        occluder_colour=_colour(rng, 40, 160),
        frame_step=int(rng.integers(1, 6)),
    )


@dataclass(frozen=True)
class Motion:
    """How one tracklet moves through the camera view.

    Attributes:
        facing: +1 / -1. Side views: walking right / left. Frontal views: towards / away
            from the camera (front or back of the person visible).
        phase0: gait phase at the first frame (radians).
        bg_start: background scroll offset at the first frame (pixels).
        bg_speed: background scroll speed (pixels per frame, signed).
        x_shift: horizontal offset of the person's centre (pixels).
        jitter: standard deviation of the per-frame detector jitter (pixels).
        occluder: ``None``, ``"pole"`` or ``"box"``.
        occluder_x: occluder position in background coordinates (pixels).
        occluder_width: occluder width (pixels).
    """

    facing: int
    phase0: float
    bg_start: float
    bg_speed: float
    x_shift: float
    jitter: float
    occluder: Optional[str]
    occluder_x: float
    occluder_width: float


#: Width of the scrolling background canvas, in frame widths.
BACKGROUND_WIDTH_FACTOR = 8


def sample_motion(
    rng: np.random.Generator,
    attrs: IdentityAttributes,
    camera: CameraSpec,
    n_frames: int,
    width: int,
    height: int,
    occlusion_prob: float,
) -> Motion:
    """Draw the motion of one tracklet of ``n_frames`` frames."""
    facing = int(rng.choice([-1, 1]))
    body_px = camera.scale * attrs.height * height
    # The crop follows the person, so the background scrolls at the walking speed.
    speed = 3.0 * attrs.gait.stride * body_px * attrs.gait.frequency * (1.0 - camera.view)
    bg_width = BACKGROUND_WIDTH_FACTOR * width
    travel = speed * max(n_frames - 1, 0)
    start = float(rng.uniform(0, max(bg_width - width - travel, 1.0)))
    if facing < 0:
        start += travel
    bg_speed = speed * facing
    occluder: Optional[str] = None
    occ_x = occ_w = 0.0
    if rng.random() < occlusion_prob:
        occluder = "pole" if rng.random() < 0.6 else "box"
        t_occ = rng.uniform(0, max(n_frames - 1, 0))
        occ_w = float(rng.uniform(4, 8) if occluder == "pole" else rng.uniform(18, 30))
        occ_x = start + bg_speed * t_occ + width / 2 + float(rng.uniform(-12, 12)) - occ_w / 2
    return Motion(
        facing=facing,
        phase0=float(rng.uniform(0, 2 * np.pi)),
        bg_start=start,
        bg_speed=bg_speed,
        x_shift=float(rng.uniform(-3, 3)),
        jitter=float(rng.uniform(0.3, 1.2)),
        occluder=occluder,
        occluder_x=occ_x,
        occluder_width=occ_w,
    )


# --------------------------------------------------------------------------------------
# Tracklets and the world
# --------------------------------------------------------------------------------------

MODALITIES = ("ir", "rgb")
_MODALITY_ORDER = {("ir",): 0, ("rgb", "ir"): 1, ("rgb",): 2}  # file order within (pid, camera)


@dataclass(frozen=True)
class TrackletPlan:
    """One recorded tracklet (or one pixel-aligned RGB/IR pair).

    Attributes:
        pid: raw person id.
        camera: 1-based physical camera index.
        modalities: ``("ir",)``, ``("rgb",)`` or ``("rgb", "ir")`` for an aligned pair.
        index: 1-based tracklet number within (pid, modalities, camera).
        length: number of frames.
        first_frame: frame number of the first frame (unique per pid/modality/camera).
        frame_step: frame-number step between consecutive frames.
        split: ``"train"``, ``"aux"`` or ``"test"``.
        role: paired worlds only: ``"train"``, ``"aux"``, ``"query-ir"``, ``"query-rgb"`` or
            ``"gallery"``; empty for unpaired worlds (the layout derives query/gallery).
    """

    pid: int
    camera: int
    modalities: tuple[str, ...]
    index: int
    length: int
    first_frame: int
    frame_step: int
    split: str
    role: str = ""

    @property
    def key(self) -> tuple:
        """Seed key path of this tracklet (independent of generation order)."""
        return (self.pid, self.camera, "+".join(self.modalities), self.index)

    def frame_numbers(self) -> list[int]:
        """Frame numbers of the tracklet's frames, in temporal order."""
        return [self.first_frame + i * self.frame_step for i in range(self.length)]


@dataclass(frozen=True)
class World:
    """A fully specified miniature world (pure data; see :func:`build_world`).

    Attributes:
        spec: the scale preset.
        seed: world seed.
        paired: True when tracklets are pixel-aligned RGB/IR pairs (BUPTCampus-like).
        identities: pid -> attributes.
        splits: pid -> ``"train"`` | ``"aux"`` | ``"test"``.
        cameras: physical cameras (``cameras[i].index == i + 1``).
        tracklets: every tracklet, in file order (pid, camera, modality, index).
    """

    spec: WorldSpec
    seed: int
    paired: bool
    identities: dict[int, IdentityAttributes]
    splits: dict[int, str]
    cameras: tuple[CameraSpec, ...]
    tracklets: tuple[TrackletPlan, ...]

    def camera(self, index: int) -> CameraSpec:
        """The camera with 1-based ``index``."""
        return self.cameras[index - 1]

    def pids(self, split: str) -> list[int]:
        """Sorted pids of one split."""
        return sorted(p for p, s in self.splits.items() if s == split)


def _length(rng: np.random.Generator, spec: WorldSpec, short: bool) -> int:
    lo, hi = spec.short_length_range if short else spec.length_range
    return int(rng.integers(lo, hi + 1))


def _frame_counter(rng: np.random.Generator, step: int):
    """Yields first-frame numbers of consecutive tracklets in one (pid, modality, camera)."""
    nxt = int(rng.integers(1, 60))
    while True:
        length = yield nxt
        nxt += (length + int(rng.integers(3, 40))) * step


def _plan_unpaired(spec: WorldSpec, seed: int, pid: int, split: str, cameras) -> list[TrackletPlan]:
    """HITSZ-VCM-like: IR and RGB tracklets are recorded independently (day vs night)."""
    rng = derive_rng(seed, "plan", pid)
    out = []
    for modality in MODALITIES:
        k = int(rng.integers(spec.cams_per_modality[0], spec.cams_per_modality[1] + 1))
        cams = sorted(int(c) + 1 for c in rng.choice(spec.num_cameras, size=k, replace=False))
        protected = True  # the first tracklet per modality is long: every id survives the filter
        for cam in cams:
            counter = _frame_counter(derive_rng(seed, "frames", pid, modality, cam), cameras[cam - 1].frame_step)
            first = next(counter)
            n = int(rng.integers(spec.tracklets_per_camera[0], spec.tracklets_per_camera[1] + 1))
            for i in range(1, n + 1):
                short = (not protected) and rng.random() < spec.short_fraction
                length = _length(rng, spec, short)
                out.append(TrackletPlan(pid, cam, (modality,), i, length, first, cameras[cam - 1].frame_step, split))
                first = counter.send(length)
                protected = False
    return out


def _plan_paired(spec: WorldSpec, seed: int, pid: int, split: str, cameras, num_cameras: int) -> list[TrackletPlan]:
    """BUPTCampus-like: every tracklet is a pixel-aligned RGB/IR pair."""
    rng = derive_rng(seed, "plan", pid)
    if split == "aux":
        k = 1  # auxiliary identities appear in a single camera
    elif split == "train":
        k = 1 if rng.random() < 0.15 else int(rng.integers(2, min(3, num_cameras) + 1))
    else:
        k = int(rng.integers(2, min(3, num_cameras) + 1))
    cams = sorted(int(c) + 1 for c in rng.choice(num_cameras, size=k, replace=False))
    out = []
    for j, cam in enumerate(cams):
        counter = _frame_counter(derive_rng(seed, "frames", pid, "pair", cam), cameras[cam - 1].frame_step)
        first = next(counter)
        n = 2 if (split == "train" and rng.random() < 0.2) else 1
        for i in range(1, n + 1):
            length = _length(rng, spec, short=False)
            if split == "test":
                role = ("query-ir" if rng.random() < 0.5 else "query-rgb") if j == 0 and i == 1 else "gallery"
            else:
                role = split
            out.append(TrackletPlan(pid, cam, ("rgb", "ir"), i, length, first, cameras[cam - 1].frame_step, split, role))
            first = counter.send(length)
    return out


def _ensure_short(spec: WorldSpec, seed: int, plans: list[TrackletPlan], pid: int) -> list[TrackletPlan]:
    """Append one short IR tracklet to ``pid`` so that its split exercises the >=12 filter."""
    ir = [t for t in plans if t.pid == pid and t.modalities == ("ir",)]
    last = max(ir, key=lambda t: (t.camera, t.index))
    rng = derive_rng(seed, "extra-short", pid)
    length = _length(rng, spec, short=True)
    first = last.first_frame + (last.length + 5) * last.frame_step
    extra = dataclasses.replace(last, index=last.index + 1, length=length, first_frame=first)
    return plans + [extra]


def build_world(spec: WorldSpec | str, seed: int = 0, paired: bool = False, num_cameras: Optional[int] = None) -> World:
    """Plan a world: identities, cameras and tracklets (no pixels yet).

    Pids: training ``1..N``, then auxiliary (paired worlds only), then test, like HITSZ-VCM
    where test pids continue after the training ones.

    Args:
        spec: scale preset or its name.
        seed: world seed.
        paired: pixel-aligned RGB/IR pairs (BUPTCampus) instead of independent tracklets.
        num_cameras: override of ``spec.num_cameras`` (BUPTCampus has 6 named cameras).

    Returns:
        The :class:`World`.
    """
    spec = get_world_spec(spec)
    n_cams = num_cameras or spec.num_cameras
    cameras = tuple(sample_camera(seed, i) for i in range(1, n_cams + 1))
    n_aux = spec.num_aux_ids if paired else 0
    splits: dict[int, str] = {}
    for pid in range(1, spec.num_train_ids + 1):
        splits[pid] = "train"
    for pid in range(spec.num_train_ids + 1, spec.num_train_ids + n_aux + 1):
        splits[pid] = "aux"
    start = spec.num_train_ids + n_aux + 1
    for pid in range(start, start + spec.num_test_ids):
        splits[pid] = "test"
    identities = {pid: sample_identity(pid, derive_rng(seed, "identity", pid)) for pid in splits}
    plans: list[TrackletPlan] = []
    for pid, split in splits.items():
        if paired:
            plans += _plan_paired(spec, seed, pid, split, cameras, n_cams)
        else:
            plans += _plan_unpaired(spec, seed, pid, split, cameras)
    if not paired and not spec.still_images:
        for split in ("train", "test"):
            if not any(t.split == split and t.length < MIN_SEQ_LEN for t in plans):
                plans = _ensure_short(spec, seed, plans, min(p for p, s in splits.items() if s == split))
    plans.sort(key=lambda t: (t.pid, t.camera, _MODALITY_ORDER[t.modalities], t.index))
    return World(spec, int(seed), paired, identities, splits, cameras, tuple(plans))
