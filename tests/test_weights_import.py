"""``python -m reprolib weights import``: official checkpoints mapped onto our families with a strict audit.

The fixtures are official-named state dicts made by inverting a family's mapping on a model of ours
(smoke profile: TinyCLIP widths), perturbed so that a round trip proves the mapping and not the
initialisation, plus the tensors the official files hold that we drop.
"""
from __future__ import annotations

import argparse
import json

import pytest
import torch

from reprolib.cli import main as cli_main
from reprolib.config import load_config
from reprolib.data.datasets import build_dataset
from reprolib.engine import evaluate_run
from reprolib.engine.trainer import build_model, checkpoint_architecture
from reprolib.experiments.runstore import ensure_world
from reprolib.experiments.official_import import get_mapping, import_official, imported_run, write_official_standin
from reprolib.models.official import (ImportAuditError, OfficialFormatError, apply_mapping, invert_mapping,
                                      read_official_state_dict)
from reprolib.utils.seed import seed_everything

SMOKE = ["device=cpu"]


def _model(config: str, overrides: list[str]) -> torch.nn.Module:
    cfg = load_config(config, "smoke", [*SMOKE, *overrides])
    ensure_world(cfg)
    seed_everything(cfg.seed + 1)  # not the import's initialisation
    return build_model(checkpoint_architecture(cfg), build_dataset(cfg.data))


def _perturbed(state: dict) -> dict:
    g = torch.Generator().manual_seed(123)
    out = {}
    for k, v in state.items():
        if v.is_floating_point():
            noise = torch.rand(v.shape, generator=g) if k.endswith("running_var") else torch.randn(v.shape, generator=g)
            out[k] = v + 0.05 * noise
        elif k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        else:
            out[k] = v.clone()
    return out


@pytest.fixture(scope="module")
def vld_official(tmp_path_factory):
    """``(ours, official, path)``: our VLD state dict and the official-named file made from it."""
    ours = _perturbed(_model("vld", []).state_dict())
    official = invert_mapping(get_mapping("vld"), ours)
    official["logit_scale"] = torch.tensor(4.6052)  # the tensors the official file holds and we drop
    official["ln_post2.weight"] = official["image_encoder.ln_post.weight"].clone()
    official["ln_post2.bias"] = official["image_encoder.ln_post.bias"].clone()
    for k in [k for k in official if k.startswith("classifier_proj.")]:
        official[k.replace("classifier_proj.", "classifier_proj_STP.")] = official[k].clone()
    path = tmp_path_factory.mktemp("official") / "VLD_HITSZ.pth"
    torch.save(official, path)
    return ours, official, path


def test_vld_official_key_names(vld_official):
    _, official, _ = vld_official
    for key in ("image_encoder.conv1.weight", "image_encoder.proj", "prompt_embedding", "attn.in_proj_weight",
                "classifier.BN.running_var", "classifier.classifier.weight", "classifier_proj.classifier.weight",
                "classifier_STP.BN.weight", "prompt_learner.cls_ctx", "text_encoder.text_projection"):
        assert key in official
    assert official["prompt_learner.token_prefix"].shape[0] == 1  # (1, P, d) as the official buffer


