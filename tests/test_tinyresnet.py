"""TinyResNet: CMFT's embedded streams start from shipped, verified, pretrained weights."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from reprolib.config import load_config
from reprolib.models.cmft import resnet
from reprolib.models.cmft.resnet import TINYRESNET_WEIGHTS, build_tsm_resnet, resolve_resnet_weights
from reprolib.models.weights import WeightsChecksumError, WeightsNotFoundError, sha256_file
from reprolib.pretrain.tinyclip.evaluate import held_out_pools
from reprolib.pretrain.tinyresnet.evaluate import evaluate_tinyresnet, nearest_neighbour_r1
from reprolib.pretrain.tinyresnet.train import TrainConfig, train_tinyresnet

RECORD = TINYRESNET_WEIGHTS.with_suffix(".json")
ARCH = "resnet50-w16"


def test_shipped_weights_match_their_record_and_load_strictly():
    record = json.loads(RECORD.read_text())
    assert record["arch"] == ARCH and record["command"].startswith("python -m reprolib tinyresnet train")
    assert record["size_bytes"] == TINYRESNET_WEIGHTS.stat().st_size <= 8 * 1024 * 1024
    assert record["sha256"] == sha256_file(TINYRESNET_WEIGHTS)
    assert resolve_resnet_weights(ARCH, "tinyresnet") == TINYRESNET_WEIGHTS
    stream = build_tsm_resnet(ARCH, "tinyresnet")  # strict load into the shifted stream
    state = torch.load(TINYRESNET_WEIGHTS, weights_only=True)
    assert torch.equal(stream.layer3[2].conv1.net.weight, state["layer3.2.conv1.weight"].float())
    assert torch.equal(stream.bn1.running_var, state["bn1.running_var"].float())


def test_the_embedded_cmft_streams_start_from_tinyresnet():
    bb = load_config("cmft", profile="embedded").model.backbone
    assert (bb.arch, bb.pretrained) == (ARCH, "tinyresnet")
    assert load_config("cmft", profile="paper").model.backbone.pretrained == "imagenet"


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A copy of the shipped weights + record that ``pretrained='tinyresnet'`` resolves to."""
    path = tmp_path / "tinyresnet.pt"
    shutil.copy(TINYRESNET_WEIGHTS, path)
    shutil.copy(RECORD, tmp_path / "tinyresnet.json")
    monkeypatch.setattr(resnet, "TINYRESNET_WEIGHTS", path)
    return path


def test_corrupted_missing_or_foreign_weights_give_clear_errors(shipped_copy):
    assert resolve_resnet_weights(ARCH, "tinyresnet") == shipped_copy  # the intact copy resolves
    with pytest.raises(ValueError, match="holds 'resnet50-w16' weights.*'resnet50-w32'"):
        resolve_resnet_weights("resnet50-w32", "tinyresnet")
    data = bytearray(shipped_copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shipped_copy.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError) as err:
        build_tsm_resnet(ARCH, "tinyresnet")
    assert str(shipped_copy) in str(err.value) and "python -m reprolib tinyresnet train" in str(err.value)
    shipped_copy.with_suffix(".json").unlink()
    with pytest.raises(WeightsChecksumError, match="tinyresnet.json.*'sha256' and 'arch'"):
        resolve_resnet_weights(ARCH, "tinyresnet")
    shipped_copy.unlink()
    with pytest.raises(WeightsNotFoundError, match="tinyresnet.pt is missing"):
        resolve_resnet_weights(ARCH, "tinyresnet")


def test_nearest_neighbour_r1_counts_same_identity_top_matches():
    gallery = torch.eye(3)  # (3, 3): three orthogonal items
    query = torch.tensor([[1.0, 0.1, 0.0], [0.0, 0.0, 1.0]])  # (2, 3): nearest items 0 and 2
    ids = np.array([5, 6, 7])
    assert nearest_neighbour_r1(query, gallery, np.array([5, 6]), ids) == 0.5
    exclude = torch.tensor([[True, False, False], [False, False, False]])  # query 0 may not retrieve item 0
    assert nearest_neighbour_r1(query, gallery, np.array([6, 7]), ids, exclude) == 1.0


def test_pretraining_learns_and_writes_a_loadable_torchvision_named_file(tmp_path):
    out = tmp_path / "w.pt"
    cfg = TrainConfig(num_ids=8, views_per_id=2, batch_size=16, steps=40, lr=0.02, warmup_steps=5, threads=1)
    record = train_tinyresnet(cfg, out)
    assert record["sha256"] == sha256_file(out) and record["steps_done"] == 40
    assert record["loss_last"] < record["loss_first"] - 0.5  # 16 frames of 8 classes: 2.46 -> 1.24 (seed 0)
    state = torch.load(out, weights_only=True)
    assert "layer1.0.conv1.weight" in state and not any(k.startswith("fc.") for k in state)
    build_tsm_resnet(ARCH, str(out))  # a path loads strictly, unverified


def test_shipped_weights_retrieve_held_out_identities_better_than_random_init():
    # 60 unseen identities x 4 views, unseen cameras: the shipped weights score R@1 0.48 (visible) and
    # 0.44 (infrared, never seen in pretraining); random inits (seeds 0-2) 0.28-0.33 and 0.31-0.36
    pools = held_out_pools(num_ids=60, views_per_id=4, seed=0)
    torch.manual_seed(0)
    random = evaluate_tinyresnet(build_tsm_resnet(ARCH, "none", shift=False), pools=pools)["R@1"]
    shipped = evaluate_tinyresnet(build_tsm_resnet(ARCH, "tinyresnet", shift=False), pools=pools)["R@1"]
    assert shipped["visible"] > random["visible"] + 0.1
    assert shipped["infrared"] > random["infrared"] + 0.05
