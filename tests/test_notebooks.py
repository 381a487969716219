"""Every notebook runs headless under the smoke profile (papermill), then nbval checks it.

papermill renders each notebook with ``profile="smoke"`` into a temporary results tree: every cell
must run and the notebooks' own ``assert`` cells must hold. Notebooks with cells marked
``# NBVAL_CHECK_OUTPUT`` are then re-executed by nbval in lax mode, and those cells must reproduce
their stored output exactly (after the sanitisers in ``tests/nbval_sanitize.cfg``); the second
execution is fast because the run store already holds the runs the first one trained. The
generated table/figure notebooks have no such cells (their checks are assert cells), so they are
executed once, which keeps CI within its budget.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reprolib.workbook import runner

pytestmark = pytest.mark.notebook
NOTEBOOKS = runner.discover()
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def results_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    old = os.environ.get("REPROLIB_RESULTS")
    os.environ["REPROLIB_RESULTS"] = str(root)
    yield root
    if old is None:
        os.environ.pop("REPROLIB_RESULTS", None)
    else:
        os.environ["REPROLIB_RESULTS"] = old


def test_every_notebook_is_discovered_with_a_parameters_cell():
    import nbformat
    from papermill.translators import PythonTranslator

    assert any(nb.key == "quickstart" for nb in NOTEBOOKS)
    for nb in NOTEBOOKS:
        cells = nbformat.read(nb.path, as_version=4).cells
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb.path.name}: needs exactly one cell tagged 'parameters'"
        # papermill must parse every parameter (an '=' inside a comment silently breaks that)
        names = {p.name for p in PythonTranslator.inspect(tagged[0])}
        base = {"profile", "data_root", "device", "clip_weights", "overrides"}
        if nb.paper:  # generated: each dataset's root, each backbone's weights, the rehearsal switch
            base |= set(runner.EXTRA_PARAMS)
        if nb.key == "quickstart":  # rehearsable (docs/rehearsal.md); HITSZ-VCM only
            base |= {"rehearsal"}
        if nb.key == "eval_released":  # an official checkpoint beside the paper (docs/decisions/official_weights.md)
            base |= {"bupt_root", "rehearsal", "paper", "weights", "config", "identity_heads"}
        if nb.key == "my_method":  # the method to compare (docs/new_method.md)
            base |= {"method_config", "family_path", "method_name", "seeds", "method_store"}
        assert names == base, (nb.path.name, names)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.key for nb in NOTEBOOKS])
def test_notebook_smoke_papermill_then_nbval(nb, results_root):
    out = runner.run_notebook(nb.key, profile="smoke", device="cpu", progress=False)
    assert out.is_file() and str(out).startswith(str(results_root))
    if "NBVAL_CHECK_OUTPUT" not in nb.path.read_text():
        return
    env = dict(os.environ, REPROLIB_RESULTS=str(results_root))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-kernel-name", runner._kernel_name(),
         "--nbval-sanitize-with", str(HERE / "nbval_sanitize.cfg"), str(out)],
        capture_output=True, text=True, env=env, cwd=str(out.parent), timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
