"""Command-line interface: ``python -m reprolib <command> ...``.

Commands (each one line in ``python -m reprolib --help``)::

    data check {hitsz-vcm|bupt|sysu-mm01|regdb} ROOT   validate a dataset tree, print a JSON summary
    data synth OUT --scale S --seed N    write the miniature world (SynthVCM) in a real format
    weights check                        report the CLIP weights the paper profile would load
    train CONFIG [--profile P] [--set k=v ...]   train + evaluate; prints the run directory last
    eval RUN_DIR                         re-evaluate a run's checkpoint
    bench {data|eval|text|train}         benchmarks (not tests)
    profile [CONFIG]                     parameters per module and FLOPs of a config's model
    notebook {run|list}                  render notebooks headless with papermill
    tinyclip {train|eval}                pretrain / evaluate the miniature world's CLIP
    tinyresnet {train|eval}              pretrain / evaluate the miniature world's ImageNet ResNet (CMFT)

Heavy imports happen inside each command so that ``--help`` and ``data check`` stay fast.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable, Optional

log = logging.getLogger("reprolib")


def _delegate(module: str, func: str = "main", prefix: tuple[str, ...] = ()) -> Callable[[list[str]], int]:
    """A command implemented by ``module.func(argv)`` (argument parsing lives beside the code);
    ``prefix`` is prepended to argv for modules that parse their own subcommand."""

    def run(argv: list[str]) -> int:
        import importlib

        return int(getattr(importlib.import_module(module), func)([*prefix, *argv]) or 0)

    return run


def _train(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="reprolib train", description="Train and evaluate one experiment.")
    p.add_argument("config", help="YAML config (path or name in reprolib/configs/)")
    p.add_argument("--profile", choices=["smoke", "embedded", "paper"], default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--store", default=None, help="run-store root (default: results/<profile>/runs)")
    p.add_argument("--force", action="store_true", help="retrain even if a finished run exists")
    args = p.parse_args(argv)
    from reprolib.experiments import get_run

    run = get_run(args.config, profile=args.profile, overrides=args.overrides, store=args.store,
                  force=args.force)
    for direction, m in run.metrics.get("eval", {}).items():
        log.info("%s: %s", direction, "  ".join(f"{k} {v:.2f}" for k, v in m.items() if isinstance(v, float)))
    print(run.path)
    return 0


def _eval(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="reprolib eval", description="Re-evaluate a run's checkpoint.")
    p.add_argument("run_dir")
    args = p.parse_args(argv)
    from reprolib.engine import evaluate_run

    print(json.dumps(evaluate_run(args.run_dir), indent=2))
    return 0


COMMANDS: dict[str, dict[str, tuple[str, Callable[[list[str]], int]]]] = {
    "data": {
        "check": ("validate a dataset root and print its JSON summary", _delegate("reprolib.data.check")),
        "synth": ("write the miniature world (SynthVCM)", _delegate("reprolib.data.synthetic")),
    },
    "weights": {
        "check": ("report the CLIP weights the paper profile would load", _delegate("reprolib.models.weights")),
    },
    "bench": {
        "data": ("training-loader throughput vs per-frame PIL + torchvision", _delegate("reprolib.bench.data")),
        "eval": ("fast evaluator vs the official per-query algorithm", _delegate("reprolib.bench.eval")),
        "text": ("VLD's text encoder: EOT-truncated vs full-context prompts", _delegate("reprolib.bench.text")),
        "train": ("training time per step of configs, measured side by side", _delegate("reprolib.bench.train")),
    },
    "notebook": {
        "run": ("render a notebook headless with papermill", _delegate("reprolib.notebooks", "main_run")),
        "list": ("list the workbook's notebooks", _delegate("reprolib.notebooks", "main_list")),
    },
    "tinyclip": {
        "train": ("pretrain TinyCLIP on visible-only synthetic persons",
                  _delegate("reprolib.tinyclip.cli", prefix=("train",))),
        "eval": ("zero-shot evidence of TinyCLIP per modality", _delegate("reprolib.tinyclip.cli", prefix=("eval",))),
    },
    "tinyresnet": {
        "train": ("pretrain TinyResNet (CMFT's embedded streams) on visible-only synthetic persons",
                  _delegate("reprolib.tinyresnet.cli", prefix=("train",))),
        "eval": ("held-out retrieval of TinyResNet per modality", _delegate("reprolib.tinyresnet.cli", prefix=("eval",))),
    },
    "profile": {"": ("parameters per module and FLOPs (both conventions) of a config's model",
                     _delegate("reprolib.profiler"))},
    "train": {"": ("train and evaluate an experiment config", _train)},
    "eval": {"": ("re-evaluate a run directory", _eval)},
}


def _usage() -> str:
    lines = ["usage: python -m reprolib <command> [<subcommand>] [options]", "", "commands:"]
    for group, subs in COMMANDS.items():
        for sub, (text, _) in subs.items():
            lines.append(f"  {(group + ' ' + sub).strip():<18} {text}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``python -m reprolib`` and the ``reprolib`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    group = argv.pop(0)
    if group not in COMMANDS:
        print(f"unknown command '{group}'\n\n{_usage()}", file=sys.stderr)
        return 2
    subs = COMMANDS[group]
    if "" in subs:
        return subs[""][1](argv)
    if not argv or argv[0] not in subs:
        print(f"'{group}' needs one of: {', '.join(subs)}\n\n{_usage()}", file=sys.stderr)
        return 2
    return subs[argv.pop(0)][1](argv)


if __name__ == "__main__":
    sys.exit(main())
