"""CLIP weight resolution, loading and ``python -m reprolib weights check``."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import reprolib.models.weights as weights
from reprolib.models.weights import (
    ENV_VAR,
    PAPER_ARCH,
    TINYCLIP_ARCH,
    WeightsNotFoundError,
    check_weights,
    create_clip_model,
    detect_format,
    resolve_weights,
)

ROOT = Path(__file__).resolve().parents[1]
TINY_PARAMS = 4_666_817  # TinyCLIP-ViT-8: 1,294,400 visual + 3,372,417 text/logit_scale


@pytest.fixture(scope="module")
def tiny_clip() -> torch.nn.Module:
    model, source = create_clip_model(TINYCLIP_ARCH, pretrained="none")
    assert source is None
    return model


@pytest.fixture(scope="module")
def tiny_file(tiny_clip, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "open_clip_pytorch_model.bin"
    torch.save(tiny_clip.state_dict(), path)
    return path


@pytest.fixture(autouse=True)
def _no_env_weights(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.update(extra)
    return env


def _assert_same_weights(model: torch.nn.Module, reference: torch.nn.Module) -> None:
    ref = reference.state_dict()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, ref[key], msg=key)


# -- failure without weights -------------------------------------------------------------


def test_weights_check_fails_fast_offline_with_instructions(tmp_path):
    # A clean environment (no CLIP_WEIGHTS, no HF_HUB_OFFLINE, empty caches). The timeout only
    # guards against the multi-minute hub retry loop (about a minute per file without network); it
    # leaves room for the interpreter start and torch import on a loaded 2-core machine (over 30 s
    # when the suite ran beside two trainings).
    proc = subprocess.run([sys.executable, "-m", "reprolib", "weights", "check"], cwd=ROOT, env=_clean_env(tmp_path),
                          capture_output=True, text=True, timeout=150)
    assert proc.returncode == 1
    err = proc.stderr
    for needle in ("CLIP_WEIGHTS", "local-dir:", "model.backbone.weights_path", "hf download",
                   "timm/vit_base_patch16_clip_224.openai", str(tmp_path / ".cache" / "huggingface" / "hub"),
                   "HF_HUB_OFFLINE=1"):
        assert needle in err, needle


def test_hub_defaults_offline_unless_the_user_chose(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_ETAG_TIMEOUT", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # as if the hub was imported first
    weights.configure_hub_env()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_HUB_ETAG_TIMEOUT"] == "3"
    assert constants.HF_HUB_OFFLINE is True
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    weights.configure_hub_env()
    assert os.environ["HF_HUB_OFFLINE"] == "0" and constants.HF_HUB_OFFLINE is False


def test_missing_explicit_path_names_the_key(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="model.backbone.weights_path='/nonexistent/x.bin'"):
        resolve_weights(weights_path="/nonexistent/x.bin")


def test_missing_tinyclip_weights_are_explained(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "TINYCLIP_WEIGHTS", tmp_path / "tinyclip.pt")
    with pytest.raises(WeightsNotFoundError, match="tinyclip.pt does not exist yet.*pretrained=none"):
        resolve_weights(TINYCLIP_ARCH, pretrained="tinyclip")


def test_none_is_random_init():
    assert resolve_weights(pretrained="none") is None


# -- resolution order ----------------------------------------------------------------------


def test_hf_cache_and_env_var_resolution(monkeypatch, tmp_path, tiny_file):
    from huggingface_hub import constants

    snapshot = tmp_path / "models--timm--vit_base_patch16_clip_224.openai" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"x")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    src = resolve_weights(PAPER_ARCH)
    assert src.origin == "hf-cache" and src.path.endswith("abc123/open_clip_model.safetensors")
    assert src.format == "safetensors" and src.weights_only
    monkeypatch.setenv(ENV_VAR, str(tiny_file))  # $CLIP_WEIGHTS beats the cache ...
    assert resolve_weights(PAPER_ARCH).origin == f"${ENV_VAR}"
    explicit = resolve_weights(PAPER_ARCH, weights_path=str(tiny_file))  # ... and the config key beats both
    assert explicit.origin == "model.backbone.weights_path"


def test_paper_hub_repo_matches_open_clip():
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(PAPER_ARCH, "openai")
    assert cfg["hf_hub"].rstrip("/") == weights.PAPER_HF_REPO
    assert cfg["quick_gelu"] is True
    assert weights.OPENAI_VIT_B16_SHA256 in cfg["url"]


# -- loading -------------------------------------------------------------------------------


def test_check_weights_on_a_local_file(tiny_clip, tiny_file):
    report = check_weights(TINYCLIP_ARCH, weights_path=str(tiny_file))
    assert report["path"] == str(tiny_file.resolve())
    assert report["sha256"] == hashlib.sha256(tiny_file.read_bytes()).hexdigest()
    assert report["n_params"] == TINY_PARAMS and report["n_params_visual"] == 1_294_400
    assert report["format"] == "state_dict" and report["arch"] == TINYCLIP_ARCH
    assert report["image_size"] == [64, 32] and report["openai_sha256_match"] is False
    model, _ = create_clip_model(TINYCLIP_ARCH, weights_path=str(tiny_file))
    _assert_same_weights(model, tiny_clip)  # really loaded, not a fresh random init


def test_weights_check_main_uses_env_var(monkeypatch, capsys, tiny_file):
    monkeypatch.setenv(ENV_VAR, str(tiny_file))
    assert weights.main(["--arch", TINYCLIP_ARCH]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["origin"] == f"${ENV_VAR}" and report["n_params"] == TINY_PARAMS


def test_safetensors_and_local_dir(tiny_clip, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "tiny_model"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in tiny_clip.state_dict().items()}, folder / "open_clip_model.safetensors")
    import open_clip

    model_cfg = open_clip.get_model_config(TINYCLIP_ARCH)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    src = resolve_weights(TINYCLIP_ARCH, weights_path=f"local-dir:{folder}")
    assert src.local_dir == str(folder.resolve()) and src.format == "safetensors"
    model, _ = create_clip_model(TINYCLIP_ARCH, weights_path=f"local-dir:{folder}")
    _assert_same_weights(model, tiny_clip)
    direct, _ = create_clip_model(TINYCLIP_ARCH, weights_path=str(folder / "open_clip_model.safetensors"))
    _assert_same_weights(direct, tiny_clip)
    (folder / "extra.bin").write_bytes(b"0")
    with pytest.raises(WeightsNotFoundError, match="exactly one weights file"):
        resolve_weights(TINYCLIP_ARCH, weights_path=f"local-dir:{folder}")


class _Holder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _save_openai_style_torchscript(state: dict[str, torch.Tensor], path: Path) -> None:
    """A TorchScript archive laid out like OpenAI's ViT-B-16.pt: the CLIP tensors under their
    state-dict names plus OpenAI's three scalar entries."""
    state = {**state, "input_resolution": torch.tensor(224), "context_length": torch.tensor(32),
             "vocab_size": torch.tensor(49408)}
    root = _Holder()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        node = root
        for name in parents:
            if not hasattr(node, name):
                node.add_module(name, _Holder())
            node = getattr(node, name)
        node.register_buffer(leaf, value.clone())
    with pytest.warns(FutureWarning):
        torch.jit.script(root).save(str(path))


