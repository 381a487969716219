"""The bad-input catalogue (issue 18): nothing executed, nothing deleted, every error one clear line.

One test per case. Each asserts that the message names the file or the key, and that nothing the
user had was lost (files still there, unchanged) or run (a ``__reduce__`` payload's marker file
does not exist). Everything here takes well under a second or two per test: no training beyond a
smoke step, no notebook render.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ 1. weights never unpickled


class _Payload:
    """Pickles to ``open(marker, "w")``: unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _forged_torchscript(path: Path, marker: Path, constants: bool) -> None:
    """A zip laid out like a TorchScript archive (``code/``, optionally ``constants.pkl``) whose
    ``data.pkl`` holds the payload."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"visual.proj": _Payload(marker)}, protocol=2))
        zf.writestr("archive/code/__torch__/model.py", "def forward(self):\n  pass\n")
        zf.writestr("archive/version", "3\n")
        if constants:
            zf.writestr("archive/constants.pkl", pickle.dumps((), protocol=2))


def _payload_file(kind: str, folder: Path, marker: Path) -> Path:
    obj = {"visual.proj": _Payload(marker)}
    if kind == "pt-zip":
        path = folder / "ViT-B-16.pt"
        torch.save(obj, path)
    elif kind == "legacy-pt":
        path = folder / "ViT-B-16.pth"
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    elif kind == "bin":
        path = folder / "open_clip_pytorch_model.bin"
        path.write_bytes(pickle.dumps(obj))
    elif kind == "torchscript-code-only":  # the hole of issue 18: a code/ folder was taken for TorchScript
        path = folder / "ViT-B-16.pt"
        _forged_torchscript(path, marker, constants=False)
    elif kind == "torchscript-constants":  # what torch itself calls TorchScript, with a forged data.pkl
        path = folder / "ViT-B-16.pt"
        _forged_torchscript(path, marker, constants=True)
    else:
        raise AssertionError(kind)
    return path


KINDS = ("pt-zip", "legacy-pt", "bin", "torchscript-code-only", "torchscript-constants")
ROUTES = ("weights_path", "env", "cli")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("kind", KINDS)
def test_weights_payload_never_runs(kind, route, tmp_path, monkeypatch, capsys):
    from reprolib.models import weights

    marker = tmp_path / "PWNED"
    path = _payload_file(kind, tmp_path, marker)
    before = path.read_bytes()
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    if route == "cli":
        assert weights.main(["--arch", weights.TINYCLIP_ARCH, "--weights-path", str(path)]) == 1
        message = capsys.readouterr().err
        assert message.count("\n") == 1  # one line
    else:
        if route == "env":
            monkeypatch.setenv(weights.ENV_VAR, str(path))
            kwargs = {}
        else:
            kwargs = {"weights_path": str(path)}
        with pytest.raises(weights.WeightsFormatError) as info:
            weights.create_clip_model(weights.TINYCLIP_ARCH, **kwargs)
        message = str(info.value)
    assert not marker.exists(), f"{kind} via {route}: the payload ran"
    assert str(path) in message and "weights_only=False" not in message
    assert path.read_bytes() == before


def test_weights_random_bytes_and_truncated_name_the_file(tmp_path):
    from reprolib.models import weights

    rand = tmp_path / "random.bin"
    import random

    rand.write_bytes(random.Random(0).randbytes(4096))
    good = tmp_path / "good.pt"
    torch.save({"a": torch.zeros(4096)}, good)
    trunc = tmp_path / "truncated.pt"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path, why in ((rand, "torch file"), (trunc, "truncated")):
        with pytest.raises(weights.WeightsFormatError) as info:
            weights.create_clip_model(weights.TINYCLIP_ARCH, weights_path=str(path))
        text = str(info.value)
        assert str(path) in text and why in text and "weights_only=False" not in text
        assert "\n" not in text


def test_weights_detect_format_needs_constants_pkl(tmp_path):
    from reprolib.models.weights import detect_format

    marker = tmp_path / "PWNED"
    assert detect_format(_payload_file("torchscript-code-only", tmp_path, marker)) == "state_dict"
    assert detect_format(_payload_file("torchscript-constants", tmp_path, marker)) == "torchscript"
    assert not marker.exists()


# ------------------------------------------------------------------ 2. nothing deleted that we did not make


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory) -> Path:
    from reprolib.data.synthetic import write_world

    return write_world(tmp_path_factory.mktemp("world") / "vcm", scale="smoke", seed=0, fmt="vcm", workers=0,
                       progress=False)


def _copy_world(world: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(world, dest)
    return dest


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _user_tree(root: Path) -> Path:
    (root / "Train" / "0001").mkdir(parents=True)
    (root / "Train" / "0001" / "1.jpg").write_bytes(b"a real frame")
    (root / "info").mkdir()
    (root / "info" / "train_name.txt").write_text("0001M1D1T1F1.jpg\n")
    return root


def test_synth_overwrite_refuses_a_tree_it_did_not_write(tmp_path, capsys):
    from reprolib.cli import main

    tree = _user_tree(tmp_path / "HITSZ-VCM")
    before = _snapshot(tree)
    rc = main(["data", "synth", str(tree), "--scale", "smoke", "--overwrite", "--workers", "0"])
    err = capsys.readouterr().err
    assert rc != 0 and str(tree) in err and "never replaced" in err
    assert _snapshot(tree) == before  # nothing deleted


def test_synth_overwrite_still_replaces_its_own_tree(smoke_world, tmp_path):
    from reprolib.data.synthetic.writers import COMPLETE_MARKER, write_world

    own = _copy_world(smoke_world, tmp_path / "own")
    marker = json.loads((own / COMPLETE_MARKER).read_text())
    (own / COMPLETE_MARKER).write_text(json.dumps({**marker, "seed": 7}))  # another SynthVCM world
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_world(own, "smoke", seed=0, fmt="vcm", workers=0, progress=False)
    write_world(own, "smoke", seed=0, fmt="vcm", workers=0, progress=False, overwrite=True)
    assert json.loads((own / COMPLETE_MARKER).read_text())["seed"] == 0


def test_training_on_a_real_tree_never_advises_overwrite(tmp_path):
    from reprolib.experiments.runstore import _ensure_synthetic

    tree = _user_tree(tmp_path / "HITSZ-VCM")
    before = _snapshot(tree)
    with pytest.raises(FileExistsError) as info:
        _ensure_synthetic(tree, "smoke", "hitsz-vcm")
    text = str(info.value)
    assert "data.root" in text and str(tree) in text and "--profile paper" in text
    assert "pass --overwrite" not in text and "overwrite=True" not in text
    assert _snapshot(tree) == before


def test_killed_synth_temp_tree_is_cleaned_on_the_next_call(smoke_world, tmp_path):
    from reprolib.data.synthetic.writers import TMP_OWNER, write_world

    out = _copy_world(smoke_world, tmp_path / "w")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    import socket

    stale = tmp_path / "w.tmp-deadbeef"  # what a SIGKILLed generation leaves
    (stale / "Train").mkdir(parents=True)
    (stale / TMP_OWNER).write_text(json.dumps({"pid": int(dead), "host": socket.gethostname()}))
    live = tmp_path / "w.tmp-0badcafe"  # a generation still running (this process)
    live.mkdir()
    (live / TMP_OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    foreign = tmp_path / "w.tmp-userdata"  # a user's folder that happens to match the pattern
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    write_world(out, "smoke", seed=0, fmt="vcm", workers=0, progress=False)  # complete tree: reused
    assert not stale.exists()
    assert live.exists() and (foreign / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------ 3. YAML 1.2 numbers, ranges at load


@pytest.mark.parametrize("text,value", [("3e-4", 3e-4), ("1e6", 1e6), ("1.0e6", 1e6), ("2.5E-5", 2.5e-5)])
def test_yaml12_numbers_in_set(text, value):
    from reprolib.config import load_config

    assert load_config("baseline", "smoke", [f"optim.lr={text}"]).optim.lr == value


def test_yaml12_numbers_in_a_yaml_file(tmp_path):
    from reprolib.config import load_config

    path = tmp_path / "mine.yaml"
    path.write_text("base: baseline\noptim:\n  lr: 3e-4\n  weight_decay: 1e-4\nsched:\n  min_lr: 1.0e-7\n")
    cfg = load_config(str(path), "smoke")
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.sched.min_lr) == (3e-4, 1e-4, 1e-7)


@pytest.mark.parametrize("override,key", [("data.seq_len=0", "data.seq_len >= 1"),
                                          ("data.num_ids=0", "data.num_ids >= 1"),
                                          ("data.num_pos=-1", "data.num_pos >= 1")])
def test_ranges_are_checked_at_load_and_no_run_directory_is_made(override, key, tmp_path):
    from reprolib.config import ConfigError
    from reprolib.experiments import get_run

    with pytest.raises(ConfigError) as info:
        get_run("baseline", profile="smoke", overrides=[override], store=tmp_path / "store")
    assert key in str(info.value) and f"--set {override}" in str(info.value)
    assert not (tmp_path / "store").exists()


def test_unknown_dataset_names_the_key_and_the_nearest_name():
    from reprolib.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"data\.dataset.*'nosuch'.*hitsz-vcm"):
        load_config("baseline", "smoke", ["data.dataset=nosuch"])
    with pytest.raises(ConfigError, match="did you mean 'hitsz-vcm'"):
        load_config("baseline", "smoke", ["data.dataset=hitsz_vcm"])


def test_a_config_value_error_blames_the_set_not_the_base_yaml():
    from reprolib.config import ConfigError, load_config

    with pytest.raises(ConfigError) as info:
        load_config("baseline", "smoke", ["optim.lr=fast"])
    text = str(info.value)
    assert text.startswith("--set optim.lr=fast:") and "optim.lr" in text and ".yaml" not in text


def test_a_config_value_error_in_a_file_names_that_file(tmp_path):
    from reprolib.config import ConfigError, load_config

    path = tmp_path / "mine.yaml"
    path.write_text("base: baseline\nprofiles:\n  smoke:\n    data:\n      seq_len: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), "smoke")
    assert str(info.value).startswith(f"{path}:") and "data.seq_len" in str(info.value)


# ------------------------------------------------------------- 4. the run store: --force recovers every stuck state


@pytest.fixture
def fake_training(monkeypatch):
    """``train_experiment`` replaced by a stand-in that resumes like the trainer (it reads
    ``last.pt`` with the real checkpoint reader and refuses another config's checkpoint) and
    writes ``last.pt`` and ``metrics.json``; ``calls`` records each call."""
    import reprolib.engine as engine
    from reprolib.config import config_hash
    from reprolib.engine.checkpoint import load_checkpoint
    from reprolib.utils.io import atomic_torch_save, atomic_write_json

    calls = []

    def train_experiment(cfg, run_dir):
        run_dir = Path(run_dir)
        ckpt = run_dir / "last.pt"
        if ckpt.is_file():
            state = load_checkpoint(ckpt)
            if state.get("config_hash") != config_hash(cfg):
                raise ValueError(f"{ckpt}: written by a different config; rerun with --force")
        calls.append(run_dir)
        atomic_torch_save({"format": 1, "model": {}, "config_hash": config_hash(cfg)}, ckpt)
        metrics = {"eval": {"ir2rgb": {"R1": 1.0}}, "train_time_s": 0.0}
        atomic_write_json(run_dir / "metrics.json", metrics)
        return metrics

    monkeypatch.setattr(engine, "train_experiment", train_experiment)
    monkeypatch.setattr("reprolib.experiments.runstore.ensure_world", lambda cfg: None)
    return calls


def _run_dir(store: Path) -> Path:
    from reprolib.config import load_config
    from reprolib.experiments.runstore import run_name

    return store / run_name(load_config("baseline", "smoke"))


def test_truncated_metrics_names_the_file_and_force_recovers(fake_training, tmp_path):
    from reprolib.experiments import get_run
    from reprolib.experiments.runstore import RunStoreError

    store = tmp_path / "store"
    run = get_run("baseline", profile="smoke", store=store)
    (run.path / "metrics.json").write_text('{"eval": {"ir2')  # truncated
    with pytest.raises(RunStoreError) as info:
        get_run("baseline", profile="smoke", store=store)
    assert str(run.path / "metrics.json") in str(info.value) and "--force" in str(info.value)
    again = get_run("baseline", profile="smoke", store=store, force=True)
    assert again.metrics["eval"]["ir2rgb"]["R1"] == 1.0 and len(fake_training) == 2


@pytest.mark.parametrize("state", ["truncated", "other-config"])
def test_stuck_checkpoint_names_the_file_and_force_recovers(state, fake_training, tmp_path):
    from reprolib.experiments import get_run

    store = tmp_path / "store"
    run_dir = _run_dir(store)
    run_dir.mkdir(parents=True)
    ckpt = run_dir / "last.pt"
    if state == "truncated":
        torch.save({"format": 1, "model": {"w": torch.zeros(1000)}}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:300])
    else:
        torch.save({"format": 1, "model": {}, "config_hash": "0123456789ab"}, ckpt)
    with pytest.raises(ValueError) as info:
        get_run("baseline", profile="smoke", store=store)
    assert str(ckpt) in str(info.value) and "--force" in str(info.value)
    assert "new run directory" not in str(info.value)
    assert ckpt.is_file()  # the failed resume kept the checkpoint
    run = get_run("baseline", profile="smoke", store=store, force=True)
    assert run.path == run_dir and (run_dir / "metrics.json").is_file()


def test_real_checkpoint_reader_names_a_truncated_file(tmp_path):
    from reprolib.engine.checkpoint import load_checkpoint

    ckpt = tmp_path / "last.pt"
    torch.save({"format": 1, "model": {"w": torch.zeros(1000)}}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    with pytest.raises(ValueError, match="truncated") as info:
        load_checkpoint(ckpt)
    assert str(ckpt) in str(info.value) and "--force" in str(info.value) and "\n" not in str(info.value)


def test_trainer_config_mismatch_message_points_at_force():
    import inspect

    from reprolib.engine.trainer import Trainer

    source = inspect.getsource(Trainer.resume)
    assert "--force" in source and "start a new run directory" not in source


def test_a_stale_sibling_whose_config_no_longer_loads_never_blocks(fake_training, tmp_path, caplog):
    from reprolib.experiments import get_run

    store = tmp_path / "store"
    sibling = store / "baseline-000000000000"
    sibling.mkdir(parents=True)
    (sibling / "config.yaml").write_text("data:\n  no_such_key: 1\n")
    (sibling / "metrics.json").write_text("{}")
    (sibling / "last.pt").write_bytes(b"")
    before = _snapshot(sibling)
    run = get_run("baseline", profile="smoke", store=store)
    assert run.path != sibling and len(fake_training) == 1
    assert any(str(sibling) in r.getMessage() and "stale" in r.getMessage() for r in caplog.records)
    assert _snapshot(sibling) == before  # reported, not deleted


def test_a_failed_run_leaves_no_empty_run_directory(monkeypatch, tmp_path):
    import reprolib.engine as engine
    from reprolib.experiments import get_run

    def boom(cfg, run_dir):
        (Path(run_dir) / "config.yaml").write_text("written before the failure\n")
        raise RuntimeError("model construction failed")

    monkeypatch.setattr(engine, "train_experiment", boom)
    monkeypatch.setattr("reprolib.experiments.runstore.ensure_world", lambda cfg: None)
    store = tmp_path / "store"
    with pytest.raises(RuntimeError, match="model construction failed"):
        get_run("baseline", profile="smoke", store=store)
    assert not _run_dir(store).exists()


def test_force_keeps_a_resumable_failure_and_files_it_did_not_make(fake_training, tmp_path):
    from reprolib.experiments import get_run

    store = tmp_path / "store"
    run = get_run("baseline", profile="smoke", store=store)
    (run.path / "my_notes.txt").write_text("keep me")
    get_run("baseline", profile="smoke", store=store, force=True)
    assert (run.path / "my_notes.txt").read_text() == "keep me"


# ------------------------------------------------------------------ 6. the CLI: one line, no traceback, Ctrl-C


def test_cli_prints_one_line_without_traceback(tmp_path, capsys):
    from reprolib.cli import main

    rc = main(["train", "baseline", "--profile", "smoke", "--store", str(tmp_path / "s"), "--set", "data.seq_len=0"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "data.seq_len" in lines[0] and "--set data.seq_len=0" in lines[0]
    assert not (tmp_path / "s").exists()


def test_cli_debug_shows_the_traceback(tmp_path):
    from reprolib.cli import main
    from reprolib.config import ConfigError

    with pytest.raises(ConfigError):
        main(["train", "baseline", "--profile", "smoke", "--debug", "--set", "data.num_ids=0"])


def test_cli_ctrl_c_keeps_the_checkpoint_and_says_how_to_resume(monkeypatch, tmp_path, capsys, caplog):
    import reprolib.engine as engine
    from reprolib.cli import EXIT_INTERRUPTED, main

    def interrupted(cfg, run_dir):
        torch.save({"format": 1, "model": {}}, Path(run_dir) / "last.pt")
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "train_experiment", interrupted)
    monkeypatch.setattr("reprolib.experiments.runstore.ensure_world", lambda cfg: None)
    store = tmp_path / "s"
    rc = main(["train", "baseline", "--profile", "smoke", "--store", str(store)])
    err = capsys.readouterr().err
    assert rc == EXIT_INTERRUPTED and "Traceback" not in err and "resume" in err
    assert (_run_dir(store) / "last.pt").is_file()
    assert any("last.pt" in r.getMessage() and "resume" in r.getMessage() for r in caplog.records)


def test_sigint_to_the_cli_process_exits_cleanly(tmp_path):
    """A real SIGINT to ``python -m reprolib`` while it works: exit 130, one message, no traceback."""
    script = (
        "import sys, time, reprolib.cli as cli\n"
        "def slow(argv):\n"
        "    print('ready', flush=True); time.sleep(30); return 0\n"
        "cli.COMMANDS['train'] = {'': ('', slow)}\n"
        "sys.exit(cli.main(['train']))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err


def test_full_disk_names_the_folder(monkeypatch, tmp_path):
    import shutil as _shutil

    from reprolib.utils import io

    def torch_full(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4416 vs 4310")

    monkeypatch.setattr(io.torch, "save", torch_full)
    monkeypatch.setattr(_shutil, "disk_usage", lambda p: _shutil._ntuple_diskusage(10 << 30, 10 << 30, 1024))
    old = tmp_path / "last.pt"
    old.write_bytes(b"previous checkpoint")
    with pytest.raises(OSError) as info:
        io.atomic_torch_save({"x": 1}, old)
    assert "no space left on" in str(info.value) and str(tmp_path) in str(info.value)
    assert "inline_container" not in str(info.value)
    assert old.read_bytes() == b"previous checkpoint" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


# ------------------------------------------------------------------ 5. a failed render publishes nothing


@pytest.mark.parametrize("fails", [True, False])
def test_render_publishes_notebook_tables_and_figures_together(fails, monkeypatch, tmp_path):
    import papermill

    from reprolib.workbook import runner as notebooks
    from reprolib.workbook.compare import results_dir

    monkeypatch.setenv("REPROLIB_RESULTS", str(tmp_path / "results"))
    final = results_dir("smoke")
    (final / "figures").mkdir(parents=True)
    (final / "figures" / "quickstart_retrieval_ir2rgb.png").write_bytes(b"old figure")
    out = notebooks.output_path(notebooks.find("quickstart"), "smoke")
    out.parent.mkdir(parents=True)
    out.write_text("old notebook")

    def execute_notebook(src, dst, **kwargs):  # what the kernel does: write through results_dir
        here = results_dir("smoke")
        (here / "figures").mkdir(parents=True, exist_ok=True)
        (here / "figures" / "quickstart_retrieval_ir2rgb.png").write_bytes(b"new figure")
        (here / "tables").mkdir(exist_ok=True)
        (here / "tables" / "quickstart.csv").write_text("new table")
        Path(dst).write_text("new notebook")
        if fails:
            raise RuntimeError("cell 7 failed")

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    monkeypatch.setattr(notebooks, "_kernel_name", lambda: "python3")
    if fails:
        with pytest.raises(RuntimeError):
            notebooks.run_notebook("quickstart", profile="smoke", progress=False)
        assert (final / "figures" / "quickstart_retrieval_ir2rgb.png").read_bytes() == b"old figure"
        assert not (final / "tables" / "quickstart.csv").exists() and out.read_text() == "old notebook"
    else:
        notebooks.run_notebook("quickstart", profile="smoke", progress=False)
        assert (final / "figures" / "quickstart_retrieval_ir2rgb.png").read_bytes() == b"new figure"
        assert (final / "tables" / "quickstart.csv").read_text() == "new table" and out.read_text() == "new notebook"
    assert not [p for p in final.parent.iterdir() if p.name.startswith(".render-")]
    assert "REPROLIB_RENDER_STAGING" not in os.environ


# ------------------------------------------------------------------ 7. data check decodes every frame


def test_data_check_lists_every_corrupt_frame(smoke_world, tmp_path, capsys):
    import random

    from reprolib.data.check import main

    root = _copy_world(smoke_world, tmp_path / "vcm")
    frames = sorted((root / "Train").rglob("*.jpg"))
    truncated, garbage = frames[3], frames[-2]
    truncated.write_bytes(truncated.read_bytes()[:200])
    garbage.write_bytes(random.Random(1).randbytes(900))
    before = _snapshot(root)
    assert main(["hitsz-vcm", str(root)]) == 1
    err = capsys.readouterr().err
    assert str(truncated) in err and str(garbage) in err and "2 problems" in err
    assert main(["hitsz-vcm", str(root), "--no-decode"]) == 0  # the quick pass does not decode
    summary = json.loads(capsys.readouterr().out)
    assert summary["decode"] == {"checked": False, "frames": summary["decode"]["frames"]}
    assert _snapshot(root) == before


def test_data_check_warns_on_identity_overlap(smoke_world, tmp_path, capsys):
    from reprolib.data.check import main

    root = _copy_world(smoke_world, tmp_path / "vcm")
    train_pid = (root / "info" / "track_train_info.txt").read_text().split()[3]
    test = (root / "info" / "track_test_info.txt").read_text().splitlines()
    first = test[0].split()
    test[0] = " ".join(first[:3] + [train_pid] + first[4:])
    (root / "info" / "track_test_info.txt").write_text("\n".join(test) + "\n")
    assert main(["hitsz-vcm", str(root), "--no-decode"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert any("both the training and the test split" in w and str(int(train_pid)) in w for w in warnings)


def test_data_check_warns_on_unreferenced_index_rows(smoke_world, tmp_path, capsys):
    from reprolib.data.check import main

    root = _copy_world(smoke_world, tmp_path / "vcm")
    names = root / "info" / "train_name.txt"
    lines = names.read_text().splitlines()
    names.write_text("\n".join(lines + [lines[-1]]) + "\n")  # one name line no track row covers
    assert main(["hitsz-vcm", str(root), "--no-decode"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert any("info/train_name.txt" in w and "unreferenced" in w and f"line {len(lines) + 1}" in w
               for w in warnings)


def test_data_check_decodes_a_clean_tree(smoke_world, capsys):
    from reprolib.data.check import main

    assert main(["hitsz-vcm", str(smoke_world)]) == 0
    decode = json.loads(capsys.readouterr().out)["decode"]
    assert decode["checked"] and decode["corrupt"] == 0 and decode["frames"] > 100


# ------------------------------------------------------------------ 8. a moved or copied clone


def _fake_checkout(root: Path, kernel_python: Path) -> Path:
    (root / "reprolib").mkdir(parents=True)
    (root / "reprolib" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text("[project]\nname = 'reprolib'\n")
    kernel = root / ".venv" / "share" / "jupyter" / "kernels" / "reprolib"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({"argv": [str(kernel_python), "-m", "ipykernel_launcher"]}))
    return root / ".venv"


def test_a_moved_clone_says_what_to_rerun(tmp_path, monkeypatch, capsys):
    from reprolib import cli
    from reprolib.utils import install

    monkeypatch.delenv(install.SKIP_ENV, raising=False)
    prefix = _fake_checkout(tmp_path / "moved", ROOT / ".venv" / "bin" / "python")
    problems = dict(install.install_problems(cwd=tmp_path / "moved", prefix=prefix))
    assert set(problems) == {"venv", "kernel", "cwd"}
    for message in problems.values():
        assert install.REINSTALL_HINT in message and str(tmp_path / "moved") in message
    monkeypatch.setattr(install, "install_problems", lambda: list(problems.items()))
    assert cli.main(["train", "baseline"]) == 2
    err = capsys.readouterr().err
    assert "make install" in err and str(tmp_path / "moved") in err


def test_this_checkout_has_no_install_problem(monkeypatch):
    from reprolib.utils import install

    monkeypatch.delenv(install.SKIP_ENV, raising=False)
    prefix = ROOT / ".venv"
    problems = install.install_problems(cwd=ROOT, prefix=prefix)
    assert not [kind for kind, _ in problems if kind in ("venv", "cwd")], problems


# ------------------------------------------------------------------ own cases


def test_no_code_passes_weights_only_false():
    """No call in the library unpickles with ``weights_only=False`` (a static guard for case 1)."""
    import ast

    offenders = []
    for path in sorted((ROOT / "reprolib").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "weights_only" and not (isinstance(kw.value, ast.Constant) and kw.value.value is True):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_weights_torchscript_still_loads_through_jit_only(tmp_path, monkeypatch):
    """A genuine TorchScript archive loads, and torch.load is never called on it."""
    from reprolib.models import weights

    model, _ = weights.create_clip_model(weights.TINYCLIP_ARCH, pretrained="none")

    class Holder(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    root = Holder()
    for key, value in model.state_dict().items():
        *parents, leaf = key.split(".")
        node = root
        for name in parents:
            if not hasattr(node, name):
                node.add_module(name, Holder())
            node = getattr(node, name)
        node.register_buffer(leaf, value.clone())
    path = tmp_path / "ViT-tiny.pt"
    with pytest.warns(FutureWarning):
        torch.jit.script(root).save(str(path))

    def no_torch_load(*args, **kwargs):
        raise AssertionError("torch.load called on a TorchScript archive")

    monkeypatch.setattr(torch, "load", no_torch_load)
    loaded, source = weights.create_clip_model(weights.TINYCLIP_ARCH, weights_path=str(path))
    assert source.format == "torchscript"
    torch.testing.assert_close(loaded.state_dict()["visual.proj"], model.state_dict()["visual.proj"])


def test_synth_leftover_old_tree_of_an_interrupted_replacement_is_cleaned(smoke_world, tmp_path):
    from reprolib.data.synthetic.writers import clean_stale_temps

    out = _copy_world(smoke_world, tmp_path / "w")
    old = _copy_world(smoke_world, tmp_path / "w.old-12345678")  # killed between rename and rmtree
    user = tmp_path / "w.old-mine"
    user.mkdir()
    (user / "data.txt").write_text("mine")
    assert clean_stale_temps(out) == [old]
    assert not old.exists() and (user / "data.txt").read_text() == "mine" and out.exists()


def test_truncated_train_log_is_recovered_by_force(fake_training, tmp_path):
    from reprolib.experiments import get_run

    store = tmp_path / "store"
    run = get_run("baseline", profile="smoke", store=store)
    (run.path / "train_log.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    get_run("baseline", profile="smoke", store=store, force=True)
    assert not (run.path / "train_log.jsonl").exists()  # discarded; the (real) trainer writes a new one


def test_list_runs_skips_a_truncated_metrics_file(fake_training, tmp_path, caplog):
    from reprolib.experiments import get_run
    from reprolib.experiments.runstore import list_runs

    store = tmp_path / "store"
    run = get_run("baseline", profile="smoke", store=store)
    (run.path / "metrics.json").write_text("{")
    assert list_runs("smoke", store) == []
    assert any(str(run.path / "metrics.json") in r.getMessage() for r in caplog.records)


def test_cli_unexpected_error_is_one_line_too(monkeypatch, capsys):
    from reprolib import cli

    def broken(argv):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setitem(cli.COMMANDS, "train", {"": ("", broken)})
    assert cli.main(["train"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TypeError" in err and "--debug" in err
