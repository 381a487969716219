"""Command-line interface: ``python -m reprolib <command> ...``.

Commands (each one line in ``python -m reprolib --help``)::

    data check {hitsz-vcm|bupt|sysu-mm01|regdb} ROOT   validate a dataset tree, print a JSON summary
    data synth OUT --scale S --seed N    write the miniature world (SynthVCM) in a real format
    weights check                        report the CLIP / ResNet-50 weights the paper profile would load
    weights import FAMILY FILE           an official released checkpoint, audited, as an evaluated run directory
    train CONFIG [--profile P] [--set k=v ...]   train + evaluate; prints the run directory last
                                         (--rehearsal: the paper profile on stand-ins, docs/rehearsal.md)
    rehearse {prepare|train CONFIG|notebooks}   the rehearsal's stand-ins and worlds; one run; every notebook
    rehearse {ddp|resume} CONFIG         the rehearsal's multi-process phases: torchrun DDP; kill and resume
    eval RUN_DIR                         re-evaluate a run's checkpoint
    runs status [--profile P]            stored runs trained with other code; retraining cost
    plan NOTEBOOK|all [--order|--markdown]  runs, steps, FLOPs/step, hours and memory per notebook (--calibrate: time this device)
    bench {data|eval|text|train|check}   benchmarks (not tests)
    profile [CONFIG]                     parameters per module and FLOPs of a config's model
    notebook {run|list|generate}         render notebooks headless with papermill; list them; write them from specs
    tinyclip {train|eval}                pretrain / evaluate the miniature world's CLIP
    tinyresnet {train|eval}              pretrain / evaluate the miniature world's ImageNet ResNet (CMFT)

Heavy imports happen inside each command so that ``--help`` and ``data check`` stay fast.

Errors: an expected error prints one message on stderr (it names the file or config key, what
was expected and the fix) and exits with status 1; ``--debug`` anywhere on the command line
shows the traceback instead. Ctrl-C exits with status 130 (a training run keeps its last
checkpoint and resumes from it). A checkout moved or copied after ``make install`` is refused
with what to rerun (:mod:`reprolib.utils.install`).
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
    p.add_argument("--force", action="store_true",
                   help="train from scratch: discard the run's metrics, checkpoint and log first (recovers a "
                        "truncated metrics.json/last.pt or a checkpoint of another config)")
    p.add_argument("--rehearsal", action="store_true",
                   help="rehearse the paper profile on stand-ins (same as `rehearse train`; docs/rehearsal.md)")
    args = p.parse_args(argv)
    if args.rehearsal:
        if args.profile not in (None, "paper") or args.store or args.force:
            raise ValueError("--rehearsal rehearses the paper profile into results/rehearsal/runs; it takes "
                             "neither --profile smoke/embedded nor --store/--force")
        return _rehearse_train([args.config, *(f"--set={o}" for o in args.overrides)])
    from reprolib.experiments import get_run

    run = get_run(args.config, profile=args.profile, overrides=args.overrides, store=args.store,
                  force=args.force)
    for direction, m in run.metrics.get("eval", {}).items():
        log.info("%s: %s", direction, "  ".join(f"{k} {v:.2f}" for k, v in m.items() if isinstance(v, float)))
    print(run.path)
    return 0


def _rehearse_train(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="reprolib rehearse train",
                                description="Rehearse a paper config on stand-ins (docs/rehearsal.md).")
    p.add_argument("config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    from reprolib.workbook.session import Workbook

    wb = Workbook("paper", device=args.device, overrides=args.overrides, rehearsal=True)
    log.info("REHEARSAL of the paper profile: random stand-in weights, a paper-resolution miniature world, "
             "a truncated schedule; the numbers mean nothing")
    run = wb.run(args.config)
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
        "check": ("report the CLIP / ResNet-50 weights the paper profile would load",
                  _delegate("reprolib.models.cmft.resnet", "weights_main")),
        "import": ("map an official released checkpoint onto a family (strict audit) as an evaluated run",
                   _delegate("reprolib.experiments.official_import")),
    },
    "bench": {
        "data": ("training-loader throughput vs per-frame PIL + torchvision", _delegate("reprolib.bench.data")),
        "eval": ("fast evaluator vs the official per-query algorithm", _delegate("reprolib.bench.eval")),
        "text": ("VLD's text encoder: EOT-truncated vs full-context prompts", _delegate("reprolib.bench.text")),
        "train": ("training time per step of configs, measured side by side", _delegate("reprolib.bench.train")),
        "check": ("decode rate of `data check`; full HITSZ-VCM decode time extrapolated",
                  _delegate("reprolib.bench.check")),
    },
    "notebook": {
        "run": ("render a notebook headless with papermill", _delegate("reprolib.workbook.runner", "main_run")),
        "list": ("list the workbook's notebooks", _delegate("reprolib.workbook.runner", "main_list")),
        "generate": ("write notebooks/*.ipynb from the target specs (--check: exit 1 if stale)",
                     _delegate("reprolib.workbook.generate")),
    },
    "tinyclip": {
        "train": ("pretrain TinyCLIP on visible-only synthetic persons",
                  _delegate("reprolib.pretrain.tinyclip.cli", prefix=("train",))),
        "eval": ("zero-shot evidence of TinyCLIP per modality", _delegate("reprolib.pretrain.tinyclip.cli", prefix=("eval",))),
    },
    "tinyresnet": {
        "train": ("pretrain TinyResNet (CMFT's embedded streams) on visible-only synthetic persons",
                  _delegate("reprolib.pretrain.tinyresnet.cli", prefix=("train",))),
        "eval": ("held-out retrieval of TinyResNet per modality", _delegate("reprolib.pretrain.tinyresnet.cli", prefix=("eval",))),
    },
    "plan": {"": ("runs, steps, FLOPs per step and estimated time of a notebook or all (paper profile)",
                  _delegate("reprolib.workbook.plan"))},
    "profile": {"": ("parameters per module and FLOPs (both conventions) of a config's model",
                     _delegate("reprolib.experiments.profile_cli"))},
    "runs": {
        "status": ("stored runs trained with other code than the present, and what retraining costs",
                   _delegate("reprolib.experiments.status")),
    },
    "rehearse": {
        "prepare": ("write the rehearsal's stand-in weights and paper-resolution worlds (docs/rehearsal.md)",
                    _delegate("reprolib.experiments.rehearsal")),
        "train": ("rehearse one paper config on stand-ins into results/rehearsal/runs", _rehearse_train),
        "notebooks": ("render notebooks as rehearsals, JOBS at a time; a report of each one's status and wall time",
                      _delegate("reprolib.workbook.rehearse")),
        "ddp": ("rehearse one config as a 2-process torchrun launch on the CPU (gloo) and check it",
                _delegate("reprolib.experiments.rehearsal_phases", "main_ddp")),
        "resume": ("rehearse one config killed after its first checkpoint, resume it, compare bit for bit",
                   _delegate("reprolib.experiments.rehearsal_phases", "main_resume")),
    },
    "train": {"": ("train and evaluate an experiment config", _train)},
    "eval": {"": ("re-evaluate a run directory", _eval)},
}


def _usage() -> str:
    lines = ["usage: python -m reprolib <command> [<subcommand>] [options]", "", "commands:"]
    for group, subs in COMMANDS.items():
        for sub, (text, _) in subs.items():
            lines.append(f"  {(group + ' ' + sub).strip():<18} {text}")
    return "\n".join(lines)


#: Exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def _one_line(error: BaseException) -> str:
    """The message of an expected error, as the CLI prints it: the error's own text (it names the
    file or key, what was expected and the fix), prefixed by its kind when that adds information."""
    text = str(error).strip()
    if isinstance(error, KeyError) and len(error.args) == 1:  # KeyError quotes its argument
        text = str(error.args[0])
    if isinstance(error, OSError) and error.strerror:  # OSError(errno, strerror, filename): no "[Errno N]"
        named = error.filename is None or str(error.filename) in error.strerror
        text = error.strerror if named else f"{error.filename}: {error.strerror}"
    kind = type(error).__name__
    generic = ("ConfigError", "ValueError", "FileNotFoundError", "FileExistsError", "RuntimeError", "OSError",
               "WeightsNotFoundError", "WeightsFormatError", "WeightsChecksumError", "RunStoreError",
               "ImportAuditError", "OfficialFormatError", "PhaseCheckError")
    return text if (kind in generic and text) else f"{kind}: {text or '(no message)'}"


def _check_install(group: str) -> Optional[str]:
    """A moved or copied checkout: the message to refuse with, or ``None`` (only warned about)."""
    from reprolib.utils.install import install_problems

    refuse = {"venv"} | ({"kernel"} if group == "notebook" else set())
    for kind, message in install_problems():
        if kind in refuse:
            return message
        log.warning("%s", message)
    return None


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``python -m reprolib`` and the ``reprolib`` console script.

    Expected errors (a bad config value, a missing or unreadable file, a refused path) are printed
    as one message on stderr, exit status 1; ``--debug`` (anywhere on the line) shows the traceback
    instead. Ctrl-C stops with exit status 130, keeping the last checkpoint of a training run.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    group = argv.pop(0)
    if group not in COMMANDS:
        print(f"unknown command '{group}'\n\n{_usage()}", file=sys.stderr)
        return 2
    subs = COMMANDS[group]
    if "" not in subs and (not argv or argv[0] not in subs):
        print(f"'{group}' needs one of: {', '.join(subs)}\n\n{_usage()}", file=sys.stderr)
        return 2
    command = subs[""][1] if "" in subs else subs[argv.pop(0)][1]
    try:
        refused = _check_install(group)
        if refused:
            print(f"error: {refused}", file=sys.stderr)
            return 2
        return command(argv)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted (Ctrl-C): stopped cleanly; a training run keeps its last checkpoint and resumes "
              "from it when the same command is run again", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - one message, the traceback only with --debug
        if debug:
            raise
        print(f"error: {_one_line(e)} (--debug shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
