"""What a training step costs: FLOPs counted in milliseconds, and time and memory measured on a device.

Two halves, both used by ``python -m reprolib plan`` (:mod:`reprolib.workbook.plan`):

* :func:`macs_per_frame`: the MACs of one frame's forward pass of a config's model (the ``full``
  convention of :mod:`reprolib.utils.macs`, as :func:`reprolib.experiments.costs.config_cost`), cached
  per *model-relevant* part of the config (:func:`model_key`: ``model`` without its weights source,
  ``loss``, the input size and clip length), so that runs differing only in seed, data root, schedule or
  RegDB trial share one count. The count is shape-only, so the model is built without running the
  weight initialisers (:func:`skip_init`), its weights are moved to ``meta`` and the forward pass is
  traced with real inputs that become ``meta`` where they meet a weight (a model may still check or
  route by the input's values: CMFT's modality codes, the camera ids): no arithmetic is done, a
  ViT-B/16 counts in about 0.3 s instead of 20-40 s, and the counts are kept on disk while the code that
  makes them is unchanged (:func:`_disk_cache`). A model that reads the value of a tensor computed
  from its weights cannot run so; it is counted by a real forward pass with zero weights instead (a few
  seconds). Both give the same count as :func:`reprolib.experiments.costs.config_cost`
  (``tests/test_plan.py``).
* :func:`calibrate`: ``python -m reprolib plan --calibrate`` trains a few real steps (forward,
  backward, optimiser) of each family's paper config on the present device with the project's own
  timing benchmark (:func:`reprolib.bench.train.time_training`), measures the peak memory and saves
  ``results/calibration/<device>.json``. The steps run on random-init stand-in weights in every real
  format (:func:`reprolib.experiments.rehearsal.prepare`) and a paper-resolution synthetic world with
  enough identities for the paper batch (:func:`calibration_world`); the model, resolution, clip
  length, losses, optimiser, AMP and batch are the paper config's. Two "epochs" of ``steps`` steps are
  run (each phase once: CLIP-ReID's stage 2 and CMFT's second loss stage come after the switch) and
  the main phase is timed: the median gap between two optimiser steps of the last epoch (data
  loading included, as in a real run). On a device too small or slow for the paper batch,
  ``batch="rehearsal"`` measures at the rehearsal's 2 x 1 identities and scales the time per frame;
  the file says so (``scaled``). Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA and the
  rise of the process's resident memory (sampled every 20 ms) on a CPU, labelled host memory; it is
  the peak at the *measured* batch, never scaled.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from reprolib import PROJECT_ROOT

__all__ = ["FAMILIES", "CALIBRATION_DIR", "model_key", "skip_init", "macs_per_frame", "device_name",
           "device_slug", "calibration_path", "calibration_world", "calibrate_family", "calibrate",
           "load_calibration", "present_calibration"]

log = logging.getLogger(__name__)

#: The model families a calibration times, each by its paper config of the same name.
FAMILIES: tuple[str, ...] = ("baseline", "vld", "xreid", "clipreid", "tfclip", "cmft")
#: Where calibrations are saved, one file per device (:func:`calibration_path`).
CALIBRATION_DIR = PROJECT_ROOT / "results" / "calibration"
#: Version of the calibration file's layout.
SCHEMA = 1
#: The rehearsal's batch (``experiments.rehearsal.SCHEDULE_OVERRIDES``): identities x tracklets per modality.
REHEARSAL_BATCH = (2, 1)
#: Training identities of the calibration world: the largest paper batch (CMFT's 8 identities).
CALIBRATION_IDS = 8

# --------------------------------------------------------------------------------------------- FLOPs

_MACS: dict[str, float] = {}
#: The sources whose change can change a count: the disk cache (:func:`_disk_cache`) is keyed by their hash.
_COUNTED_SOURCES = ("models", "utils/macs.py", "experiments/costs.py", "experiments/calibrate.py", "data/types.py",
                    "data/frames.py")


def _code_fingerprint() -> str:
    import hashlib

    import torch

    h = hashlib.sha256(torch.__version__.encode())
    try:
        import open_clip

        h.update(str(getattr(open_clip, "__version__", "")).encode())
    except ImportError:
        pass
    base = PROJECT_ROOT / "reprolib"
    for rel in _COUNTED_SOURCES:
        path = base / rel
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(str(f.relative_to(base)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _disk_cache() -> Optional[Path]:
    """``$REPROLIB_CACHE`` (default ``~/.cache/reprolib``) ``/macs-<fingerprint>.json``: counts survive the
    process while the code that makes them is unchanged (any change to the model code, the counter,
    torch or open_clip gives a new file). ``REPROLIB_CACHE=off`` disables it."""
    root = os.environ.get("REPROLIB_CACHE", "")
    if root.lower() in ("off", "0", "none"):
        return None
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reprolib"
    return base / f"macs-{_code_fingerprint()}.json"


def _load_disk_cache() -> None:
    global _DISK
    if _DISK is not None:
        return
    _DISK = _disk_cache() or Path()
    if _DISK.is_file():
        try:
            _MACS.update({k: float(v) for k, v in json.loads(_DISK.read_text()).items() if k not in _MACS})
        except (OSError, ValueError, AttributeError):
            log.debug("%s: unreadable MAC cache, ignored", _DISK)


def _save_disk_cache() -> None:
    if _DISK is None or _DISK == Path():
        return
    from reprolib.utils.io import atomic_write_json

    try:
        atomic_write_json(_DISK, _MACS)
    except OSError as e:  # a read-only home: the counts are only kept in this process
        log.debug("MAC cache not written (%s)", e)


_DISK: Optional[Path] = None


def model_key(cfg: Any) -> str:
    """The part of a resolved config that decides a model's MACs per frame, as a JSON string: ``model``
    without its weights source (``backbone.pretrained``, ``backbone.weights_path``), ``loss`` (it sizes
    heads) and the input (``data.height``, ``data.width``, ``data.seq_len``)."""
    from reprolib.config import to_dict

    model = to_dict(cfg.model)
    backbone = dict(model.get("backbone") or {})
    for k in ("pretrained", "weights_path"):
        backbone.pop(k, None)
    model["backbone"] = backbone
    view = {"model": model, "loss": to_dict(cfg.loss),
            "input": [cfg.data.height, cfg.data.width, cfg.data.seq_len]}
    return json.dumps(view, sort_keys=True, default=str)


_INIT_FUNCS = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
               "xavier_normal_", "orthogonal_", "constant_", "zeros_", "ones_", "eye_", "dirac_", "sparse_")


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Within the block, ``torch.nn.init``'s initialisers and ``Tensor.uniform_/normal_`` leave the tensor
    as it is: a model built here has uninitialised weights, only fit for counting shapes. Not
    thread-safe (it patches module attributes); the originals are restored on exit."""
    import torch

    saved = {n: getattr(torch.nn.init, n) for n in _INIT_FUNCS if hasattr(torch.nn.init, n)}
    saved_t = {n: getattr(torch.Tensor, n) for n in ("uniform_", "normal_")}
    try:
        for n in saved:
            setattr(torch.nn.init, n, lambda t, *a, **k: t)
        for n in saved_t:
            setattr(torch.Tensor, n, lambda self, *a, **k: self)
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)
        for n, f in saved_t.items():
            setattr(torch.Tensor, n, f)


