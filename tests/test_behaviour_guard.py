"""The behaviour guard: one smoke run per model family against committed golden values.

Run keys no longer hash the code (``reprolib.experiments.runstore``), so nothing else would notice a
change that alters what a family computes. This test trains each family's smoke run from scratch
and compares every logged loss component of its six steps and its final test metrics with
``tests/golden/<family>.json``.

* A change that alters results **by accident** fails here.
* A change that alters them **on purpose** bumps the family's ``results_version`` (in its
  ``register_model``) and rewrites its golden file in the same commit::

      .venv/bin/python tests/test_behaviour_guard.py --update FAMILY [FAMILY ...]

  The guard refuses golden values whose results version differs from the registered one, so a
  bump without new golden values (or new values without a bump) fails too.

Tolerances. Training is deterministic (``train.deterministic``: deterministic algorithms, no TF32,
per-item seeds), and the guard pins torch to one thread, so the order of float32 reductions is
fixed and the values repeat exactly on machines of one kind. The thread count is the one thing we
measured that moves them: at 2 threads instead of 1 a loss moves by 5e-7 to 2e-6 relative in the
first steps, and CMFT's SGD steps amplify that to 1.5e-3 by step 6 and half a point of mAP: this is
why the thread count is pinned. Losses are compared with a relative tolerance of 1e-4 (fifty
times the first-step noise). Small real changes move them much more: a loss weight changed by 1 %
moves the baseline's logged losses by 1e-2, label smoothing 0.1 instead of 0 by 7e-3 (measured on
its six steps; ``test_the_guard_sees_a_small_change`` keeps the first one honest), while neither
moves its metrics. Metrics are compared within 1e-3 percentage points: they count ranks on seven to
ten queries, so a change moves them by at least one query (several points) or not at all.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"
#: One smoke config per registered family (the family's full model, as its paper's main row runs it).
GUARDED = {"baseline": "baseline", "vld": "vld", "xreid": "xreid", "clipreid": "clipreid",
           "tfclip": "tfclip", "cmft": "cmft"}
LOSS_RTOL = 1e-4
METRIC_ATOL = 1e-3  # percentage points


def record(family: str, store: Path, overrides: tuple[str, ...] = ()) -> dict:
    """Train ``family``'s guarded smoke run into ``store`` and return what the guard compares."""
    import torch

    from reprolib.experiments import get_run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a fixed reduction order (see the module docstring)
    try:
        run = get_run(GUARDED[family], profile="smoke", store=store, overrides=list(overrides))
    finally:
        torch.set_num_threads(threads)
    steps = [json.loads(line) for line in (run.path / "train_log.jsonl").read_text().splitlines() if line.strip()]
    metrics = {d: {k: v for k, v in m.items() if k in ("R1", "R5", "mAP", "mINP", "num_valid")}
               for d, m in run.metrics["eval"].items()}
    return {"config": GUARDED[family], "profile": "smoke",
            "losses": [{"step": s["step"], **s["losses"]} for s in steps if "losses" in s],
            "metrics": metrics}


def _results_version(family: str) -> int:
    from reprolib.models.registry import results_version

    return results_version(family)


def test_every_registered_family_is_guarded():
    from reprolib.models.registry import list_models

    builtin = {name for name in list_models() if name != "toyfam"}
    assert builtin <= set(GUARDED), f"families without a behaviour guard: {sorted(builtin - set(GUARDED))}"
    for family in GUARDED:
        assert (GOLDEN / f"{family}.json").is_file(), f"no golden values for {family}; write them with --update"


@pytest.mark.parametrize("family", sorted(GUARDED))
def test_a_smoke_run_matches_its_golden_values(family, tmp_path):
    golden = json.loads((GOLDEN / f"{family}.json").read_text())
    assert golden["results_version"] == _results_version(family), (
        f"{family}: golden values are of results version {golden['results_version']}, the family registers "
        f"{_results_version(family)}; rewrite them with `python tests/test_behaviour_guard.py --update {family}`")
    now = record(family, tmp_path)
    assert len(now["losses"]) == len(golden["losses"]) > 0
    for got, want in zip(now["losses"], golden["losses"]):
        assert set(got) == set(want), f"{family} step {want['step']}: loss components {sorted(got)} != {sorted(want)}"
        for name, value in want.items():
            assert math.isclose(got[name], value, rel_tol=LOSS_RTOL, abs_tol=1e-7), (
                f"{family} step {want['step']} loss {name}: {got[name]!r}, golden {value!r}; an intended change "
                "bumps the family's results_version and rewrites tests/golden (see this module's docstring)")
    for direction, metrics in golden["metrics"].items():
        for name, value in metrics.items():
            assert now["metrics"][direction][name] == pytest.approx(value, abs=METRIC_ATOL), (
                f"{family} {direction} {name}: {now['metrics'][direction][name]} vs golden {value}")


def test_the_guard_sees_a_small_change(tmp_path):
    """A 1 % change of one loss weight of the baseline moves its logged losses far outside the guard's
    tolerance (by 1e-2 relative): the guard can fail on a small change."""
    golden = json.loads((GOLDEN / "baseline.json").read_text())
    changed = record("baseline", tmp_path, ("loss.id_weight=1.01",))
    rel = max(abs(got[k] - v) / abs(v) for got, want in zip(changed["losses"], golden["losses"])
              for k, v in want.items() if k != "step" and v)
    assert rel > 10 * LOSS_RTOL, rel


def main(argv: list[str] | None = None) -> int:
    """``--update FAMILY ...``: train the guarded smoke runs now and write their golden values."""
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--update", nargs="+", metavar="FAMILY", required=True, choices=sorted(GUARDED))
    args = ap.parse_args(argv)
    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.update:
            values = {"family": family, "results_version": _results_version(family), **record(family, Path(tmp))}
            (GOLDEN / f"{family}.json").write_text(json.dumps(values, indent=1) + "\n")
            print(f"wrote {GOLDEN / f'{family}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
