"""Rehearsal phases that need more than one process: DDP under ``torchrun`` and a killed-and-resumed run.

Both checks run a rehearsal row (:mod:`reprolib.experiments.rehearsal`: the paper config on stand-ins,
the paper-resolution miniature world, the truncated schedule) through the command a user runs,
``python -m reprolib rehearse train CONFIG``, in subprocesses, and check what the project promises:

* :func:`rehearse_ddp` launches it as ``torchrun --standalone --nproc_per_node=N -m reprolib rehearse
  train CONFIG --device cpu`` (gloo) and checks that every rank finished on the same run directory,
  that the store holds that one run, keyed and recorded with ``world_size`` N (``provenance.json``,
  ``metrics.json``, ``last.pt``, whose RNG and sampler states come from every rank), and that the
  training log holds each step once (rank 0 alone writes). The rehearsal batch is raised for this row
  (:func:`ddp_overrides`): at ``data.num_ids=2, data.num_pos=1`` a rank would get one clip per
  modality, and a BNNeck's ``BatchNorm1d`` cannot train on one sample. Equivalence with a
  single-process run is **not** checked: the project's DDP keeps BatchNorm statistics and triplet
  mining per process (:mod:`reprolib.engine.distributed`), and at the rehearsal batch (one identity
  per rank) that changes the whole update (measured on ``cmft_regdb``: cosine 0.00 between the two
  runs' weight updates). ``reference=True`` trains the single-process run at the same global batch
  anyway and reports the distance, with only the protocol (steps, query counts) checked.
* :func:`rehearse_resume` trains the row uninterrupted (the reference) and, at the same time (or
  after it: ``parallel=False``, ``--sequential``, half the peak memory), a second copy that is
  SIGKILLed as soon as its first checkpoint (end of epoch 1) is on disk; the same command then resumes
  it, and its metrics, every logged loss and learning rate, and the final weights and buffers (memories
  included) must equal the reference's **bit for bit**, as ``tests/test_resume.py`` requires (CPU, the
  same thread count).

Where things go: ``results/rehearsal/phases/<check>-<config>/`` by default (``out=`` / ``--out``
elsewhere), a folder of its own that is emptied at the start of each check (so a check always trains;
it never loads a run another rehearsal left in ``results/rehearsal/runs``) and kept afterwards: one run
store per process kind (``ddp/``, ``single/``, ``full/``, ``cut/``; each ``<kind>/rehearsal/runs/``),
the launch logs, and ``verdict.json`` (what the functions return).

Entry points: ``python -m reprolib rehearse ddp CONFIG [--nproc 2]`` and ``python -m reprolib rehearse
resume CONFIG`` print a verdict and exit 1 when a check fails; :func:`rehearse_ddp` and
:func:`rehearse_resume` return the summary.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

__all__ = ["PhaseCheckError", "ddp_overrides", "rehearse_ddp", "rehearse_resume", "format_verdict", "main_ddp",
           "main_resume"]

log = logging.getLogger(__name__)

#: Marks a folder this module made (and may therefore empty before the next check).
MARKER = ".rehearsal-phase"
#: torchrun's variables: a check launched from inside a DDP job must not inherit them.
_DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
             "TORCHELASTIC_RUN_ID")
#: A BNNeck's BatchNorm1d trains only on more than one sample per modality and process.
MIN_CLIPS_PER_RANK = 2


class PhaseCheckError(RuntimeError):
    """A check could not run at all (a bad argument, a folder that is not the check's own)."""


# ----------------------------------------------------------------------------- helpers
def _out_dir(check: str, config: str, out: Optional[os.PathLike]) -> Path:
    """The check's own folder, emptied (only if it is one of ours) and marked."""
    if out is None:
        from reprolib.workbook.compare import results_dir

        out = results_dir("rehearsal") / "phases" / f"{check}-{Path(config).stem}"
    out = Path(out)
    if out.exists():
        if not (out / MARKER).is_file() and any(out.iterdir()):
            raise PhaseCheckError(f"{out}: exists, is not empty and was not written by `rehearse {check}` (no "
                                  f"{MARKER} file); pass another --out, or remove it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text(f"rehearse {check} {config}: emptied at the start of every check\n")
    return out


def _env(store: Path, threads: int) -> dict[str, str]:
    """The environment of a launch: the check's store, ``threads`` threads, no inherited torchrun job."""
    env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV}
    env.update({"REPROLIB_RESULTS": str(store), "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"})
    return env


def _train_cmd(config: str, overrides: Sequence[str], device: str) -> list[str]:
    """``rehearse train CONFIG`` arguments (after ``python -m reprolib`` or ``torchrun -m reprolib``)."""
    return ["rehearse", "train", config, "--device", device, *(f"--set={o}" for o in overrides)]


def _start(cmd: list[str], env: dict, logfile: Path) -> subprocess.Popen:
    """Start ``cmd`` in its own session (so a timeout ends it and its children), output to ``logfile``."""
    with open(logfile, "w") as fh:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=fh, text=True, start_new_session=True)