def _lift_to_meta() -> Any:
    """A :class:`~torch.overrides.TorchFunctionMode` (a context manager) that runs mixed ops on ``meta``."""
    from torch import Tensor
    from torch.overrides import TorchFunctionMode
    from torch.utils._pytree import tree_flatten, tree_map

    def lift(t: Any) -> Any:
        return t.to("meta") if isinstance(t, Tensor) and not t.is_meta else t

    class LiftToMeta(TorchFunctionMode):
        """An op that meets a ``meta`` tensor and a real one runs on ``meta``: the inputs stay real (so
        a model may check or route by their values: CMFT's modality codes, SIE's camera ids) until they
        meet a weight."""

        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
            kwargs = kwargs or {}
            tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)]
            if any(t.is_meta for t in tensors) and not all(t.is_meta for t in tensors):
                args, kwargs = tree_map(lift, args), tree_map(lift, kwargs)
            return func(*args, **kwargs)

    return LiftToMeta()


def _count(cfg: Any, meta: bool) -> float:
    """MACs per frame of ``cfg``'s model (random-init architecture, 500 classes, 12 cameras): traced on
    ``meta`` tensors, or by a real forward pass with zero weights (``meta=False``)."""
    import dataclasses

    import torch

    from reprolib.experiments.costs import example_clip
    from reprolib.models import create_model
    from reprolib.utils.macs import count_macs

    backbone = dataclasses.replace(cfg.model.backbone, pretrained="none")  # never read a weights file here
    model_cfg = dataclasses.replace(cfg.model, backbone=backbone)
    rng = torch.get_rng_state()
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)  # open_clip's "initialized randomly": the point here
    try:
        with skip_init():
            model = create_model(model_cfg, 500, 12, image_size=(cfg.data.height, cfg.data.width),
                                 loss_cfg=cfg.loss, seq_len=cfg.data.seq_len)
    finally:
        torch.set_rng_state(rng)
        root.setLevel(level)
    inputs = example_clip(cfg)
    if meta:  # weights on 'meta': every tensor computed from them is shapes only
        model = model.to_empty(device="meta")
        with _lift_to_meta():
            counts = count_macs(model, inputs, forward=getattr(model, "extract", model))
    else:  # uninitialised memory may hold NaN or denormals (slow on a CPU): zeros count the same
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        counts = count_macs(model, inputs, forward=getattr(model, "extract", model))
    return counts.total("full") / counts.frames