def test_torchscript_archive_loads_through_jit_load_only(tiny_clip, tmp_path):
    path = tmp_path / "ViT-tiny.pt"
    _save_openai_style_torchscript(tiny_clip.state_dict(), path)
    src = resolve_weights(TINYCLIP_ARCH, weights_path=str(path))
    assert src.format == "torchscript" and src.weights_only is True  # torch.jit.load, never torch.load
    model, _ = create_clip_model(TINYCLIP_ARCH, weights_path=str(path))
    _assert_same_weights(model, tiny_clip)


def test_plain_pickle_is_never_loaded_with_weights_only_false(tiny_file):
    assert detect_format(tiny_file) == "state_dict"
    assert resolve_weights(TINYCLIP_ARCH, weights_path=str(tiny_file)).weights_only is True


def test_mismatched_checkpoint_fails_loudly(tiny_clip, tmp_path):
    state = tiny_clip.state_dict()
    state.pop("visual.proj")
    path = tmp_path / "broken.bin"
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="broken.bin.*TinyCLIP-ViT-8"):
        create_clip_model(TINYCLIP_ARCH, weights_path=str(path))


def test_tinyclip_config_fits_the_10mb_budget(tiny_clip):
    n = sum(p.numel() for p in tiny_clip.parameters())
    assert n == TINY_PARAMS and 2 * n <= 10_000_000  # fp16 bytes
    assert tiny_clip.visual.grid_size == (8, 4) and tiny_clip.context_length == 32
    assert tiny_clip.vocab_size == 49408
