"""The rehearsal's inputs beyond the CI rows: HITSZ-VCM layout A, the Hugging Face cache route of the
CLIP weights, and the preflight's architecture check of every weights file (docs/rehearsal.md).

* the same miniature world written in HITSZ-VCM layouts A and B gives the loader the same index
  (tracklets, identities, cameras, evaluation sets) and the same frame bytes;
* ``REPROLIB_REHEARSAL_CLIP=hf-cache`` finds the stand-in through the pre-filled Hugging Face cache
  (no ``weights_path``) and loads it;
* the preflight opens each weights file (header, memory map or ``torch.jit.load``) and reports a file
  of another architecture with its name; the stand-ins pass;
* one rehearsal row (CMFT, the cheapest family on HITSZ-VCM) trains on layout A.

Every test but the first reads the rehearsal's stand-ins (``rehearse prepare``) and carries the
``rehearsal`` marker. Measured on the 2-core machine under a load of about 7 (another job running):
the layout test 5-7 s, the cache route 10-13 s, the preflight 1-8 s, the layout-A row 133-194 s.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from reprolib.config import load_config

#: Environment variables a rehearsal Workbook sets; restored after each test that makes one.
WORKBOOK_ENV = ("REPROLIB_DATA", "REPROLIB_BUPT", "REPROLIB_SYSU", "REPROLIB_REGDB", "CLIP_WEIGHTS",
                "RESNET50_WEIGHTS", "HF_HUB_CACHE", "HF_HUB_OFFLINE")


@pytest.fixture
def restored_env(monkeypatch):
    """Whatever a rehearsal Workbook writes into ``os.environ`` is undone after the test."""
    for key in WORKBOOK_ENV:
        monkeypatch.setenv(key, os.environ.get(key, ""))
    return monkeypatch


@pytest.fixture(scope="module")
def setup():
    from reprolib.experiments.rehearsal import prepare

    return prepare(clip_format="torchscript")


# ----------------------------------------------------------------------------- HITSZ-VCM layout A
def _index(ds) -> dict:
    """What the loader made of a tree, with frame paths relative to the layout's image root."""
    def rel(t) -> tuple:
        paths = tuple(Path(p).relative_to(Path(p).parents[3]).as_posix() for p in t.paths)  # <pid4>/<mod>/D<c>/<F>
        return paths, t.pid, t.camid, int(t.modality), t.raw_pid, t.source

    return {"train": [rel(t) for t in ds.train], "num_train_pids": ds.num_train_pids, "num_cameras": ds.num_cameras,
            "eval": {k: ([rel(t) for t in es.query], [rel(t) for t in es.gallery], es.rule)
                     for k, es in ds.eval_sets.items()}}


def test_vcm_layout_a_and_b_of_one_world_load_identically(tmp_path):
    from reprolib.data.hitsz_vcm import HITSZVCM
    from reprolib.data.synthetic import write_world
    from reprolib.data.synthetic.writers import main

    root_a = tmp_path / "a"
    assert main([str(root_a), "--scale", "smoke", "--format", "vcm-a", "--workers", "0"]) == 0  # the CLI route
    root_b = write_world(tmp_path / "b", "smoke", seed=0, fmt="vcm", workers=0, progress=False)
    assert not (root_a / "Train").exists() and (root_a / "info" / "query_IDX.txt").is_file()
    for name in ("train_name.txt", "track_train_info.txt", "test_name.txt", "track_test_info.txt", "query_IDX.txt"):
        assert (root_a / "info" / name).read_bytes() == (root_b / "info" / name).read_bytes(), name
    a, b = HITSZVCM(str(root_a)), HITSZVCM(str(root_b))
    assert (a.layout, b.layout) == ("A", "B")
    assert _index(a) == _index(b) and len(a.train) > 0
    frames = 0
    for ta, tb in zip(a.train + a.eval_sets["ir2rgb"].query + a.eval_sets["ir2rgb"].gallery,
                      b.train + b.eval_sets["ir2rgb"].query + b.eval_sets["ir2rgb"].gallery):
        for pa, pb in zip(ta.paths, tb.paths):
            assert Path(pa).read_bytes() == Path(pb).read_bytes(), (pa, pb)
            frames += 1
    assert frames > 100
    frames_a = sorted(p.relative_to(root_a).as_posix() for p in root_a.rglob("*.jpg"))
    frames_b = sorted(p.relative_to(root_b).as_posix().split("/", 1)[1] for p in root_b.rglob("*.jpg"))
    assert frames_a == frames_b  # no frame more or less than layout B, merged