def macs_per_frame(config: str, profile: str, overrides: Sequence[str] = (), cfg: Any = None,
                   meta: Optional[bool] = None) -> float:
    """MACs of one frame's forward pass (``full`` convention) of a config's model, cached per :func:`model_key`.

    Args:
        config: config name.
        profile: ``smoke`` | ``embedded`` | ``paper``.
        overrides: ``key=value`` overrides.
        cfg: the resolved config, if the caller has it (saves loading it again).
        meta: ``True`` traces on ``meta`` tensors only, ``False`` runs a real forward pass; ``None``
            (default) tries ``meta`` and falls back to a real pass when the model reads values.

    Returns:
        MACs per frame (multiply by 2 for FLOPs).
    """
    if cfg is None:
        from reprolib.config import load_config

        cfg = load_config(config, profile, list(overrides))
    key = model_key(cfg)
    if meta is not None:
        return _count(cfg, meta=meta)
    _load_disk_cache()
    if key not in _MACS:
        try:
            _MACS[key] = _count(cfg, meta=True)
        except Exception as e:  # noqa: BLE001 - a value-dependent forward (e.g. CMFT's routing by modality)
            log.debug("%s: meta trace failed (%s); counting with a real forward pass", config, e)
            _MACS[key] = _count(cfg, meta=False)
        _save_disk_cache()
    return _MACS[key]


# ------------------------------------------------------------------------------------- calibration

def device_name(device: str = "auto") -> str:
    """A readable name of the device: the GPU's (``torch.cuda.get_device_name``) or the CPU's model."""
    import torch

    if device in ("auto", "cuda") or device.startswith("cuda:"):
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device(device if device != "auto" else "cuda"))
        if device != "auto":
            raise RuntimeError(f"device={device}: torch sees no CUDA device")
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {name or platform.processor() or platform.machine()}"


def device_slug(name: str) -> str:
    """A file-name form of a device name: ``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "device"


def calibration_path(name: Optional[str] = None, directory: Optional[Path] = None) -> Path:
    """``results/calibration/<device-slug>.json`` of ``name`` (default: the present device)."""
    return Path(directory or CALIBRATION_DIR) / f"{device_slug(name or device_name())}.json"


def load_calibration(path: str | os.PathLike) -> dict:
    """Read and check a calibration file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a calibration (no ``device`` or ``families`` with ``tflops`` each).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {path} does not exist (write one with `python -m reprolib plan "
                                f"--calibrate` on the device)")
    data = json.loads(path.read_text())
    fams = data.get("families") if isinstance(data, dict) else None
    if not isinstance(fams, dict) or "device" not in data or any(
            not isinstance(v, dict) or "tflops" not in v or "step_s" not in v for v in fams.values()):
        raise ValueError(f"{path}: not a calibration file (expected 'device' and 'families' with 'tflops' and "
                         f"'step_s' per family; written by `python -m reprolib plan --calibrate`)")
    data["path"] = str(path)
    return data


def present_calibration(directory: Optional[Path] = None) -> Optional[dict]:
    """The calibration of the present device, if one was saved (``None`` otherwise)."""
    path = calibration_path(directory=directory)
    return load_calibration(path) if path.is_file() else None


