"""``python -m reprolib weights import <family> FILE``: an official released checkpoint as a finished run.

Steps (:func:`import_official`):

1. read ``FILE`` safely (:func:`~reprolib.models.official.reader.read_official_state_dict`:
   ``weights_only=True`` or safetensors; pickled objects refused; ``module.`` removed);
2. load the config (``--config``, default the family's paper config; ``--profile``, default
   ``paper``), after the overrides the file implies (e.g. CLIP-ReID's single prompt bank) and then the
   user's ``--set`` ones;
3. build the family's model for that config and its training set (identity count, camera table),
   without the pretrained backbone file (every weight comes from ``FILE``);
4. map and audit every tensor (:func:`~reprolib.models.official.mapping.apply_mapping`): any
   missing, unexpected or wrongly shaped tensor stops the import before anything is written;
5. write the run directory and evaluate it::

       config.yaml        the resolved config
       provenance.json    as a trained run's, plus "imported": {source_sha256, family, file_name, ...}
       last.pt            checkpoint format 1 with the model's state dict (no optimiser: nothing to resume)
       train_log.jsonl    empty (nothing was trained here)
       metrics.json       the config's evaluation of the imported model, written last

``python -m reprolib eval RUN_DIR`` re-evaluates it like any run (strict load of ``last.pt``), and
``read_metrics``/``list_runs`` read it. The default directory is
``results/<profile>/imported/<config name>-<first 12 hex of the file's SHA-256>``: beside, not in,
the run store ``results/<profile>/runs``, so ``get_run`` never returns official weights as a run of
ours and ``runs status`` does not list them (:func:`imported_run` loads one as a
:class:`~reprolib.experiments.runstore.Run`).
"""
from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["ImportResult", "MAPPINGS", "get_mapping", "import_official", "imported_run", "default_import_dir",
           "write_official_standin", "main"]

logger = logging.getLogger(__name__)

#: family -> ``module:attribute`` of its :class:`~reprolib.models.official.mapping.FamilyMapping`.
MAPPINGS: dict[str, str] = {  # the mappings live in reprolib.models.official (layer of the models)
    "vld": "reprolib.models.official.vld:VLD_MAPPING",
    "clipreid": "reprolib.models.official.clipreid:CLIPREID_MAPPING",
    "tfclip": "reprolib.models.official.tfclip:TFCLIP_MAPPING",
    "xreid": "reprolib.models.official.xreid:XREID_MAPPING",
}


def get_mapping(family: str) -> Any:
    """The :class:`~reprolib.models.official.mapping.FamilyMapping` of ``family``.

    Raises:
        KeyError: no mapping for that family; the message lists the families that have one.
    """
    import importlib

    if family not in MAPPINGS:
        raise KeyError(f"weights import: no official-checkpoint mapping for family '{family}'; families with one: "
                       f"{', '.join(sorted(MAPPINGS))} (docs/decisions/official_weights.md#families)")
    module, attr = MAPPINGS[family].split(":")
    return getattr(importlib.import_module(module), attr)


@dataclass
class ImportResult:
    """What :func:`import_official` wrote.

    Attributes:
        run_dir: the run directory.
        audit: the :class:`~reprolib.models.official.mapping.ImportAudit`.
        metrics: the contents of ``metrics.json`` (``None`` when not evaluated).
        imported: the ``imported`` record of ``provenance.json``.
    """

    run_dir: Path
    audit: Any
    metrics: Optional[dict]
    imported: dict


def default_import_dir(cfg: Any, sha256: str) -> Path:
    """``results/<profile>/imported/<config name>-<sha256[:12]>`` (``REPROLIB_RESULTS`` overrides ``results``)."""
    from reprolib.experiments.runstore import default_store

    return default_store(cfg.profile).parent / "imported" / f"{cfg.name}-{sha256[:12]}"