def _wait(proc: subprocess.Popen, timeout_s: float, what: str) -> str:
    """Wait for ``proc`` and return its stdout; on timeout (or Ctrl-C, which its own session does not
    receive) end its process group and raise."""
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        return out
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise PhaseCheckError(f"{what} ran longer than {timeout_s:.0f} s and was stopped; raise timeout_s "
                              f"(--timeout) on a slower machine") from None
    except BaseException:
        _kill_group(proc)
        raise


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the session this module started for ``proc`` (torchrun and its ranks), while it runs."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _exited(proc: subprocess.Popen, logfile: Path) -> str:
    """Why a launch failed: its exit status (a SIGKILL not sent by this module named as such) and its log's end."""
    rc = proc.returncode
    why = (" (SIGKILL from outside this check: most likely the kernel's out-of-memory killer; a ViT-B/16 rehearsal "
           "run takes 6-9 GB)" if rc == -signal.SIGKILL else "")
    return f"exited {rc}{why}; {logfile}:\n{_tail(logfile)}"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _runs(store: Path) -> list[Path]:
    root = store / "rehearsal" / "runs"
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []


def _one_run(store: Path) -> Path:
    runs = _runs(store)
    if len(runs) != 1:
        raise AssertionError(f"{store / 'rehearsal' / 'runs'} holds {len(runs)} run directories, expected 1: "
                             f"{[p.name for p in runs]}")
    return runs[0]


def _read_log(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "train_log.jsonl").read_text().splitlines() if ln.strip()]


def _checkpoint(run_dir: Path) -> dict:
    from reprolib.engine import load_checkpoint

    return load_checkpoint(run_dir / "last.pt", map_location="cpu")


@contextmanager
def _world_size_env(n: Optional[int]) -> Iterator[None]:
    """``WORLD_SIZE`` set to ``n`` (removed for ``None``) inside the block, as before after it."""
    before = os.environ.get("WORLD_SIZE")
    if n is None:
        os.environ.pop("WORLD_SIZE", None)
    else:
        os.environ["WORLD_SIZE"] = str(n)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("WORLD_SIZE", None)
        else:
            os.environ["WORLD_SIZE"] = before


