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


def run_notebook(name: str, profile: str = "embedded", device: str = "auto", data_root: str = "",
                 clip_weights: str = "", overrides: Optional[list[str]] = None,
                 output: Optional[Path] = None, progress: bool = True) -> Path:
    """Render one notebook with papermill.

    Args:
        name: notebook key, stem or path.
        profile: ``smoke`` | ``embedded`` | ``paper``.
        device: ``auto`` | ``cpu`` | ``cuda``.
        data_root: real dataset root for the paper profile ("" keeps the profile default).
        clip_weights: CLIP weights file for the paper profile ("" keeps the default lookup).
        overrides: extra ``key=value`` config overrides passed to every run of the notebook.
        output: rendered notebook path; default ``results/<profile>/notebooks/<stem>.ipynb``.
        progress: show papermill's cell progress bar.

    Returns:
        The rendered notebook path (written atomically: a failed run leaves the old one).
    """
    import papermill as pm

    nb = find(name)
    out = Path(output) if output else output_path(nb, profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.ipynb")
    params = dict(profile=profile, device=device, data_root=data_root, clip_weights=clip_weights,
                  overrides=list(overrides or []))
    log.info("rendering %s (profile=%s) -> %s", nb.path.name, profile, out)
    try:
        pm.execute_notebook(str(nb.path), str(tmp), parameters=params, kernel_name=_kernel_name(),
                            cwd=str(nb.path.parent), progress_bar=progress and not os.environ.get("CI"),
                            log_output=False)
    except Exception:
        # keep the failed render for inspection next to the good one
        failed = out.with_name(f"{out.stem}.FAILED.ipynb")
        if tmp.exists():
            os.replace(tmp, failed)
            log.error("notebook %s failed; the partial render is %s", nb.path.name, failed)
        raise
    os.replace(tmp, out)
    return out


def main_run(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="reprolib notebook run", description=run_notebook.__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("--profile", default="embedded", choices=["smoke", "embedded", "paper"])
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default="")
    p.add_argument("--clip-weights", default="")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--output", default=None)
    a = p.parse_args(argv)
    try:
        out = run_notebook(a.name, a.profile, a.device, a.data_root, a.clip_weights, a.overrides,
                           Path(a.output) if a.output else None)
    except FileNotFoundError as e:
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
