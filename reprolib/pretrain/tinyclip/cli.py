"""``python -m reprolib tinyclip {train,eval}``.

* ``train`` pretrains TinyCLIP (:mod:`.train`), writes ``reprolib/models/weights/tinyclip.pt``
  and its record ``tinyclip.json`` (SHA-256, size, command, seed, time, hardware, eval numbers).
* ``eval`` loads the weights through the backbone factory (checksum verified) and prints the
  zero-shot attribute and retrieval numbers per modality as JSON (:mod:`.evaluate`).
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main", "load_tinyclip"]

logger = logging.getLogger(__name__)


def load_tinyclip(weights_path: Optional[str] = None, pretrained: str = "tinyclip"):
    """``(model, tokenizer)`` of TinyCLIP through :func:`reprolib.models.weights.create_clip_model`.

    Args:
        weights_path: another weights file (default: the shipped, checksum-verified one).
        pretrained: ``"tinyclip"`` or ``"none"`` (random init, for reference numbers).
    """
    from reprolib.models.weights import TINYCLIP_ARCH, configure_hub_env, create_clip_model

    configure_hub_env()
    import open_clip

    model, _ = create_clip_model(TINYCLIP_ARCH, pretrained, weights_path)
    return model.eval(), open_clip.get_tokenizer(TINYCLIP_ARCH)


def _train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import torch

    from reprolib.models.weights import TINYCLIP_TRAIN_COMMAND
    from reprolib.pretrain.loop import write_record

    from .evaluate import evaluate_tinyclip
    from .train import TrainConfig, train_tinyclip

    cfg = TrainConfig(seed=args.seed, steps=args.steps, num_ids=args.num_ids, threads=args.threads)
    command = " ".join([TINYCLIP_TRAIN_COMMAND, *map(shlex.quote, argv[1:])])  # argv[0] is "train"
    record = train_tinyclip(cfg, Path(args.out), command=command)
    t0 = time.perf_counter()
    model, tokenizer = load_tinyclip(weights_path=args.out)
    with torch.no_grad():
        report = evaluate_tinyclip(model, tokenizer, num_ids=args.eval_ids, views_per_id=args.eval_views)
    record["eval_seconds"] = round(time.perf_counter() - t0, 1)
    path = write_record(record, Path(args.out), report)
    logger.info("wrote %s and %s", args.out, path)
    sys.stdout.write(json.dumps({k: v for k, v in record.items() if k != "config"}, indent=2) + "\n")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import torch

    from .evaluate import evaluate_tinyclip

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, tokenizer = load_tinyclip(args.weights or None, "none" if args.random_init else "tinyclip")
    with torch.no_grad():
        report = evaluate_tinyclip(model, tokenizer, num_ids=args.eval_ids, views_per_id=args.eval_views,
                                   seed=args.seed)
    report["weights"] = "random init" if args.random_init else (args.weights or "shipped tinyclip.pt")
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m reprolib tinyclip``; returns the exit status."""
    from reprolib.models.weights import TINYCLIP_WEIGHTS, WeightsChecksumError, WeightsNotFoundError

    from .train import TrainConfig

    argv = list(sys.argv[1:] if argv is None else argv)
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m reprolib tinyclip",
                                     description="Pretrain or evaluate TinyCLIP, the miniature world's CLIP.")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="pretrain on visible frames and write the shipped weights")
    train.add_argument("--out", default=str(TINYCLIP_WEIGHTS), help="weights file (default: %(default)s)")
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--steps", type=int, default=defaults.steps)
    train.add_argument("--num-ids", type=int, default=defaults.num_ids)
    ev = sub.add_parser("eval", help="zero-shot attributes and retrieval per modality (JSON)")
    ev.add_argument("--weights", default="", help="weights file (default: the shipped tinyclip.pt)")
    ev.add_argument("--random-init", action="store_true", help="evaluate a randomly initialised model")
    ev.add_argument("--seed", type=int, default=0)
    for p in (train, ev):
        p.add_argument("--threads", type=int, default=defaults.threads)
        p.add_argument("--eval-ids", type=int, default=200, help="held-out identities")
        p.add_argument("--eval-views", type=int, default=4, help="frames per held-out identity and modality")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _train(args, argv) if args.command == "train" else _eval(args)
    except (WeightsNotFoundError, WeightsChecksumError) as e:
        sys.stderr.write(f"tinyclip {args.command} failed: {e}\n")
        return 1
