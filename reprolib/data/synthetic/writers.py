"""Write a miniature world to disk in a real dataset's exact on-disk format.

The loaders of the real datasets read these trees with no special case
(``docs/decisions/data.md#hitsz-vcm`` and ``docs/decisions/data.md#buptcampus``):

* :class:`VCMWriter`: HITSZ-VCM layout B (``Train/``, ``Test/``, ``info/*.txt``);
* :class:`VCMLayoutAWriter`: HITSZ-VCM layout A (person folders merged in the root, ``info/*.txt``);
* :class:`BUPTWriter`: BUPTCampus (``DATA/``, ``data_paths.json``, four split files).

A layout is only *naming and index files*: :class:`LayoutWriter` subclasses map each planned
tracklet to relative frame paths and write the index files, while :func:`write_world` owns
planning, rendering (optionally in worker processes), atomic publication and the completion
marker. A new layout (SYSU-MM01, RegDB) is one more subclass registered in :data:`WRITERS`.

Publication is atomic: everything is written into ``OUT.tmp-<token>`` and renamed to ``OUT``
after the ``_COMPLETE`` marker has been written, so an interrupted run never leaves a tree that
looks complete. A tree whose marker matches (spec, seed, format, generator version) is reused.
"""
from __future__ import annotations

import abc
import argparse
import concurrent.futures as cf
import dataclasses
import json
import logging
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image

from .identities import IdentityAttributes
from .renderer import render_tracklet
from .world import (
    GENERATOR_VERSION,
    MIN_SEQ_LEN,
    WORLD_SPECS,
    CameraSpec,
    TrackletPlan,
    World,
    WorldSpec,
    build_world,
    derive_rng,
    get_world_spec,
    sample_motion,
)

log = logging.getLogger(__name__)

COMPLETE_MARKER = "_COMPLETE"
#: BUPTCampus camera names, in the order of its integer camera ids 0..5.
BUPT_CAMERAS = ("LS3", "G25", "CQ1", "W4", "TSG1", "TSG2")

FramePaths = dict[str, list[str]]  # modality -> frame paths relative to the output root


