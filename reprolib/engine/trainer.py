"""The training loop shared by every model and profile.

``Trainer(cfg, run_dir).fit()`` builds the dataset, model, optimiser, scheduler and loaders
from a config, trains for ``train.epochs`` "epochs" of exactly ``train.iters_per_epoch``
steps (the papers define epochs as iteration counts: VLD 24 x 200, X-ReID 60 x 300),
checkpoints, resumes, evaluates with ``reprolib.metrics`` and returns the metrics.

Determinism and resume. A run killed at any point and resumed from ``run_dir/last.pt`` ends
with bit-identical weights and metrics on CPU (same thread count). This holds because

* the data order and augmentation are functions of (seed, epoch, position) (the data
  module's samplers and clip datasets), and the sampler is re-positioned inside the epoch;
* model-side randomness (dropout, drop-path) uses the global RNGs, whose states are saved in
  the checkpoint and restored at the *same program point*: for a checkpoint at an epoch
  boundary (``iteration == 0``) before the epoch's loader iterator is created, for one inside
  an epoch after it (creating a DataLoader iterator draws from the global torch RNG);
* evaluation runs between RNG snapshots (:meth:`Trainer.evaluate` restores them), so
  evaluating during training never changes the training trajectory;
* deterministic kernels are selected (``reprolib.utils.configure_determinism``).

Mixed precision (``train.amp``): ``auto`` is bf16 autocast on CUDA and off on CPU; ``bf16``
forces bf16 autocast; ``fp16`` is CUDA autocast with a ``GradScaler`` (the only mode that
needs one); ``off`` is fp32. VLD's code used fp16 + GradScaler (docs/decisions/vld.md#mixed-precision), X-ReID
fp32 (docs/decisions/xreid.md#precision); bf16 needs no loss scaling and is the default on GPUs.
"""
from __future__ import annotations

import inspect
import json
import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn

from reprolib.config import config_hash, load_config, to_dict
from reprolib.engine.checkpoint import Progress, finish_checkpoint, load_checkpoint, save_checkpoint
from reprolib.engine.distributed import (DistInfo, all_gather_object, barrier, broadcast_buffers,
                                         broadcast_object, cleanup_distributed, init_distributed, wrap_ddp)
from reprolib.engine.evaluator import eval_setup, evaluate_model
from reprolib.engine.optim import build_optimizer
from reprolib.engine.provenance import write_provenance
from reprolib.engine.schedulers import build_scheduler
from reprolib.utils.io import atomic_write_json, atomic_write_text
from reprolib.utils.progress import ProgressLog
from reprolib.utils.seed import configure_determinism, get_rng_state, seed_everything, set_rng_state

