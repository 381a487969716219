"""``make rehearse``: render every notebook as a rehearsal of the paper profile, report what it cost.

:func:`rehearse_notebooks` renders the quickstart and the 32 table/figure notebooks under the paper
profile on stand-ins (:mod:`reprolib.experiments.rehearsal`), each in its own ``python -m reprolib
notebook run NAME --profile paper --rehearsal`` process, ``jobs`` at a time with the CPU's cores
shared between them (``OMP_NUM_THREADS`` = cores // jobs). Two notebooks that need the same run
never train it twice: the second waits on the run store's lock and then loads it. After the notebooks
come the phases no notebook runs (:data:`PHASES`): a 2-process DDP launch and a kill-and-resume.

A failure does not stop the others: every notebook is tried, its output goes to
``results/rehearsal/logs/<notebook>.log`` (the failed render is kept as ``<stem>.FAILED.ipynb``;
every ``$REPROLIB_PROGRESS_EVERY`` seconds, default 60, one line per running render shows its row,
step, loss and ETA from that log),
and the end prints one line per notebook (status, wall time) and writes
``results/rehearsal/report.json``. The exit status is non-zero if any notebook failed.

Why processes and not threads: papermill's kernels are processes anyway, and on a 2-core machine
two renders at one thread each finish sooner than one at two threads (a ViT-B/16 step at paper
resolution keeps only about 1.3 cores busy).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

from reprolib.utils.progress import format_duration, progress_every

__all__ = ["Outcome", "PHASES", "rehearsal_notebooks", "rehearse_notebooks", "latest_progress", "main"]

log = logging.getLogger(__name__)

#: What ``make rehearse`` renders besides the table/figure notebooks: the quickstart, and a released
#: checkpoint evaluated beside the paper (on a stand-in written in the official format).
EXTRA = ("quickstart", "eval_released")
#: The phases no notebook runs, checked after the notebooks (:mod:`reprolib.experiments.rehearsal_phases`):
#: a 2-process DDP launch and a kill-and-resume, on CMFT's RegDB config (ResNet-50 streams on still
#: images, the cheapest paper config; a ViT-B/16 row needs two 6-9 GB processes).
PHASES = (("ddp", "cmft_regdb"), ("resume", "cmft_regdb"))


@dataclass
class Outcome:
    """How one notebook's rehearsal ended."""

    notebook: str
    ok: bool
    seconds: float
    log: str  # the render's log file, relative to the results folder
    error: str = ""  # the last line of the log when it failed


def rehearsal_notebooks(paper: Optional[str] = None) -> list[str]:
    """The notebooks ``make rehearse`` renders: the quickstart, then every table/figure notebook
    (``paper`` selects one paper's and drops the quickstart)."""
    from reprolib.workbook.runner import discover

    tables = [nb.key for nb in discover() if nb.paper and (paper is None or nb.paper == paper)]
    return tables if paper else [*EXTRA, *tables]


def _results() -> Path:
    from reprolib.workbook.compare import results_dir

    return results_dir("rehearsal")


def _render(name: str, device: str, threads: int, log_dir: Path) -> Outcome:
    """Render ``name`` in a child process; its whole output goes to ``log_dir/<name>.log``."""
    return _child(name, ["notebook", "run", name, "--profile", "paper", "--rehearsal", "--device", device,
                         "--no-progress"], threads, log_dir)


