"""The run store: training runs keyed by what determines their result.

A notebook asks for runs instead of training them: ``get_run("vld_baseline", profile="embedded")``
returns the finished run when the store has it (instantly), resumes it when it was interrupted
(the trainer continues from ``last.pt``), and trains it otherwise. The same model appearing in
several tables is therefore trained once.

Layout (DESIGN.md section 4)::

    results/<profile>/runs/<config-name>-<key>/
        config.yaml        resolved config
        provenance.json    git SHA, package versions, hardware, number of processes, code version
        train_log.jsonl    per-step loss components and learning rates
        metrics.json       final metrics per direction (written atomically, last)
        last.pt            checkpoint (never committed)

**Run identity** (:func:`run_key`). The key hashes what determines a run's result, and nothing else:

* the resolved config (:func:`identity_view`), with the device resolved (``auto`` on a machine
  without CUDA *is* ``cpu``), every data root replaced by the dataset's identity
  (:mod:`reprolib.data.identity`: name and index-file fingerprint of a real dataset, generator
  description of the miniature world) and an explicit weights file replaced by its SHA-256;
* the profile and the number of training processes (``WORLD_SIZE``: a 2-process ``torchrun`` run
  is a different run from a single-process one);
* the model family's *results version* (``register_model(..., results_version=N)``), which a
  developer bumps in the commit that deliberately changes what the family produces.

The code is **not** part of the key: editing the trainer, adding a family or moving a module keeps
every committed run current. What catches an unintended change of results is the behaviour guard
(``tests/test_behaviour_guard.py``: one smoke run per family against golden losses and metrics);
the code version each run was trained with stays in its ``provenance.json``, and
``python -m reprolib runs status`` lists the runs whose recorded code differs from the present code.

Two processes asking for the same unfinished run (two notebooks rendered at once that share a
model) train it once: the second waits on the run's lock (``<store>/.locks/<run>.lock``) and then
loads what the first wrote.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from reprolib import PROJECT_ROOT
from reprolib.config import ExperimentConfig, config_hash, load_config, resolve_path, to_dict

log = logging.getLogger(__name__)

#: Profiles whose data is the generated miniature world, and the world layout of each dataset.
SYNTHETIC_PROFILES = ("smoke", "embedded")
_WORLD_FORMAT = {"hitsz-vcm": "vcm", "bupt": "bupt", "sysu-mm01": "sysu", "regdb": "regdb"}
#: Layouts of the image benchmarks: their worlds use the profile's still-image preset
#: (``synthetic.world.IMAGE_SCALES``: a few images per tracklet instead of whole walks).
_IMAGE_FORMATS = ("sysu", "regdb")
#: Seed of the miniature world every synthetic run reads.
WORLD_SEED = 0


def ensure_world(cfg: ExperimentConfig) -> Path:
    """Return the data root of ``cfg``; for the smoke and embedded profiles, generate the
    miniature world there first if it is missing (so a fresh checkout trains without a set-up step)
    or was written by another version of the generator (a stale world would silently change what
    a run measures). Only a tree that SynthVCM wrote itself is ever replaced. A cross-dataset
    run (``eval.dataset``) gets its test world too. The image benchmarks (SYSU-MM01, RegDB) get
    the profile's still-image preset (``synthetic.world.IMAGE_SCALES``)."""
    root = resolve_path(cfg.data.root)
    if cfg.profile not in SYNTHETIC_PROFILES:
        return root
    _ensure_synthetic(root, cfg.profile, cfg.data.dataset)
    if cfg.eval.dataset and cfg.eval.root:
        _ensure_synthetic(resolve_path(cfg.eval.root), cfg.profile, cfg.eval.dataset)
    return root


def _ensure_synthetic(root: Path, scale: str, dataset: str) -> None:
    from reprolib.data.synthetic import write_world
    from reprolib.data.synthetic.world import IMAGE_SCALES
    from reprolib.data.synthetic.writers import COMPLETE_MARKER

    fmt = _WORLD_FORMAT[dataset]
    preset = IMAGE_SCALES[scale] if fmt in _IMAGE_FORMATS else scale
    if not (root / COMPLETE_MARKER).exists():
        log.info("generating the miniature world (%s scale, %s layout) at %s", preset, dataset, root)
    # a no-op when the tree matches; a tree of an older generator version is regenerated; any other
    # tree at that path is an error (write_world never replaces what it did not write)
    try:
        write_world(root, scale=preset, seed=WORLD_SEED, fmt=fmt)
    except FileExistsError as e:
        raise FileExistsError(
            f"data.root: the {scale} profile trains on the generated miniature world, but {e}. Point "
            f"data.root at a new folder (--set data.root=PATH), or train on a real dataset with --profile paper"
        ) from None


