"""Procedural renderer of the miniature world: a walking person in a camera view.

A frame is drawn in two stages:

1. **Geometry** (modality independent): the person is rasterised as a *part-label map*
   (skin, hair, upper/lower garment and their pattern regions, shoes, accessory, hat) with a
   per-pixel shading term, from body shape, pose (gait phase) and the camera viewpoint.
2. **Appearance** (per modality): the label map is coloured through a look-up table. The
   visible table holds the identity's colours; the infrared table holds near-infrared grey
   levels: skin bright, clothing by its dye's luminance and its material (never by hue), pattern
   regions by the pattern dye and a texture contrast, accessories dark, background dim. Then the
   camera adds blur, illumination (visible only) and sensor noise; infrared frames are 3-channel
   grey.

Because geometry is shared, a pixel-aligned RGB/IR pair (BUPTCampus) is the same label map
coloured twice. Everything is NumPy on small bounding boxes, ~1 ms per frame.
"""
from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageFilter

from .identities import COLOURS, HAIR_COLOURS, MATERIALS, SHOE_COLOURS, SKIN_TONES, IdentityAttributes
from .world import BACKGROUND_WIDTH_FACTOR, CameraSpec, Motion, derive_rng

# Part labels of the geometry stage.
BG, SKIN, HAIR, UPPER, UPPER_ALT, LOWER, LOWER_ALT, SHOES, ACCESSORY, HAT = range(10)
NUM_LABELS = 10

#: Infrared grey level (0..1 of the brightest) of the non-garment parts: skin reflects near-infrared
#: strongly; hair, shoes and accessories are dark.
IR_LEVELS = {SKIN: 0.97, HAIR: 0.5, SHOES: 0.3, ACCESSORY: 0.26, HAT: 0.42}
IR_FLOOR = 22.0  # grey value of a level-0 surface before camera gain
IR_SPAN = 225.0

#: A neutral camera for :func:`render_frame` when none is given.
NEUTRAL_CAMERA = CameraSpec(
    index=0, view=0.2, scale=0.84, y_offset=0.0, brightness=0.0, contrast=1.0, cast=(1.0, 1.0, 1.0),
    blur_rgb=0.3, blur_ir=0.8, noise_rgb=2.0, noise_ir=4.0, jpeg_quality=90, ir_gain=1.0, ir_offset=0.0,
    background="panels", wall_colour=(150, 146, 140), ground_colour=(110, 108, 104), horizon=0.55,
    occluder_colour=(90, 90, 90), frame_step=1,
)


# --------------------------------------------------------------------------------------
# Rasterisation primitives (write label and shading inside a bounding box)
# --------------------------------------------------------------------------------------


class _Canvas:
    """Label map + shading map with primitive painters (painter's algorithm: last wins)."""

    def __init__(self, height: int, width: int) -> None:
        self.h, self.w = height, width
        self.label = np.zeros((height, width), np.uint8)  # (H, W)
        self.shade = np.ones((height, width), np.float32)  # (H, W)
        self.yy, self.xx = _grid(height, width)

    def _box(self, x0: float, x1: float, y0: float, y1: float):
        c0, c1 = max(int(np.floor(x0)), 0), min(int(np.ceil(x1)) + 1, self.w)
        r0, r1 = max(int(np.floor(y0)), 0), min(int(np.ceil(y1)) + 1, self.h)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def _paint(self, sl, mask: np.ndarray, label: int, shade: np.ndarray, dim: float) -> None:
        lab, sh = self.label[sl], self.shade[sl]
        lab[mask] = label
        sh[mask] = (shade * dim)[mask]

    def capsule(self, p0, p1, r: float, label: int, dim: float = 1.0) -> None:
        """Thick segment from ``p0`` to ``p1`` (x, y) with radius ``r`` (a limb)."""
        (x0, y0), (x1, y1) = p0, p1
        sl = self._box(min(x0, x1) - r, max(x0, x1) + r, min(y0, y1) - r, max(y0, y1) + r)
        if sl is None:
            return
        xx, yy = self.xx[sl], self.yy[sl]
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-6), 0.0, 1.0)
        d2 = ((xx - x0 - t * dx) ** 2 + (yy - y0 - t * dy) ** 2) / (r * r)
        self._paint(sl, d2 < 1.0, label, 1.0 - 0.4 * d2, dim)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, label: int, dim: float = 1.0,
                clip_y: Optional[tuple[float, float]] = None, clip_x: Optional[tuple[float, float]] = None) -> None:
        """Filled ellipse, optionally restricted to a y-range / x-range."""
        sl = self._box(cx - rx, cx + rx, cy - ry, cy + ry)
        if sl is None:
            return
        xx, yy = self.xx[sl], self.yy[sl]
        d2 = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        mask = d2 < 1.0
        if clip_y is not None:
            mask &= (yy >= clip_y[0]) & (yy <= clip_y[1])
        if clip_x is not None:
            mask &= (xx >= clip_x[0]) & (xx <= clip_x[1])
        self._paint(sl, mask, label, 1.0 - 0.3 * d2, dim)

    def trapezoid(self, cx: float, y0: float, y1: float, hw0: float, hw1: float, label: int, dim: float = 1.0) -> None:
        """Horizontally centred trapezoid: half-width ``hw0`` at ``y0`` to ``hw1`` at ``y1``."""
        hw = max(hw0, hw1)
        sl = self._box(cx - hw, cx + hw, y0, y1)
        if sl is None:
            return
        xx, yy = self.xx[sl], self.yy[sl]
        f = np.clip((yy - y0) / max(y1 - y0, 1e-6), 0.0, 1.0)
        half = hw0 + (hw1 - hw0) * f
        u2 = ((xx - cx) / half) ** 2
        mask = (u2 < 1.0) & (yy >= y0) & (yy <= y1)
        self._paint(sl, mask, label, 1.0 - 0.35 * u2, dim)