def import_official(family: str, path: str | Path, config: Optional[str] = None, profile: Optional[str] = "paper",
                    overrides: Sequence[str] = (), out: Optional[str | Path] = None, identity_heads: str = "load",
                    device: str = "auto", evaluate: bool = True) -> ImportResult:
    """Import an official released checkpoint of ``family`` as a finished, evaluated run.

    Args:
        family: our family name (a key of :data:`MAPPINGS`: ``vld``, ``clipreid``, ``tfclip``, ``xreid``).
        path: the released file.
        config: config name or path; default the family's (``vld`` for VLD, ``clipreid``).
        profile: ``paper`` (default), ``smoke`` or ``embedded``.
        overrides: ``key=value`` strings (``--set``), applied after the file's implied ones.
        out: the run directory; default :func:`default_import_dir`. It must not exist or be empty.
        identity_heads: ``load`` or ``fresh`` (see :data:`~reprolib.models.official.mapping.IDENTITY_HEADS`).
        device: where to evaluate (``auto``: the config's device).
        evaluate: write ``metrics.json`` from an evaluation (True); False leaves the directory
            evaluable by ``python -m reprolib eval`` but not a finished run (tests of the audit).

    Returns:
        The :class:`ImportResult`.

    Raises:
        FileNotFoundError, OfficialFormatError: the file is missing or not safely readable.
        ImportAuditError: the file does not fit the config's model (every problem listed).
        FileExistsError: ``out`` exists and is not empty.
        ValueError: the config's ``model.name`` is not ``family``.
    """
    import torch

    from reprolib.config import config_hash, load_config
    from reprolib.data.datasets import build_dataset
    from reprolib.engine.checkpoint import CHECKPOINT_FORMAT
    from reprolib.engine.evaluator import eval_setup, evaluate_model
    from reprolib.engine.provenance import write_provenance
    from reprolib.engine.trainer import build_model, checkpoint_architecture, resolve_amp, resolve_device
    from reprolib.experiments.runstore import ensure_world
    from reprolib.models.official.mapping import apply_mapping
    from reprolib.models.official.reader import read_official_state_dict
    from reprolib.models.weights import sha256_file
    from reprolib.utils.seed import seed_everything
    from reprolib.utils.io import atomic_torch_save, atomic_write_json, atomic_write_text

    mapping = get_mapping(family)
    path = Path(path).expanduser().resolve()
    state, notes = read_official_state_dict(path)
    implied = mapping.implied_overrides(state.keys()) if mapping.implied_overrides else []
    for item in implied:
        logger.info("weights import: %s (implied by %s's keys)", item, path.name)
    cfg = load_config(config or mapping.default_config, profile, [*implied, *overrides])
    if cfg.model.name != family:
        raise ValueError(f"--config {config}: its model.name is '{cfg.model.name}', not '{family}'; pass a config "
                         f"of the '{family}' family (default: {mapping.default_config})")
    sha = sha256_file(path)
    run_dir = Path(out).expanduser() if out else default_import_dir(cfg, sha)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise FileExistsError(f"{run_dir} exists and is not empty; pass another --out, or remove it to import again")

    ensure_world(cfg)
    dataset = build_dataset(cfg.data)
    seed_everything(cfg.seed)  # identity heads left fresh get the config's reproducible initialisation
    quiet = _NoRandomInitWarning()  # every weight comes from the file (as load_trained)
    weights_logger = logging.getLogger("reprolib.models.weights")
    weights_logger.addFilter(quiet)
    try:
        model = build_model(checkpoint_architecture(cfg), dataset)
    finally:
        weights_logger.removeFilter(quiet)
    target = model.state_dict()
    ours, audit = apply_mapping(mapping, state, target, identity_heads, source=str(path),
                                target_name=f"config '{cfg.name}' ({cfg.profile} profile)")
    audit.notes.extend(notes)
    full = dict(target)
    full.update(ours)
    model.load_state_dict(full, strict=True)
    if mapping.finalize is not None:
        mapping.finalize(model)
    audit.log(f"weights import {family} {path.name}")

    imported = {"source_sha256": sha, "family": family, "file_name": path.name, "official": mapping.official_name,
                "mapping_source": mapping.source, "identity_heads": identity_heads,
                "implied_overrides": implied, "audit": audit.summary()}
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        write_provenance(run_dir, cfg, extra={"config_hash": config_hash(cfg), "imported": imported})
        atomic_torch_save({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "config_hash": config_hash(cfg),
                           "progress": {"epoch": 0, "iteration": 0, "global_step": 0}, "world_size": 1,
                           "train_time_s": 0.0,
                           "imported": {k: imported[k] for k in ("source_sha256", "family", "file_name")}},
                          run_dir / "last.pt")
        atomic_write_text(run_dir / "train_log.jsonl", "")
        metrics = None
        if evaluate:
            dev = resolve_device(device if device != "auto" else cfg.device)
            model = model.to(dev).eval()
            eval_cfg, eval_dataset = eval_setup(cfg, dataset)
            t0 = time.perf_counter()
            with torch.no_grad():
                result = evaluate_model(model, eval_dataset, eval_cfg, dev, resolve_amp(cfg.train.amp, dev).dtype)
            metrics = {"eval": result, "train_time_s": 0.0, "eval_time_s": time.perf_counter() - t0,
                       "num_processes": 1, "global_step": 0, "epochs": 0, "seed": cfg.seed, "device": str(dev),
                       "config_hash": config_hash(cfg), "imported": {k: imported[k] for k in
                                                                     ("source_sha256", "family", "file_name")}}
            atomic_write_json(run_dir / "metrics.json", metrics)
    except BaseException:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)  # never leave a half-written run behind
        raise
    logger.info("weights import: %s -> %s", path.name, run_dir)
    return ImportResult(run_dir, audit, metrics, imported)