def calibration_world(directory: Optional[Path] = None) -> str:
    """A paper-resolution HITSZ-VCM-layout world with :data:`CALIBRATION_IDS` training identities (the
    rehearsal world's spec otherwise), written once under the rehearsal's folder; returns its root."""
    import dataclasses

    from reprolib.data.synthetic import write_world
    from reprolib.data.synthetic.world import WORLD_SPECS
    from reprolib.experiments.rehearsal import REHEARSAL_DIR, WORLD_SEED

    spec = dataclasses.replace(WORLD_SPECS["rehearsal"], name="calibration", num_train_ids=CALIBRATION_IDS)
    root = Path(directory or REHEARSAL_DIR) / "synthvcm-calibration"
    write_world(root, spec, WORLD_SEED, "vcm", progress=False, overwrite=True)  # a no-op when it matches
    return str(root)


class _PeakRSS:
    """Peak resident memory of this process while the block runs, sampled every ``period`` seconds
    (``/proc/self/statm``; on systems without it, ``ru_maxrss``)."""

    def __init__(self, period: float = 0.02) -> None:
        self.period, self.peak, self.start = period, 0, 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @staticmethod
    def rss() -> int:
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> "_PeakRSS":
        self.start = self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def rise(self) -> int:
        return max(0, self.peak - self.start)


def _frames(num_ids: int, num_pos: int, seq_len: int) -> int:
    return 2 * num_ids * num_pos * seq_len  # two modalities


