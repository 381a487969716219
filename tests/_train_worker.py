"""Training worker launched by the engine tests (and importable for its toy components).

Two pipelines:

* ``--pipeline real``: the smoke profile of the ``baseline`` config on a synthetic
  HITSZ-VCM world (``--data-root``), through :func:`reprolib.engine.train_experiment`;
* ``--pipeline toy``: a tiny regression model and loader (below) with the same sampler
  protocol as the data module (``set_epoch``/``state_dict``/``load_state_dict``, rank
  slicing), used where exact arithmetic comparisons are needed.

``--kill-at-step N`` makes the worker announce (``run_dir/killme``) and then wait to be killed
right after optimiser step N; the resume test SIGKILLs it there. After training each rank
writes ``run_dir/rank<r>.sha256`` (the hash of its final weights) and, for the toy pipeline,
``run_dir/weights_rank<r>.pt``.

Usage::

    python tests/_train_worker.py --pipeline real --run-dir RUN --data-root ROOT [--set k=v ...]
    torchrun --standalone --nproc_per_node=2 tests/_train_worker.py --pipeline toy --run-dir RUN
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reprolib.config import ExperimentConfig, load_config  # noqa: E402
from reprolib.engine import Trainer, train_experiment  # noqa: E402
from reprolib.engine.checkpoint import unwrap_model  # noqa: E402

TOY_DIM = 8


# ----------------------------------------------------------------------------- toy pipeline
class ToyDataset(Dataset):
    """Item ``i``: a fixed input vector and target, plus input noise drawn from (seed, i)."""

    def __init__(self, n: int = 64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, TOY_DIM, generator=g)  # (N, D)
        self.y = self.x @ torch.randn(TOY_DIM, 2, generator=g)  # (N, 2)
        self.num_train_pids, self.num_cameras = 2, 1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, noise_seed = key
        noise = 0.01 * torch.randn(TOY_DIM, generator=torch.Generator().manual_seed(noise_seed))
        return {"x": self.x[index] + noise, "y": self.y[index]}


class ToyBatchSampler:
    """Global batches drawn from (seed, epoch); rank r takes the r-th contiguous slice.

    Its protocol mirrors the data module's identity samplers: ``set_epoch``, ``state_dict``
    (the number of batches already yielded in the epoch) and ``load_state_dict``.
    """

    def __init__(self, n: int, global_batch: int, iters: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        assert global_batch % world_size == 0
        self.n, self.global_batch, self.iters, self.seed = n, global_batch, iters, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0

    def state_dict(self, consumed: Optional[int] = None) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position if consumed is None else consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = state["epoch"], state["position"]

    def __len__(self) -> int:
        return self.iters

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = [torch.randint(self.n, (self.global_batch,), generator=g).tolist() for _ in range(self.iters)]
        per_rank = self.global_batch // self.world_size
        while self.position < self.iters:
            i = self.position
            self.position += 1
            batch = order[i][self.rank * per_rank:(self.rank + 1) * per_rank]
            base = (self.seed * 1000 + self.epoch) * 10_000 + i * self.global_batch + self.rank * per_rank
            yield [(idx, base + j) for j, idx in enumerate(batch)]


class ToyModel(nn.Module):
    """Linear regression with dropout (model-side randomness) and two parameter groups."""

    def __init__(self, dropout: float = 0.2, nan_at_call: Optional[int] = None) -> None:
        super().__init__()
        self.body = nn.Linear(TOY_DIM, TOY_DIM)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(TOY_DIM, 2)
        self.nan_at_call, self.calls = nan_at_call, 0

    def forward_train(self, batch: dict) -> dict[str, torch.Tensor]:
        self.calls += 1
        pred = self.head(self.drop(torch.relu(self.body(batch["x"]))))  # (B, 2)
        mse = ((pred - batch["y"]) ** 2).mean()
        reg = 1e-3 * self.head.weight.pow(2).sum()
        if self.calls == self.nan_at_call:
            reg = reg * float("nan")
        return {"mse": mse, "reg": reg}

    def extract(self, x: torch.Tensor, camid: Any = None, modality: Any = None) -> torch.Tensor:
        return self.body(x.flatten(1)[:, :TOY_DIM])  # (B, D)

    def param_groups(self, optim_cfg: Any) -> list[dict]:
        return [{"params": list(self.body.parameters()), "lr": optim_cfg.lr, "name": "body"},
                {"params": list(self.head.parameters()), "lr": optim_cfg.lr * optim_cfg.head_lr_mult, "name": "head"}]


def toy_config(**train: Any) -> ExperimentConfig:
    """A CPU config for the toy pipeline (SGD, warmup + multistep, fp32)."""
    cfg = ExperimentConfig(device="cpu", seed=3)
    cfg.optim.name, cfg.optim.lr, cfg.optim.head_lr_mult, cfg.optim.weight_decay = "sgd", 0.05, 2.0, 0.0
    cfg.sched.name, cfg.sched.warmup_epochs, cfg.sched.milestones = "warmup_multistep", 1, (2,)
    cfg.train.epochs, cfg.train.iters_per_epoch, cfg.train.amp = 3, 4, "off"
    cfg.data.num_ids = 8  # global batch
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


class ToyTrainer(Trainer):
    """The real :class:`Trainer` on the toy dataset, model and loader; evaluation is the MSE."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, model: Optional[nn.Module] = None) -> None:
        super().__init__(cfg, run_dir, dataset=ToyDataset(seed=cfg.seed), model=model)

    def _build_model(self) -> nn.Module:
        return ToyModel(dropout=self.cfg.model.extra.get("dropout", 0.2))

    def _build_train_loader(self) -> DataLoader:
        sampler = ToyBatchSampler(len(self.dataset), self.cfg.data.num_ids, self.cfg.train.iters_per_epoch,
                                  self.cfg.seed, self.dist.rank, self.dist.world_size)
        return DataLoader(self.dataset, batch_sampler=sampler)

    @torch.no_grad()
    def evaluate(self) -> dict[str, dict]:
        self.model.eval()
        pred = self.model.head(torch.relu(self.model.body(self.dataset.x)))  # (N, 2)
        self.model.train()
        return {"toy": {"mse": float(((pred - self.dataset.y) ** 2).mean())}}