class LayoutWriter(abc.ABC):
    """Naming scheme and index files of one on-disk dataset layout."""

    #: Format key used by :func:`write_world` (``--format``).
    fmt: str = ""
    #: Whether the layout's tracklets are pixel-aligned RGB/IR pairs.
    paired: bool = False

    def num_cameras(self, spec: WorldSpec) -> int:
        """Physical cameras of a world written in this layout."""
        return spec.num_cameras

    @abc.abstractmethod
    def frame_paths(self, world: World, plan: TrackletPlan) -> FramePaths:
        """Relative paths (under the output root) of every frame of ``plan``, per modality."""

    @abc.abstractmethod
    def write_index(self, world: World, root: Path, paths: dict[TrackletPlan, FramePaths]) -> None:
        """Write the layout's index/split files into ``root``."""


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    """One item per line, ``\\n`` endings, no blank trailing line (official parsers crash on it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


class VCMWriter(LayoutWriter):
    """HITSZ-VCM, layout B (``docs/decisions/data.md#hitsz-vcm-layouts``).

    * images: ``{Train|Test}/<pid4>/<ir|rgb>/D<cam>/<F>.jpg``, ``F`` a frame number unique per
      (pid, modality, camera);
    * ``info/{train,test}_name.txt``: one name ``<pid4>M<m>D<cam>T<tracklet>F<F>.jpg`` per line;
    * ``info/track_{train,test}_info.txt``: ``m start end pid camid`` (1-based, inclusive;
      m = 1 IR, 2 RGB; pid zero-padded to 4 digits as in the released files; camid = the
      1-based physical camera, shared by the IR and RGB recordings of that camera);
    * ``info/query_IDX.txt``: one line of 1-based row numbers of the IR test rows (queries);
      every other test row (RGB) is the gallery.
    """

    fmt = "vcm"
    paired = False
    MODALITY_CODE = {"ir": 1, "rgb": 2}

    @staticmethod
    def _split_dir(split: str) -> str:
        return "Train" if split == "train" else "Test"

    def frame_paths(self, world: World, plan: TrackletPlan) -> FramePaths:
        (modality,) = plan.modalities
        folder = f"{self._split_dir(plan.split)}/{plan.pid:04d}/{modality}/D{plan.camera}"
        return {modality: [f"{folder}/{n}.jpg" for n in plan.frame_numbers()]}

    def name(self, plan: TrackletPlan, frame: int) -> str:
        """The ``*_name.txt`` entry of one frame, e.g. ``0001M1D2T1F7.jpg``."""
        (modality,) = plan.modalities
        return f"{plan.pid:04d}M{self.MODALITY_CODE[modality]}D{plan.camera}T{plan.index}F{frame}.jpg"

    def write_index(self, world: World, root: Path, paths: dict[TrackletPlan, FramePaths]) -> None:
        info = root / "info"
        for split in ("train", "test"):
            names: list[str] = []
            rows: list[str] = []
            query_rows: list[int] = []
            for plan in (t for t in world.tracklets if t.split == split):
                (modality,) = plan.modalities
                start = len(names) + 1
                names += [self.name(plan, n) for n in plan.frame_numbers()]
                code = self.MODALITY_CODE[modality]
                rows.append(f"{code} {start} {len(names)} {plan.pid:04d} {plan.camera}")
                if code == 1:
                    query_rows.append(len(rows))
            _write_lines(info / f"{split}_name.txt", names)
            _write_lines(info / f"track_{split}_info.txt", rows)
            if split == "test":
                _write_lines(info / "query_IDX.txt", [" ".join(map(str, query_rows))])


class VCMLayoutAWriter(VCMWriter):
    """HITSZ-VCM, layout A (merged person folders, as MITML's code reads them;
    ``docs/decisions/data.md#hitsz-vcm-layouts``).

    The same world, frames and index files as :class:`VCMWriter` (layout B), with ``Train/`` and
    ``Test/`` merged into the root: images at ``<pid4>/<ir|rgb>/D<cam>/<F>.jpg``, index files in
    ``info/``. Training and test identities are disjoint, so no two frames collide; the loader
    (``HITSZVCM(layout="auto")``) picks A because there is no ``Train/`` or ``Test/`` folder.
    """

    fmt = "vcm-a"

    def frame_paths(self, world: World, plan: TrackletPlan) -> FramePaths:
        (modality,) = plan.modalities
        folder = f"{plan.pid:04d}/{modality}/D{plan.camera}"
        return {modality: [f"{folder}/{n}.jpg" for n in plan.frame_numbers()]}


class BUPTWriter(LayoutWriter):
    """BUPTCampus (``docs/decisions/data.md#buptcampus-layout``).

    * images: ``DATA/<pid>/<RGB|IR>/<CAM>/<pid>_<MOD>_<CAM>_<tid>_<frame>.jpg`` (pid not
      zero-padded); the RGB and IR halves of a pair share frame numbers and length;
    * ``data_paths.json``: pid -> modality -> camera -> tid -> frame paths relative to ``DATA/``;
    * ``train.txt`` / ``train_auxiliary.txt``: ``pid RGB/IR CAM tid`` pairs (auxiliary
      identities appear in one camera; some training identities too);
    * ``query.txt``: one tracklet per test identity, ``pid IR|RGB CAM tid``;
    * ``gallery.txt``: both halves of every other test pair, ``pid RGB CAM tid`` and
      ``pid IR CAM tid``.
    """

    fmt = "bupt"
    paired = True
    MODALITY_DIR = {"rgb": "RGB", "ir": "IR"}

    def num_cameras(self, spec: WorldSpec) -> int:
        return len(BUPT_CAMERAS)

    def frame_paths(self, world: World, plan: TrackletPlan) -> FramePaths:
        cam = BUPT_CAMERAS[plan.camera - 1]
        out = {}
        for modality in plan.modalities:
            mod = self.MODALITY_DIR[modality]
            out[modality] = [
                f"DATA/{plan.pid}/{mod}/{cam}/{plan.pid}_{mod}_{cam}_{plan.index}_{n}.jpg" for n in plan.frame_numbers()
            ]
        return out

    def write_index(self, world: World, root: Path, paths: dict[TrackletPlan, FramePaths]) -> None:
        data_paths: dict = {}
        lines: dict[str, list[str]] = {"train": [], "aux": [], "query": [], "gallery": []}
        for plan in world.tracklets:
            cam, tid, pid = BUPT_CAMERAS[plan.camera - 1], str(plan.index), str(plan.pid)
            for modality, rel in paths[plan].items():
                node = data_paths.setdefault(pid, {}).setdefault(self.MODALITY_DIR[modality], {}).setdefault(cam, {})
                node[tid] = [p[len("DATA/"):] for p in rel]
            if plan.role in ("train", "aux"):
                lines[plan.role].append(f"{pid} RGB/IR {cam} {tid}")
            elif plan.role.startswith("query-"):
                lines["query"].append(f"{pid} {self.MODALITY_DIR[plan.role[len('query-'):]]} {cam} {tid}")
            else:
                lines["gallery"] += [f"{pid} RGB {cam} {tid}", f"{pid} IR {cam} {tid}"]
        with open(root / "data_paths.json", "w") as f:
            json.dump(data_paths, f)
        _write_lines(root / "train.txt", lines["train"])
        _write_lines(root / "train_auxiliary.txt", lines["aux"])
        _write_lines(root / "query.txt", lines["query"])
        _write_lines(root / "gallery.txt", lines["gallery"])


#: Registered layouts, by ``--format`` key.
WRITERS: dict[str, LayoutWriter] = {w.fmt: w for w in (VCMWriter(), VCMLayoutAWriter(), BUPTWriter())}


# --------------------------------------------------------------------------------------
# Rendering jobs (run in worker processes; everything is seeded from the tracklet key)
# --------------------------------------------------------------------------------------


def _render_job(
    job: tuple[int, WorldSpec, IdentityAttributes, CameraSpec, list[tuple[TrackletPlan, dict[str, list[str]]]]]
) -> int:
    """Render and save the tracklets of one identity; returns the number of files written."""
    seed, spec, attrs, camera_list, items = job
    cameras = {c.index: c for c in camera_list}
    written = 0
    for plan, abs_paths in items:
        camera = cameras[plan.camera]
        motion = sample_motion(
            derive_rng(seed, "motion", *plan.key), attrs, camera, plan.length, spec.width, spec.height,
            spec.occlusion_prob,
        )
        frames = render_tracklet(
            attrs, camera, motion, plan.length, plan.modalities, derive_rng(seed, "render", *plan.key),
            spec.height, spec.width, seed,
        )
        for modality, files in abs_paths.items():
            Path(files[0]).parent.mkdir(parents=True, exist_ok=True)
            for img, path in zip(frames[modality], files):
                Image.fromarray(img).save(path, format="JPEG", quality=camera.jpeg_quality)
                written += 1
    return written


def world_summary(world: World) -> dict:
    """Counts per split: identities, tracklets per modality, short (< MIN_SEQ_LEN) tracklets, images."""
    out = {}
    for split in sorted(set(world.splits.values())):
        plans = [t for t in world.tracklets if t.split == split]
        per_mod = {m: sum(1 for t in plans if m in t.modalities) for m in ("ir", "rgb")}
        out[split] = {
            "ids": len(world.pids(split)),
            "tracklets_ir": per_mod["ir"],
            "tracklets_rgb": per_mod["rgb"],
            "short_tracklets": sum(1 for t in plans if t.length < MIN_SEQ_LEN),
            "images": sum(t.length * len(t.modalities) for t in plans),
        }
    return out


def _marker(world: World, fmt: str) -> dict:
    return {
        "generator": "SynthVCM",
        "version": GENERATOR_VERSION,
        "scale": world.spec.name,
        "spec_fingerprint": world.spec.fingerprint(),
        "seed": world.seed,
        "format": fmt,
    }


def _readme(world: World, fmt: str, summary: dict) -> str:
    layout = {"vcm": "HITSZ-VCM layout B", "vcm-a": "HITSZ-VCM layout A", "bupt": "BUPTCampus", "sysu": "SYSU-MM01",
              "regdb": "RegDB"}.get(fmt, fmt)
    lines = [
        "SynthVCM: a procedurally generated miniature video visible-infrared ReID dataset (reprolib).",
        f"Generator version: {GENERATOR_VERSION}",
        f"Scale: {world.spec.name}  (spec fingerprint {world.spec.fingerprint()})",
        f"Seed: {world.seed}",
        f"On-disk format: {layout} ({fmt})",
        f"Frame size: {world.spec.height}x{world.spec.width} (HxW)",
        "Synthetic data: colour appears only in RGB frames; IR frames are near-infrared-like 3-channel grey.",
        "Per-identity attributes and splits: attributes.json. Regenerate with:",
        f"  python -m reprolib data synth OUT --scale {world.spec.name} --seed {world.seed} --format {fmt}",
        "",
        "Counts per split:",
    ]
    lines += [f"  {split}: {json.dumps(c)}" for split, c in summary.items()]
    return "\n".join(lines) + "\n"


def _is_complete(out: Path, marker: dict) -> Optional[bool]:
    """True if ``out`` holds a complete matching tree, False if another one, None if absent/empty."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    try:
        found = json.loads((out / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return all(found.get(k) == v for k, v in marker.items())


def _is_older_version(out: Path, marker: dict) -> bool:
    """True if ``out`` is a complete SynthVCM tree of the same scale, seed and format written by
    another generator version (safe to replace: it is this generator's own output)."""
    try:
        found = json.loads((out / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    same = ("generator", "scale", "seed", "format")
    return found.get("version") != marker["version"] and all(found.get(k) == marker[k] for k in same)


#: Written into a generation's temporary tree (``OUT.tmp-<token>``) while it is being filled: the
#: owning process (pid, host), so the next call removes the tree of a killed run and never one
#: that is still being written.
TMP_OWNER = ".synthvcm-tmp"


def _is_synthvcm_tree(out: Path) -> bool:
    """True if ``out`` holds a ``_COMPLETE`` marker written by SynthVCM: the only trees ever replaced."""
    try:
        return json.loads((out / COMPLETE_MARKER).read_text()).get("generator") == "SynthVCM"
    except (OSError, ValueError, AttributeError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temps(out: Path) -> list[Path]:
    """Remove what an interrupted :func:`write_world` left beside ``out``, and nothing else.

    A temporary tree ``OUT.tmp-<token>`` is removed when its :data:`TMP_OWNER` file names a
    process of this host that no longer runs (or it already holds a SynthVCM marker); a
    replaced tree ``OUT.old-<token>`` only when it holds a SynthVCM ``_COMPLETE`` marker. A folder
    of that name without either marker is not ours: it is reported, never deleted.

    Returns:
        The folders removed.
    """
    import socket

    removed = []
    if not out.parent.is_dir():
        return removed
    for cand in sorted(out.parent.glob(f"{out.name}.tmp-*")) + sorted(out.parent.glob(f"{out.name}.old-*")):
        if not cand.is_dir():
            continue
        ours = _is_synthvcm_tree(cand)
        if not ours and cand.name.startswith(f"{out.name}.tmp-"):
            try:
                owner = json.loads((cand / TMP_OWNER).read_text())
            except (OSError, ValueError):
                owner = None
            if isinstance(owner, dict):
                if owner.get("host") != socket.gethostname():
                    log.warning("%s is a SynthVCM temporary tree of host %s; leaving it (remove it once no "
                                "generation runs there)", cand, owner.get("host"))
                    continue
                if _pid_alive(int(owner.get("pid", 0) or 0)):
                    continue  # a generation in progress
                ours = True
        if ours:
            log.info("removing %s, left by an interrupted SynthVCM generation", cand)
            shutil.rmtree(cand, ignore_errors=True)
            removed.append(cand)
        else:
            log.warning("%s looks like a SynthVCM temporary name but was not written by SynthVCM; not touching it",
                        cand)
    return removed


def write_world(
    out: str | os.PathLike,
    scale: str | WorldSpec = "embedded",
    seed: int = 0,
    fmt: str = "vcm",
    workers: Optional[int] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate a SynthVCM world and write it in a real dataset's on-disk format.

    Args:
        out: output root (created; its parent must be writable).
        scale: preset name (``"smoke"``, ``"embedded"``) or a :class:`WorldSpec`.
        seed: world seed; the same (scale, seed, fmt) gives byte-identical index files and images.
        fmt: layout key of :data:`WRITERS` (``"vcm"`` = HITSZ-VCM layout B, ``"vcm-a"`` = layout A,
            ``"bupt"``; ``"sysu"``, ``"regdb"`` from
            :mod:`.writers_image`).
        workers: render processes (default: the spec's ``workers``, capped by the CPU count;
            0 renders in this process).
        overwrite: replace an existing SynthVCM tree that was generated with other settings.
            A tree that SynthVCM did not write (no SynthVCM ``_COMPLETE`` marker) is never
            replaced, with or without it.
        progress: show a tqdm progress bar (frames).

    Returns:
        The output root.

    Raises:
        ValueError: unknown ``fmt`` or ``scale``.
        FileExistsError: ``out`` exists and is not a matching SynthVCM tree, and either
            ``overwrite`` is False or the tree was not written by SynthVCM.
    """
    if fmt not in WRITERS:
        raise ValueError(f"unknown SynthVCM format '{fmt}'; expected one of {sorted(WRITERS)}")
    writer = WRITERS[fmt]
    spec = get_world_spec(scale)
    out = Path(out).expanduser().absolute()
    world = build_world(spec, seed, paired=writer.paired, num_cameras=writer.num_cameras(spec))
    marker = _marker(world, fmt)
    clean_stale_temps(out)
    state = _is_complete(out, marker)
    if state is True:
        log.info("SynthVCM tree %s is complete for scale=%s seed=%d format=%s; skipping generation", out, spec.name, seed, fmt)
        return out
    if state is False and not overwrite and _is_older_version(out, marker):
        log.warning("%s was written by SynthVCM %s; regenerating it with version %s", out,
                    json.loads((out / COMPLETE_MARKER).read_text()).get("version"), GENERATOR_VERSION)
        overwrite = True
    if state is False and not _is_synthvcm_tree(out):
        raise FileExistsError(
            f"{out} exists and was not written by SynthVCM (no SynthVCM {COMPLETE_MARKER} marker), so it is "
            f"never replaced (--overwrite only replaces SynthVCM's own trees); choose another output path for "
            f"the scale={spec.name} seed={seed} format={fmt} world (a new or empty folder)"
        )
    if state is False and not overwrite:
        raise FileExistsError(
            f"{out} holds another SynthVCM world than scale={spec.name} seed={seed} format={fmt} (its "
            f"{COMPLETE_MARKER} differs); pass --overwrite (overwrite=True) to replace that generated tree, "
            f"or choose another path"
        )

    t0 = time.perf_counter()
    tmp = out.parent / f"{out.name}.tmp-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        import socket

        (tmp / TMP_OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n")
        paths = {plan: writer.frame_paths(world, plan) for plan in world.tracklets}
        per_pid: dict[int, list] = {pid: [] for pid in sorted(world.identities)}
        for plan, rel in paths.items():
            per_pid[plan.pid].append((plan, {m: [str(tmp / r) for r in files] for m, files in rel.items()}))
        jobs = [(world.seed, spec, world.identities[pid], list(world.cameras), items) for pid, items in per_pid.items()]
        total = sum(t.length * len(t.modalities) for t in world.tracklets)
        n_workers = spec.workers if workers is None else workers
        n_workers = min(n_workers, os.cpu_count() or 1)
        _run_jobs(jobs, n_workers, total, progress, f"SynthVCM {spec.name}/{fmt}")

        writer.write_index(world, tmp, paths)
        summary = world_summary(world)
        attrs = {
            "generator": "SynthVCM",
            "version": GENERATOR_VERSION,
            "seed": world.seed,
            "scale": spec.name,
            "format": fmt,
            "cameras": [c.to_dict() for c in world.cameras],
            "identities": {
                str(pid): {"split": world.splits[pid], "attributes": a.to_dict()}
                for pid, a in sorted(world.identities.items())
            },
        }
        (tmp / "attributes.json").write_text(json.dumps(attrs, indent=1) + "\n")
        (tmp / "README.txt").write_text(_readme(world, fmt, summary))
        (tmp / COMPLETE_MARKER).write_text(json.dumps({**marker, "summary": summary}, indent=1) + "\n")
        (tmp / TMP_OWNER).unlink()
        if out.exists():
            old = out.parent / f"{out.name}.old-{secrets.token_hex(4)}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("SynthVCM %s/%s seed=%d written to %s in %.1f s: %s", spec.name, fmt, seed, out,
             time.perf_counter() - t0, json.dumps(summary))
    return out


def _run_jobs(jobs: list, workers: int, total: int, progress: bool, desc: str) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="img", desc=desc, disable=not progress) as bar:
        if workers <= 1:
            for job in jobs:
                bar.update(_render_job(job))
            return
        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            for n in pool.map(_render_job, jobs, chunksize=4):
                bar.update(n)


def with_image_size(spec: WorldSpec, size: str) -> WorldSpec:
    """``spec`` with frames of ``size`` (``"288x144"``: height x width) on disk, named ``<name>-<H>x<W>``
    unless that is already its size (so its marker and identity differ from the preset's).

    Raises:
        ValueError: ``size`` is not ``HxW`` with positive integers.
    """
    try:
        h, w = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise ValueError(f"--image-size {size!r}: expected HxW, e.g. 288x144") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"--image-size {size!r}: expected positive sizes")
    if (h, w) == (spec.height, spec.width):
        return spec
    return dataclasses.replace(spec, name=f"{spec.name}-{h}x{w}", height=h, width=w)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m reprolib data synth OUT --scale smoke|embedded --seed N [--format vcm|vcm-a|bupt|sysu|regdb]``."""
    parser = argparse.ArgumentParser(
        prog="reprolib data synth",
        description="Generate the SynthVCM miniature world in a real dataset's on-disk format.",
    )
    parser.add_argument("out", type=Path, help="output root directory")
    parser.add_argument("--scale", default="embedded", choices=sorted(WORLD_SPECS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", dest="fmt", default="vcm", choices=sorted(WRITERS),
                        help="on-disk layout: vcm (HITSZ-VCM layout B, Train/ Test/ info/), vcm-a (HITSZ-VCM "
                             "layout A, person folders merged in the root + info/), bupt, sysu, regdb")
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: the scale's)")
    parser.add_argument("--image-size", default=None, metavar="HxW",
                        help="frame size on disk, e.g. 288x144 (the papers'); default: the scale's "
                             "(128x64 for smoke/embedded, 288x144 for rehearsal)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a SynthVCM tree generated with other settings "
                             "(never a tree SynthVCM did not write)")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        scale = args.scale
        if args.image_size:
            scale = with_image_size(get_world_spec(scale), args.image_size)
        root = write_world(args.out, scale, args.seed, args.fmt, workers=args.workers, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    print(root)
    return 0