def calibrate_family(family: str, steps: int = 3, batch: str = "paper", profile: str = "paper",
                     device: str = "auto", workers: Optional[int] = None, threads: Optional[int] = None) -> dict:
    """Time ``steps`` real training steps of one family's config (two epochs: the last one is timed) and
    measure its peak memory.

    Args:
        family: a config name (one of :data:`FAMILIES`).
        steps: steps per epoch (>= 2: a step is the gap between two optimiser steps).
        batch: ``paper`` (the config's ``data.num_ids`` x ``data.num_pos``) or ``rehearsal`` (2 x 1; the
            time is scaled per frame to the paper batch).
        profile: ``paper`` (stand-in weights, the calibration world); ``smoke``/``embedded`` time the
            miniature models on their own worlds (tests).
        device: ``auto`` (the GPU when there is one, else the CPU), ``cuda``, ``cpu``.
        workers: loader workers (default: the config's on CUDA, 0 on a CPU, where they would take the
            cores the step needs).
        threads: torch intra-op threads (``None``: unchanged).

    Returns:
        The family's calibration record (see :func:`calibrate`).
    """
    import torch

    from reprolib.bench.train import time_training
    from reprolib.config import load_config
    from reprolib.engine.trainer import resolve_amp
    from reprolib.experiments.rehearsal import schedule_overrides

    if batch not in ("paper", "rehearsal"):
        raise ValueError(f"calibrate: batch must be 'paper' or 'rehearsal', got {batch!r}")
    if steps < 2:
        raise ValueError(f"calibrate: steps must be >= 2 (a step is the gap between two), got {steps}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    full = load_config(family, profile, [])
    num_ids, num_pos = (full.data.num_ids, full.data.num_pos) if batch == "paper" else REHEARSAL_BATCH
    if workers is None:
        workers = full.data.num_workers if device.startswith("cuda") else 0
    overrides = [f"device={device}", f"data.num_ids={num_ids}", f"data.num_pos={num_pos}",
                 f"data.num_workers={workers}", "train.epochs=2", "train.ckpt_every_iters=0",
                 "sched.warmup_epochs=1", "sched.milestones=[1]"]
    if profile == "paper":
        from reprolib.experiments.preflight import is_resnet_backbone
        from reprolib.experiments.rehearsal import prepare

        setup = prepare()
        weights = setup.resnet_weights if is_resnet_backbone(full.model.backbone.arch) else setup.clip_weights
        overrides += [f"data.root={calibration_world()}", f"model.backbone.weights_path={weights}"]
    cfg = load_config(family, profile, overrides)
    overrides += schedule_overrides(cfg)
    cfg = load_config(family, profile, overrides)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with _PeakRSS() as rss:
        timing = time_training(family, profile, overrides, iters=steps, threads=threads)
    last = max(timing["step_s_per_epoch"])
    step_s = float(timing["step_s_per_epoch"][last])
    frames = _frames(num_ids, num_pos, cfg.data.seq_len)
    paper_frames = _frames(full.data.num_ids, full.data.num_pos, full.data.seq_len)
    flops_frame = 6.0 * macs_per_frame(family, profile, overrides, cfg)  # 2 FLOPs/MAC x (forward + 2x backward)
    s_per_frame = step_s / frames
    if cuda:
        memory = {"peak_memory_bytes": int(torch.cuda.max_memory_allocated()),
                  "peak_reserved_bytes": int(torch.cuda.max_memory_reserved()),
                  "memory_kind": "GPU: torch.cuda.max_memory_allocated over the timed run"}
    else:
        memory = {"peak_memory_bytes": int(rss.rise),
                  "memory_kind": "host: rise of the process's peak resident memory over the timed run"}
    amp = resolve_amp(cfg.train.amp, torch.device(device))
    record = {
        "config": family, "profile": profile, "batch": batch, "num_ids": num_ids, "num_pos": num_pos,
        "seq_len": cfg.data.seq_len, "frames_per_step": frames, "paper_frames_per_step": paper_frames,
        "scaled": frames != paper_frames, "steps_per_epoch": steps, "epochs": 2,
        "measured_step_s": step_s, "step_s": s_per_frame * paper_frames, "frames_per_s": 1.0 / s_per_frame,
        "gflops_per_frame": flops_frame / 1e9, "tflops": flops_frame / s_per_frame / 1e12,
        "hook_s": timing["hook_s"], "amp": str(amp.dtype).removeprefix("torch.") if amp.dtype else "float32",
        "workers": workers, "threads": timing["threads"], "device": timing["device"],
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **memory,
    }
    log.info("calibrate %s on %s: %.3f s/step at %d frames%s, %.1f frames/s, %.2f TFLOP/s, peak %.2f GiB (%s)",
             family, device, step_s, frames, f" (scaled to {paper_frames}: {record['step_s']:.3f} s)"
             if record["scaled"] else "", record["frames_per_s"], record["tflops"],
             memory["peak_memory_bytes"] / 2**30, memory["memory_kind"].split(":")[0])
    return record


def calibrate(families: Sequence[str] = FAMILIES, steps: int = 3, batch: str = "paper", profile: str = "paper",
              device: str = "auto", out: Optional[str | os.PathLike] = None, workers: Optional[int] = None,
              threads: Optional[int] = None) -> tuple[dict, Path]:
    """Calibrate every family in turn on the present device and save the file (atomically).

    An existing file of the same device keeps the families not calibrated now.

    Args:
        families: config names (:data:`FAMILIES`).
        steps, batch, profile, device, workers, threads: as :func:`calibrate_family`.
        out: the file (default :func:`calibration_path` of the device).

    Returns:
        ``(calibration, path)``. The calibration holds ``device`` (its name), ``device_type``,
        ``torch``, ``threads``, ``date``, ``note`` and ``families``: per family ``step_s`` (at the
        paper batch, scaled per frame when measured at another), ``measured_step_s``,
        ``frames_per_step``, ``paper_frames_per_step``, ``scaled``, ``frames_per_s``, ``tflops``
        (achieved: the counted training FLOPs / time), ``peak_memory_bytes`` and ``memory_kind``,
        ``amp``, ``batch``, ``date``.
    """
    import torch

    from reprolib.utils.io import atomic_write_json

    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"calibrate: unknown famil{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
                         f"expected some of {', '.join(FAMILIES)}")
    resolved = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    name = device_name(resolved)
    path = Path(out) if out else calibration_path(name)
    previous: dict = {}
    if path.is_file():
        try:
            old = load_calibration(path)
            if old.get("device") == name:
                previous = dict(old["families"])
        except (ValueError, json.JSONDecodeError):
            log.warning("%s: not a calibration file; it is replaced", path)
    records = {}
    for family in families:
        t0 = time.perf_counter()
        records[family] = calibrate_family(family, steps, batch, profile, resolved, workers, threads)
        records[family]["wall_s"] = time.perf_counter() - t0
    cuda = resolved.startswith("cuda")
    note = ("measured on the GPU" if cuda else
            "measured on a CPU: host memory, not GPU memory; not an estimate for a GPU")
    if any(r["scaled"] for r in records.values()):
        note += "; time measured at a smaller batch and scaled per frame to the paper batch (memory is not scaled)"
    if profile != "paper":
        note += f"; {profile} profile (miniature models), not the paper's"
    cal = {"schema": SCHEMA, "device": name, "device_type": "cuda" if cuda else "cpu",
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "note": note,
           "families": {**previous, **records}}
    atomic_write_json(path, cal)
    log.info("calibration of %s written to %s", name, path)
    cal["path"] = str(path)
    return cal, path
