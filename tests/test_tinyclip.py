"""TinyCLIP: shipped weights (checksum, size, loading), offline tokenizer, zero-shot ability."""
from __future__ import annotations

import json
import shutil
import socket

import numpy as np
import pytest
import torch

from reprolib.config import BackboneConfig
from reprolib.models import weights
from reprolib.models.clip_backbone import create_clip_visual
from reprolib.models.weights import (
    TINYCLIP_ARCH, TINYCLIP_WEIGHTS, WeightsChecksumError, create_clip_model, resolve_weights, sha256_file,
)
from reprolib.pretrain.tinyclip.data import IMAGE_SIZE, render_pool, tinyclip_cameras, tinyclip_identities
from reprolib.pretrain.tinyclip.evaluate import (
    ATTRIBUTE_TASKS, evaluate_tinyclip, retrieval_chance, text_to_image_retrieval,
)
from reprolib.pretrain.tinyclip.train import clip_loss

RECORD = TINYCLIP_WEIGHTS.with_suffix(".json")
#: Mean zero-shot balanced accuracy (visible) over the five attributes on the small held-out set
#: below. Chance is 0.203; random-init weights score 0.205-0.213 (seeds 0-2), the shipped weights
#: 0.403 (tinyclip.json records 0.434 on the larger 200-identity set).
ZERO_SHOT_THRESHOLD = 0.33


@pytest.fixture(scope="module")
def tokenizer():
    weights.register_model_configs()
    import open_clip

    return open_clip.get_tokenizer(TINYCLIP_ARCH)


@pytest.fixture(scope="module")
def held_out_pools():
    """80 held-out identities x 2 aligned visible/infrared views, from held-out cameras."""
    return render_pool(tinyclip_identities("eval", 80), tinyclip_cameras("eval"), 2, ("rgb", "ir"), seed=7)