def _child(name: str, args: list[str], threads: int, log_dir: Path) -> Outcome:
    """``python -m reprolib ARGS`` in a child process at ``threads`` threads, logged to ``log_dir/<name>.log``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log_file = log_dir / f"{name}.log"
    cmd = [sys.executable, "-m", "reprolib", *args]
    start = time.perf_counter()
    with open(log_file, "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    seconds = time.perf_counter() - start
    error = ""
    if rc != 0:
        lines = [ln.strip() for ln in log_file.read_text(errors="replace").splitlines() if ln.strip()]
        error = lines[-1] if lines else f"exit status {rc}"
        if "DeadKernelError" in error or "Kernel died" in error:  # the kernel was killed, mostly by the OOM killer
            error += (f" - most likely out of memory (a ViT-B/16 rehearsal run peaks at 6-9 GB of host memory); "
                      f"rerun with fewer notebooks at once (--jobs 1, make rehearse JOBS=1)")
    return Outcome(name, rc == 0, seconds, str(log_file.relative_to(log_dir.parent)), error)


#: Loggers whose lines say where a render is: the row being run, the training step, a pass over the data.
_PROGRESS = re.compile(r"(reprolib\.workbook\.targets|reprolib\.engine\.trainer|reprolib\.models[\w.]*): "
                       r"(?P<text>.*(row \d+/\d+|eta |done in).*)$")


def latest_progress(log_file: Path, tail_bytes: int = 16384) -> str:
    """Where a render stands, from the end of its log: ``row i/n ... | <last progress line>`` ("" if none yet)."""
    try:
        with open(log_file, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - tail_bytes))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    row = step = ""
    for line in lines:
        m = _PROGRESS.search(line)
        if not m:
            continue
        if "row " in m["text"] and "targets" in m[1]:
            row, step = m["text"], ""
        else:
            step = m["text"]
    return " | ".join(t for t in (row, step) if t)


def _watch(running: dict[str, Path], stop: threading.Event, every: float) -> None:
    """Every ``every`` seconds, one log line per running render with :func:`latest_progress` (the
    terminal that ran ``make rehearse`` shows the row, step, loss and ETA of each)."""
    while not stop.wait(every):
        for name, log_file in list(running.items()):
            where = latest_progress(log_file)
            if where:
                log.info("  %-14s %s", name, where)


def rehearse_notebooks(names: Sequence[str], jobs: int = 1, device: str = "auto",
                       threads: Optional[int] = None, phases: Sequence[tuple[str, str]] = ()) -> list[Outcome]:
    """Render ``names`` as rehearsals, ``jobs`` at a time; every one is tried.

    Args:
        names: notebook keys (:func:`rehearsal_notebooks` for all).
        jobs: notebooks rendered at once.
        device: ``cpu`` | ``cuda`` | ``auto`` (a rehearsal's ``auto`` is the GPU if there is one).
        threads: torch threads per render (default: the CPU's cores // ``jobs``, at least 1).
        phases: ``(check, config)`` pairs of the multi-process phases run after the notebooks, one at a
            time (:data:`PHASES`: ``rehearse ddp`` and ``rehearse resume``).

    Returns:
        One :class:`Outcome` per notebook, in the order of ``names``; ``report.json`` beside the
        rendered notebooks records them with the total wall time.
    """
    from reprolib.experiments.rehearsal import prepare
    from reprolib.utils.io import atomic_write_json

    prepare()  # once, before the renders start in parallel
    jobs = max(1, int(jobs))
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    out = _results()
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log.info("rehearsing %d notebook(s), %d at a time, %d thread(s) each; logs in %s", len(names), jobs, threads,
             log_dir)
    start = time.perf_counter()
    done: dict[str, Outcome] = {}

    running: dict[str, Path] = {}

    def one(name: str) -> Outcome:
        log.info("started  %s", name)
        running[name] = log_dir / f"{name}.log"
        outcome = _render(name, device, threads, log_dir)
        running.pop(name, None)
        done[name] = outcome
        elapsed = format_duration(time.perf_counter() - start)
        log.info("[%d/%d] %-14s %-6s %s  (elapsed %s)%s", len(done), len(names), name,
                 "ok" if outcome.ok else "FAILED", format_duration(outcome.seconds), elapsed,
                 f"\n    {outcome.error}" if outcome.error else "")
        return outcome

    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(running, stop, progress_every()), daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            outcomes = list(pool.map(one, names))
    finally:
        stop.set()
    for check, config in phases:  # each uses the whole machine (two processes, or two runs side by side)
        log.info("started  rehearse %s %s", check, config)
        outcome = _child(f"{check}-{config}", ["rehearse", check, config], 1, log_dir)
        outcomes.append(outcome)
        log.info("rehearse %s %s: %s in %s%s", check, config, "ok" if outcome.ok else "FAILED",
                 format_duration(outcome.seconds), f"\n    {outcome.error}" if outcome.error else "")
    total = time.perf_counter() - start
    atomic_write_json(out / "report.json", {
        "jobs": jobs, "threads_per_job": threads, "device": device, "cpu_count": os.cpu_count(),
        "wall_seconds": round(total, 1), "failed": [o.notebook for o in outcomes if not o.ok],
        "notebooks": [{**asdict(o), "seconds": round(o.seconds, 1)} for o in outcomes]})
    return outcomes


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m reprolib rehearse notebooks [NAME ...] [--paper P] [--jobs N] [--device D]``."""
    p = argparse.ArgumentParser(prog="reprolib rehearse notebooks",
                                description="render notebooks as rehearsals of the paper profile (docs/rehearsal.md)")
    p.add_argument("names", nargs="*", help="notebook keys (default: the quickstart and every table/figure notebook)")
    p.add_argument("--paper", choices=("xreid", "vld", "cmft"), default=None, help="only this paper's notebooks")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "2") or 2),
                   help="notebooks rendered at once, the cores shared between them (default 2, $JOBS)")
    p.add_argument("--device", default="auto", help="auto (the GPU if there is one, else cpu) | cpu | cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per render (default: the cores // --jobs; fewer leaves cores to other work)")
    p.add_argument("--no-phases", dest="phases", action="store_false",
                   help="skip the DDP and resume checks that follow a rehearsal of every notebook")
    a = p.parse_args(argv)
    names = list(a.names) or rehearsal_notebooks(a.paper)
    everything = not a.names and not a.paper
    outcomes = rehearse_notebooks(names, jobs=a.jobs, device=a.device, threads=a.threads, phases=PHASES if everything and a.phases else ())
    report = _results() / "report.json"
    total = json.loads(report.read_text())["wall_seconds"]
    print(f"\n{'notebook':<16} {'status':<7} {'wall':>7}")
    for o in outcomes:
        print(f"{o.notebook:<16} {'ok' if o.ok else 'FAILED':<7} {format_duration(o.seconds):>7}"
              + (f"   {o.log}: {o.error}" if not o.ok else ""))
    failed = [o for o in outcomes if not o.ok]
    print(f"\n{len(outcomes) - len(failed)}/{len(outcomes)} rendered in {format_duration(total)} "
          f"({a.jobs} at a time); report: {report}")
    return 1 if failed else 0
