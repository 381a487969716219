"""The notebook pipeline: discover the workbook's notebooks and render them headless with papermill.

Notebooks live in ``notebooks/`` and are named ``NN_topic.ipynb`` (shared tours) or
``PNN_<paper>_<item>.ipynb`` with P = 1 (X-ReID), 2 (VLD), 3 (CMFT), e.g. ``203_vld_table3``.
Every notebook has a cell tagged ``parameters`` holding plain literals (``profile``,
``data_root``, ``device``, ``clip_weights``, ``overrides``); papermill injects the values given here
and writes the rendered notebook to ``results/<profile>/notebooks/<name>.ipynb``.
``make reproduce-<paper>-<item>`` calls ``python -m reprolib notebook run <paper>_<item>``.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from reprolib import PROJECT_ROOT

log = logging.getLogger(__name__)

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
KERNEL_NAME = "reprolib"
PAPER_DIGITS = {"1": "xreid", "2": "vld", "3": "cmft"}
#: What ``make reproduce`` renders: the tour and each paper's main component table (Table 3 of
#: X-ReID, VLD and CMFT). Their embedded-profile runs are committed in ``results/embedded/runs``,
#: so on a fresh clone the notebooks render from the store in minutes; with an empty store (or
#: after a change to code that keys the runs) they train first (about 3.5 hours on 2 cores).
HEADLINE = ("quickstart", "xreid_table3", "vld_table3", "cmft_table3")
_NAME = re.compile(r"^(?P<num>\d+)_(?P<rest>[a-z0-9_]+)$")


@dataclass(frozen=True)
class Notebook:
    """One notebook of the workbook."""

    path: Path
    key: str  # e.g. "vld_table3" or "quickstart"
    paper: str  # "xreid" | "vld" | "cmft" | "" (shared)
    item: str  # e.g. "table3", "fig6", or the topic of a shared notebook

    @property
    def headline(self) -> bool:
        return self.key in HEADLINE


def discover(directory: Path = NOTEBOOK_DIR) -> list[Notebook]:
    """All notebooks in ``directory`` in their numbered order."""
    out = []
    for path in sorted(directory.glob("*.ipynb")):
        m = _NAME.match(path.stem)
        if not m:
            log.warning("notebook %s does not follow the NN_topic / PNN_paper_item naming; skipped", path.name)
            continue
        num, rest = m["num"], m["rest"]
        if len(num) == 3 and num[0] in PAPER_DIGITS and rest.startswith(PAPER_DIGITS[num[0]] + "_"):
            paper = PAPER_DIGITS[num[0]]
            item = rest[len(paper) + 1:]
        else:
            paper, item = "", rest
        out.append(Notebook(path, rest, paper, item))
    return out


def find(name: str, directory: Path = NOTEBOOK_DIR) -> Notebook:
    """Look a notebook up by key (``vld_table3``), file stem (``203_vld_table3``) or path."""
    stem = Path(name).stem
    nbs = discover(directory)
    for nb in nbs:
        if stem in (nb.key, nb.path.stem):
            return nb
    raise FileNotFoundError(f"no notebook '{name}' in {directory}; available: {', '.join(n.key for n in nbs)}")


def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if KERNEL_NAME in specs:
        return KERNEL_NAME
    log.warning("Jupyter kernel '%s' is not registered (run `make install`); using python3", KERNEL_NAME)
    return "python3"


def output_path(nb: Notebook, profile: str) -> Path:
    base = Path(os.environ.get("REPROLIB_RESULTS", PROJECT_ROOT / "results"))
    return base / profile / "notebooks" / f"{nb.path.stem}.ipynb"


#: Parameters of the generated notebooks beyond ``profile``/``device``/``data_root``/``clip_weights``/
#: ``overrides``, with their defaults (a notebook without one gets it only when it is not the default).
EXTRA_PARAMS = {"bupt_root": "", "sysu_root": "", "regdb_root": "", "resnet_weights": "", "rehearsal": False}


def run_notebook(name: str, profile: str = "embedded", device: str = "auto", data_root: str = "",
                 clip_weights: str = "", overrides: Optional[list[str]] = None,
                 output: Optional[Path] = None, progress: bool = True,
                 params: Optional[dict] = None, *, bupt_root: str = "", sysu_root: str = "",
                 regdb_root: str = "", resnet_weights: str = "", rehearsal: bool = False) -> Path:
    """Render one notebook with papermill.

    The kernel's output (our log lines: the current row, run, step, loss and ETA of a training) is
    echoed to this process's log as it comes (papermill's ``log_output``), so a multi-hour render
    shows its progress in the terminal that ran ``make``.

    Args:
        name: notebook key, stem or path.
        profile: ``smoke`` | ``embedded`` | ``paper``.
        device: ``auto`` | ``cpu`` | ``cuda``.
        data_root: HITSZ-VCM root for the paper profile ("" keeps ``$REPROLIB_DATA``); applied to
            HITSZ-VCM rows only.
        clip_weights: CLIP weights file for the CLIP rows ("" keeps the default lookup).
        overrides: extra ``key=value`` config overrides passed to every run of the notebook.
        output: rendered notebook path; default ``results/<profile>/notebooks/<stem>.ipynb``
            (``results/rehearsal/notebooks/`` for a rehearsal).
        progress: show papermill's cell progress bar.
        params: more values for the notebook's ``parameters`` cell (e.g. ``method_config`` of
            ``90_my_method``); a name the cell does not define is an error.
        bupt_root: BUPTCampus root ("" keeps ``$REPROLIB_BUPT``).
        sysu_root: SYSU-MM01 root ("" keeps ``$REPROLIB_SYSU``).
        regdb_root: RegDB root ("" keeps ``$REPROLIB_REGDB``).
        resnet_weights: ResNet-50 weights file for CMFT's streams ("" keeps ``$RESNET50_WEIGHTS``).
        rehearsal: rehearse the paper profile on stand-ins (``docs/rehearsal.md``).

    Returns:
        The rendered notebook path. The notebook, tables and figures of one render are published
        together or not at all: the tables and figures are written into a staging folder
        (:data:`reprolib.workbook.compare.STAGING_ENV`) and moved into ``results/<profile>/``
        with the notebook once it has run to the end; a failed render leaves every old file as it
        was (the failed notebook is kept as ``<stem>.FAILED.ipynb``).
    """
    import secrets
    import shutil

    import papermill as pm

    from reprolib.workbook.compare import STAGING_ENV, results_dir

    nb = find(name)
    if rehearsal and profile != "paper":
        raise ValueError(f"rehearsal rehearses the paper profile; got --profile {profile}")
    where = "rehearsal" if rehearsal else profile
    out = Path(output) if output else output_path(nb, where)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.ipynb")
    extra = dict(params or {})
    params = dict(profile=profile, device=device, data_root=data_root, clip_weights=clip_weights,
                  overrides=list(overrides or []))
    known = _parameter_names(nb.path)
    given = dict(bupt_root=bupt_root, sysu_root=sysu_root, regdb_root=regdb_root, resnet_weights=resnet_weights,
                 rehearsal=bool(rehearsal))
    for key, value in given.items():
        if key in known:
            params[key] = value
        elif value != EXTRA_PARAMS[key]:
            raise ValueError(f"{nb.path.name}: its parameters cell has no {key!r}, so it cannot take {key}={value!r}; "
                             f"regenerate it (python -m reprolib notebook generate) or leave {key} unset")
    if extra:
        unknown = sorted(set(extra) - known)
        if unknown:
            raise ValueError(f"{nb.path.name}: no parameter {', '.join(unknown)} in its parameters cell; "
                             f"it has {', '.join(sorted(known))}")
        params.update(extra)
    final = results_dir(where)
    final.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".render-{nb.path.stem}-{secrets.token_hex(4)}"  # same file system as final
    log.info("rendering %s (profile=%s%s) -> %s", nb.path.name, profile, ", REHEARSAL" if rehearsal else "", out)
    previous = os.environ.get(STAGING_ENV)
    os.environ[STAGING_ENV] = str(staging)  # inherited by the kernel papermill starts
    try:
        pm.execute_notebook(str(nb.path), str(tmp), parameters=params, kernel_name=_kernel_name(),
                            cwd=str(nb.path.parent), progress_bar=progress and not os.environ.get("CI"),
                            log_output=True, stdout_file=None, stderr_file=None)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # none of this render's tables and figures is published
        # keep the failed render for inspection next to the good one
        failed = out.with_name(f"{out.stem}.FAILED.ipynb")
        if tmp.exists():
            os.replace(tmp, failed)
            log.error("notebook %s failed; the partial render is %s; no table or figure of it was "
                      "published", nb.path.name, failed)
        raise
    finally:
        if previous is None:
            os.environ.pop(STAGING_ENV, None)
        else:
            os.environ[STAGING_ENV] = previous
    published = _publish(staging / where, final)
    shutil.rmtree(staging, ignore_errors=True)
    os.replace(tmp, out)
    log.info("published %s with %d table/figure file(s)", out, len(published))
    return out


def _parameter_names(path: Path) -> set[str]:
    """Names assigned in the cell tagged ``parameters`` of notebook ``path``."""
    import ast

    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
                    if isinstance(t, ast.Name)}
    return set()


def _publish(staged: Path, final: Path) -> list[Path]:
    """Move every file under ``staged`` to the same place under ``final`` (``os.replace``: each file
    is the old or the new one, never torn)."""
    moved = []
    if not staged.is_dir():
        return moved
    for src in sorted(p for p in staged.rglob("*") if p.is_file()):
        dst = final / src.relative_to(staged)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        moved.append(dst)
    return moved


def main_run(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="reprolib notebook run", description=run_notebook.__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("--profile", default="embedded", choices=["smoke", "embedded", "paper"])
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default="", help="HITSZ-VCM root (else $REPROLIB_DATA); HITSZ-VCM rows only")
    p.add_argument("--bupt-root", default="", help="BUPTCampus root (else $REPROLIB_BUPT)")
    p.add_argument("--sysu-root", default="", help="SYSU-MM01 root (else $REPROLIB_SYSU)")
    p.add_argument("--regdb-root", default="", help="RegDB root (else $REPROLIB_REGDB)")
    p.add_argument("--clip-weights", default="", help="CLIP weights for CLIP rows (else $CLIP_WEIGHTS / HF cache)")
    p.add_argument("--resnet-weights", default="", help="ResNet-50 weights for CMFT's streams (else $RESNET50_WEIGHTS)")
    p.add_argument("--rehearsal", action="store_true",
                   help="rehearse the paper profile on stand-ins into results/rehearsal/ (docs/rehearsal.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--output", default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no papermill cell bar (the kernel's log lines still show); for logs written to a file")
    p.add_argument("--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                   help="set another variable of the notebook's parameters cell (value read as YAML)")
    a = p.parse_args(argv)
    try:
        params = {}
        for item in a.params:
            name, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"--param {item!r}: expected NAME=VALUE")
            params[name.strip()] = yaml.safe_load(value)
        out = run_notebook(a.name, a.profile, a.device, a.data_root, a.clip_weights, a.overrides,
                           Path(a.output) if a.output else None, progress=a.progress, params=params, bupt_root=a.bupt_root,
                           sysu_root=a.sysu_root, regdb_root=a.regdb_root, resnet_weights=a.resnet_weights,
                           rehearsal=a.rehearsal)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


def main_list(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="reprolib notebook list")
    p.add_argument("--paper", default=None)
    p.add_argument("--item", default=None)
    p.add_argument("--headline", action="store_true", help="only what `make reproduce` renders")
    p.add_argument("--names", action="store_true", help="print keys only, one per line")
    a = p.parse_args(argv)
    for nb in discover():
        if (a.paper and nb.paper != a.paper) or (a.item and nb.item != a.item) or (a.headline and not nb.headline):
            continue
        if a.names:
            print(nb.key)
        else:
            target = f"reproduce-{nb.paper}-{nb.item}" if nb.paper else f"reproduce-{nb.key}"
            print(f"{nb.path.name:<36} {target}")
    return 0