# ------------------------------------------------------------------ Hugging Face cache stand-in
@pytest.mark.rehearsal  # reads the stand-ins (written once, about 1 GB)
def test_hf_cache_standin_is_found_through_the_cache_and_loaded(restored_env, setup):
    import torch
    from safetensors import safe_open

    from reprolib.engine.trainer import build_model
    from reprolib.models.weights import resolve_weights
    from reprolib.workbook.session import Workbook

    restored_env.setenv("REPROLIB_REHEARSAL_CLIP", "hf-cache")
    wb = Workbook("paper", device="cpu", rehearsal=True)
    cache = setup.clip_files["hf-cache"]
    assert wb.clip_weights == "" and os.environ["HF_HUB_CACHE"] == cache and os.environ["HF_HUB_OFFLINE"] == "1"
    cfg = wb.config("baseline")
    bb = cfg.model.backbone
    assert bb.weights_path == "" and not os.environ["CLIP_WEIGHTS"]
    source = resolve_weights(bb.arch, bb.pretrained, None)
    assert source.origin == "hf-cache" and source.path.startswith(cache), source
    assert "/snapshots/" in source.path and os.path.samefile(source.path, setup.clip_files["safetensors"])
    model = build_model(cfg, wb.dataset("baseline"))  # the paper config's model, weights from the cache
    with safe_open(setup.clip_files["safetensors"], framework="pt") as f:
        want = f.get_tensor("visual.conv1.weight").float()  # (768, 3, 16, 16)
    found = [p for n, p in model.state_dict().items() if n.endswith("conv1.weight") and p.shape == want.shape]
    assert found and torch.equal(found[0].detach().float(), want)


# -------------------------------------------------------------- preflight: weights architecture
def _cfg(name: str, setup, weights: str, *extra: str):
    weights_set = [f"model.backbone.weights_path={weights}"] if weights else []
    return load_config(name, "paper", [f"data.root={setup.roots['hitsz-vcm']}", "device=cpu", *weights_set, *extra])


def _wrong_width_clip(path: Path) -> Path:
    """A tiny random state dict with ViT-B-16's key names and narrower shapes: visual width 64 instead of
    768, text width 32 instead of 512, a vocabulary of 1,000 (a few MB)."""
    import torch

    from reprolib.models.weights import clip_arch_shapes

    narrow = {768: 64, 2304: 192, 3072: 256, 512: 32, 1536: 96, 2048: 128, 49408: 1000}
    shapes = clip_arch_shapes("ViT-B-16-quickgelu")
    torch.save({k: torch.randn([narrow.get(d, d) for d in s]) for k, s in shapes.items()}, path)
    return path


@pytest.mark.rehearsal  # reads the stand-ins (written once, about 1 GB)
def test_preflight_checks_each_weights_file_architecture(restored_env, setup, tmp_path):
    from reprolib.experiments.preflight import preflight

    wrong = _wrong_width_clip(tmp_path / "vit_b16_w64.bin")
    assert wrong.stat().st_size < 20e6
    resnet, safetensors = setup.resnet_weights, setup.clip_files["safetensors"]
    problems = preflight([_cfg("baseline", setup, resnet), _cfg("baseline", setup, str(wrong)),
                          _cfg("cmft", setup, safetensors)])
    assert len(problems) == 3, problems
    by_file = {p: next((ln for ln in problems if p in ln), "") for p in (resnet, str(wrong), safetensors)}
    assert "ViT-B-16-quickgelu" in by_file[resnet] and "torchvision ResNet" in by_file[resnet], problems
    assert "with another shape" in by_file[str(wrong)] and "model (768" in by_file[str(wrong)], problems
    assert "resnet50" in by_file[safetensors] and "CLIP model" in by_file[safetensors], problems

    # every stand-in passes: four CLIP files, the Hugging Face cache route, the ResNet-50 file
    ok = [_cfg("baseline", setup, v) for k, v in setup.clip_files.items() if k != "hf-cache"]
    ok.append(_cfg("cmft", setup, resnet))
    assert preflight(ok) == []
    for key, value in {"CLIP_WEIGHTS": "", "HF_HUB_CACHE": setup.clip_files["hf-cache"]}.items():
        restored_env.setenv(key, value)
    assert preflight([_cfg("baseline", setup, "")]) == []


# ------------------------------------------------------------------ a rehearsal row on layout A
@pytest.mark.rehearsal
def test_rehearsal_row_on_vcm_layout_a(restored_env, setup, tmp_path):
    import json

    import torch

    from reprolib.workbook.session import Workbook

    restored_env.setenv("REPROLIB_RESULTS", str(tmp_path))
    torch.set_num_threads(2)
    wb = Workbook("paper", device="cpu", overrides=["train.epochs=1"], rehearsal=True)
    wb.roots["hitsz-vcm"] = setup.vcm_layout_a
    cfg = wb.config("cmft")
    assert cfg.data.dataset == "hitsz-vcm" and cfg.data.root == setup.vcm_layout_a
    assert wb.dataset("cmft").stats["layout"] == "A"
    run = wb.run("cmft")
    for d, m in run.metrics["eval"].items():
        assert m["num_valid"] > 0 and 0 <= m["mAP"] <= 100, (d, m)
    steps = [json.loads(ln) for ln in (run.path / "train_log.jsonl").read_text().splitlines()]
    assert len(steps) == cfg.train.epochs * cfg.train.iters_per_epoch