#: Config keys that only change how a trained model is tested (the test protocol, a cross-dataset
#: test set, the distance, BUPTCampus's test-gallery mode): training never reads them. A run that
#: differs from a finished one only in these is evaluated from that run's checkpoint instead of
#: being trained again (VLD Table VIII tests the models of Tables II and III on the other dataset).
EVAL_ONLY_KEYS = ("eval", "data.bupt_eval_mode", "data.bupt_eval_batch")


def training_view(cfg: ExperimentConfig) -> dict:
    """:func:`identity_view` without :data:`EVAL_ONLY_KEYS`: two runs with equal views train the same model."""
    tree = identity_view(cfg)
    for dotted in EVAL_ONLY_KEYS:
        *parents, leaf = dotted.split(".")
        node = tree
        for k in parents:
            node = node.get(k, {})
        node.pop(leaf, None)
    return tree


def trained_twin(cfg: ExperimentConfig, root: Path) -> Optional[Path]:
    """A finished, current run in ``root`` that trained exactly ``cfg``'s model (same training view)
    and still has its checkpoint; ``None`` if there is none."""
    want = training_view(cfg)
    for run_dir in sorted(root.glob(f"{cfg.name}-*")):
        if not ((run_dir / "metrics.json").is_file() and (run_dir / "last.pt").is_file()
                and (run_dir / "config.yaml").is_file()):
            continue
        try:
            other = load_config(str(run_dir / "config.yaml"))
            same = run_dir.name == run_name(other) and training_view(other) == want
        except Exception as e:  # noqa: BLE001 - a stale sibling never blocks a new run
            log.warning("run store: ignoring %s: its config.yaml no longer loads (%s); it is stale "
                        "(remove it when you no longer need it)", run_dir, str(e).splitlines()[0] if str(e) else e)
            continue
        if same:
            return run_dir
    return None


def _evaluate_twin(cfg: ExperimentConfig, twin: Path, run_dir: Path) -> dict:
    """Write ``run_dir`` as ``cfg``'s run by testing ``twin``'s trained model under ``cfg``'s evaluation
    keys: config and provenance of ``cfg``, the twin's training log and training metrics, new test
    metrics, and ``evaluated_from`` naming the twin."""
    import shutil
    import time

    from reprolib.engine.evaluator import eval_setup, evaluate_model
    from reprolib.engine.provenance import write_provenance
    from reprolib.engine.trainer import load_trained, resolve_amp
    from reprolib.utils import atomic_write_json

    log.info("run store: %s trained the same model (only evaluation keys differ); testing its checkpoint",
             twin.name)
    _, train_dataset, model, device = load_trained(twin, cfg.device)
    eval_cfg, eval_dataset = eval_setup(cfg, train_dataset)
    t0 = time.perf_counter()
    metrics = evaluate_model(model, eval_dataset, eval_cfg, device, resolve_amp(cfg.train.amp, device).dtype)
    result = {**json.loads((twin / "metrics.json").read_text()), "eval": metrics,
              "eval_time_s": time.perf_counter() - t0, "config_hash": config_hash(cfg), "evaluated_from": twin.name}
    run_dir.mkdir(parents=True, exist_ok=True)
    write_provenance(run_dir, cfg, extra={"config_hash": config_hash(cfg), "evaluated_from": twin.name})
    shutil.copyfile(twin / "train_log.jsonl", run_dir / "train_log.jsonl")
    atomic_write_json(run_dir / "metrics.json", result)
    return result


def default_store(profile: str) -> Path:
    """``results/<profile>/runs`` under the project root (``REPROLIB_RESULTS`` overrides ``results``)."""
    base = Path(os.environ.get("REPROLIB_RESULTS", PROJECT_ROOT / "results"))
    return base / profile / "runs"


def world_size() -> int:
    """Number of training processes of this launch (``WORLD_SIZE``, set by ``torchrun``; else 1)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def resolved_device(name: str) -> str:
    """The device type a ``device`` value trains on here: ``auto`` -> ``cuda`` when torch sees a
    GPU, else ``cpu``; ``cuda:1`` -> ``cuda`` (which GPU does not change the result)."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name.split(":", 1)[0]