class _WorkerMixin:
    """Waits to be SIGKILLed after step ``kill_at_step``; records per-rank weights after ``fit``."""

    kill_at_step: Optional[int] = None

    def on_step_end(self, record: dict) -> None:
        if self.kill_at_step is not None and record["step"] == self.kill_at_step:
            (self.run_dir / "killme").write_text(str(record["step"]))
            time.sleep(600)  # the test kills us here
            raise SystemExit("was not killed")

    def fit(self) -> dict:
        out = super().fit()
        rank = self.dist.rank
        (self.run_dir / f"rank{rank}.sha256").write_text(state_hash(self.model))
        torch.save(unwrap_model(self.model).state_dict(), self.run_dir / f"weights_rank{rank}.pt")
        return out


class ToyWorker(_WorkerMixin, ToyTrainer):
    pass


class RealWorker(_WorkerMixin, Trainer):
    pass


def state_hash(model: nn.Module) -> str:
    """SHA-256 over the model's state dict (names and raw bytes)."""
    h = hashlib.sha256()
    for name, t in unwrap_model(model).state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pipeline", choices=("real", "toy"), required=True)
    p.add_argument("--run-dir", type=Path, required=True)
    p.add_argument("--data-root", default="")
    p.add_argument("--kill-at-step", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.2, help="toy model dropout")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="real pipeline: key=value")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)  # bitwise comparisons need the same thread count

    if args.pipeline == "toy":
        cfg, base = toy_config(), ToyWorker
        cfg.model.extra["dropout"] = args.dropout
    else:
        cfg = load_config("baseline", profile="smoke", overrides=[f"data.root={args.data_root}", "device=cpu",
                                                                    *args.overrides])
        base = RealWorker
    worker = type(base.__name__, (base,), {"kill_at_step": args.kill_at_step})
    train_experiment(cfg, args.run_dir, trainer_cls=worker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
