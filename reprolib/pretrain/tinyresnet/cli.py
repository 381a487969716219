"""``python -m reprolib tinyresnet {train,eval}``.

* ``train`` pretrains TinyResNet (:mod:`.train`), writes ``reprolib/models/weights/tinyresnet.pt``
  and its record ``tinyresnet.json`` (SHA-256, arch, command, seed, time, hardware, eval numbers
  beside a randomly initialised network's).
* ``eval`` loads the weights through CMFT's stream builder (checksum verified) and prints the
  held-out retrieval numbers per modality as JSON (:mod:`.evaluate`).
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["main"]

logger = logging.getLogger(__name__)


def _evaluate(arch: str, pretrained: str, weights_path: str, num_ids: int, views: int, seed: int) -> dict[str, Any]:
    import torch

    from reprolib.models.cmft.resnet import build_tsm_resnet

    from .evaluate import evaluate_tinyresnet

    torch.manual_seed(seed)
    stream = build_tsm_resnet(arch, pretrained, weights_path, last_stride=1, shift=False)
    return evaluate_tinyresnet(stream, num_ids=num_ids, views_per_id=views, seed=seed)


def _train(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from reprolib.models.cmft.resnet import TINYRESNET_TRAIN_COMMAND
    from reprolib.pretrain.loop import write_record

    from .train import TrainConfig, train_tinyresnet

    cfg = TrainConfig(seed=args.seed, steps=args.steps, num_ids=args.num_ids, threads=args.threads, arch=args.arch)
    command = " ".join([TINYRESNET_TRAIN_COMMAND, *map(shlex.quote, argv[1:])])  # argv[0] is "train"
    record = train_tinyresnet(cfg, Path(args.out), command=command)
    report = _evaluate(args.arch, "tinyresnet", args.out, args.eval_ids, args.eval_views, args.seed)
    report["random_init"] = _evaluate(args.arch, "none", "", args.eval_ids, args.eval_views, args.seed)["R@1"]
    path = write_record(record, Path(args.out), report)
    logger.info("wrote %s and %s", args.out, path)
    sys.stdout.write(json.dumps({k: v for k, v in record.items() if k != "config"} | {"eval": report}, indent=2) + "\n")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m reprolib tinyresnet``; returns the exit status."""
    import torch

    from reprolib.models.cmft.resnet import TINYRESNET_WEIGHTS
    from reprolib.models.weights import WeightsChecksumError, WeightsNotFoundError

    from .train import TrainConfig

    argv = list(sys.argv[1:] if argv is None else argv)
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m reprolib tinyresnet",
                                     description="Pretrain or evaluate TinyResNet, the miniature world's ImageNet "
                                                 "ResNet-50 (CMFT's embedded streams).")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="pretrain on visible frames and write the shipped weights")
    train.add_argument("--out", default=str(TINYRESNET_WEIGHTS), help="weights file (default: %(default)s)")
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--steps", type=int, default=defaults.steps)
    train.add_argument("--num-ids", type=int, default=defaults.num_ids)
    ev = sub.add_parser("eval", help="held-out retrieval R@1 per modality (JSON)")
    ev.add_argument("--weights", default="", help="weights file (default: the shipped tinyresnet.pt)")
    ev.add_argument("--random-init", action="store_true", help="evaluate a randomly initialised network")
    ev.add_argument("--seed", type=int, default=0)
    for p in (train, ev):
        p.add_argument("--arch", default=defaults.arch, help="resnet50-w<N> (default: %(default)s)")
        p.add_argument("--threads", type=int, default=defaults.threads)
        p.add_argument("--eval-ids", type=int, default=200, help="held-out identities")
        p.add_argument("--eval-views", type=int, default=4, help="frames per held-out identity and modality")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    try:
        if args.command == "train":
            return _train(args, argv)
        pretrained = "none" if args.random_init else "tinyresnet"
        report = _evaluate(args.arch, pretrained, args.weights, args.eval_ids, args.eval_views, args.seed)
        report["weights"] = "random init" if args.random_init else (args.weights or "shipped tinyresnet.pt")
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    except (WeightsNotFoundError, WeightsChecksumError, ValueError) as e:
        sys.stderr.write(f"tinyresnet {args.command} failed: {e}\n")
        return 1