def data_identity(profile: str, dataset: str, root: str) -> str:
    """Identity of the dataset a run reads (:mod:`reprolib.data.identity`), replacing its root.

    Under the ``smoke`` and ``embedded`` profiles the data is the miniature world that
    :func:`ensure_world` generates at the root, so it is identified by how it is generated; under
    ``paper`` by the dataset's name and the fingerprint of its index files (read from the root,
    which must exist)."""
    from reprolib.data.identity import dataset_fingerprint, synthetic_identity
    from reprolib.data.synthetic.world import GENERATOR_VERSION, IMAGE_SCALES

    if profile in SYNTHETIC_PROFILES:
        fmt = _WORLD_FORMAT[dataset]
        preset = IMAGE_SCALES[profile] if fmt in _IMAGE_FORMATS else profile
        return synthetic_identity(dataset, preset, fmt, WORLD_SEED, GENERATOR_VERSION)
    return f"{dataset}:{dataset_fingerprint(dataset, resolve_path(root))}"


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _weights_identity(value: str) -> str:
    """An explicit weights path -> ``sha256:<digest>`` of the file (same weights, same key wherever
    the file lives); anything else (``openai``, ``none``, ``tinyclip``, empty) unchanged."""
    if not value or value in ("openai", "none", "tinyclip"):
        return value
    try:
        path = resolve_path(value, "model.backbone.weights_path")
    except Exception:  # an unset ${VAR}: the value itself is the best identity there is
        return value
    if not path.is_file():
        return value
    st = path.stat()
    return "sha256:" + _file_sha256(str(path), st.st_size, st.st_mtime_ns)


def identity_view(cfg: ExperimentConfig) -> dict:
    """The resolved config as the run key sees it: device resolved, data roots replaced by the
    dataset's identity, an explicit weights file by its SHA-256 (see the module docstring)."""
    tree = to_dict(cfg)
    tree["device"] = resolved_device(cfg.device)
    tree["data"]["root"] = data_identity(cfg.profile, cfg.data.dataset, cfg.data.root)
    if cfg.eval.dataset and cfg.eval.root:
        tree["eval"]["root"] = data_identity(cfg.profile, cfg.eval.dataset, cfg.eval.root)
    backbone = tree["model"]["backbone"]
    backbone["weights_path"] = _weights_identity(backbone["weights_path"])
    backbone["pretrained"] = _weights_identity(backbone["pretrained"])
    return tree


def run_key(cfg: ExperimentConfig) -> str:
    """Key of a run (12 hex digits): hash of :func:`identity_view`, the profile, the number of
    processes (:func:`world_size`) and the family's results version."""
    from reprolib.models.registry import results_version

    return config_hash(identity_view(cfg), extra={
        "profile": cfg.profile, "world_size": world_size(),
        "results_version": {cfg.model.name: results_version(cfg.model.name)}})


def run_name(cfg: ExperimentConfig, key: Optional[str] = None) -> str:
    """The run directory's name in the store: ``<config name>-<key>`` (default key: :func:`run_key`)."""
    return f"{cfg.name}-{key if key is not None else run_key(cfg)}"


@dataclass
class Run:
    """A finished training run loaded from the store.

    Attributes:
        path: the run directory.
        config: the resolved experiment config.
        metrics: the contents of ``metrics.json`` (``eval`` holds per-direction metrics).
        key: the run-store key.
        cached: True when the run was loaded rather than trained by this call.
    """

    path: Path
    config: ExperimentConfig
    metrics: dict
    key: str
    cached: bool

    def metric(self, direction: str, name: str) -> float:
        """One metric, e.g. ``run.metric("ir2rgb", "R1")`` (percent)."""
        try:
            return float(self.metrics["eval"][direction][name])
        except KeyError:
            raise KeyError(f"run {self.path.name} has no metric eval/{direction}/{name}; "
                           f"available: {json.dumps(self.metrics.get('eval', {}))[:300]}") from None


def get_run(config: Union[str, ExperimentConfig], profile: Optional[str] = None,
            overrides: Optional[list[str]] = None, store: Optional[Union[str, Path]] = None,
            force: bool = False, train: bool = True) -> Run:
    """Return the finished run of an experiment, training or resuming it only when needed.

    Args:
        config: a config name/path (resolved with ``profile`` and ``overrides``) or a config object.
        profile: ``smoke`` | ``embedded`` | ``paper``.
        overrides: ``key.path=value`` strings.
        store: run-store root; default ``results/<profile>/runs``.
        force: retrain even when a finished run exists (the old directory is replaced).
        train: when False, raise ``FileNotFoundError`` instead of training a missing run.

    Returns:
        The :class:`Run`.
    """
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config, profile, overrides)
    key = run_key(cfg)
    root = Path(store) if store else default_store(cfg.profile)
    run_dir = root / run_name(cfg, key)
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists() and not force:
        log.info("run store: %s is finished; loading it", run_dir.name)
        return Run(run_dir, cfg, read_metrics(metrics_path), key, cached=True)
    if not train:
        raise FileNotFoundError(f"run {run_dir} is not in the store (train=False)")
    with run_lock(run_dir):
        if metrics_path.exists() and not force:  # another process finished it while this one waited
            log.info("run store: %s was finished by another process; loading it", run_dir.name)
            return Run(run_dir, cfg, read_metrics(metrics_path), key, cached=True)
        if force:
            reset_run(run_dir)
        if (run_dir / "last.pt").exists():
            log.info("run store: %s was interrupted; resuming", run_dir.name)
        ensure_world(cfg)
        twin = None if (force or (run_dir / "last.pt").exists()) else trained_twin(cfg, root)
        existed = run_dir.exists()
        try:
            if twin is not None:
                return Run(run_dir, cfg, _evaluate_twin(cfg, twin, run_dir), key, cached=False)
            run_dir.mkdir(parents=True, exist_ok=True)
            from reprolib.engine import train_experiment  # heavy import only when training

            metrics = train_experiment(cfg, run_dir)
            return Run(run_dir, cfg, metrics, key, cached=False)
        except BaseException as e:
            _after_failure(run_dir, existed, e)
            raise