@functools.lru_cache(maxsize=8)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    return yy, xx


# --------------------------------------------------------------------------------------
# The person (geometry)
# --------------------------------------------------------------------------------------


def _draw_person(
    canvas: _Canvas, a: IdentityAttributes, camera: CameraSpec, facing: int, phase: float, cx: float, scale_mul: float
) -> tuple[float, float, float]:
    """Rasterise one person; returns (centre x, top y, body height) for the pattern stage."""
    H = canvas.h
    hb = camera.scale * a.height * H * scale_mul  # body height in pixels
    side = 1.0 - camera.view  # how much of the walking motion projects onto x
    front = camera.view
    g = a.gait
    bob = g.bounce * hb * abs(np.sin(phase))
    feet_y = H * 0.5 + 0.5 * camera.scale * H + camera.y_offset  # feet of a full-scale person
    top = feet_y - hb - bob

    def Y(f: float) -> float:  # noqa: N802  (fraction of body height -> pixel row)
        return top + f * hb

    b = a.build
    hw = 0.12 * hb * b * (0.62 + 0.38 * front)  # torso half-width
    toward = facing > 0 and front > 0.5  # frontal camera, person walks towards it
    d = facing if front <= 0.5 else 0  # side direction of the walk (0 for frontal views)
    far_dim = 0.78 if side > 0.5 else 0.92

    sw = np.sin(phase)
    # Legs: hip -> knee -> ankle; far leg first.
    hip_dx = 0.055 * hb * b * (0.3 + 0.7 * front)
    legs = []
    for k, sgn in ((0, 1.0), (1, -1.0)):
        hx = cx + (hip_dx if k == 0 else -hip_dx)
        swing = sgn * g.stride * hb * sw * side * (d if d else 1)
        lift = 0.03 * hb * front * max(0.0, sgn * sw)
        ax, ay = hx + swing, Y(0.955) - lift
        kx = 0.5 * (hx + ax) + 0.02 * hb * side * d * (0.5 + 0.5 * max(0.0, -sgn * sw))
        ky = 0.5 * (Y(0.52) + ay)
        legs.append(((hx, Y(0.52)), (kx, ky), (ax, ay)))
    lower_kind = a.lower.kind
    thigh_r, shin_r = 0.048 * hb * b, 0.036 * hb * b
    for k, (hip, knee, ankle) in enumerate(legs):
        dim = far_dim if (k == 0 and side > 0.5) else 1.0
        upper_leg = LOWER
        lower_leg = LOWER if lower_kind == "trousers" else SKIN
        canvas.capsule(hip, knee, thigh_r, upper_leg if lower_kind != "skirt" else SKIN, dim)
        canvas.capsule(knee, ankle, shin_r, lower_leg, dim)
        fx = ankle[0] + 0.035 * hb * side * d
        canvas.ellipse(fx, ankle[1] + 0.015 * hb, 0.045 * hb * (0.6 + 0.4 * side), 0.022 * hb, SHOES, dim)

    # Arms: shoulder -> elbow -> hand (far arm before the torso).
    sh_y = Y(0.19)
    arms = []
    for k, sgn in ((0, -1.0), (1, 1.0)):
        sx = cx + (1 if k == 0 else -1) * (hw + 0.02 * hb) * front
        swing = sgn * g.arm_swing * hb * sw * side * (d if d else 1)
        hx, hy = sx + swing, Y(0.5)
        ex, ey = sx + 0.45 * swing, Y(0.345)
        arms.append(((sx, sh_y), (ex, ey), (hx, hy)))

    def draw_arm(k: int, dim: float) -> None:
        s, e, h = arms[k]
        r = 0.032 * hb * b
        canvas.capsule(s, e, r, UPPER, dim)
        canvas.capsule(e, h, r * 0.9, UPPER if a.long_sleeves else SKIN, dim)
        canvas.ellipse(h[0], h[1] + 0.01 * hb, 0.028 * hb, 0.032 * hb, SKIN, dim)

    if side > 0.5:
        draw_arm(0, far_dim)

    # Backpack behind the torso in side views / on the torso seen from the back.
    if a.accessory == "backpack" and side > 0.5:
        bx = cx - d * (hw + 0.05 * hb)
        canvas.trapezoid(bx, Y(0.2), Y(0.45), 0.065 * hb, 0.07 * hb, ACCESSORY)

    # Hips / skirt, then torso.
    if lower_kind == "skirt":
        canvas.trapezoid(cx, Y(0.47), Y(0.7), hw * 0.85, hw * 1.35, LOWER)
    else:
        canvas.trapezoid(cx, Y(0.47), Y(0.58), hw * 0.9, hw * 0.95, LOWER)
    canvas.trapezoid(cx, Y(0.165), Y(0.52), hw, hw * 0.9, UPPER)
    canvas.capsule((cx, Y(0.13)), (cx, Y(0.17)), 0.03 * hb, SKIN)  # neck

    if a.accessory == "backpack" and side <= 0.5:
        if toward:  # straps only
            for sgn in (-1, 1):
                canvas.capsule((cx + sgn * 0.6 * hw, Y(0.17)), (cx + sgn * 0.62 * hw, Y(0.36)), 0.012 * hb + 0.6, ACCESSORY)
        else:
            canvas.trapezoid(cx, Y(0.19), Y(0.45), 0.75 * hw, 0.8 * hw, ACCESSORY)

    # Head, hair, hat.
    hcx = cx + 0.012 * hb * side * d
    hcy, hrx, hry = Y(0.07), 0.058 * hb, 0.07 * hb
    canvas.ellipse(hcx, hcy, hrx, hry, SKIN)
    if a.hair_length != "bald":
        back_side = not toward and front > 0.5
        if a.hair_length == "long":
            lx = hcx - d * 0.3 * hrx
            canvas.trapezoid(lx, hcy, Y(0.2), hrx * 0.95, hrx * (1.05 if not toward else 0.8), HAIR)
            if toward:  # keep the face visible
                canvas.ellipse(hcx, hcy + 0.2 * hry, hrx * 0.7, hry * 0.75, SKIN)
        if back_side:
            canvas.ellipse(hcx, hcy, hrx * 1.05, hry * 1.05, HAIR)
        elif d:
            # Side view: top of the head and the back half.
            canvas.ellipse(hcx, hcy, hrx * 1.05, hry * 1.05, HAIR, clip_y=(0, hcy - 0.25 * hry))
            xr = (hcx - 2 * hrx, hcx - 0.1 * hrx) if d > 0 else (hcx + 0.1 * hrx, hcx + 2 * hrx)
            canvas.ellipse(hcx, hcy, hrx * 1.05, hry * 1.05, HAIR, clip_x=xr, clip_y=(0, hcy + 0.35 * hry))
        else:
            canvas.ellipse(hcx, hcy, hrx * 1.05, hry * 1.05, HAIR, clip_y=(0, hcy - 0.3 * hry))
    if a.accessory == "hat":
        canvas.ellipse(hcx + 0.3 * hrx * d, hcy - 0.45 * hry, hrx * 1.45, 0.22 * hry, HAT)
        canvas.ellipse(hcx, hcy - 0.55 * hry, hrx * 1.0, 0.6 * hry, HAT, clip_y=(0, hcy - 0.45 * hry))

    # Near arm last; a shoulder bag hangs at the near hip with a strap across the torso.
    if side > 0.5:
        draw_arm(1, 1.0)
    else:
        draw_arm(0, 1.0)
        draw_arm(1, 1.0)
    if a.accessory == "bag":
        bag_side = d if d else 1
        bx = cx + bag_side * (0.3 * hw if side > 0.5 else hw + 0.02 * hb)
        canvas.capsule((cx - bag_side * hw * 0.8, Y(0.18)), (bx, Y(0.5)), 0.012 * hb + 0.5, ACCESSORY)
        canvas.trapezoid(bx, Y(0.47), Y(0.6), 0.055 * hb, 0.06 * hb, ACCESSORY)
    return cx, top, hb


