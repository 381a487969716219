"""Training engine: trainer, schedulers, optimisers, checkpoints, DDP, provenance, evaluation.

Entry points used by the CLI and the run store::

    from reprolib.engine import train_experiment, evaluate_run
    result = train_experiment(cfg, run_dir)   # trains or resumes, writes metrics.json
    metrics = evaluate_run(run_dir)           # re-evaluates last.pt / model.pt
"""
from reprolib.engine.checkpoint import Progress, load_checkpoint, save_checkpoint
from reprolib.engine.distributed import DistInfo, init_distributed, is_main_process
from reprolib.engine.evaluator import evaluate_model, extract_features
from reprolib.engine.optim import build_optimizer
from reprolib.engine.provenance import write_provenance
from reprolib.engine.schedulers import WarmupCosineLR, WarmupMultiStepLR, build_scheduler
from reprolib.engine.trainer import (NonFiniteLossError, Trainer, check_finite, evaluate_run, load_trained, resolve_amp,
                                     train_experiment)

__all__ = [
    "Trainer", "train_experiment", "evaluate_run", "load_trained", "NonFiniteLossError", "check_finite", "resolve_amp",
    "WarmupCosineLR", "WarmupMultiStepLR", "build_scheduler", "build_optimizer",
    "Progress", "save_checkpoint", "load_checkpoint",
    "DistInfo", "init_distributed", "is_main_process",
    "evaluate_model", "extract_features", "write_provenance",
]