class RunStoreError(RuntimeError):
    """A run directory's file is unreadable; the message names it and says how to recover."""


#: Files of a run directory that ``--force`` discards before training again (``config.yaml`` and
#: ``provenance.json`` are rewritten by the new training; the directory and any other file stay).
RUN_FILES = ("metrics.json", "last.pt", "train_log.jsonl")


def read_metrics(path: Path) -> dict:
    """``metrics.json`` of a finished run.

    Raises:
        RunStoreError: it is truncated or not JSON; the message names the file and the fix.
    """
    try:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        return data
    except (OSError, ValueError) as e:
        raise RunStoreError(f"{path}: unreadable metrics of a finished run ({e}); rerun the same command "
                            f"with --force (get_run(..., force=True)) to train the run again") from None


def reset_run(run_dir: Path) -> list[str]:
    """Discard what makes ``run_dir`` finished or resumable (:data:`RUN_FILES`), whatever state it is
    in (finished, truncated ``metrics.json``/``last.pt``, a checkpoint of another config), so the
    next training starts from scratch. Only the run store's own files are removed, and only inside a
    run directory of the store.

    Returns:
        The names of the files removed.
    """
    removed = []
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed.append(name)
    for tmp in run_dir.glob(".*.tmp*") if run_dir.is_dir() else ():  # torn atomic writes of a killed run
        if tmp.is_file():
            tmp.unlink()
            removed.append(tmp.name)
    if removed:
        log.info("run store: --force: discarded %s of %s", ", ".join(removed), run_dir)
    return removed


def _after_failure(run_dir: Path, existed: bool, error: BaseException) -> None:
    """Leave no half-made run directory behind: a directory this call created is removed unless it
    holds a checkpoint to resume from; an interrupted run keeps its last checkpoint and says so."""
    ckpt = run_dir / "last.pt"
    if isinstance(error, KeyboardInterrupt) and ckpt.is_file():
        log.warning("interrupted: %s keeps its last checkpoint %s; run the same command again to resume "
                    "from it", run_dir, ckpt)
        return
    if not existed and run_dir.is_dir() and not ckpt.is_file():
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        log.info("run store: removed %s (the failed run left no checkpoint)", run_dir)


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of one run (``<store>/.locks/<run>.lock``), waiting for it if another
    process holds it. The lock is an advisory ``flock``: released when the holder exits, even if it
    is killed, so an interrupted run never stays locked. Under ``torchrun`` (``WORLD_SIZE`` > 1)
    the ranks train the run together, so none may wait for another: there is no lock, as where
    ``fcntl`` does not exist (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - POSIX everywhere we run
        fcntl = None
    if fcntl is None or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        yield
        return
    lock_dir = run_dir.parent / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{run_dir.name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("run store: another process is training %s; waiting for it", run_dir.name)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def list_runs(profile: str, store: Optional[Union[str, Path]] = None) -> list[dict]:
    """Summaries of the finished runs in a store (name, key, config name, metrics)."""
    root = Path(store) if store else default_store(profile)
    out = []
    for m in sorted(root.glob("*/metrics.json")):
        try:
            out.append({"run": m.parent.name, **read_metrics(m)})
        except RunStoreError as e:
            log.warning("%s", e)
    return out


__all__ = ["Run", "RunStoreError", "get_run", "list_runs", "reset_run", "read_metrics",
           "run_key", "run_name", "identity_view", "data_identity",
           "resolved_device", "world_size", "default_store", "ensure_world", "training_view", "trained_twin", "EVAL_ONLY_KEYS", "run_lock"]
