"""The run store: training runs keyed by the hash of their resolved config and code version.

A notebook asks for runs instead of training them: ``get_run("vld_baseline", profile="embedded")``
returns the finished run when the store has it (instantly), resumes it when it was interrupted
(the trainer continues from ``last.pt``), and trains it otherwise. The same model appearing in
several tables is therefore trained once.

Layout (DESIGN.md section 4)::

    results/<profile>/runs/<config-name>-<key>/
        config.yaml        resolved config
        provenance.json    git SHA, package versions, hardware, number of processes
        train_log.jsonl    per-step loss components and learning rates
        metrics.json       final metrics per direction (written atomically, last)
        last.pt            checkpoint (never committed)

The key hashes the resolved config, the profile and a *semantic* hash of the code that
produced the run (the AST of ``reprolib.data``, ``models``, ``losses``, ``engine`` and ``eval``
with docstrings removed), so editing a comment keeps a run valid while changing code retrains.
Code that only some model families run (:data:`FAMILY_CODE`: CMFT's streams, VLD's hub, X-ReID's
CPC, ...) keys only those families' runs.

Two processes asking for the same unfinished run (two notebooks rendered at once that share a
model) train it once: the second waits on the run's lock (``<store>/.locks/<run>.lock``) and then
loads what the first wrote.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from reprolib import PACKAGE_ROOT, PROJECT_ROOT
from reprolib.config import ExperimentConfig, config_hash, load_config, resolve_path, to_dict

log = logging.getLogger(__name__)

#: Packages whose code determines a run's result.
CODE_PACKAGES = ("data", "models", "losses", "engine", "eval")

#: Code that only some model families run: a path under ``reprolib/`` (file or folder) -> the
#: ``model.name`` families that run it. A change there re-keys those families' runs and no other's,
#: so work on one paper does not retrain the others; everything else in :data:`CODE_PACKAGES` is
#: shared and keys every run. ``test_runstore`` checks statically that no module imports code
#: owned by a family it does not belong to (package ``__init__`` registrations aside).
FAMILY_CODE: dict[str, tuple[str, ...]] = {
    "models/cmft": ("cmft",),
    "models/weights/tinyresnet.json": ("cmft",),  # CMFT's embedded streams start from TinyResNet
    "losses/cmft": ("cmft",),
    "models/baseline.py": ("baseline",),
    "models/vld.py": ("vld",),
    "models/stp.py": ("vld",),
    "models/temporal.py": ("vld",),
    "models/prompts.py": ("vld", "clipreid", "tfclip"),
    "models/clipreid.py": ("clipreid", "tfclip"),
    "models/tfclip.py": ("tfclip",),
    "models/xreid": ("xreid", "tfclip"),  # TF-CLIP reuses X-ReID's cross-attention block (mii.py)
    "models/xreid/model.py": ("xreid",),
    "models/xreid/cpc.py": ("xreid",),
    "losses/cmcl.py": ("xreid",),
}


def owners(rel: str) -> Optional[tuple[str, ...]]:
    """The families owning ``rel`` (a path under ``reprolib/``) by its most specific
    :data:`FAMILY_CODE` entry; ``None`` for shared code."""
    best = None
    for path, fams in FAMILY_CODE.items():
        if (rel == path or rel.startswith(path.rstrip("/") + "/")) and (best is None or len(path) > len(best[0])):
            best = (path, fams)
    return best[1] if best else None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=None)
def code_version(packages: tuple[str, ...] = CODE_PACKAGES, family: Optional[str] = None,
                 root: Optional[Path] = None) -> str:
    """Semantic hash of the library code that determines results (comments and docstrings ignored).

    Args:
        packages: sub-packages of ``reprolib`` to hash.
        family: hash only the shared code and this ``model.name`` family's (:data:`FAMILY_CODE`);
            ``None``: all the code.
        root: the ``reprolib`` folder to read (default: this package; another revision's for
            ``tools/rekey_runs.py``).
    """
    root = Path(root) if root is not None else PACKAGE_ROOT
    h = hashlib.sha256()

    def kept(path: Path) -> bool:
        fams = owners(path.relative_to(root).as_posix())
        return family is None or fams is None or family in fams

    for pkg in packages:
        for path in sorted(p for p in (root / pkg).rglob("*.py") if kept(p)):
            tree = _strip_docstrings(ast.parse(path.read_text(), filename=str(path)))
            h.update(str(path.relative_to(root)).encode())
            h.update(ast.dump(tree, annotate_fields=False, include_attributes=False).encode())
        for path in sorted(p for p in (root / pkg).rglob("*.json") if kept(p)):  # model configs are code too
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


#: Profiles whose data is the generated miniature world, and the world layout of each dataset.
SYNTHETIC_PROFILES = ("smoke", "embedded")
_WORLD_FORMAT = {"hitsz-vcm": "vcm", "bupt": "bupt", "sysu-mm01": "sysu", "regdb": "regdb"}
#: Layouts of the image benchmarks: their worlds use the profile's still-image preset
#: (``synthetic.world.IMAGE_SCALES``: a few images per tracklet instead of whole walks).
_IMAGE_FORMATS = ("sysu", "regdb")


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
    write_world(root, scale=preset, seed=0, fmt=fmt)


#: Config keys that only change how a trained model is tested (the test protocol, a cross-dataset
#: test set, the distance, BUPTCampus's test-gallery mode): training never reads them. A run that
#: differs from a finished one only in these is evaluated from that run's checkpoint instead of
#: being trained again (VLD Table VIII tests the models of Tables II and III on the other dataset).
EVAL_ONLY_KEYS = ("eval", "data.bupt_eval_mode", "data.bupt_eval_batch")


def training_view(cfg: ExperimentConfig) -> dict:
    """The config as a dict without :data:`EVAL_ONLY_KEYS`: two runs with equal views train the same model."""
    tree = to_dict(cfg)
    for dotted in EVAL_ONLY_KEYS:
        *parents, leaf = dotted.split(".")
        node = tree
        for k in parents:
            node = node.get(k, {})
        node.pop(leaf, None)
    return tree


def trained_twin(cfg: ExperimentConfig, root: Path) -> Optional[Path]:
    """A finished run in ``root`` that trained exactly ``cfg``'s model (same training view, same code
    version) and still has its checkpoint; ``None`` if there is none."""
    want = training_view(cfg)
    for run_dir in sorted(root.glob(f"{cfg.name}-*")):
        if not ((run_dir / "metrics.json").is_file() and (run_dir / "last.pt").is_file()
                and (run_dir / "config.yaml").is_file()):
            continue
        other = load_config(str(run_dir / "config.yaml"))
        if run_dir.name == run_name(other) and training_view(other) == want:
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


def run_key(cfg: ExperimentConfig, code: Optional[str] = None) -> str:
    """Key of a run: hash of the resolved config, its profile and the version of the code its model
    family runs (``code``: that version string, default :func:`code_version` of ``cfg.model.name``)."""
    code = code if code is not None else code_version(CODE_PACKAGES, cfg.model.name)
    return config_hash(cfg, extra={"profile": cfg.profile, "code": code})


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
        return Run(run_dir, cfg, json.loads(metrics_path.read_text()), key, cached=True)
    if not train:
        raise FileNotFoundError(f"run {run_dir} is not in the store (train=False)")
    with run_lock(run_dir):
        if metrics_path.exists() and not force:  # another process finished it while this one waited
            log.info("run store: %s was finished by another process; loading it", run_dir.name)
            return Run(run_dir, cfg, json.loads(metrics_path.read_text()), key, cached=True)
        if force and metrics_path.exists():
            metrics_path.unlink()
            (run_dir / "last.pt").unlink(missing_ok=True)
        if (run_dir / "last.pt").exists():
            log.info("run store: %s was interrupted; resuming", run_dir.name)
        ensure_world(cfg)
        twin = None if (force or (run_dir / "last.pt").exists()) else trained_twin(cfg, root)
        if twin is not None:
            return Run(run_dir, cfg, _evaluate_twin(cfg, twin, run_dir), key, cached=False)
        run_dir.mkdir(parents=True, exist_ok=True)
        from reprolib.engine import train_experiment  # heavy import only when training

        metrics = train_experiment(cfg, run_dir)
        return Run(run_dir, cfg, metrics, key, cached=False)


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
        out.append({"run": m.parent.name, **json.loads(m.read_text())})
    return out


__all__ = ["Run", "get_run", "list_runs", "run_key", "code_version", "owners", "FAMILY_CODE", "default_store",
           "ensure_world", "training_view", "trained_twin", "EVAL_ONLY_KEYS", "run_lock"]
