"""The paper path walked as a new user would (issue 17, "Why" 1-7): each failure has a test here.

1. BUPTCampus configs read ``${REPROLIB_BUPT}`` under the paper profile, not the HITSZ-VCM root;
2. a notebook applies each dataset's root only to the rows of that dataset;
3. the CLIP weights reach the CLIP rows only, the ResNet-50 weights CMFT's streams only;
4. ``make reproduce-* PROFILE=paper`` builds no miniature world;
5. empty evaluation sets are found before training, every problem in one error;
6. progress shows headless (papermill ``log_output``; a log line with an ETA off a terminal);
7. ``eval RUN_DIR`` needs no pretrained file; a paper run on a machine without CUDA needs an explicit
   ``device=cpu``; ``weights check`` checks a ResNet-50 file and reports a misfit in a few lines;
   passes over the training set show progress; CLIP-ReID's stage 1 loads no batch and logs the
   prompt learning rate.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from reprolib import PROJECT_ROOT
from reprolib.config import CONFIG_DIR, load_config
from reprolib.workbook.session import DATASET_ROOTS, Workbook
from reprolib.workbook.targets import load_targets

ENV_OF = {ds: env for ds, (_, env) in DATASET_ROOTS.items()}


def _all_row_configs() -> set[tuple[str, tuple[str, ...]]]:
    out = set()
    for paper in ("xreid", "vld", "cmft"):
        for target in load_targets(paper).values():
            for spec in target.rows:
                if spec.config:
                    out.add((spec.config, tuple(target.overrides_for(spec, "paper"))))
    return out


# ------------------------------------------------------------------------------ 1. dataset roots
@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) + ["xreid+bupt", "clipreid+bupt"])
def test_every_paper_config_reads_its_own_dataset_root(name):
    cfg = load_config(name, "paper")
    assert cfg.data.root == "${%s}" % ENV_OF[cfg.data.dataset], (name, cfg.data.dataset, cfg.data.root)


def test_every_paper_row_tests_on_its_own_dataset_root():
    for name, overrides in _all_row_configs():
        cfg = load_config(name, "paper", list(overrides))
        assert cfg.data.root == "${%s}" % ENV_OF[cfg.data.dataset], (name, overrides)
        if cfg.eval.dataset and cfg.eval.root:
            assert cfg.eval.root == "${%s}" % ENV_OF[cfg.eval.dataset], (name, overrides)


# ------------------------------------------------------------------- 2-3. per-dataset, per-backbone
def test_workbook_routes_each_root_and_weights_file_to_its_rows_only():
    wb = Workbook("paper", data_root="/d/vcm", bupt_root="/d/bupt", sysu_root="/d/sysu", regdb_root="/d/regdb",
                  clip_weights="/w/clip.pt", resnet_weights="/w/r50.pth")
    assert wb.config("xreid").data.root == "/d/vcm"
    assert wb.config("xreid+bupt").data.root == "/d/bupt"
    assert wb.config("vld_bupt").data.root == "/d/bupt"
    assert wb.config("cmft_sysu").data.root == "/d/sysu"
    assert wb.config("cmft_regdb").data.root == "/d/regdb"
    assert wb.config("xreid").model.backbone.weights_path == "/w/clip.pt"
    assert wb.config("cmft").model.backbone.weights_path == "/w/r50.pth"
    cross = wb.config("vld", "eval.dataset=bupt", "eval.root=${REPROLIB_BUPT}")  # VLD Table VIII
    assert (cross.data.root, cross.eval.root) == ("/d/vcm", "/d/bupt")


def test_workbook_applies_nothing_given_for_one_dataset_or_backbone_to_another():
    wb = Workbook("paper", data_root="/d/vcm", clip_weights="/w/clip.pt")
    assert wb.config("xreid+bupt").data.root == "${REPROLIB_BUPT}"
    assert wb.config("cmft_sysu").data.root == "${REPROLIB_SYSU}"
    assert wb.config("cmft").model.backbone.weights_path == ""  # CMFT's ResNet streams: not the CLIP file
    wb = Workbook("paper", resnet_weights="/w/r50.pth")
    assert wb.config("vld").model.backbone.weights_path == ""


def test_embedded_and_smoke_configs_are_unchanged_by_the_routing():
    for profile in ("smoke", "embedded"):
        for name in ("xreid", "xreid+bupt", "cmft", "vld_bupt"):
            assert Workbook(profile).config(name) == load_config(name, profile)


def test_notebook_run_passes_each_root_and_logs_the_kernel_output(monkeypatch, tmp_path):
    import papermill as pm

    from reprolib.workbook import runner

    seen = {}

    def fake_execute(src, dst, parameters, **kwargs):
        seen.update(parameters=parameters, **kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(pm, "execute_notebook", fake_execute)
    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path))
    with pytest.raises(RuntimeError, match="stop here"):
        runner.run_notebook("xreid_table3", "paper", data_root="/d/vcm", bupt_root="/d/bupt",
                            clip_weights="/w/clip.pt", resnet_weights="/w/r50.pth")
    assert seen["log_output"] is True  # the kernel's log lines reach the terminal that ran make
    p = seen["parameters"]
    assert (p["data_root"], p["bupt_root"], p["clip_weights"], p["resnet_weights"]) == \
        ("/d/vcm", "/d/bupt", "/w/clip.pt", "/w/r50.pth")


# ------------------------------------------------------------------------------ 4. make, no world
def _make_n(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    out = subprocess.run(["make", "-n", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    return out.stdout


def test_make_paper_profile_builds_no_miniature_world():
    out = _make_n("reproduce-xreid-table3", "PROFILE=paper", "DATA_ROOT=/d/vcm", "BUPT_ROOT=/d/bupt",
                  "CLIP_WEIGHTS=/w/clip.pt", "RESNET50_WEIGHTS=/w/r50.pth")
    assert "data synth" not in out
    line = next(ln for ln in out.splitlines() if "notebook run" in ln)
    for flag in ("--profile paper", "--data-root /d/vcm", "--bupt-root /d/bupt", "--clip-weights /w/clip.pt",
                 "--resnet-weights /w/r50.pth"):
        assert flag in line, (flag, line)
    assert "data synth" in _make_n("reproduce-xreid-table3")  # the embedded default still builds it


# ------------------------------------------------------------------------ 5. checks before training
def test_preflight_lists_every_problem_in_one_error(monkeypatch, tmp_path):
    from reprolib.experiments.preflight import PreflightError, check_configs

    for env in ("REPROLIB_DATA", "REPROLIB_BUPT", "CLIP_WEIGHTS", "RESNET50_WEIGHTS"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfgs = [load_config("xreid", "paper"), load_config("xreid+bupt", "paper"), load_config("cmft", "paper")]
    with pytest.raises(PreflightError) as e:
        check_configs(cfgs, "xreid table3")
    msg = str(e.value)
    for needle in ("REPROLIB_DATA", "REPROLIB_BUPT", "ViT-B-16-quickgelu", "resnet50", "DEVICE=cpu"):
        assert needle in msg, (needle, msg)


def test_empty_bupt_test_set_is_an_error_before_training(tmp_path):
    from reprolib.data.synthetic import write_world
    from reprolib.engine.trainer import Trainer

    root = write_world(tmp_path / "bupt", "smoke", 0, "bupt", workers=0, progress=False)
    cfg = load_config("baseline_bupt", "smoke", [f"data.root={root}", "data.bupt_eval_mode=official", "device=cpu"])
    with pytest.raises(ValueError, match="before training.*bupt_eval_mode=full"):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "train_log.jsonl").exists()


# --------------------------------------------------------------------------------- 6. progress
def test_progress_log_writes_lines_with_an_eta_off_a_terminal(caplog):
    from reprolib.utils.progress import ProgressLog

    with caplog.at_level(logging.INFO):
        with ProgressLog(4, "train xreid", every_s=0.0, logger=logging.getLogger("reprolib.test")) as bar:
            for _ in range(3):
                bar.update(1, loss=1.5)
    lines = [r.getMessage() for r in caplog.records]
    assert any("train xreid 2/4 step loss 1.5000" in ln and "eta" in ln for ln in lines), lines
    assert "done in" in lines[-1]


def test_training_set_passes_show_progress(caplog, monkeypatch):
    from reprolib.models.base import extract_tracklet_features

    monkeypatch.setenv("REPROLIB_PROGRESS_EVERY", "0")
    batches = [{"frames": torch.zeros(2, 3, 3, 8, 4), "pid": torch.tensor([0, 1]), "camid": torch.tensor([1, 1]),
                "modality": torch.tensor([1, 2])}] * 3
    with caplog.at_level(logging.INFO):
        feats, _, _ = extract_tracklet_features(lambda x, c: x.flatten(1)[:, :5], torch.nn.Identity(), batches,
                                                torch.device("cpu"), desc="X-ReID: CPC memories")
    assert feats.shape == (6, 5)
    assert any("X-ReID: CPC memories 2/3 batch" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------- 7. small items
def test_paper_run_on_a_machine_without_cuda_needs_an_explicit_cpu(monkeypatch):
    from reprolib.engine.trainer import check_run_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="DEVICE=cpu"):
        check_run_device(load_config("vld", "paper"))
    check_run_device(load_config("vld", "paper", ["device=cpu"]))  # said explicitly: fine
    check_run_device(load_config("vld", "embedded"))  # the miniature runs on the CPU by design


def test_eval_of_a_run_needs_no_pretrained_file(tmp_path, monkeypatch):
    from reprolib.data.synthetic import write_world
    from reprolib.engine import trainer as T
    from reprolib.models import weights as W

    root = write_world(tmp_path / "vcm", "smoke", 0, "vcm", workers=0, progress=False)
    cfg = load_config("baseline", "smoke", [f"data.root={root}", "device=cpu", "train.epochs=1",
                                            "train.iters_per_epoch=1"])
    run = tmp_path / "run"
    T.train_experiment(cfg, run)
    trained = torch.load(run / "last.pt", weights_only=True)["model"]

    def no_files(arch, pretrained="openai", weights_path=None):
        if pretrained != "none":
            raise W.WeightsNotFoundError(f"no {arch} weights here")
        return None

    monkeypatch.setattr(W, "resolve_weights", no_files)
    _, _, model, _ = T.load_trained(run)
    for k, v in model.state_dict().items():
        assert torch.equal(v, trained[k]), k


def _save_resnet(path: Path, depth: int = 50) -> Path:
    import torchvision

    net = torchvision.models.resnet50() if depth == 50 else torchvision.models.resnet18()
    torch.save(net.state_dict(), path)
    return path


def test_weights_check_checks_a_resnet50_file(tmp_path, capsys):
    from reprolib.models.cmft.resnet import weights_main as main

    path = _save_resnet(tmp_path / "resnet50-0676ba61.pth")
    assert main(["--weights-path", str(path)]) == 0  # recognised from its key names
    report = json.loads(capsys.readouterr().out)
    assert report["backbone"] == "resnet50" and report["path"] == str(path)


def test_a_misfit_is_reported_in_a_few_lines(tmp_path, capsys):
    from reprolib.models.cmft.resnet import weights_main as main

    path = _save_resnet(tmp_path / "resnet18.pth", depth=18)
    assert main(["--backbone", "resnet50", "--weights-path", str(path)]) == 1
    err = capsys.readouterr().err
    assert len(err) < 1500 and "missing from the file" in err and "torchvision ResNet" in err, err
    assert main(["--backbone", "clip", "--weights-path", str(path)]) == 1  # a ResNet given as CLIP
    err = capsys.readouterr().err
    assert len(err) < 2500 and "looks like a torchvision ResNet" in err, err


def test_clipreid_stage1_loads_no_batch_and_logs_the_prompt_lr(tmp_path, monkeypatch):
    from reprolib.data import video
    from reprolib.data.synthetic import write_world
    from reprolib.engine import trainer as T

    loaded = []
    original = video.PairedClipDataset.__getitems__

    def counting(self, keys):
        loaded.extend(keys)
        return original(self, keys)

    monkeypatch.setattr(video.PairedClipDataset, "__getitems__", counting)
    root = write_world(tmp_path / "vcm", "smoke", 0, "vcm", workers=0, progress=False)
    cfg = load_config("clipreid", "smoke", [f"data.root={root}", "device=cpu"])
    assert cfg.model.extra["stage1_epochs"] == 1 and cfg.train.iters_per_epoch == 3
    seen = []

    class Recording(T.Trainer):
        def on_step_end(self, record):
            groups = {g.get("name"): g["lr"] for g in self.optimizer.param_groups}
            seen.append((record["lr"], groups["prompt"], self.optimizer.param_groups[0]["lr"]))

    (tmp_path / "run").mkdir()
    Recording(cfg, tmp_path / "run").train()
    per_batch = cfg.data.num_ids * cfg.data.num_pos
    assert len(loaded) == per_batch * 3  # stage 2's three steps only
    for logged, prompt, first in seen[:3]:  # stage 1 trains the prompts: their lr is logged
        assert logged == prompt and prompt != first
    for logged, _, first in seen[3:]:
        assert logged == first


# ------------------------------------------------------------------------------------- plan (C)
def test_plan_counts_each_shared_run_once(monkeypatch, capsys):
    from reprolib.workbook import plan as P

    monkeypatch.setattr(P, "_macs_per_frame", lambda config, profile, overrides: 20e9)
    table = P.plan(["xreid_table1", "xreid_table3"])
    cfg = load_config("xreid", "paper")
    full = table[(table["notebook"] == "xreid_table3") & (table["config"] == "xreid")].iloc[0]
    assert full["steps"] == cfg.train.epochs * cfg.train.iters_per_epoch
    assert full["frames/step"] == 2 * cfg.data.num_ids * cfg.data.num_pos * cfg.data.seq_len
    assert full["GFLOPs/step"] == pytest.approx(6 * 20 * full["frames/step"])
    assert full["shared"]  # the full X-ReID model of Table 3 is Table 1's run: counted once
    assert P.main(["xreid_table3"]) == 0
    out = capsys.readouterr().out
    assert "ASSUMED 100 TFLOP/s" in out and "workbook:" in out


def test_a_notebook_checks_every_row_before_the_first_trains(monkeypatch, tmp_path):
    from reprolib.experiments.preflight import PreflightError
    from reprolib.workbook.targets import get_target, reproduce

    for env in ("REPROLIB_DATA", "REPROLIB_BUPT"):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path))
    trained = []
    monkeypatch.setattr("reprolib.experiments.runstore.ensure_world", lambda cfg: trained.append(cfg))
    with pytest.raises(PreflightError) as e:
        reproduce(get_target("xreid", "table3"), Workbook("paper", device="cpu"))
    assert "REPROLIB_DATA" in str(e.value) and "REPROLIB_BUPT" in str(e.value)  # both datasets, one error
    assert not trained  # nothing started


# ------------------------------------------------------------------------------ make rehearse
def test_make_rehearse_renders_the_quickstart_and_every_table_notebook_each_taking_the_parameter():
    from reprolib.workbook.rehearse import rehearsal_notebooks
    from reprolib.workbook.runner import _parameter_names, discover, find

    names = rehearsal_notebooks()
    tables = [nb.key for nb in discover() if nb.paper]
    assert len(tables) == 32 and names == ["quickstart", "eval_released", *tables]
    assert rehearsal_notebooks("cmft") == [k for k in tables if k.startswith("cmft_")]
    for name in names:
        assert "rehearsal" in _parameter_names(find(name).path), name


def test_make_rehearse_tries_every_notebook_and_reports_each_failure(monkeypatch, tmp_path, capsys):
    from reprolib.experiments import rehearsal
    from reprolib.workbook import rehearse

    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path))
    monkeypatch.setattr(rehearsal, "prepare", lambda *a, **k: None)
    calls = []

    def fake_call(cmd, stdout, stderr, env):  # a render: the notebook "vld_table3" fails
        if "rehearse" in cmd:  # a phase check
            calls.append((" ".join(cmd[cmd.index("rehearse"):]), env["OMP_NUM_THREADS"], True))
            return 0
        name = cmd[cmd.index("run") + 1]
        calls.append((name, env["OMP_NUM_THREADS"], "--rehearsal" in cmd and "paper" in cmd))
        stdout.write(f"INFO rendering\nValueError: boom in {name}\n" if name == "vld_table3" else
                     "error: DeadKernelError: Kernel died (--debug shows the traceback)\n")
        return 0 if name == "quickstart" else 1

    monkeypatch.setattr(rehearse.subprocess, "call", fake_call)
    monkeypatch.setattr(rehearse.os, "cpu_count", lambda: 2)
    code = rehearse.main(["quickstart", "vld_table3", "cmft_table3", "--jobs", "2"])
    assert code == 1
    assert sorted(c[0] for c in calls) == ["cmft_table3", "quickstart", "vld_table3"]
    assert all(threads == "1" and paper for _, threads, paper in calls)  # 2 cores shared by 2 renders
    report = json.loads((tmp_path / "rehearsal" / "report.json").read_text())
    assert report["failed"] == ["vld_table3", "cmft_table3"] and report["jobs"] == 2
    assert "out of memory" in report["notebooks"][2]["error"] and "--jobs 1" in report["notebooks"][2]["error"]
    assert [n["notebook"] for n in report["notebooks"]] == ["quickstart", "vld_table3", "cmft_table3"]
    assert "boom in vld_table3" in report["notebooks"][1]["error"]
    assert (tmp_path / "rehearsal" / "logs" / "cmft_table3.log").is_file()
    out = capsys.readouterr().out
    assert "1/3 rendered" in out and "FAILED" in out
    assert not any(c[0].startswith("rehearse") for c in calls)  # named notebooks: no phase checks

    calls.clear()
    monkeypatch.setattr(rehearse, "rehearsal_notebooks", lambda paper=None: ["quickstart"])
    assert rehearse.main(["--jobs", "1"]) == 0  # everything: the notebooks, then DDP and resume, in order
    assert [c[0] for c in calls] == ["quickstart", "rehearse ddp cmft_regdb", "rehearse resume cmft_regdb"]
    assert calls[0][1] == "2"  # one render at a time gets both cores
    report = json.loads((tmp_path / "rehearsal" / "report.json").read_text())
    assert [n["notebook"] for n in report["notebooks"]] == ["quickstart", "ddp-cmft_regdb", "resume-cmft_regdb"]


def test_make_rehearse_shows_each_running_render_s_row_step_and_eta(tmp_path):
    from reprolib.workbook.rehearse import latest_progress

    log_file = tmp_path / "vld_table1.log"
    assert latest_progress(log_file) == ""  # not started yet
    log_file.write_text(
        "INFO papermill: Executing Cell 5---------------------------------------\n"
        "WARNING papermill: INFO reprolib.workbook.targets: vld table1: row 1/3 'VLD (T=6)' (vld )\n"
        "WARNING papermill: INFO reprolib.engine.trainer: train vld 2/2 step epoch 2/2 loss 69.3 | 23 s/step, eta 0s\n"
        "WARNING papermill: INFO reprolib.workbook.targets: vld table1: row 2/3 'VLD (T=10)' (vld data.seq_len=10)\n"
        "WARNING papermill: INFO reprolib.models.weights: loading CLIP 'ViT-B-16-quickgelu' weights from x.pt\n"
        "WARNING papermill: INFO reprolib.engine.trainer: train vld 1/2 step epoch 1/2 loss 83.9 | 66 s/step, eta 1m06s\n")
    # the row being run and its latest step (not the step of the row before it, not other log lines)
    assert latest_progress(log_file) == ("vld table1: row 2/3 'VLD (T=10)' (vld data.seq_len=10) | "
                                         "train vld 1/2 step epoch 1/2 loss 83.9 | 66 s/step, eta 1m06s")


def test_a_rehearsal_says_which_given_roots_and_weights_it_does_not_read(monkeypatch, caplog, tmp_path):
    from reprolib.experiments import rehearsal as R

    setup = R.Setup(roots={"hitsz-vcm": str(tmp_path / "vcm")}, clip_weights="/stand/in.pt",
                    resnet_weights="/stand/r50.pth", clip_files={})
    monkeypatch.setattr(R, "prepare", lambda *a, **k: setup)
    for var in (*R.ENV_OF.values(), "CLIP_WEIGHTS", "RESNET50_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)  # the workbook sets them for the kernel; restored after the test
    with caplog.at_level(logging.WARNING, logger="reprolib.workbook.session"):
        wb = Workbook("paper", data_root="/data/HITSZ-VCM", resnet_weights="/w/r50.pth", rehearsal=True)
    said = " ".join(r.getMessage() for r in caplog.records if "not reading" in r.getMessage())
    assert "/data/HITSZ-VCM" in said and "/w/r50.pth" in said and "CLIP weights" not in said
    assert wb.roots == setup.roots and wb.resnet_weights == "/stand/r50.pth"  # the stand-ins, not what was given
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reprolib.workbook.session"):
        Workbook("paper", rehearsal=True)
    assert not any("not reading" in r.getMessage() for r in caplog.records)