class _NoRandomInitWarning(logging.Filter):
    """Hides the backbone's "RANDOMLY INITIALISED" warning: the imported file supplies every weight."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "RANDOMLY INITIALISED" not in record.getMessage()


def imported_run(run_dir: str | Path) -> Any:
    """An imported run directory as a :class:`~reprolib.experiments.runstore.Run` (``cached=True``).

    Raises:
        FileNotFoundError: it has no ``metrics.json`` (not evaluated) or no ``config.yaml``.
        ValueError: its provenance has no ``imported`` record (a trained run: use ``get_run``).
    """
    from reprolib.config import load_config
    from reprolib.experiments.runstore import Run, read_metrics
    from reprolib.utils.io import read_json

    run_dir = Path(run_dir)
    for name in ("config.yaml", "metrics.json", "provenance.json"):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(f"{run_dir / name}: missing; is {run_dir} a run written by "
                                    f"`python -m reprolib weights import`?")
    record = read_json(run_dir / "provenance.json").get("imported")
    if not record:
        raise ValueError(f"{run_dir}: provenance.json has no 'imported' record; a trained run is loaded with get_run")
    return Run(run_dir, load_config(str(run_dir / "config.yaml")), read_metrics(run_dir / "metrics.json"),
               f"imported-{record['source_sha256'][:12]}", cached=True)


def write_official_standin(family: str, path: str | Path, config: Optional[str] = None, profile: str = "paper",
                           overrides: Sequence[str] = ()) -> Path:
    """Write a checkpoint in the **official** format of ``family``, made from a model of ours.

    The stand-in of a release where there is none (the rehearsal, the smoke and embedded profiles):
    our model for the config (with its backbone's pretrained file, e.g. the rehearsal's stand-in CLIP
    weights, and the config's seeded heads) is mapped back to the official names by inverting the
    family's mapping (:func:`~reprolib.models.official.mapping.invert_mapping`) and saved as the
    official code saves it, a bare state dict, so that ``weights import`` reads it as it reads a
    release. The file holds every tensor the mapping maps, with a camera table (``cv_embed``) where the
    family has one, and none of the tensors the mapping drops. Deterministic for a config: the
    same file (and SHA-256) every time.

    Args:
        family: our family (a key of :data:`MAPPINGS`).
        path: where to write the file (parent folders are created).
        config: config name or path; default the family's.
        profile: ``smoke``, ``embedded`` or ``paper``.
        overrides: ``key=value`` strings (data root, backbone weights); the file's implied overrides
            (as :func:`import_official` applies them) come first.

    Returns:
        ``path``.
    """
    from reprolib.config import load_config
    from reprolib.data.datasets import build_dataset
    from reprolib.engine.trainer import build_model
    from reprolib.experiments.runstore import ensure_world
    from reprolib.models.official.mapping import invert_mapping
    from reprolib.utils.io import atomic_torch_save
    from reprolib.utils.seed import seed_everything

    mapping = get_mapping(family)
    # the structure a release of this family has: the implied overrides of a file with a camera table
    implied = mapping.implied_overrides(["cv_embed"]) if mapping.implied_overrides else []
    cfg = load_config(config or mapping.default_config, profile, [*implied, *overrides])
    ensure_world(cfg)
    dataset = build_dataset(cfg.data)
    seed_everything(cfg.seed)
    model = build_model(cfg, dataset)
    official = invert_mapping(mapping, model.state_dict())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(dict(official), path)
    logger.info("official-format %s stand-in of config '%s' (%s profile): %d tensors -> %s", family, cfg.name,
                cfg.profile, len(official), path)
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m reprolib weights import <family> FILE [--config C] [--profile P] [--set k=v ...]
    [--out RUN_DIR] [--identity-heads load|fresh] [--device D]``: prints the run directory last."""
    p = argparse.ArgumentParser(
        prog="python -m reprolib weights import",
        description="Map an official released checkpoint onto a model family (strict audit of every tensor), "
                    "write it as a finished run directory and evaluate it (docs/decisions/official_weights.md).")
    p.add_argument("family", choices=sorted(MAPPINGS), help="our model family")
    p.add_argument("file", help="the official .pth / .pth.tar / .safetensors state dict")
    p.add_argument("--config", default=None, help="config of the released model (default: the family's)")
    p.add_argument("--profile", default="paper", choices=["smoke", "embedded", "paper"])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--out", default=None, help="run directory (default: results/<profile>/imported/<name>-<sha12>)")
    p.add_argument("--identity-heads", default="load", choices=["load", "fresh"],
                   help="load: identity-sized classifiers/prompts must fit the config's training set; fresh: leave "
                        "them at their initialisation (the test features do not use them)")
    p.add_argument("--device", default="auto", help="evaluation device (default: the config's)")
    args = p.parse_args(list(argv) if argv is not None else None)
    result = import_official(args.family, args.file, args.config, args.profile, args.overrides, args.out,
                             args.identity_heads, args.device)
    for direction, m in (result.metrics or {}).get("eval", {}).items():
        logger.info("%s: %s", direction, "  ".join(f"{k} {v:.2f}" for k, v in m.items() if isinstance(v, float)))
    print(result.run_dir)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
