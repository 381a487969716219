"""The rehearsal's multi-process phases at paper shapes, on the CPU (issue 17: "DDP on 2 CPU processes for
one row", "a checkpoint save and a resume").

Both run ``cmft_regdb`` (two ResNet-50 streams at 256x128, the cheapest paper config whose model has the
whole DDP path: BatchNorm, BNNecks, CCFs, two parameter groups) through ``python -m reprolib rehearse
train`` in subprocesses, as :mod:`reprolib.experiments.rehearsal_phases` does for ``rehearse ddp`` and
``rehearse resume``:

* a 2-process ``torchrun`` launch (gloo): one run, keyed and recorded with world size 2, written once;
* a run SIGKILLed after its first checkpoint and resumed by the same command: metrics, every logged loss
  and every weight equal the uninterrupted run's bit for bit.

Budget (measured on the 2-core CI machine under load, see docs/rehearsal.md): about 1 minute each.
"""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.rehearsal

ROW = "cmft_regdb"


@pytest.fixture(scope="module", autouse=True)
def setup():
    from reprolib.experiments.rehearsal import prepare

    return prepare()


def _failed(summary: dict) -> str:
    from reprolib.experiments.rehearsal_phases import format_verdict

    return format_verdict(summary)


def test_ddp_rehearsal_two_cpu_processes(tmp_path):
    from reprolib.experiments.rehearsal_phases import rehearse_ddp

    summary = rehearse_ddp(ROW, nproc=2, out=tmp_path / "ddp-check")
    assert summary["ok"], _failed(summary)
    assert summary["overrides"] == ["data.num_pos=2"]  # one identity per rank: 2 clips for the BNNeck
    names = [c["name"] for c in summary["checks"]]
    assert len(names) == 7 and "run key includes the world size" in names
    assert json.loads((tmp_path / "ddp-check" / "verdict.json").read_text())["ok"]


def test_resume_rehearsal_after_sigkill_is_bit_identical(tmp_path):
    from reprolib.experiments.rehearsal_phases import rehearse_resume

    summary = rehearse_resume(ROW, out=tmp_path / "resume-check")
    assert summary["ok"], _failed(summary)
    assert [c["name"] for c in summary["checks"]][-3:] == [
        "metrics equal the uninterrupted run's", "losses equal the uninterrupted run's",
        "weights equal the uninterrupted run's"]


def test_ddp_overrides_and_refusals():
    from types import SimpleNamespace

    from reprolib.experiments.rehearsal_phases import PhaseCheckError, ddp_overrides

    def cfg(num_ids: int, num_pos: int) -> SimpleNamespace:
        return SimpleNamespace(data=SimpleNamespace(num_ids=num_ids, num_pos=num_pos))

    assert ddp_overrides(cfg(2, 1), 2) == ["data.num_pos=2"]
    assert ddp_overrides(cfg(8, 4), 2) == []  # the paper batch: 4 identities x 4 clips per rank
    with pytest.raises(PhaseCheckError, match="not divisible by 3"):
        ddp_overrides(cfg(2, 1), 3)
    with pytest.raises(PhaseCheckError, match="at least 2 processes"):
        ddp_overrides(cfg(2, 1), 1)


def test_out_folder_of_another_owner_is_refused(tmp_path):
    from reprolib.experiments.rehearsal_phases import PhaseCheckError, rehearse_resume

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(PhaseCheckError, match="not written by `rehearse resume`"):
        rehearse_resume(ROW, out=tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