def _apply_patterns(canvas: _Canvas, a: IdentityAttributes, cx: float, top: float, hb: float) -> None:
    """Split garment pixels into main and secondary pattern regions (body coordinates)."""
    for main, alt, garment, y_split in ((UPPER, UPPER_ALT, a.upper, 0.34), (LOWER, LOWER_ALT, a.lower, 0.74)):
        if garment.pattern == "plain":
            continue
        mask = canvas.label == main
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        v = (ys + 0.5 - top) / hb
        u = (xs + 0.5 - cx) / hb + 4.0
        p = garment.pattern_period
        if garment.pattern == "hstripes":
            sec = np.floor(v / p) % 2 == 1
        elif garment.pattern == "vstripes":
            sec = np.floor(u / p) % 2 == 1
        elif garment.pattern == "checks":
            sec = (np.floor(u / p) + np.floor(v / p)) % 2 == 1
        else:  # two-tone
            sec = v > y_split
        canvas.label[ys[sec], xs[sec]] = alt


def person_labels(
    attrs: IdentityAttributes, camera: CameraSpec, facing: int, phase: float, height: int, width: int,
    cx: Optional[float] = None, scale_mul: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Part-label map ``(H, W) uint8`` and shading ``(H, W) float32`` of one pose."""
    canvas = _Canvas(height, width)
    cx, top, hb = _draw_person(canvas, attrs, camera, facing, phase, width / 2 if cx is None else cx, scale_mul)
    _apply_patterns(canvas, attrs, cx, top, hb)
    return canvas.label, canvas.shade


# --------------------------------------------------------------------------------------
# Appearance tables
# --------------------------------------------------------------------------------------


def colour_table(a: IdentityAttributes) -> np.ndarray:
    """Visible colour of every part label, ``(NUM_LABELS, 3) float32`` in 0..255."""
    lut = np.zeros((NUM_LABELS, 3), np.float32)
    lut[SKIN] = SKIN_TONES[a.skin_tone]
    lut[HAIR] = HAIR_COLOURS[a.hair_colour]
    lut[UPPER], lut[UPPER_ALT] = COLOURS[a.upper.colour], COLOURS[a.upper.pattern_colour]
    lut[LOWER], lut[LOWER_ALT] = COLOURS[a.lower.colour], COLOURS[a.lower.pattern_colour]
    lut[SHOES] = SHOE_COLOURS[a.shoes]
    lut[ACCESSORY] = lut[HAT] = COLOURS[a.accessory_colour]
    return lut


#: Near-infrared reflectance of a dyed fabric (generator 1.1): the dye's luminance sets most of it,
#: the fibre (material) the rest; the hue never matters. The infrared cameras of HITSZ-VCM, SYSU-MM01
#: (cameras 3 and 6) and BUPTCampus are near-infrared night cameras, whose frames keep the coarse
#: light/dark structure of the clothing. Generator 1.0 drew a thermal model (insulation of the kind,
#: emissivity, dye darkness) in which nothing but a few pixels of geometry was shared: the embedded
#: baseline's cross-modal mAP was 5.3 against 2.9 at chance; with this model it is 17.7 (IR->RGB)
#: and 18.9 (RGB->IR) (the quickstart's run).
NIR_BASE = 0.2
#: Weight of the dye's visible luminance (0..1) in the garment's infrared level.
NIR_LUMINANCE_WEIGHT = 0.65
#: How far a material's reflectance moves the garment's level (around the mean material).
MATERIAL_SHIFT_WEIGHT = 0.2


def _luminance(rgb: tuple[int, int, int]) -> float:
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255.0


def garment_level(material: str, colour: str) -> float:
    """Infrared level (0..1) of a garment region under near-infrared illumination.

    ``NIR_BASE + NIR_LUMINANCE_WEIGHT * luminance(dye) + MATERIAL_SHIFT_WEIGHT * (reflectance - mean)``:
    two dyes of equal luminance but different hue look the same; the material shifts the level, so
    infrared brightness is related to, but not a copy of, the visible luminance.
    """
    level = NIR_BASE + NIR_LUMINANCE_WEIGHT * _luminance(COLOURS[colour])
    level += MATERIAL_SHIFT_WEIGHT * (MATERIALS[material] - 0.53)
    return float(np.clip(level, 0.1, 0.9))


def infrared_table(a: IdentityAttributes) -> np.ndarray:
    """Infrared level (0..1) of every part label, ``(NUM_LABELS,) float32``.

    Garments reflect by :func:`garment_level` (dye luminance, material); pattern regions are the
    pattern colour's level plus the garment's texture contrast; skin, hair, shoes and accessories
    have fixed levels (:data:`IR_LEVELS`).
    """
    lut = np.zeros(NUM_LABELS, np.float32)
    for label, level in IR_LEVELS.items():
        lut[label] = level
    for main, alt, g in ((UPPER, UPPER_ALT, a.upper), (LOWER, LOWER_ALT, a.lower)):
        lut[main] = garment_level(g.material, g.colour)
        alt_level = garment_level(g.material, g.pattern_colour) + g.pattern_contrast
        lut[alt] = np.clip(alt_level, 0.1, 0.9) if g.pattern != "plain" else lut[main]
    return lut


# --------------------------------------------------------------------------------------
# Backgrounds (per camera, cached)
# --------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    small = rng.random((height // cell + 2, width // cell + 2)).astype(np.float32)
    img = Image.fromarray(small, mode="F").resize((width + 2 * cell, height + 2 * cell), Image.BILINEAR)
    return np.asarray(img)[cell:cell + height, cell:cell + width]


@functools.lru_cache(maxsize=16)
def camera_background(camera: CameraSpec, height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Wide scrolling background of one camera: visible ``(H, Wb, 3)`` and infrared ``(H, Wb)``.

    Both modalities show the same scene (one physical camera); infrared is cool: a low grey
    level following the scene structure, with a few warm spots (lamps, vents).
    """
    rng = derive_rng(seed, "background", camera.index)
    wb = BACKGROUND_WIDTH_FACTOR * width
    yy, xx = np.mgrid[0:height, 0:wb].astype(np.float32)
    hy = camera.horizon * height
    wall = yy < hy
    tex = np.zeros((height, wb), np.float32)
    if camera.background == "brick":
        row = np.floor(yy / 6)
        mortar = (yy % 6 < 1) | ((xx + 7 * (row % 2)) % 14 < 1)
        tex = np.where(mortar, -0.25, 0.0) + 0.15 * (_smooth_noise(rng, height, wb, 3) - 0.5)
    elif camera.background == "panels":
        tex = np.where((xx % 24 < 1.5) | (yy % 30 < 1.0), -0.2, 0.0) + 0.1 * (_smooth_noise(rng, height, wb, 6) - 0.5)
    else:  # foliage
        tex = 0.7 * (_smooth_noise(rng, height, wb, 4) - 0.5) + 0.35 * (_smooth_noise(rng, height, wb, 2) - 0.5)
    # Ground: perspective tiles and stains.
    depth = np.maximum(yy - hy, 1.0)
    tiles = ((np.log(depth) * 5.0) % 1.0 < 0.12) | ((xx - wb / 2) / depth * 6.0 % 1.0 < 0.08)
    ground_tex = np.where(tiles, -0.15, 0.0) + 0.25 * (_smooth_noise(rng, height, wb, 8) - 0.5)
    wall_rgb = np.asarray(camera.wall_colour, np.float32)
    if camera.background == "foliage":
        wall_rgb = np.asarray((60, 110, 55), np.float32) * (0.7 + 0.6 * wall_rgb / 255.0)
    rgb = np.where(
        wall[..., None],
        wall_rgb * (1.0 + tex[..., None]),
        np.asarray(camera.ground_colour, np.float32) * (1.0 + ground_tex[..., None]),
    )
    # Structure-following cool infrared, plus windows/doors (visible) and warm spots (infrared).
    ir = np.where(wall, 0.2 + 0.25 * tex, 0.13 + 0.2 * ground_tex)
    for _ in range(int(rng.integers(3, 7))):
        x0, w = int(rng.integers(0, wb - 20)), int(rng.integers(10, 26))
        y0 = int(rng.integers(2, max(int(hy) - 20, 3)))
        hgt = int(rng.integers(10, max(int(hy) - y0, 11)))
        tone = rng.uniform(0.3, 0.8)
        rgb[y0:y0 + hgt, x0:x0 + w] = rgb[y0:y0 + hgt, x0:x0 + w] * tone
        ir[y0:y0 + hgt, x0:x0 + w] = ir[y0:y0 + hgt, x0:x0 + w] * 0.7
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = rng.uniform(0, wb), rng.uniform(0, height)
        r = rng.uniform(2.5, 6.0)
        ir += 0.35 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * r * r))
    return np.clip(rgb, 0, 255).astype(np.float32), np.clip(ir, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------
# Frames and tracklets
# --------------------------------------------------------------------------------------


def _occluder_mask(motion: Motion, offset: float, height: int, width: int) -> Optional[np.ndarray]:
    if motion.occluder is None:
        return None
    x0 = motion.occluder_x - offset
    x1 = x0 + motion.occluder_width
    if x1 < 0 or x0 > width:
        return None
    yy, xx = _grid(height, width)
    mask = (xx >= x0) & (xx <= x1)
    if motion.occluder == "box":
        mask &= yy >= 0.7 * height
    return mask


def _finish(img: np.ndarray, camera: CameraSpec, modality: str, rng: np.random.Generator) -> np.ndarray:
    """Camera pipeline: blur, illumination (visible) or gain (infrared), noise, quantisation."""
    h, w = img.shape[:2]
    if modality == "rgb":
        pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB")
        pil = pil.filter(ImageFilter.GaussianBlur(camera.blur_rgb))
        out = np.asarray(pil, np.float32)
        out = (out - 128.0) * camera.contrast + 128.0 + camera.brightness
        out = out * np.asarray(camera.cast, np.float32)
        out += camera.noise_rgb * rng.standard_normal((h, w, 3), dtype=np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L")
    pil = pil.filter(ImageFilter.GaussianBlur(camera.blur_ir))
    out = np.asarray(pil, np.float32) * camera.ir_gain + camera.ir_offset
    out += camera.noise_ir * rng.standard_normal((h, w), dtype=np.float32)
    grey = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)  # 3-channel grey, like real IR frames


def compose_frame(
    attrs: IdentityAttributes,
    camera: CameraSpec,
    modalities: Sequence[str],
    facing: int,
    phase: float,
    bg_offset: float,
    noise_rngs: dict[str, np.random.Generator],
    motion: Optional[Motion] = None,
    height: int = 128,
    width: int = 64,
    seed: int = 0,
    cx: Optional[float] = None,
    scale_mul: float = 1.0,
) -> dict[str, np.ndarray]:
    """Render one pose in one or several modalities from a single label map (aligned pixels).

    Args:
        attrs: the identity.
        camera: the physical camera (viewpoint, background, optics).
        modalities: modalities to colour the shared label map in (``"rgb"``, ``"ir"``).
        facing: walking direction (see :class:`~.world.Motion`).
        phase: gait phase (radians).
        bg_offset: background scroll offset (pixels).
        noise_rngs: one sensor-noise generator per modality.
        motion: the tracklet's motion (for its occluder), or None.
        height: frame height.
        width: frame width.
        seed: world seed (selects the camera background).
        cx: person centre x (pixels); the frame centre when None.
        scale_mul: detector scale jitter.

    Returns:
        modality -> ``(H, W, 3) uint8`` frame.
    """
    label, shade = person_labels(attrs, camera, facing, phase, height, width, cx, scale_mul)
    bg_rgb, bg_ir = camera_background(camera, height, width, seed)
    off = int(round(np.clip(bg_offset, 0, bg_rgb.shape[1] - width)))
    person = label > 0
    occ = _occluder_mask(motion, off, height, width) if motion is not None else None
    out = {}
    for modality in modalities:
        if modality == "rgb":
            img = bg_rgb[:, off:off + width].copy()  # (H, W, 3)
            img[person] = colour_table(attrs)[label[person]] * shade[person][:, None]
            if occ is not None:
                img[occ] = np.asarray(camera.occluder_colour, np.float32)
        elif modality == "ir":
            lvl = bg_ir[:, off:off + width].copy()  # (H, W)
            lvl[person] = infrared_table(attrs)[label[person]] * (0.8 + 0.2 * shade[person])
            if occ is not None:
                lvl[occ] = 0.12
            img = IR_FLOOR + IR_SPAN * lvl
        else:
            raise ValueError(f"unknown modality '{modality}'; expected 'rgb' or 'ir'")
        out[modality] = _finish(img, camera, modality, noise_rngs[modality])
    return out


def render_tracklet(
    attrs: IdentityAttributes,
    camera: CameraSpec,
    motion: Motion,
    n_frames: int,
    modalities: Sequence[str],
    rng: np.random.Generator,
    height: int = 128,
    width: int = 64,
    seed: int = 0,
) -> dict[str, list[np.ndarray]]:
    """Render a walking tracklet; several modalities share the geometry (pixel-aligned).

    Args:
        attrs: the identity.
        camera: the physical camera.
        motion: walking direction, gait phase, background scroll and occluder.
        n_frames: number of frames.
        modalities: ``("ir",)``, ``("rgb",)`` or both for an aligned pair.
        rng: seeded generator for detector jitter and sensor noise.
        height: frame height.
        width: frame width.
        seed: world seed (selects the camera background).

    Returns:
        modality -> list of ``(H, W, 3) uint8`` frames.
    """
    frames: dict[str, list[np.ndarray]] = {m: [] for m in modalities}
    noise_rngs = {m: np.random.default_rng(rng.integers(2**63)) for m in modalities}
    omega = 2.0 * np.pi * attrs.gait.frequency
    for t in range(n_frames):
        cx = width / 2 + motion.x_shift + motion.jitter * float(rng.standard_normal())
        scale_mul = 1.0 + 0.015 * float(rng.standard_normal())
        out = compose_frame(
            attrs, camera, modalities, motion.facing, motion.phase0 + omega * t, motion.bg_start + motion.bg_speed * t,
            noise_rngs, motion, height, width, seed, cx, scale_mul,
        )
        for m in modalities:
            frames[m].append(out[m])
    return frames


def render_frame(
    attrs: IdentityAttributes,
    modality: str = "rgb",
    camera: Optional[CameraSpec] = None,
    *,
    phase: float = 0.0,
    facing: int = 1,
    bg_offset: float = 0.0,
    rng: Optional[np.random.Generator] = None,
    height: int = 128,
    width: int = 64,
    seed: int = 0,
) -> np.ndarray:
    """Render one frame in memory (for TinyCLIP pretraining and notebooks).

    Args:
        attrs: the identity (e.g. from :func:`~.identities.sample_identity`).
        modality: ``"rgb"`` or ``"ir"``.
        camera: a :class:`~.world.CameraSpec` (e.g. :func:`~.world.sample_camera`); a neutral
            side-view camera when None.
        phase: gait phase (radians).
        facing: +1 / -1 walking direction (side view) or towards / away (frontal view).
        bg_offset: horizontal background scroll offset (pixels).
        rng: generator for detector jitter and sensor noise (seeded from ``seed`` when None).
        height: frame height.
        width: frame width.
        seed: selects the camera's background texture.

    Returns:
        ``(height, width, 3) uint8`` frame; infrared frames have R = G = B.
    """
    camera = NEUTRAL_CAMERA if camera is None else camera
    rng = derive_rng(seed, "render_frame", attrs.pid) if rng is None else rng
    out = compose_frame(
        attrs, camera, (modality,), facing, phase, bg_offset, {modality: rng}, None, height, width, seed,
    )
    return out[modality]