def test_shipped_weights_match_their_record():
    record = json.loads(RECORD.read_text())
    assert TINYCLIP_WEIGHTS.stat().st_size <= 10 * 1024 * 1024
    assert record["size_bytes"] == TINYCLIP_WEIGHTS.stat().st_size
    assert record["sha256"] == sha256_file(TINYCLIP_WEIGHTS)
    assert record["command"].startswith("python -m reprolib tinyclip train")
    state = torch.load(TINYCLIP_WEIGHTS, weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    source = resolve_weights(TINYCLIP_ARCH, pretrained="tinyclip")
    assert source.origin == "tinyclip" and source.path == str(TINYCLIP_WEIGHTS)


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A copy of the shipped weights + record that ``pretrained='tinyclip'`` resolves to."""
    path = tmp_path / "tinyclip.pt"
    shutil.copy(TINYCLIP_WEIGHTS, path)
    shutil.copy(RECORD, tmp_path / "tinyclip.json")
    monkeypatch.setattr(weights, "TINYCLIP_WEIGHTS", path)
    return path


def test_corrupted_weights_give_a_clear_error(shipped_copy):
    assert resolve_weights(TINYCLIP_ARCH, pretrained="tinyclip").path == str(shipped_copy)  # intact copy loads
    data = bytearray(shipped_copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shipped_copy.write_bytes(bytes(data))
    expected = json.loads(RECORD.read_text())["sha256"]
    with pytest.raises(WeightsChecksumError) as err:
        create_clip_model(TINYCLIP_ARCH, pretrained="tinyclip")
    message = str(err.value)
    assert str(shipped_copy) in message and expected in message and sha256_file(shipped_copy) in message
    assert "python -m reprolib tinyclip train" in message


def test_missing_record_is_an_error(shipped_copy):
    shipped_copy.with_suffix(".json").unlink()
    with pytest.raises(WeightsChecksumError, match="tinyclip.json.*sha256"):
        resolve_weights(TINYCLIP_ARCH, pretrained="tinyclip")


def test_tokenizer_works_offline(tokenizer, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    import open_clip

    tok = open_clip.get_tokenizer(TINYCLIP_ARCH)  # fresh instance, no network
    tokens = tok(["a photo of a person in a red shirt", "A visible photo of a X X X X person.",
                  "A X X X X person observed in both day and night conditions."])
    assert tokens.shape == (3, 32) and tokens.dtype == torch.long
    lengths = (tokens != 0).sum(1).tolist()
    assert lengths[2] == 16  # VLD's template 4 (docs/decisions/vld.md#prompt-template-and-tokens): 16 tokens incl. SOT/EOT
    assert lengths[1] <= 16
    x = tok.encode("x")
    assert len(x) == 1 and tokens[2, 2:6].tolist() == x * 4  # each X is one token
    assert tokens[2, 15] == tokens.max()  # EOT (the largest id) at index 15


def test_shipped_weights_load_through_the_backbone_factory():
    encoder = create_clip_visual(BackboneConfig(arch=TINYCLIP_ARCH, pretrained="tinyclip"), image_size=IMAGE_SIZE)
    assert encoder.weights_source.origin == "tinyclip"
    state = torch.load(TINYCLIP_WEIGHTS, weights_only=True)
    assert torch.equal(encoder.vit.conv1.weight.detach().half(), state["visual.conv1.weight"])


def test_zero_shot_far_above_random_init(tokenizer, held_out_pools):
    torch.manual_seed(0)
    trained, _ = create_clip_model(TINYCLIP_ARCH, pretrained="tinyclip")
    random_init, _ = create_clip_model(TINYCLIP_ARCH, pretrained="none")
    ours = evaluate_tinyclip(trained, tokenizer, pools=held_out_pools)
    rand = evaluate_tinyclip(random_init, tokenizer, pools=held_out_pools)
    chance = ours["zero_shot_mean"]["chance"]
    assert rand["zero_shot_mean"]["visible"] < ZERO_SHOT_THRESHOLD
    assert ours["zero_shot_mean"]["visible"] > ZERO_SHOT_THRESHOLD > chance + 0.1
    # the modality gap: a CLIP trained on visible frames only reads colour only there
    for task in ("upper_colour", "lower_colour"):
        assert ours["zero_shot"][task]["visible"] > ours["zero_shot"][task]["infrared"] + 0.1
    assert ours["zero_shot_mean"]["visible"] > ours["zero_shot_mean"]["infrared"]
    assert ours["retrieval"]["R@5"]["visible"] > 2 * ours["retrieval"]["R@5"]["chance"]


def test_every_attribute_class_has_prompts():
    for task in ATTRIBUTE_TASKS:
        assert len(set(task.classes)) == len(task.classes)
        for c in task.classes:
            prompts = task.prompts(c)
            assert prompts and all(isinstance(p, str) and p for p in prompts)


def test_retrieval_metrics_and_chance():
    feats = torch.eye(4)  # (4, 4): query i matches gallery i exactly
    ids = np.arange(4)
    assert text_to_image_retrieval(feats, ids, feats, ids, ks=(1,)) == {"R@1": 1.0}
    assert text_to_image_retrieval(feats, ids, feats.flip(0), ids, ks=(1,)) == {"R@1": 0.0}
    assert retrieval_chance(100, 1, 1) == pytest.approx(0.01)
    assert retrieval_chance(10, 2, 2) == pytest.approx(1 - (8 * 7) / (10 * 9))
    assert retrieval_chance(5, 2, 4) == 1.0


def test_clip_loss_rewards_aligned_pairs():
    feats = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    aligned = clip_loss(feats, feats, torch.tensor(50.0))
    shuffled = clip_loss(feats, feats.roll(1, 0), torch.tensor(50.0))
    assert aligned < 0.1 < np.log(8) < shuffled


def test_random_greyscale_shows_some_images_as_their_luminance():
    import numpy as np
    import torch

    from reprolib.pretrain.tinyclip.data import ImagePool, contrastive_batches

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 4, 2, 3), dtype=np.uint8)  # 8 identities x 1 frame, colourful
    pool = ImagePool(images=images, ids=np.arange(8), attrs=[None] * 8, modality="rgb")
    tokens = torch.zeros(8, 1, 3, dtype=torch.long)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)

    def is_grey(x):  # (B, 3, H, W) normalised -> (B,) whether R = G = B
        raw = x * std + mean
        return ((raw[:, 0] - raw[:, 1]).abs().amax(dim=(1, 2)) < 1e-5) & ((raw[:, 1] - raw[:, 2]).abs().amax(dim=(1, 2)) < 1e-5)

    x, _ = next(contrastive_batches(pool, tokens, 8, torch.Generator().manual_seed(0), augment=False, grey_prob=1.0))
    assert not is_grey(x).any()  # augment=False: the colour frames as they are
    x, _ = next(contrastive_batches(pool, tokens, 8, torch.Generator().manual_seed(0), augment=True, grey_prob=1.0))
    assert is_grey(x).all()
    x, _ = next(contrastive_batches(pool, tokens, 8, torch.Generator().manual_seed(0), augment=True, grey_prob=0.0))
    assert not is_grey(x).any()
