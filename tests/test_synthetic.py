"""SynthVCM (the miniature world): determinism, exact on-disk formats, modality appearance.

Index files are parsed here with plain Python following ``docs/decisions/data.md#hitsz-vcm-index-files``
and ``docs/decisions/data.md#buptcampus-split-files``, independently of the real loaders.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reprolib.data.synthetic import (
    WORLD_SPECS,
    build_world,
    identity_captions,
    render_frame,
    sample_camera,
    sample_identity,
    write_world,
)
from reprolib.data.synthetic import writers as writers_mod
from reprolib.data.synthetic.world import derive_rng

BUPT_CAMERAS = {"LS3", "G25", "CQ1", "W4", "TSG1", "TSG2"}


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth")
    return {
        "vcm": write_world(base / "vcm0", "smoke", seed=0, fmt="vcm", workers=0, progress=False),
        "vcm_again": write_world(base / "vcm0b", "smoke", seed=0, fmt="vcm", workers=2, progress=False),
        "vcm_seed1": write_world(base / "vcm1", "smoke", seed=1, fmt="vcm", workers=0, progress=False),
        "bupt": write_world(base / "bupt0", "smoke", seed=0, fmt="bupt", workers=0, progress=False),
    }


# ------------------------------------------------------------------------------ determinism


def test_same_seed_gives_byte_identical_tree_across_worker_counts(worlds):
    a, b = _tree_digest(worlds["vcm"]), _tree_digest(worlds["vcm_again"])
    assert a.keys() == b.keys()
    assert a == b  # index files *and* images, rendered in 1 vs 2 processes


def test_different_seed_gives_different_index_files(worlds):
    for name in ("train_name.txt", "track_train_info.txt", "test_name.txt", "track_test_info.txt"):
        a = (worlds["vcm"] / "info" / name).read_bytes()
        b = (worlds["vcm_seed1"] / "info" / name).read_bytes()
        assert a != b, name


# ------------------------------------------------------------------------------ HITSZ-VCM


def _decode(name: str) -> str:
    mod = "ir" if name[5] == "1" else "rgb"
    cam = name[name.index("D"):name.index("T")]
    return f"{name[:4]}/{mod}/{cam}/{name[name.index('F') + 1:]}"


def _read_vcm(root: Path, split: str):
    names = (root / "info" / f"{split}_name.txt").read_text().split("\n")
    assert names[-1] == "" and "" not in names[:-1], "one name per line, no blank lines"
    names = names[:-1]
    rows = []
    for line in (root / "info" / f"track_{split}_info.txt").read_text().splitlines():
        fields = line.split(" ")  # the official parser splits on single spaces
        assert len(fields) == 5, line
        rows.append(tuple(int(f) for f in fields))
    return names, rows


@pytest.mark.parametrize("split,folder", [("train", "Train"), ("test", "Test")])
def test_vcm_index_rows_are_1_based_inclusive_and_decode_to_files(worlds, split, folder):
    root = worlds["vcm"]
    names, rows = _read_vcm(root, split)
    expected_start = 1
    frames_seen = defaultdict(set)
    for m, start, end, pid, cam in rows:
        assert start == expected_start and end >= start  # contiguous, 1-based, inclusive
        expected_start = end + 1
        for name in names[start - 1:end]:
            assert int(name[:4]) == pid and int(name[5]) == m
            assert name[name.index("D") + 1:name.index("T")] == str(cam)
            assert (root / folder / _decode(name)).is_file(), name
            frame = name[name.index("F") + 1:]
            assert frame not in frames_seen[(pid, m, cam)], "F must be unique per (pid, modality, camera)"
            frames_seen[(pid, m, cam)].add(frame)
    assert expected_start == len(names) + 1  # rows cover every name exactly once


def test_vcm_query_idx_points_at_every_ir_test_row(worlds):
    root = worlds["vcm"]
    text = (root / "info" / "query_IDX.txt").read_text()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line (official reader keeps the last)
    query = [int(x) for x in text.strip().split(" ")]
    _, rows = _read_vcm(root, "test")
    assert all(rows[q - 1][0] == 1 for q in query)  # 1-based, IR
    assert sorted(query) == [i + 1 for i, r in enumerate(rows) if r[0] == 1]
    assert any(r[0] == 2 for r in rows)  # the gallery (RGB) is not empty


def test_vcm_splits_short_tracklets_and_shared_cameras(worlds):
    _, train = _read_vcm(worlds["vcm"], "train")
    _, test = _read_vcm(worlds["vcm"], "test")
    train_pids, test_pids = {r[3] for r in train}, {r[3] for r in test}
    assert not train_pids & test_pids
    assert min(test_pids) == max(train_pids) + 1  # test pids continue after the training ones
    assert sorted(train_pids) == list(range(1, WORLD_SPECS["smoke"].num_train_ids + 1))
    for rows in (train, test):
        assert any(r[2] - r[1] + 1 < 12 for r in rows)  # exercises the >=12 filter
        for pid in {r[3] for r in rows}:  # every identity survives the filter in both modalities
            for m in (1, 2):
                assert any(r[3] == pid and r[0] == m and r[2] - r[1] + 1 >= 12 for r in rows)
    # Physical cameras record both modalities: IR and RGB rows share camera ids.
    world = build_world("embedded", seed=0)
    ir = {(t.pid, t.camera) for t in world.tracklets if t.modalities == ("ir",)}
    rgb = {(t.pid, t.camera) for t in world.tracklets if t.modalities == ("rgb",)}
    assert ir & rgb


def test_ir_frames_are_grey_and_rgb_frames_are_coloured(worlds):
    root = worlds["vcm"]
    ir = sorted(root.glob("Train/*/ir/*/*.jpg"))[:40]
    rgb = sorted(root.glob("Train/*/rgb/*/*.jpg"))[:40]
    assert ir and rgb
    for p in ir:
        img = np.asarray(Image.open(p).convert("RGB")).astype(int)  # (H, W, 3)
        assert img.shape == (128, 64, 3)
        assert np.abs(np.diff(img, axis=2)).max() <= 2, p  # R = G = B up to JPEG error
    chroma = [np.abs(np.diff(np.asarray(Image.open(p).convert("RGB")).astype(int), axis=2)).mean() for p in rgb]
    assert min(chroma) > 4.0


def test_attributes_readme_and_marker(worlds):
    root = worlds["vcm"]
    attrs = json.loads((root / "attributes.json").read_text())
    splits = {int(pid): v["split"] for pid, v in attrs["identities"].items()}
    _, test = _read_vcm(root, "test")
    assert {r[3] for r in test} == {p for p, s in splits.items() if s == "test"}
    readme = (root / "README.txt").read_text()
    assert "SynthVCM" in readme and "Seed: 0" in readme and "Scale: smoke" in readme
    marker = json.loads((root / "_COMPLETE").read_text())
    assert marker["seed"] == 0 and marker["format"] == "vcm"


# ------------------------------------------------------------------------------ BUPTCampus


def _split_lines(root: Path, name: str) -> list[list[str]]:
    lines = (root / name).read_text().splitlines()
    assert all(line and len(line.split(" ")) == 4 for line in lines), name
    return [line.split(" ") for line in lines]


def test_bupt_format_pairs_and_paths(worlds):
    root = worlds["bupt"]
    paths = json.loads((root / "data_paths.json").read_text())
    for pid, mods in paths.items():
        for mod, cams in mods.items():
            for cam, tids in cams.items():
                for tid, files in tids.items():
                    for rel in files:
                        assert rel.startswith(f"{pid}/{mod}/{cam}/{pid}_{mod}_{cam}_{tid}_"), rel
                        assert (root / "DATA" / rel).is_file(), rel
    for split in ("train.txt", "train_auxiliary.txt"):
        lines = _split_lines(root, split)
        assert lines
        for pid, mod, cam, tid in lines:
            assert mod == "RGB/IR" and cam in BUPT_CAMERAS and not pid.startswith("0")
            rgb, ir = paths[pid]["RGB"][cam][tid], paths[pid]["IR"][cam][tid]
            assert len(rgb) == len(ir)  # pixel-aligned pairs share frame indices
            assert [p.rsplit("_", 1)[1] for p in rgb] == [p.rsplit("_", 1)[1] for p in ir]
    train_cams = defaultdict(set)
    for pid, _, cam, _ in _split_lines(root, "train.txt"):
        train_cams[pid].add(cam)
    assert any(len(c) == 1 for c in train_cams.values())  # single-camera training identities
    aux_pids = [line[0] for line in _split_lines(root, "train_auxiliary.txt")]
    assert len(aux_pids) == len(set(aux_pids))  # one pair (one camera) per auxiliary identity
    query, gallery = _split_lines(root, "query.txt"), _split_lines(root, "gallery.txt")
    q_pids = [q[0] for q in query]
    assert len(q_pids) == len(set(q_pids))  # one query tracklet per test identity
    assert {q[1] for q in query} <= {"IR", "RGB"}
    assert {g[1] for g in gallery} == {"IR", "RGB"}
    assert set(q_pids) == {g[0] for g in gallery}
    assert not set(q_pids) & (set(train_cams) | set(aux_pids))
    for pid, mod, cam, tid in query + gallery:
        assert paths[pid][mod][cam][tid]


# ------------------------------------------------------------------------------ publication


def test_complete_tree_is_reused_and_foreign_tree_refused(worlds):
    root = worlds["vcm"]
    stamp = (root / "info" / "train_name.txt").stat().st_mtime_ns
    assert write_world(root, "smoke", seed=0, fmt="vcm", progress=False) == root
    assert (root / "info" / "train_name.txt").stat().st_mtime_ns == stamp  # not regenerated
    with pytest.raises(FileExistsError, match="seed=5"):
        write_world(root, "smoke", seed=5, fmt="vcm", progress=False)


def test_interrupted_run_leaves_no_tree(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(writers_mod.VCMWriter, "write_index", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        write_world(tmp_path / "out", "smoke", seed=0, fmt="vcm", workers=0, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither OUT nor OUT.tmp-* remain


def test_cli_main_prints_path(tmp_path, capsys):
    out = tmp_path / "cli"
    assert writers_mod.main([str(out), "--scale", "smoke", "--seed", "3", "--format", "bupt", "--workers", "0"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "_COMPLETE").is_file() and (out / "DATA").is_dir()


# ------------------------------------------------------------------------------ renderer


def test_hue_only_in_visible_luminance_and_material_in_infrared(monkeypatch):
    from reprolib.data.synthetic.identities import COLOURS
    from reprolib.data.synthetic.renderer import garment_level

    # two dyes of equal luminance but different hue: identical in infrared, different in visible
    monkeypatch.setitem(COLOURS, "test-red", (200.0, 60.0, 60.0))
    lum = 0.299 * 200.0 + 0.587 * 60.0 + 0.114 * 60.0
    monkeypatch.setitem(COLOURS, "test-grey", (lum, lum, lum))
    a = sample_identity(1, derive_rng(0, "identity", 1))
    a = dataclasses.replace(a, upper=dataclasses.replace(a.upper, colour="test-red", pattern="plain",
                                                         pattern_colour="test-red", pattern_contrast=0.0))
    recoloured = dataclasses.replace(a, upper=dataclasses.replace(a.upper, colour="test-grey",
                                                                  pattern_colour="test-grey"))
    # near-infrared reflectance: light dyes and reflective fibres are brighter, the hue plays no role
    assert garment_level("cotton", "white") > garment_level("cotton", "grey") > garment_level("cotton", "black")
    assert garment_level("cotton", "grey") > garment_level("leather", "grey")
    assert garment_level("cotton", "test-red") == garment_level("cotton", "test-grey")
    new_material = "leather" if a.upper.material != "leather" else "cotton"
    rematerial = dataclasses.replace(a, upper=dataclasses.replace(a.upper, material=new_material))
    cam = sample_camera(0, 1)

    def frame(attrs, modality):
        return render_frame(attrs, modality, cam, phase=0.7, rng=np.random.default_rng(3))

    ir = frame(a, "ir")
    assert ir.shape == (128, 64, 3) and ir.dtype == np.uint8
    assert (ir[..., 0] == ir[..., 1]).all() and (ir[..., 1] == ir[..., 2]).all()
    assert np.array_equal(frame(recoloured, "ir"), ir)  # hue is invisible in infrared
    assert not np.array_equal(frame(recoloured, "rgb"), frame(a, "rgb"))
    assert not np.array_equal(frame(rematerial, "ir"), ir)  # material sets infrared brightness
    assert np.array_equal(frame(a, "rgb"), frame(a, "rgb"))  # deterministic for a given rng


def test_identity_captions_describe_attributes():
    a = sample_identity(7, derive_rng(0, "identity", 7))
    a = dataclasses.replace(a, accessory="backpack")
    caps = identity_captions(a, n=6, rng=np.random.default_rng(0))
    assert len(caps) == 6 and len(set(caps)) > 1
    assert all(a.upper.colour in c and a.lower.colour in c for c in caps)
    assert any("backpack" in c for c in caps)


def test_a_tree_of_an_older_generator_version_is_regenerated(tmp_path, monkeypatch):
    import json

    from reprolib.data.synthetic import writers
    from reprolib.data.synthetic.writers import COMPLETE_MARKER, write_world

    out = write_world(tmp_path / "w", scale="smoke", seed=0, fmt="vcm")
    marker = json.loads((out / COMPLETE_MARKER).read_text())
    (out / COMPLETE_MARKER).write_text(json.dumps({**marker, "version": "0.9"}))
    (out / "stale.txt").write_text("from the old generator")
    write_world(out, scale="smoke", seed=0, fmt="vcm")  # no overwrite flag needed
    assert json.loads((out / COMPLETE_MARKER).read_text())["version"] == writers.GENERATOR_VERSION
    assert not (out / "stale.txt").exists()
    (out / COMPLETE_MARKER).write_text(json.dumps({**marker, "seed": 5}))  # another world: never replaced
    with pytest.raises(FileExistsError):
        write_world(out, scale="smoke", seed=0, fmt="vcm")