def test_vld_import_round_trip_and_eval(vld_official, tmp_path, capsys):
    ours, _, path = vld_official
    run_dir = tmp_path / "run"
    assert cli_main(["weights", "import", "vld", str(path), "--profile", "smoke", "--set", "device=cpu",
                     "--out", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(run_dir)
    ckpt = torch.load(run_dir / "last.pt", weights_only=True)
    assert set(ckpt["model"]) == set(ours)
    for k, v in ours.items():
        assert torch.equal(ckpt["model"][k], v), k
    provenance = json.loads((run_dir / "provenance.json").read_text())
    record = provenance["imported"]
    assert record["family"] == "vld" and record["file_name"] == path.name and len(record["source_sha256"]) == 64
    assert set(record["audit"]["dropped"]) == {"logit_scale", "ln_post2.weight", "ln_post2.bias",
                                               "classifier_proj_STP.BN.weight", "classifier_proj_STP.BN.bias",
                                               "classifier_proj_STP.BN.running_mean",
                                               "classifier_proj_STP.BN.running_var",
                                               "classifier_proj_STP.BN.num_batches_tracked",
                                               "classifier_proj_STP.classifier.weight"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["imported"]["family"] == "vld"
    again = evaluate_run(run_dir, "cpu")  # what `python -m reprolib eval RUN_DIR` runs
    for direction, m in metrics["eval"].items():
        assert again[direction]["mAP"] == pytest.approx(m["mAP"], abs=1e-9)
    assert imported_run(run_dir).metric("ir2rgb", "R1") == metrics["eval"]["ir2rgb"]["R1"]


def _vld_target() -> dict:
    return _model("vld", []).state_dict()


@pytest.fixture(scope="module")
def vld_target():
    return _vld_target()


def test_module_prefix_is_removed(vld_official, vld_target, tmp_path):
    ours, official, _ = vld_official
    path = tmp_path / "ddp.pth"
    torch.save({"module." + k: v for k, v in official.items()}, path)
    state, notes = read_official_state_dict(path)
    assert any("module." in n for n in notes)
    mapped, audit = apply_mapping(get_mapping("vld"), state, vld_target)
    assert set(mapped) == set(vld_target)
    assert all(torch.equal(mapped[k], ours[k]) for k in mapped)


@pytest.mark.parametrize("damage, expected", [
    ("missing", ["missing from the file", "image_encoder.proj", "visual.vit.proj"]),
    ("unexpected", ["unexpected in the file", "extra_head.weight"]),
    ("shape", ["shape mismatch", "prompt_embedding", "(5, 5, 160)", "(4, 4, 160)", "data.seq_len"]),
])
def test_audit_names_every_problem(vld_official, vld_target, damage, expected):
    _, official, _ = vld_official
    state = dict(official)
    if damage == "missing":
        del state["image_encoder.proj"]
    elif damage == "unexpected":
        state["extra_head.weight"] = torch.zeros(3)
    else:
        state["prompt_embedding"] = torch.zeros(5, 5, 160)
    with pytest.raises(ImportAuditError) as info:
        apply_mapping(get_mapping("vld"), state, vld_target, source="VLD.pth")
    for text in expected:
        assert text in str(info.value)


def test_audit_groups_repeated_blocks(vld_official, vld_target):
    _, official, _ = vld_official
    state = {k: v for k, v in official.items() if ".ln_1." not in k}
    with pytest.raises(ImportAuditError, match=r"image_encoder\.transformer\.resblocks\.#\.ln_1\.weight \(x4\)"):
        apply_mapping(get_mapping("vld"), state, vld_target)


def test_identity_count_mismatch_and_fresh_heads(vld_official, vld_target):
    _, official, _ = vld_official
    state = {k: (torch.zeros(9, *v.shape[1:]) if k in ("classifier.classifier.weight", "prompt_learner.cls_ctx")
                 else v) for k, v in official.items()}
    with pytest.raises(ImportAuditError, match=r"trained on 9 identities .*--identity-heads fresh"):
        apply_mapping(get_mapping("vld"), state, vld_target)
    mapped, audit = apply_mapping(get_mapping("vld"), state, vld_target, identity_heads="fresh")
    assert {"classifier.classifier.weight", "prompt_learner.cls_ctx", "classifier_STP.classifier.weight"} <= set(
        audit.fresh)
    assert "classifier.weight" not in mapped and "visual.vit.proj" in mapped


def test_failed_import_writes_nothing(vld_official, tmp_path):
    _, official, _ = vld_official
    path = tmp_path / "broken.pth"
    torch.save({k: v for k, v in official.items() if k != "attn.in_proj_weight"}, path)
    with pytest.raises(ImportAuditError, match="attn.in_proj_weight"):
        import_official("vld", path, profile="smoke", overrides=SMOKE, out=tmp_path / "run", evaluate=False)
    assert not (tmp_path / "run").exists()


def test_pickled_objects_are_refused_and_containers_unwrapped(vld_official, tmp_path):
    _, official, _ = vld_official
    pickled = tmp_path / "with_args.pth.tar"
    torch.save({"state_dict": official, "args": argparse.Namespace(lr=0.1)}, pickled)
    with pytest.raises(OfficialFormatError, match=r"pickled Python objects.*weights_only=False"):
        read_official_state_dict(pickled)
    wrapped = tmp_path / "wrapped.pth.tar"
    torch.save({"state_dict": official, "epoch": 24, "mAP": 0.6}, wrapped)  # TF-CLIP's layout: weights only
    state, notes = read_official_state_dict(wrapped)
    assert set(state) == set(official) and "'state_dict' entry" in notes[0]


def test_clipreid_round_trip_with_derived_state(tmp_path):
    model = _model("clipreid", ["model.extra.prompt_banks=shared"])
    ours = _perturbed(model.state_dict())
    mapping = get_mapping("clipreid")
    official = invert_mapping(mapping, ours)
    assert "cv_embed" in official and "prompt_learner.cls_ctx" in official and "bottleneck_proj.weight" in official
    assert not any(k.startswith(("feature_cache.", "stage", "text_features")) for k in official)
    path = tmp_path / "clipreid.pth"
    torch.save(official, path)
    result = import_official("clipreid", path, profile="smoke", overrides=SMOKE, out=tmp_path / "run",
                             evaluate=False)
    assert result.imported["implied_overrides"] == ["model.extra.prompt_banks=shared", "model.backbone.sie=true"]
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    for k in result.audit.mapped.values():
        assert torch.equal(state[k], ours[k]), k
    assert int(state["stage"]) == 2 and set(result.audit.derived) >= {"stage", "text_features"}
    model.load_state_dict(ours)
    with torch.no_grad():
        text = model.text_features_of("shared")
    torch.testing.assert_close(state["text_features"][0], text)


def test_tfclip_round_trip_from_a_wrapped_pth_tar(tmp_path):
    ours = _perturbed(_model("tfclip", []).state_dict())
    official = invert_mapping(get_mapping("tfclip"), ours)
    for key in ("classifier2.weight", "classifier_proj_temp.weight", "bottleneck_proj_temp2.running_var",
                "TMD.resblocks.0.mlp.c_fc.weight", "TMD.resblocks.0.message_attn.in_proj_weight",
                "SSP.memory_proj.2.weight", "SSP.text_proj.1.weight", "SSP.decoder.1.cross_attn.v_proj.weight",
                "SSP.decoder.0.mlp.3.bias", "cv_embed"):
        assert key in official, key
    official["classifier_proj_temp2.weight"] = official["classifier_proj_temp.weight"].clone()  # dropped
    official["SSP.alpha"] = torch.full((official["SSP.out_proj.1.bias"].shape[0],), 0.1)
    path = tmp_path / "tfclip_mars.pth.tar"
    torch.save({"state_dict": official, "epoch": 60}, path)
    result = import_official("tfclip", path, profile="smoke", overrides=SMOKE, out=tmp_path / "run")
    assert set(result.metrics["eval"]) == {"ir2rgb", "rgb2ir"}  # the test features need no memory
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    for k, v in ours.items():
        if k not in ("memory", "memory_ready"):
            assert torch.equal(state[k], v), k
    assert set(result.audit.dropped) == {"classifier_proj_temp2.weight", "SSP.alpha"}
    assert set(result.audit.derived) == {"memory", "memory_ready"} and not bool(state["memory_ready"])


@pytest.fixture(scope="module")
def xreid_official(tmp_path_factory):
    """``(ours, official, path)``: our X-ReID (CPC + SII, as released) state dict and the file the official
    code would save for it, with the tensors it builds but never uses."""
    ours = _perturbed(_model("xreid", ["model.extra.lii=false", "model.extra.cii=false"]).state_dict())
    official = invert_mapping(get_mapping("xreid"), ours)
    block = "TSM_space.Reconstuct_shift.Rotation."
    for k in [k for k in official if k.startswith(block)]:  # LII: one block like SII's, never called
        official[k.replace(block, "TSM_temp.Reconstuct_shift.Rotation.")] = official[k].clone()
    for k in [k for k in official if k.startswith(("bn_TSM_tp0.", "bn_TSM_frame0."))]:
        official[k.replace("0.", "1.", 1)] = official[k].clone()
        official[k.replace("bn_TSM_tp0.", "bottleneck_local.")] = official[k].clone()
    for name in ("classifier_TSM_frame0.weight", "classifier_TSM_tp1.weight", "classifier_TSM_frame1.weight"):
        official[name] = official["classifier_TSM_tp0.weight"].clone()
    path = tmp_path_factory.mktemp("official") / "checkpoint_ep.pth.tar"
    torch.save({"module." + k: v for k, v in official.items()}, path)  # DataParallel names, as the code saves
    return ours, official, path


def test_xreid_official_key_names(xreid_official):
    ours, official, _ = xreid_official
    for key in ("image_encoder.conv1.weight", "image_encoder.positional_embedding", "cv_embed",
                "bn_feat_temp.running_var", "bn_proj_frame.weight", "classifier_clip_temp.weight",
                "classifier_clip_frame.weight", "TSM_space.Reconstuct_shift.Rotation.attn.normy.weight",
                "TSM_space.Reconstuct_shift2.Rotation.attn.q_.weight",
                "TSM_space.Reconstuct_shift2.Rotation.mlp.fc2.bias",
                "bn_TSM_tp0.running_mean", "bn_TSM_frame0.weight", "classifier_TSM_tp0.weight"):
        assert key in official, key
    # official cv_embed is indexed by camid - 1: one row fewer than our raw-camid table
    assert official["cv_embed"].shape[0] == ours["visual.camera_embed"].shape[0] - 1
    assert torch.equal(official["cv_embed"], ours["visual.camera_embed"][1:])


def test_xreid_import_round_trip_and_eval(xreid_official, tmp_path):
    ours, _, path = xreid_official
    result = import_official("xreid", path, profile="smoke", overrides=SMOKE, out=tmp_path / "run")
    assert result.imported["implied_overrides"] == ["model.extra.lii=false", "model.extra.cii=false"]
    assert set(result.metrics["eval"]) == {"ir2rgb", "rgb2ir"}  # the test features need no CPC memory
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert set(state) == set(ours)
    for k, v in ours.items():
        if k == "visual.camera_embed":
            assert torch.equal(state[k][1:], v[1:]) and not state[k][0].any()  # row 0: no camera 0
        elif not k.startswith("cpc."):
            assert torch.equal(state[k], v), k
    dropped = result.audit.summary()["dropped"]
    assert {"TSM_temp.Reconstuct_shift.Rotation.attn.q_.weight", "classifier_TSM_frame0.weight",
            "classifier_TSM_tp1.weight", "bottleneck_local.weight"} <= set(result.audit.dropped)
    assert any(p.startswith("bn_TSM_frame1.") for p in dropped)
    assert set(result.audit.derived) == {"cpc.initialized", "cpc.memories.rgb.features", "cpc.memories.ir.features"}
    assert any("module." in n for n in result.audit.notes)
    assert not bool(state["cpc.initialized"])


def test_xreid_audit_names_lii_and_camera_problems(xreid_official, tmp_path):
    _, official, _ = xreid_official
    target = _model("xreid", ["model.extra.cii=false"]).state_dict()  # LII on: the release never trained it
    state = dict(official)
    rows, width = official["cv_embed"].shape
    state["cv_embed"] = torch.zeros(rows + 1, width)  # a 0-based table of the raw ids: one row too many
    with pytest.raises(ImportAuditError) as info:
        apply_mapping(get_mapping("xreid"), state, target, source="checkpoint_ep.pth.tar")
    text = str(info.value)
    for expected in ("missing from the file", "mii.lii.blocks.#", "model.extra.lii=false", "shape mismatch",
                     f"cv_embed: file ({rows + 1}, {width}) -> ({rows + 2}, {width}), model ({rows + 1}, {width})",
                     "camid - 1"):
        assert expected in text, expected


def test_official_format_standin_is_deterministic_and_imports(tmp_path):
    from reprolib.models.weights import sha256_file

    first = write_official_standin("xreid", tmp_path / "a.pth", profile="smoke", overrides=SMOKE)
    second = write_official_standin("xreid", tmp_path / "b.pth", profile="smoke", overrides=SMOKE)
    assert sha256_file(first) == sha256_file(second)  # the same file, so a re-render reuses the import
    state, _ = read_official_state_dict(first)
    assert "TSM_space.Reconstuct_shift2.Rotation.attn.q_.weight" in state and "cv_embed" in state
    result = import_official("xreid", first, profile="smoke", overrides=SMOKE, out=tmp_path / "run", evaluate=False)
    assert result.audit.summary()["mapped"] == len(state)


def test_releases_name_real_configs_and_paper_rows():
    from reprolib.experiments.official_import import MAPPINGS
    from reprolib.models.official.releases import RELATIONS, RELEASES, comparison_table, get_release, paper_numbers

    assert {family for family, _ in RELEASES} == set(MAPPINGS)
    for (family, config), release in RELEASES.items():
        assert load_config(config, "smoke").model.name == family
        assert release.rows and all(row.relation in RELATIONS for row in release.rows)
        for row in release.rows:
            numbers = paper_numbers(row)
            assert set(numbers) == {"ir2rgb", "rgb2ir"} and all("R1" in m and "mAP" in m for m in numbers.values())
    vld = get_release("vld")
    assert vld.config == "vld" and vld.rows[0].relation == "release"
    assert get_release("vld", "vld_bupt").dataset == "bupt"
    ours = {"ir2rgb": {"R1": 70.0, "mAP": 55.0}, "rgb2ir": {"R1": 71.0, "mAP": 56.0}}
    table = comparison_table(vld, ours)
    assert table.loc[("  ours - paper", "delta"), ("ir2rgb", "R1")] == pytest.approx(70.0 - 74.3)
    stand_in = comparison_table(vld, ours, deltas=False)  # a stand-in's numbers are no estimate of the paper's
    assert "delta" not in set(stand_in.index.get_level_values("relation")) and len(stand_in) == len(table) // 2 + 1
    with pytest.raises(KeyError, match="known: vld"):
        get_release("cmft")
