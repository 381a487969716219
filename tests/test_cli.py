"""The command line: help, routing, exit codes, and `data check` end to end on the smoke world."""
import json
import subprocess
import sys

import pytest

from reprolib.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for group, subs in COMMANDS.items():
        for sub in subs:
            assert f"{group} {sub}".strip() in out


def test_unknown_command_and_missing_subcommand_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert main(["data"]) == 2
    assert "needs one of: check, synth" in capsys.readouterr().err


def test_data_check_prints_json_and_fails_clearly(tmp_path):
    from reprolib.data.synthetic import write_world

    root = write_world(tmp_path / "vcm", scale="smoke", seed=0, progress=False)
    ok = subprocess.run([sys.executable, "-m", "reprolib", "data", "check", "hitsz-vcm", str(root)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["eval_sets"]["ir2rgb"]["query"]["after_filter"]["tracklets"] > 0
    (tmp_path / "empty").mkdir()
    bad = subprocess.run([sys.executable, "-m", "reprolib", "data", "check", "hitsz-vcm", str(tmp_path / "empty")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    for name in ("track_train_info.txt", "track_test_info.txt", "query_IDX.txt"):  # every missing file, one error
        assert name in bad.stderr


@pytest.mark.slow
def test_train_prints_the_run_directory_last(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reprolib", "train", "baseline", "--profile", "smoke",
                           "--store", str(tmp_path), "--set", "train.epochs=1", "--set", "train.iters_per_epoch=2"],
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "CI": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = proc.stdout.strip().splitlines()[-1]
    assert run_dir.startswith(str(tmp_path))
    metrics = json.loads((__import__("pathlib").Path(run_dir) / "metrics.json").read_text())
    assert set(metrics["eval"]) == {"ir2rgb", "rgb2ir"}