class _Checks:
    """Named checks, each passed or failed with a detail; an exception inside one fails it."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    @contextmanager
    def check(self, name: str, detail: str = "") -> Iterator[dict]:
        item = {"name": name, "ok": True, "detail": detail}
        self.items.append(item)
        try:
            yield item
        except Exception as e:  # noqa: BLE001 - a failed check is reported, not raised
            item["ok"], item["detail"] = False, f"{type(e).__name__}: {e}"
            log.error("rehearsal check '%s' failed: %s", name, item["detail"])

    @property
    def ok(self) -> bool:
        return bool(self.items) and all(i["ok"] for i in self.items)


def _summary(check: str, config: str, checks: _Checks, out: Path, t0: float, **extra: Any) -> dict:
    summary = {"check": check, "config": config, "ok": checks.ok, "seconds": round(time.perf_counter() - t0, 1),
               "out": str(out), **extra, "checks": checks.items}
    from reprolib.utils.io import atomic_write_json

    atomic_write_json(out / "verdict.json", summary)
    return summary


def format_verdict(summary: dict) -> str:
    """The verdict a command prints: one line, then one line per check."""
    n_ok = sum(c["ok"] for c in summary["checks"])
    what = {"ddp": f"DDP ({summary.get('nproc', '?')} CPU processes, gloo)",
            "resume": "kill after the first checkpoint, then resume"}[summary["check"]]
    lines = [f"rehearse {summary['check']} {summary['config']}: {'PASS' if summary['ok'] else 'FAIL'} -- {what}: "
             f"{n_ok}/{len(summary['checks'])} checks, {summary['seconds']:.0f} s (in {summary['out']})"]
    lines += [f"  {'ok  ' if c['ok'] else 'FAIL'} {c['name']}" + (f": {c['detail']}" if c["detail"] else "")
              for c in summary["checks"]]
    return "\n".join(lines)


def _prepare_and_config(config: str, overrides: Sequence[str], device: str) -> Any:
    """Write the stand-ins and worlds once, here (ranks must not race to write them), and return the
    rehearsal's resolved config of the row, leaving this process's environment as it was (a rehearsal
    ``Workbook`` points ``REPROLIB_*`` at the stand-ins)."""
    from reprolib.workbook.session import Workbook

    saved = dict(os.environ)
    try:
        return Workbook("paper", device=device, overrides=list(overrides), rehearsal=True).config(config)
    finally:
        os.environ.clear()
        os.environ.update(saved)


# ----------------------------------------------------------------------------- DDP
def ddp_overrides(cfg: Any, nproc: int) -> list[str]:
    """The batch this row needs under ``nproc`` ranks, as overrides (empty when the rehearsal's fits).

    ``data.num_ids`` is the global number of identities per step and must be divisible by ``nproc``
    (each rank takes whole identities); a rank then holds ``num_ids / nproc`` identities x ``num_pos``
    clips per modality, at least :data:`MIN_CLIPS_PER_RANK` for the BNNeck's BatchNorm1d. The rehearsal
    world has only 2 training identities, so ``num_pos`` is what grows (2 at ``nproc=2``).

    Raises:
        PhaseCheckError: ``nproc`` < 2, or it does not divide ``data.num_ids``.
    """
    num_ids, num_pos = cfg.data.num_ids, cfg.data.num_pos
    if nproc < 2:
        raise PhaseCheckError(f"--nproc {nproc}: a DDP check needs at least 2 processes")
    if num_ids % nproc:
        raise PhaseCheckError(f"--nproc {nproc}: the rehearsal's data.num_ids={num_ids} (identities per step) is "
                              f"not divisible by {nproc}, and each rank takes whole identities: use --nproc 2")
    per_rank_ids = num_ids // nproc
    need = math.ceil(MIN_CLIPS_PER_RANK / per_rank_ids)
    return [f"data.num_pos={need}"] if num_pos < need else []


def rehearse_ddp(config: str, nproc: int = 2, *, out: Optional[os.PathLike] = None, reference: bool = False,
                 overrides: Sequence[str] = (), timeout_s: float = 1800.0) -> dict:
    """Rehearse one row as an ``nproc``-process ``torchrun`` launch on the CPU (gloo) and check it.

    Args:
        config: a paper config name (the cheapest with DDP's whole path: ``cmft_regdb``, two ResNet-50
            streams at 256x128 on images; ``cmft`` adds the 7-frame clips).
        nproc: processes (must divide the rehearsal's ``data.num_ids=2``: 2).
        out: the check's folder (default ``results/rehearsal/phases/ddp-<config>``; emptied first).
        reference: also train the single-process run at the same global batch and report how far the
            DDP run is from it (only the protocol is checked; see the module docstring).
        overrides: more ``key=value`` overrides of the row.
        timeout_s: the most one launch may take.

    Returns:
        The summary (also ``out/verdict.json``): ``ok``, ``checks`` (name, ok, detail), ``run_dir``,
        ``seconds``, ``overrides`` and, with ``reference``, ``reference``.
    """
    t0 = time.perf_counter()
    out = _out_dir("ddp", config, out)
    device = "cpu"  # DDP on CPU processes (gloo), as issue 17 asks; a GPU box would need one GPU per rank
    cfg = _prepare_and_config(config, overrides, device)
    overrides = [*overrides, *ddp_overrides(cfg, nproc)]
    cfg = _prepare_and_config(config, overrides, device)
    steps = cfg.train.epochs * cfg.train.iters_per_epoch
    checks = _Checks()
    store = out / "ddp"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                "-m", "reprolib"]
    logfile = out / "ddp.log"
    log.info("rehearse ddp: %s as %d CPU processes (gloo), overrides %s; log %s", config, nproc, overrides, logfile)
    t_launch = time.perf_counter()
    proc = _start([*launcher, *_train_cmd(config, overrides, device)], _env(store, 1), logfile)
    stdout = _wait(proc, timeout_s, f"torchrun of {config}")
    launch_s = time.perf_counter() - t_launch
    run_dir: Optional[Path] = None
    with checks.check("every rank finished", f"torchrun exit status 0 in {launch_s:.0f} s"):
        assert proc.returncode == 0, f"torchrun {_exited(proc, logfile)}"
    with checks.check("the ranks trained one run", f"{nproc} ranks printed the same run directory"):
        printed = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
        assert len(printed) == nproc and len(set(printed)) == 1, f"stdout of the ranks: {printed}"
        run_dir = _one_run(store)
        assert Path(printed[0]).resolve() == run_dir.resolve(), f"printed {printed[0]}, stored {run_dir}"
        leftovers = [p.name for p in run_dir.iterdir() if p.name.startswith(".")]
        assert not leftovers, f"temporary files left in {run_dir}: {leftovers}"
    if run_dir is not None:
        _ddp_run_checks(checks, run_dir, nproc, steps)
    ref = None
    if reference and checks.ok:
        ref = _ddp_reference(checks, config, overrides, device, out, run_dir, timeout_s)
    return _summary("ddp", config, checks, out, t0, nproc=nproc, overrides=list(overrides),
                    run_dir=str(run_dir) if run_dir else None, launch_s=round(launch_s, 1),
                    **({"reference": ref} if ref is not None else {}))


def _ddp_run_checks(checks: _Checks, run_dir: Path, nproc: int, steps: int) -> None:
    """What the stored run of an ``nproc``-process launch must say about itself."""
    from reprolib.config import load_config
    from reprolib.experiments.runstore import run_name

    with checks.check("run key includes the world size", f"{run_dir.name} = key of its config.yaml at "
                                                          f"WORLD_SIZE={nproc}, not that of 1 process"):
        stored = load_config(str(run_dir / "config.yaml"))
        with _world_size_env(nproc):
            assert run_name(stored) == run_dir.name, f"the config's key at WORLD_SIZE={nproc} is {run_name(stored)}"
        with _world_size_env(None):
            assert run_name(stored) != run_dir.name, "a single-process run would have the same key"
    with checks.check("provenance.json", f"world_size {nproc}"):
        prov = json.loads((run_dir / "provenance.json").read_text())
        assert prov.get("world_size") == nproc, f"world_size {prov.get('world_size')}"
        assert "resumed" not in prov, "the run was resumed, not trained in one go"
    with checks.check("metrics.json written once, by rank 0", f"num_processes {nproc}, {steps} steps"):
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["num_processes"] == nproc, f"num_processes {metrics['num_processes']}"
        assert metrics["global_step"] == steps, f"global_step {metrics['global_step']}, expected {steps}"
        assert metrics["eval"] and all(m["num_valid"] > 0 for m in metrics["eval"].values()), metrics["eval"]
    with checks.check("train_log.jsonl", f"steps 1..{steps}, each once"):
        logged = [r["step"] for r in _read_log(run_dir) if "losses" in r]
        assert logged == list(range(1, steps + 1)), f"logged steps {logged}"
    with checks.check("last.pt", f"world_size {nproc}; RNG and sampler states of {nproc} ranks"):
        ckpt = _checkpoint(run_dir)
        assert ckpt["world_size"] == nproc, f"world_size {ckpt['world_size']}"
        assert len(ckpt["rng"]) == len(ckpt["sampler"]) == nproc, (len(ckpt["rng"]), len(ckpt["sampler"]))
        assert ckpt["progress"]["global_step"] == steps and ckpt["progress"]["iteration"] == 0, ckpt["progress"]


def _ddp_reference(checks: _Checks, config: str, overrides: Sequence[str], device: str, out: Path,
                   run_dir: Path, timeout_s: float) -> dict:
    """Train the single-process run at the same global batch; check the protocol, report the distance."""
    store, logfile = out / "single", out / "single.log"
    proc = _start([sys.executable, "-m", "reprolib", *_train_cmd(config, overrides, device)], _env(store, 1),
                  logfile)
    _wait(proc, timeout_s, f"the single-process run of {config}")
    ref: dict = {}
    with checks.check("single-process reference", "same steps and query counts (the numbers are reported, "
                                                  "not compared: see docs/rehearsal.md)"):
        assert proc.returncode == 0, _exited(proc, logfile)
        single = _one_run(store)
        m_ddp = json.loads((run_dir / "metrics.json").read_text())
        m_one = json.loads((single / "metrics.json").read_text())
        assert m_one["num_processes"] == 1 and m_one["global_step"] == m_ddp["global_step"]
        for d, m in m_one["eval"].items():
            assert m["num_query"] == m_ddp["eval"][d]["num_query"], d
        w_ddp, w_one = _checkpoint(run_dir)["model"], _checkpoint(single)["model"]
        keys = [k for k in w_one if w_one[k].is_floating_point()]
        drift = math.sqrt(sum(float((w_ddp[k].float() - w_one[k].float()).pow(2).sum()) for k in keys))
        scale = math.sqrt(sum(float(w_one[k].float().pow(2).sum()) for k in keys))
        ref = {"run_dir": str(single), "weight_drift": drift / scale,
               "mAP": {d: [m_ddp["eval"][d]["mAP"], m["mAP"]] for d, m in m_one["eval"].items()}}
    return ref


# ----------------------------------------------------------------------------- resume
def rehearse_resume(config: str, *, out: Optional[os.PathLike] = None, overrides: Sequence[str] = (),
                    threads: int = 1, parallel: bool = True, timeout_s: float = 1800.0) -> dict:
    """Rehearse one row killed (SIGKILL) after its first checkpoint and resumed; compare it bit for bit
    with the same row trained without interruption.

    Args:
        config: a paper config name (``xreid`` rehearses CPC-memory state; ``cmft_regdb`` is the cheapest).
        out: the check's folder (default ``results/rehearsal/phases/resume-<config>``; emptied first).
        overrides: more ``key=value`` overrides of the row.
        threads: CPU threads of every run (the comparison is bitwise: they must all use the same).
        parallel: train the uninterrupted run while the other one runs up to its kill (the default);
            ``False`` trains it first, halving the peak memory (a ViT-B/16 row takes 6-9 GB per process).
        timeout_s: the most one run may take.

    Returns:
        The summary (also ``out/verdict.json``): ``ok``, ``checks``, ``run_dir`` (the resumed run),
        ``reference_dir``, ``seconds``.
    """
    t0 = time.perf_counter()
    out = _out_dir("resume", config, out)
    device = "cpu"  # the bit-for-bit promise of tests/test_resume.py is the CPU's
    cfg = _prepare_and_config(config, overrides, device)
    steps = cfg.train.epochs * cfg.train.iters_per_epoch
    if cfg.train.epochs < 2:
        raise PhaseCheckError(f"{config}: train.epochs={cfg.train.epochs}; a resume check needs at least 2 epochs "
                              f"(the kill comes after the first epoch's checkpoint)")
    checks = _Checks()
    cmd = [sys.executable, "-m", "reprolib", *_train_cmd(config, overrides, device)]
    full_store, cut_store = out / "full", out / "cut"
    log.info("rehearse resume: %s uninterrupted and, %s, killed after its first checkpoint (%d thread(s) "
             "each); logs in %s", config, "meanwhile" if parallel else "then", threads, out)
    full = _start(cmd, _env(full_store, threads), out / "full.log")
    try:
        if not parallel:
            _wait(full, timeout_s, f"the uninterrupted run of {config}")
        cut = _start(cmd, _env(cut_store, threads), out / "cut.log")
        try:
            killed_at = _kill_after_first_checkpoint(cut, cut_store, timeout_s)
        finally:
            if cut.poll() is None:
                _kill_group(cut)
            cut.communicate()
        if parallel:
            _wait(full, timeout_s, f"the uninterrupted run of {config}")
    except BaseException:
        _kill_group(full)  # its own session: an error or Ctrl-C here must not leave it training
        raise
    with checks.check("uninterrupted reference", "exit status 0"):
        assert full.returncode == 0, _exited(full, out / "full.log")
    cut_dir: Optional[Path] = None
    with checks.check("killed after the first checkpoint", f"SIGKILL {killed_at:.1f} s after the start; last.pt "
                                                           f"at the end of epoch 1, no metrics.json"):
        assert cut.returncode == -signal.SIGKILL, (f"the run ended by itself (exit {cut.returncode}) before it "
                                                   f"could be killed; {out / 'cut.log'}:\n{_tail(out / 'cut.log')}")
        cut_dir = _one_run(cut_store)
        progress = _checkpoint(cut_dir)["progress"]
        first = {"epoch": 1, "iteration": 0, "global_step": cfg.train.iters_per_epoch}
        assert progress == first, (f"last.pt holds {progress}, not the first epoch's {first}: the kill came "
                                   f"late (a loaded machine?); run the check again")
        assert not (cut_dir / "metrics.json").exists(), "metrics.json exists: the run had finished"
    if not checks.ok:
        return _summary("resume", config, checks, out, t0, run_dir=str(cut_dir) if cut_dir else None,
                        threads=threads, overrides=list(overrides))
    t_resume = time.perf_counter()
    again = _start(cmd, _env(cut_store, threads), out / "resume.log")
    _wait(again, timeout_s, f"the resume of {config}")
    resume_s = time.perf_counter() - t_resume
    full_dir = _one_run(full_store)
    with checks.check("resumed by the same command", f"from step {cfg.train.iters_per_epoch}, same run "
                                                     f"directory, {resume_s:.0f} s"):
        assert again.returncode == 0, _exited(again, out / "resume.log")
        assert _one_run(cut_store) == cut_dir and cut_dir.name == full_dir.name, (cut_dir.name, full_dir.name)
        resumed = json.loads((cut_dir / "provenance.json").read_text()).get("resumed") or []
        assert [r.get("resumed_from_step") for r in resumed] == [cfg.train.iters_per_epoch], resumed
    if not checks.ok:  # nothing to compare
        return _summary("resume", config, checks, out, t0, run_dir=str(cut_dir), threads=threads,
                        overrides=list(overrides), resume_s=round(resume_s, 1))
    with checks.check("metrics equal the uninterrupted run's", "exact float equality, every direction"):
        m_full = json.loads((full_dir / "metrics.json").read_text())
        m_cut = json.loads((cut_dir / "metrics.json").read_text())
        assert m_cut["global_step"] == m_full["global_step"] == steps, (m_cut["global_step"], m_full["global_step"])
        assert m_cut["eval"] == m_full["eval"], f"resumed {m_cut['eval']} != uninterrupted {m_full['eval']}"
    with checks.check("losses equal the uninterrupted run's", f"every step's losses and learning rate, "
                                                              f"{steps} steps, bit for bit"):
        a, b = _read_log(cut_dir), _read_log(full_dir)
        assert len(a) == len(b) == steps, (len(a), len(b))
        diff = [(ra["step"], ra["losses"], rb["losses"]) for ra, rb in zip(a, b) if ra != rb]
        assert not diff, f"first differing step (resumed, uninterrupted): {diff[0]}"
    with checks.check("weights equal the uninterrupted run's", "every parameter and buffer of last.pt, bitwise"):
        import torch

        w_cut, w_full = _checkpoint(cut_dir)["model"], _checkpoint(full_dir)["model"]
        assert w_cut.keys() == w_full.keys()
        differ = [k for k in w_full if not torch.equal(w_cut[k], w_full[k])]
        assert not differ, f"{len(differ)} of {len(w_full)} tensors differ, e.g. {differ[:5]}"
    return _summary("resume", config, checks, out, t0, run_dir=str(cut_dir), reference_dir=str(full_dir),
                    threads=threads, overrides=list(overrides), killed_after_s=round(killed_at, 1),
                    resume_s=round(resume_s, 1))


def _kill_after_first_checkpoint(proc: subprocess.Popen, store: Path, timeout_s: float) -> float:
    """SIGKILL ``proc`` as soon as a ``last.pt`` appears in ``store`` (written atomically: whole once it
    is there); return the seconds it ran. A run that ends first is left to the caller's checks."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if proc.poll() is not None:
            return time.perf_counter() - start
        if any((d / "last.pt").is_file() for d in _runs(store)):
            _kill_group(proc)
            proc.wait()
            return time.perf_counter() - start
        time.sleep(0.02)
    raise PhaseCheckError(f"no checkpoint appeared in {store} within {timeout_s:.0f} s")


# ----------------------------------------------------------------------------- commands
def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("config", help="paper config name (e.g. cmft_regdb, cmft, xreid)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="more overrides of the rehearsal row (repeatable)")
    p.add_argument("--out", default=None, help="the check's folder (default results/rehearsal/phases/"
                                               "<check>-<config>; emptied first)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds one launch may take (default 1800)")
    return p


def main_ddp(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m reprolib rehearse ddp CONFIG [--nproc 2] [--reference]``: print the verdict; exit 1 on a
    failed check."""
    p = _parser("reprolib rehearse ddp", "Rehearse one row as a torchrun launch of CPU processes (gloo) and check "
                                         "it (docs/rehearsal.md).")
    p.add_argument("--nproc", type=int, default=2, help="processes (default 2)")
    p.add_argument("--reference", action="store_true",
                   help="also train the single-process run at the same global batch and report the distance")
    args = p.parse_args(argv)
    summary = rehearse_ddp(args.config, args.nproc, out=args.out, reference=args.reference,
                           overrides=args.overrides, timeout_s=args.timeout)
    print(format_verdict(summary))
    return 0 if summary["ok"] else 1


def main_resume(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m reprolib rehearse resume CONFIG``: print the verdict; exit 1 on a failed check."""
    p = _parser("reprolib rehearse resume", "Rehearse one row killed after its first checkpoint and resumed; "
                                            "compare it bit for bit with an uninterrupted run (docs/rehearsal.md).")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of every run (default 1)")
    p.add_argument("--sequential", action="store_true",
                   help="train the uninterrupted run first, not beside the killed one (half the peak memory)")
    args = p.parse_args(argv)
    summary = rehearse_resume(args.config, out=args.out, overrides=args.overrides, threads=args.threads,
                              parallel=not args.sequential, timeout_s=args.timeout)
    print(format_verdict(summary))
    return 0 if summary["ok"] else 1