__all__ = ["Trainer", "build_model", "load_trained", "checkpoint_architecture", "check_run_device", "NonFiniteLossError", "AmpSettings", "resolve_device",
           "resolve_amp", "check_finite", "train_experiment", "evaluate_run"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
LOG_NAME = "train_log.jsonl"
METRICS_NAME = "metrics.json"


class NonFiniteLossError(FloatingPointError):
    """A loss component became NaN or infinite; the message names the step and the component."""


@dataclass(frozen=True)
class AmpSettings:
    """Resolved mixed-precision mode.

    Attributes:
        dtype: autocast dtype, or ``None`` for full precision.
        use_scaler: whether a ``GradScaler`` scales the loss (fp16 only).
    """

    dtype: Optional[torch.dtype] = None
    use_scaler: bool = False


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; ``"cuda"`` fails clearly without a GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device: '{name}' requested but torch sees no CUDA device (use device=cpu or auto)")
    return torch.device(name)


def no_cuda_message(what: str = "device=auto under the paper profile") -> str:
    """Why torch sees no GPU and what to do: run on the CPU explicitly, or fix the driver/build."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.is_available()
    said = " ".join(str(w.message).split(".")[0] for w in caught if "driver" in str(w.message).lower())
    build = f"torch {torch.__version__} (CUDA {torch.version.cuda})" if torch.version.cuda else \
        f"torch {torch.__version__} (a CPU-only build)"
    return (f"{what}, but torch sees no CUDA device, and a paper run on the CPU takes days. To train on the CPU "
            f"anyway say so: DEVICE=cpu (make), --device cpu (notebook run) or --set device=cpu (train). "
            f"To use the GPU: {build} needs an NVIDIA driver recent enough for its CUDA version (nvidia-smi shows "
            f"the driver's; CUDA 13 builds need driver 580 or newer): update the driver, or install a torch build "
            f"for the CUDA your driver supports (https://pytorch.org/get-started/locally/)."
            + (f" torch says: {said}." if said else ""))


def check_run_device(cfg: Any) -> None:
    """A paper-profile run with ``device=auto`` on a machine without CUDA is an error, not a silent
    CPU run of days: the CPU needs an explicit ``device=cpu`` (a rehearsal sets it).

    Raises:
        RuntimeError: :func:`no_cuda_message`.
    """
    if getattr(cfg, "profile", "") == "paper" and cfg.device == "auto" and not torch.cuda.is_available():
        raise RuntimeError(no_cuda_message())


def resolve_amp(mode: str, device: torch.device) -> AmpSettings:
    """Map ``train.amp`` to an autocast dtype and scaler (see the module docstring).

    Raises:
        ValueError: for an unknown mode, or ``fp16`` on CPU.
    """
    if mode == "auto":
        return AmpSettings(torch.bfloat16) if device.type == "cuda" else AmpSettings()
    if mode == "off":
        return AmpSettings()
    if mode == "bf16":
        return AmpSettings(torch.bfloat16)
    if mode == "fp16":
        if device.type != "cuda":
            raise ValueError("train.amp: 'fp16' needs a CUDA device; use 'bf16' or 'off' on CPU")
        return AmpSettings(torch.float16, use_scaler=True)
    raise ValueError(f"train.amp: unknown mode '{mode}'; expected auto, bf16, fp16 or off")


def check_finite(losses: dict[str, float], step: int, epoch: int, iteration: int) -> None:
    """NaN guard: raise when any loss component is not finite.

    Args:
        losses: component name -> value of one step.
        step: global step (1-based count of the step being taken).
        epoch: 0-based epoch.
        iteration: 0-based iteration inside the epoch.

    Raises:
        NonFiniteLossError: naming the step and every non-finite component.
    """
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    if bad:
        parts = ", ".join(f"'{k}' = {v}" for k, v in bad.items())
        raise NonFiniteLossError(f"non-finite loss at step {step} (epoch {epoch}, iteration {iteration}): {parts}; "
                                 "the last checkpoint holds the state before it")


def build_model(cfg: Any, dataset: Any) -> nn.Module:
    """``create_model`` for an experiment: classifier and camera table sized by ``dataset``,
    positional grid from ``data.height``/``data.width``, clip length from ``data.seq_len``,
    losses from ``cfg.loss``."""
    from reprolib.models import create_model
    return create_model(cfg.model, dataset.num_train_pids, dataset.num_cameras,
                        image_size=(cfg.data.height, cfg.data.width), loss_cfg=cfg.loss,
                        seq_len=cfg.data.seq_len)


class _TrainStep(nn.Module):
    """Routes ``forward`` to ``forward_train`` so that DDP's hooks see the training forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.module = model

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.module.forward_train(batch)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class Trainer:
    """Train and evaluate one experiment in ``run_dir``.

    Args:
        cfg: the resolved ``ExperimentConfig``.
        run_dir: directory for ``config.yaml``, ``provenance.json``, ``train_log.jsonl``,
            ``last.pt`` (and ``metrics.json``, written by :func:`train_experiment`).
        dataset: a pre-built ``VideoReIDDataset`` (default: ``build_dataset(cfg.data)``).
        model: a pre-built ``ReIDModel`` (default: :meth:`_build_model`, i.e.
            ``create_model(cfg.model, ...)`` after seeding).

    Subclasses may override :meth:`on_step_end` (a hook called after every optimiser step),
    and ``_build_model``/``_build_train_loader`` to plug in other models or loaders.
    """

    def __init__(self, cfg: Any, run_dir: str | os.PathLike, *, dataset: Any = None,
                 model: Optional[nn.Module] = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        check_run_device(cfg)
        device = resolve_device(cfg.device)
        self.dist: DistInfo = init_distributed(device.type)
        if device.type == "cuda" and self.dist.distributed:
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        configure_determinism(device, cfg.train.deterministic)
        seed_everything(cfg.seed)  # identical initialisation on every rank
        self.config_hash = config_hash(cfg)

        if dataset is None:
            from reprolib.data.datasets import build_dataset
            dataset = build_dataset(cfg.data)
        self.dataset = dataset
        self._eval: Optional[tuple] = None  # (cfg, dataset) of testing, built on first use
        if self.dist.is_main:
            self._check_eval_sets()  # before any training: an empty test set is an error now, not in hours
        self.model = (model if model is not None else self._build_model()).to(device)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.sched, cfg.train.epochs)
        self.amp = resolve_amp(cfg.train.amp, device)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp.use_scaler)
        self.train_loader = self._build_train_loader()
        self.train_module = wrap_ddp(_TrainStep(self.model), self.dist, device,
                                     cfg.train.find_unused_parameters)
        seed_everything(cfg.seed + self.dist.rank)  # per-rank model-side randomness (dropout)
        self.progress = Progress()
        self._pending_rng: Optional[dict] = None
        self._pending_sampler: Optional[dict] = None
        self.train_time_s = 0.0

    # ------------------------------------------------------------------ construction
    def _check_eval_sets(self) -> None:
        """Parse the test dataset now (the training one, or ``eval.dataset``) and check that every
        direction of ``eval.directions`` has a query and a gallery (RNG-neutral).

        Raises:
            ValueError: naming every empty set (e.g. BUPT's official batch-64 drop on a small tree).
        """
        if not self.cfg.eval.dataset and not hasattr(self.dataset, "eval_sets"):
            return  # a custom dataset tested by a custom evaluate()
        rng = get_rng_state()
        try:
            self._eval = eval_setup(self.cfg, self.dataset)
        finally:
            set_rng_state(rng)
        eval_cfg, ds = self._eval
        problems = []
        for d in self.cfg.eval.directions:
            es = ds.eval_sets.get(d)
            if es is None:
                problems.append(f"'{d}' does not exist (the dataset has {sorted(ds.eval_sets)})")
                continue
            empty = [n for n, items in (("query", es.query), ("gallery", es.gallery)) if not items]
            if empty:
                problems.append(f"'{d}' has an empty {' and '.join(empty)}")
        if problems:
            hint = (" BUPTCampus's official evaluation drops the RGB tail of each batch of "
                    f"{eval_cfg.data.bupt_eval_batch}: on a small tree use --set data.bupt_eval_mode=full."
                    if eval_cfg.data.dataset == "bupt" and eval_cfg.data.bupt_eval_mode == "official" else "")
            raise ValueError(f"{eval_cfg.data.dataset} at {eval_cfg.data.root}: evaluation set(s) "
                             f"{'; '.join(problems)}; found before training.{hint}")

    def _build_model(self) -> nn.Module:
        """The model of ``cfg.model`` (built after seeding, so its initialisation is reproducible)."""
        return build_model(self.cfg, self.dataset)

    def _build_train_loader(self) -> Iterator:
        from reprolib.data.video import build_train_loader
        return build_train_loader(self.dataset, self.cfg.data, seed=self.cfg.seed,
                                  iters_per_epoch=self.cfg.train.iters_per_epoch,
                                  rank=self.dist.rank, world_size=self.dist.world_size)

    def tracklet_loader(self, tracklets: Sequence[Any], sampling: str) -> Iterable[dict]:
        """Test batches of ``tracklets`` (test transform, ``data`` sizes and workers) with clips sampled by
        ``sampling`` (a ``data.test_sampling`` name): what a model's :meth:`on_epoch_start` extracts its
        training-set state from (X-ReID's CPC memories, CLIP-ReID's stage-1 cache, TF-CLIP's memory)
        with :func:`reprolib.models.base.extract_tracklet_features`."""
        from reprolib.data.video import build_test_loader
        return build_test_loader(list(tracklets), replace(self.cfg.data, test_sampling=sampling))

    @property
    def batch_sampler(self) -> Any:
        """The loader's batch sampler (``set_epoch``/``state_dict``/``load_state_dict``), if any."""
        return getattr(self.train_loader, "batch_sampler", None)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        """Write ``last.pt`` (collective in DDP: every rank contributes its RNG/sampler state)."""
        rng = all_gather_object(get_rng_state())
        sampler_state = all_gather_object(self._sampler_state())
        if self.dist.is_main:
            save_checkpoint(self.checkpoint_path, model=self.model, optimizer=self.optimizer,
                            scheduler=self.scheduler, scaler=self.scaler, progress=self.progress,
                            rng=rng, sampler=sampler_state, world_size=self.dist.world_size,
                            config_hash=self.config_hash, extra={"train_time_s": self.train_time_s})
        barrier()

    def _sampler_state(self) -> Optional[dict]:
        """The batch sampler's state at the consumed position (its own counter runs ahead when
        DataLoader workers prefetch, hence ``consumed=``)."""
        sampler = self.batch_sampler
        if not hasattr(sampler, "state_dict"):
            return None
        if "consumed" in inspect.signature(sampler.state_dict).parameters:
            return sampler.state_dict(consumed=self.progress.iteration)
        return sampler.state_dict()

    def resume(self, path: Optional[str | os.PathLike] = None) -> bool:
        """Restore the full training state from ``path`` (default ``run_dir/last.pt`` if present).

        Returns:
            True when a checkpoint was loaded.

        Raises:
            FileNotFoundError: when an explicit ``path`` does not exist.
            ValueError: when the checkpoint was written for a different config.
        """
        if path is None:
            path = self.checkpoint_path
            if not path.is_file():
                return False
        ckpt = load_checkpoint(path, map_location=self.device)
        if ckpt.get("config_hash") and ckpt["config_hash"] != self.config_hash:
            raise ValueError(f"{path}: written by a different config (hash {ckpt['config_hash']}, now "
                             f"{self.config_hash}){self._config_diff()}; rerun with --force "
                             "(get_run(..., force=True)) to discard this checkpoint and train from scratch")
        self.model.load_state_dict(ckpt["model"])
        if ckpt.get("finished"):  # a trained and evaluated run: its optimiser state was dropped
            if Progress(**ckpt["progress"]).epoch < self.cfg.train.epochs:
                raise ValueError(f"{path}: a finished run's checkpoint (no optimiser state) at epoch "
                                 f"{ckpt['progress']['epoch']} of {self.cfg.train.epochs}; it cannot continue "
                                 "training: rerun with --force (get_run(..., force=True)) to train from scratch")
        else:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.progress = Progress(**ckpt["progress"])
        rank = self.dist.rank
        if ckpt.get("world_size", 1) != self.dist.world_size:
            log.warning("%s was written by %d process(es), resuming with %d: the data order and RNG "
                        "streams will differ from an uninterrupted run", path, ckpt.get("world_size", 1),
                        self.dist.world_size)
        rngs, samplers = ckpt.get("rng") or [], ckpt.get("sampler") or []
        self._pending_rng = rngs[rank] if rank < len(rngs) else None
        self._pending_sampler = samplers[rank] if rank < len(samplers) else None
        self.train_time_s = float(ckpt.get("train_time_s", 0.0))
        log.info("resumed from %s at epoch %d iteration %d (step %d)", path, self.progress.epoch,
                 self.progress.iteration, self.progress.global_step)
        return True

    def _config_diff(self) -> str:
        stored = self.run_dir / "config.yaml"
        if not stored.is_file():
            return ""
        import yaml

        def flat(d: dict, prefix: str = "") -> dict:
            out = {}
            for k, v in d.items():
                out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
            return out

        old, new = flat(yaml.safe_load(stored.read_text())), flat(to_dict(self.cfg))
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return "; changed keys: " + ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in keys) if keys else ""

    # ------------------------------------------------------------------ training
    def on_step_end(self, record: dict) -> None:
        """Hook called on every rank after each optimiser step with the step's log record."""

    def _train_step(self, batch: dict, epoch: int, iteration: int) -> dict:
        batch = _to_device(batch, self.device)
        autocast = torch.autocast(self.device.type, dtype=self.amp.dtype, enabled=self.amp.dtype is not None)
        with autocast:
            losses = self.train_module(batch)
        if not losses:
            raise ValueError(f"{type(self.model).__name__}.forward_train returned no loss component")
        values = {k: float(v.detach().float()) for k, v in losses.items()}
        step = self.progress.global_step + 1
        if self.cfg.train.nan_guard:
            if self.dist.distributed:  # every rank must stop together, or the others hang in backward
                ok = torch.tensor([all(math.isfinite(v) for v in values.values())], dtype=torch.int32,
                                  device=self.device)
                dist.all_reduce(ok, op=dist.ReduceOp.MIN)
                if not ok.item() and all(math.isfinite(v) for v in values.values()):
                    raise NonFiniteLossError(f"non-finite loss on another rank at step {step} "
                                             f"(epoch {epoch}, iteration {iteration})")
            check_finite(values, step, epoch, iteration)
        total = torch.stack([v.float() for v in losses.values()]).sum()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"step": step, "epoch": epoch, "iteration": iteration,
                "lr": self._logged_lr(), "losses": values, "total": sum(values.values())}

    def _logged_lr(self) -> float:
        """The learning rate a step logs: of the parameter group the model names as the one it trains
        now (``model.logged_lr_group()``; CLIP-ReID's stage 1 trains only its ``prompt`` group), else of
        the first group."""
        pick = getattr(self.model, "logged_lr_group", None)
        name = pick() if pick is not None else None
        for group in self.optimizer.param_groups:
            if name is not None and group.get("name") == name:
                return group["lr"]
        return self.optimizer.param_groups[0]["lr"]

    def _truncate_log(self) -> None:
        """Drop log lines of steps after the checkpoint (they are recomputed after a resume)."""
        path = self.run_dir / LOG_NAME
        if not path.is_file():
            return
        keep = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= self.progress.global_step]
        atomic_write_text(path, "".join(line + "\n" for line in keep))

    def _epoch_iterator(self, epoch: int) -> Iterator:
        """The loader iterator of ``epoch`` positioned at ``self.progress.iteration``."""
        start = self.progress.iteration
        sampler = self.batch_sampler
        if start == 0 and self._pending_rng is not None:  # checkpoint taken before this point
            set_rng_state(self._pending_rng)
            self._pending_rng = None
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        seeked = False
        if start > 0 and self._pending_sampler is not None and hasattr(sampler, "load_state_dict"):
            sampler.load_state_dict(self._pending_sampler)
            seeked = True
        self._pending_sampler = None
        it = iter(self.train_loader)
        if start > 0 and not seeked:  # no sampler state: replay the epoch's first batches
            log.warning("batch sampler cannot be positioned; replaying %d batches", start)
            for _ in range(start):
                next(it)
        if self._pending_rng is not None:  # checkpoint taken inside the epoch, after this point
            set_rng_state(self._pending_rng)
            self._pending_rng = None
        return it

    def train(self) -> None:
        """Run the remaining steps from ``self.progress`` to the end of the last epoch."""
        tcfg = self.cfg.train
        epochs, iters = tcfg.epochs, tcfg.iters_per_epoch
        main = self.dist.is_main
        if main:
            self._truncate_log()
        log_file = open(self.run_dir / LOG_NAME, "a") if main else None
        # a bar on a terminal; headless (papermill, CI, nohup) a log line every $REPROLIB_PROGRESS_EVERY s
        # with the step, loss and ETA of the whole run (reprolib.utils.progress)
        bar = ProgressLog(epochs * iters, f"train {self.cfg.name}", initial=self.progress.epoch * iters
                          + self.progress.iteration, logger=log, enabled=main)
        # a model that ignores some steps' batches (CLIP-ReID's stage 1 trains on its feature cache)
        # says so: those batches are not loaded. The items' randomness is drawn per item from its own
        # seed, so skipping them changes nothing else.
        needs_batch = getattr(self.model, "needs_train_batch", None)
        try:
            while self.progress.epoch < epochs:
                epoch = self.progress.epoch
                self.scheduler.step(epoch)
                if self.progress.iteration == 0 and hasattr(self.model, "on_epoch_start"):
                    rng = get_rng_state()  # the hook must not shift training randomness (resume)
                    self.model.on_epoch_start(epoch, self)  # its state lives in buffers (last.pt)
                    set_rng_state(rng)
                it = self._epoch_iterator(epoch)
                self.model.train()
                t0 = time.perf_counter()
                for i in range(self.progress.iteration, iters):
                    if needs_batch is not None and not needs_batch():
                        batch = {}
                    else:
                        try:
                            batch = next(it)
                        except StopIteration:  # a sampler shorter than iters_per_epoch restarts (IterLoader)
                            it = iter(self.train_loader)
                            batch = next(it)
                    record = self._train_step(batch, epoch, i)
                    self.progress = Progress(epoch, i + 1, self.progress.global_step + 1)
                    if log_file is not None:
                        log_file.write(json.dumps(record) + "\n")
                        log_file.flush()
                    if main and tcfg.log_every > 0 and record["step"] % tcfg.log_every == 0:
                        log.info("step %d epoch %d lr %.3g total %.4f %s", record["step"], epoch, record["lr"],
                                 record["total"], " ".join(f"{k} {v:.4f}" for k, v in record["losses"].items()))
                    bar.update(1, epoch=f"{epoch + 1}/{epochs}", loss=record["total"])
                    self.on_step_end(record)
                    if tcfg.ckpt_every_iters > 0 and (i + 1) % tcfg.ckpt_every_iters == 0 and i + 1 < iters:
                        self.train_time_s += time.perf_counter() - t0
                        t0 = time.perf_counter()
                        self.save_checkpoint()
                self.train_time_s += time.perf_counter() - t0
                self.progress = Progress(epoch + 1, 0, self.progress.global_step)
                if tcfg.eval_every > 0 and (epoch + 1) % tcfg.eval_every == 0 and epoch + 1 < epochs:
                    metrics = self.evaluate()
                    if log_file is not None:
                        log_file.write(json.dumps({"step": self.progress.global_step, "epoch": epoch,
                                                   "eval": metrics}) + "\n")
                        log_file.flush()
                self.save_checkpoint()
            broadcast_buffers(self.model)  # replicas identical (BN statistics are per rank)
        finally:
            bar.close()
            if log_file is not None:
                log_file.close()

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, dict]:
        """Evaluate on rank 0 and share the result with every rank.

        The global RNG states are restored afterwards, so evaluating never changes training.

        Returns:
            ``{direction: EvalResult.to_dict()}``.
        """
        metrics: dict = {}
        if self.dist.is_main:
            rng = get_rng_state()
            was_training = self.model.training
            try:
                if self._eval is None:
                    self._eval = eval_setup(self.cfg, self.dataset)
                eval_cfg, eval_dataset = self._eval
                metrics = evaluate_model(self.model, eval_dataset, eval_cfg, self.device, self.amp.dtype)
            finally:
                set_rng_state(rng)
                self.model.train(was_training)
        return broadcast_object(metrics)

    def fit(self) -> dict[str, Any]:
        """Resume if ``run_dir/last.pt`` exists, train to the end, evaluate.

        Returns:
            ``{"eval": {direction: ...}, "train_time_s", "eval_time_s", "num_processes",
            "global_step", "epochs", "seed", "device"}``.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resumed = self.resume()
        if self.dist.is_main:
            write_provenance(self.run_dir, self.cfg, world_size=self.dist.world_size,
                             extra={"config_hash": self.config_hash, "resumed_from_step":
                                    self.progress.global_step if resumed else None})
        barrier()
        self.train()
        t0 = time.perf_counter()
        metrics = self.evaluate()
        return {
            "eval": metrics,
            "train_time_s": self.train_time_s,
            "eval_time_s": time.perf_counter() - t0,
            "num_processes": self.dist.world_size,
            "global_step": self.progress.global_step,
            "epochs": self.cfg.train.epochs,
            "seed": self.cfg.seed,
            "device": str(self.device),
            "config_hash": self.config_hash,
        }


# ---------------------------------------------------------------------- entry points
def train_experiment(cfg: Any, run_dir: str | os.PathLike, trainer_cls: type[Trainer] = Trainer) -> dict[str, Any]:
    """Train (or resume) ``cfg`` in ``run_dir``, evaluate, write ``metrics.json`` atomically.

    Works as a single process or under ``torchrun`` (only rank 0 writes files).

    Args:
        cfg: the resolved ``ExperimentConfig``.
        run_dir: the run directory; an existing ``last.pt`` there is resumed.
        trainer_cls: a :class:`Trainer` subclass (e.g. one overriding :meth:`Trainer.on_step_end`).

    Returns:
        The dict written to ``metrics.json`` (see :meth:`Trainer.fit`).
    """
    owns_group = not (dist.is_available() and dist.is_initialized())
    try:
        trainer = trainer_cls(cfg, run_dir)
        result = trainer.fit()
        if trainer.dist.is_main:
            atomic_write_json(Path(run_dir) / METRICS_NAME, result)
            finish_checkpoint(trainer.checkpoint_path)  # the optimiser state is of no use any more
        barrier()
    finally:
        if owns_group:
            cleanup_distributed()
    return result


def load_trained(run_dir: str | os.PathLike, device: str = "auto") -> tuple[Any, Any, nn.Module, torch.device]:
    """Rebuild a run's dataset and model from its ``config.yaml`` and weights.

    Uses ``run_dir/last.pt`` if present, else ``run_dir/model.pt`` (a bare state dict).

    Returns:
        ``(cfg, dataset, model, device)`` with the model in eval mode on ``device``.

    Raises:
        FileNotFoundError: when the config or both weight files are missing (checkpoints are
            never committed: re-train the run through the run store to get them back).
    """
    from reprolib.data.datasets import build_dataset

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: no config.yaml; is {run_dir} a run directory?")
    cfg = load_config(str(cfg_path))
    weights = next((p for p in (run_dir / CHECKPOINT_NAME, run_dir / "model.pt") if p.is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{run_dir}: neither {CHECKPOINT_NAME} nor model.pt exists (checkpoints are not "
                                "committed; ask the run store with force=True to retrain it)")
    dev = resolve_device(device if device != "auto" else cfg.device)
    configure_determinism(dev, cfg.train.deterministic)
    seed_everything(cfg.seed)
    dataset = build_dataset(cfg.data)
    state = load_checkpoint(weights, map_location=dev)["model"]
    quiet = _DropRandomInitWarning()
    loggers = [logging.getLogger(n) for n in ("reprolib.models.weights", "reprolib.models.cmft.resnet")]
    for lg in loggers:
        lg.addFilter(quiet)
    try:
        model = build_model(checkpoint_architecture(cfg), dataset).to(dev)
    finally:
        for lg in loggers:
            lg.removeFilter(quiet)
    model.load_state_dict(state)  # strict: every parameter and buffer comes from the checkpoint
    log.info("%s: every weight loaded from %s (the pretrained backbone file is not needed)", run_dir.name,
             weights.name)
    return cfg, dataset, model.eval(), dev


class _DropRandomInitWarning(logging.Filter):
    """Hides the "RANDOMLY INITIALISED" warning of a backbone whose weights come from a checkpoint."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "RANDOMLY INITIALISED" not in record.getMessage()


def checkpoint_architecture(cfg: Any) -> Any:
    """``cfg`` with the backbone built without its pretrained weights: a run's checkpoint holds every
    weight (loaded strictly), so re-evaluating it must not need the pretrained CLIP or ResNet-50 file
    again. The run's own ``config.yaml`` keeps what it was trained from."""
    backbone = replace(cfg.model.backbone, pretrained="none", weights_path="")
    return replace(cfg, model=replace(cfg.model, backbone=backbone))


def evaluate_run(run_dir: str | os.PathLike, device: str = "auto") -> dict[str, dict]:
    """Re-evaluate a finished or interrupted run from its ``config.yaml`` and weights.

    Returns:
        ``{direction: EvalResult.to_dict()}``.
    """
    cfg, dataset, model, dev = load_trained(run_dir, device)
    eval_cfg, eval_dataset = eval_setup(cfg, dataset)
    return evaluate_model(model, eval_dataset, eval_cfg, dev, resolve_amp(cfg.train.amp, dev).dtype)
