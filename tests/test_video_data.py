"""Clip datasets, loaders and decoding on tiny generated JPEG tracklets.

Every frame is a flat grey JPEG (quality 100, decoded exactly) whose level encodes the frame
index, so a test can read back which frames a clip holds.
"""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from reprolib.config import DataConfig
from reprolib.data import decode
from reprolib.data.frames import dense_clips, rrs_test
from reprolib.data.transforms import NORMALIZATION, build_test_transform, build_train_transforms
from reprolib.data.types import EvalSet, Modality, Tracklet, VideoReIDDataset
from reprolib.data.video import (ClipDataset, PairedClipDataset, build_test_loader,
                                 build_train_loader, collate_clips)

H, W = 16, 8
BASE, STEP = 20, 8  # level of frame i: BASE + STEP * i


def write_tracklet(folder, n, pid, camid, modality, pair_id=None):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"{i:03d}.jpg")
        Image.new("RGB", (W, H), (BASE + STEP * i,) * 3).save(path, quality=100)
        paths.append(path)
    return Tracklet(tuple(paths), pid, camid, modality, pair_id=pair_id, source=folder)


def frame_ids(clip: torch.Tensor) -> list[int]:
    """Recover frame indices from a normalised (T, 3, H, W) clip of flat frames."""
    mean, std = NORMALIZATION["imagenet"]
    level = clip[:, 0, H // 2, W // 2] * std[0] + mean[0]  # (T,)
    return [int(round((v * 255 - BASE) / STEP)) for v in level.tolist()]


@pytest.fixture(scope="module")
def vcm_like(tmp_path_factory):
    root = tmp_path_factory.mktemp("vcm")
    rgb, ir = [], []
    for pid in range(4):
        for k in range(2):
            rgb.append(write_tracklet(root / f"{pid}/rgb/{k}", 13 + pid + k, pid, 1 + k, Modality.RGB))
        ir.append(write_tracklet(root / f"{pid}/ir/0", 12 + pid, pid, 3, Modality.IR))
    return rgb, ir


@pytest.fixture(scope="module")
def bupt_like(tmp_path_factory):
    root = tmp_path_factory.mktemp("bupt")
    rgb, ir, pair = [], [], 0
    for pid in range(4):
        for cam in range(2):
            n = 14 + pid + cam
            rgb.append(write_tracklet(root / f"{pid}/RGB/{cam}", n, pid, cam, Modality.RGB, pair))
            ir.append(write_tracklet(root / f"{pid}/IR/{cam}", n, pid, cam, Modality.IR, pair))
            pair += 1
    return rgb, ir


def make_dataset(rgb, ir, paired=False):
    return VideoReIDDataset("test", "/", list(ir) + list(rgb),
                            {"ir2rgb": EvalSet("ir2rgb", list(ir), list(rgb), "vcm")},
                            num_train_pids=4, num_cameras=4, paired=paired)


def cfg(**kwargs):
    base = dict(seq_len=6, height=H, width=W, num_ids=2, num_pos=2, augment="none",
                num_workers=0, test_batch_size=3)
    base.update(kwargs)
    return DataConfig(**base)


# --------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------


def test_paired_dataset_item_shapes_and_labels(vcm_like):
    rgb, ir = vcm_like
    ds = PairedClipDataset(rgb, ir, 6, "chunk", seed=0)
    item = ds[(3, 1, 17)]
    assert item["rgb"].shape == item["ir"].shape == (6, 3, H, W)
    assert item["rgb"].dtype == torch.float32
    assert (item["label"], item["camid_rgb"], item["camid_ir"]) == (1, 2, 3)
    ids = frame_ids(item["rgb"])
    assert ids == sorted(ids) and all(0 <= i < len(rgb[3]) for i in ids)
    with pytest.raises(ValueError, match="pairs RGB pid 1 with IR pid 0"):
        ds[(3, 0, 1)]


def test_items_are_deterministic_given_their_seed(vcm_like):
    rgb, ir = vcm_like
    a = PairedClipDataset(rgb, ir, 6, "chunk", seed=5)
    b = PairedClipDataset(rgb, ir, 6, "chunk", seed=5)
    assert torch.equal(a[(6, 3, 42)]["rgb"], b[(6, 3, 42)]["rgb"])
    draws = {tuple(frame_ids(a[(6, 3, s)]["rgb"])) for s in range(10)}
    assert len(draws) > 1  # the item seed, not the index pair, drives the randomness


def test_batched_items_equal_single_items_and_collate_without_copy(vcm_like):
    rgb, ir = vcm_like
    ds = PairedClipDataset(rgb, ir, 6, "chunk", build_train_transforms("vld", H, W).rgb,
                           build_train_transforms("vld", H, W).ir, seed=2)
    keys = [(0, 0, 11), (2, 1, 12), (5, 2, 13)]
    items = ds.__getitems__(keys)
    for key, item in zip(keys, items):
        single = ds[key]
        assert torch.equal(item["rgb"], single["rgb"]) and torch.equal(item["ir"], single["ir"])
    batch = collate_clips(items)
    assert batch["rgb"].shape == (3, 6, 3, H, W)
    assert batch["rgb"].data_ptr() == items[0]["rgb"].data_ptr()  # the batch tensor itself
    assert batch["label"].tolist() == [0, 1, 2]
    stacked = collate_clips([ds[k] for k in keys])  # separate tensors: stacked
    assert torch.equal(stacked["ir"], batch["ir"])


def test_shared_frames_use_the_same_indices_for_both_halves(bupt_like):
    rgb, ir = bupt_like
    shared = PairedClipDataset(rgb, ir, 6, "bupt_random", shared_frames=True, seed=0)
    independent = PairedClipDataset(rgb, ir, 6, "bupt_random", shared_frames=False, seed=0)
    differs = 0
    for s in range(8):
        item = shared[(s, s, s)]
        assert frame_ids(item["rgb"]) == frame_ids(item["ir"])
        item = independent[(s, s, s)]
        differs += frame_ids(item["rgb"]) != frame_ids(item["ir"])
    assert differs > 0


def test_joint_flip_mirrors_both_halves(bupt_like, tmp_path):
    rgb, ir = bupt_like
    half = np.zeros((H, W, 3), np.uint8)
    half[:, : W // 2] = 255  # left half white: a flip is visible
    Image.fromarray(half).save(tmp_path / "half.jpg", quality=100)
    pair = [Tracklet((str(tmp_path / "half.jpg"),) * 6, 0, 0, m) for m in (Modality.RGB, Modality.IR)]
    plain = PairedClipDataset(pair[:1], pair[1:], 6, "bupt_random", shared_frames=True)
    flipped = PairedClipDataset(pair[:1], pair[1:], 6, "bupt_random", shared_frames=True,
                                joint_flip=1.0)
    a, b = plain[(0, 0, 0)], flipped[(0, 0, 0)]
    assert torch.equal(b["rgb"], a["rgb"].flip(-1)) and torch.equal(b["ir"], a["ir"].flip(-1))
    assert not torch.equal(a["rgb"], b["rgb"])


def test_clip_dataset_chunk_first_and_dense(vcm_like):
    rgb, _ = vcm_like
    first = ClipDataset(rgb, 6, "chunk_first", build_test_transform(H, W))
    item = first[0]
    assert item["frames"].shape == (6, 3, H, W)
    assert frame_ids(item["frames"]) == rrs_test(len(rgb[0]), 6)
    assert (item["pid"], item["camid"], item["modality"]) == (0, 1, int(Modality.RGB))

    dense = ClipDataset(rgb, 6, "dense", build_test_transform(H, W))
    clips = dense[0]["frames"]
    expected = dense_clips(len(rgb[0]), 6)
    assert clips.shape == (len(expected), 6, 3, H, W)
    assert [frame_ids(c) for c in clips] == expected


# --------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------


def test_build_train_loader_vcm_batches(vcm_like):
    rgb, ir = vcm_like
    loader = build_train_loader(make_dataset(rgb, ir), cfg(augment="vld"), seed=1, iters_per_epoch=3)
    batches = list(loader)
    assert len(batches) == 3
    for batch in batches:
        assert batch["rgb"].shape == batch["ir"].shape == (4, 6, 3, H, W)
        assert batch["label"].shape == batch["camid_rgb"].shape == batch["camid_ir"].shape == (4,)
        assert batch["label"].tolist()[0::2] == batch["label"].tolist()[1::2]  # K=2 per identity


def test_train_loader_workers_and_resume_reproduce_batches(vcm_like):
    rgb, ir = vcm_like
    dataset = make_dataset(rgb, ir)
    reference = list(build_train_loader(dataset, cfg(augment="mitml"), seed=3, iters_per_epoch=4))
    with_workers = list(build_train_loader(dataset, cfg(augment="mitml", num_workers=2), seed=3,
                                           iters_per_epoch=4))
    for a, b in zip(reference, with_workers):
        assert torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["ir"], b["ir"])

    interrupted = build_train_loader(dataset, cfg(augment="mitml"), seed=3, iters_per_epoch=4)
    it = iter(interrupted)
    next(it), next(it)
    state = interrupted.batch_sampler.state_dict()
    resumed = build_train_loader(dataset, cfg(augment="mitml"), seed=3, iters_per_epoch=4)
    resumed.batch_sampler.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == 2
    for a, b in zip(reference[2:], rest):
        assert torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["label"], b["label"])


def test_build_train_loader_bupt_pairs(bupt_like):
    rgb, ir = bupt_like
    loader = build_train_loader(make_dataset(rgb, ir, paired=True),
                                cfg(sampler="bupt", train_sampling="bupt_random", augment="none"),
                                seed=0, iters_per_epoch=2)
    for batch in loader:
        assert batch["rgb"].shape == (4, 6, 3, H, W)
        assert torch.equal(batch["camid_rgb"], batch["camid_ir"])  # the two halves of one pair
        labels = batch["label"].tolist()
        assert labels[0] == labels[1] and labels[2] == labels[3]
        assert batch["camid_rgb"][0] != batch["camid_rgb"][1]  # two cameras per identity
        for r, i in zip(batch["rgb"], batch["ir"]):  # shared frame indices
            assert frame_ids(r) == frame_ids(i)
    with pytest.raises(ValueError, match="paired dataset"):
        build_train_loader(make_dataset(rgb, ir, paired=False), cfg(sampler="bupt"), 0, 1)


def test_build_test_loader(vcm_like):
    rgb, _ = vcm_like
    batch = next(iter(build_test_loader(rgb, cfg())))
    assert batch["frames"].shape == (3, 6, 3, H, W)
    assert batch["pid"].tolist() == [0, 0, 1] and batch["modality"].tolist() == [2, 2, 2]
    dense = next(iter(build_test_loader(rgb, cfg(test_sampling="dense"))))
    assert dense["frames"].shape == (1, 3, 6, 3, H, W)  # 13 frames -> 3 clips of 6


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------


def test_decode_matches_pil_and_keeps_grey_single_channel(tmp_path):
    gen = np.random.default_rng(0)
    colour = gen.integers(0, 256, size=(24, 12, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "c.jpg", quality=90)
    Image.fromarray(colour[:, :, 0]).save(tmp_path / "g.jpg", quality=90)
    Image.fromarray(colour).save(tmp_path / "c.png")
    for backend in ("simplejpeg", "pil"):
        out = decode.decode_frame(str(tmp_path / "c.jpg"), backend=backend)
        assert np.array_equal(out, np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB")))
        grey = decode.decode_frame(str(tmp_path / "g.jpg"), backend=backend)
        assert grey.shape == (24, 12, 1)
        assert np.array_equal(grey[:, :, 0], np.asarray(Image.open(tmp_path / "g.jpg")))
    assert np.array_equal(decode.decode_frame(str(tmp_path / "c.png")), colour)
    with pytest.raises(OSError, match="missing.jpg"):
        decode.decode_frame(str(tmp_path / "missing.jpg"))


def test_dct_downscale_and_repeated_frames_decoded_once(tmp_path):
    Image.new("RGB", (64, 128), (10, 200, 30)).save(tmp_path / "big.jpg")
    assert decode.decode_frame(str(tmp_path / "big.jpg"), min_size=(32, 16)).shape == (32, 16, 3)
    frames = decode.load_frames([str(tmp_path / "big.jpg")] * 3, [0, 2, 2])
    assert frames[1] is frames[2] and frames[0] is not frames[1]


def test_benchmark_runs_on_tiny_frames():
    from reprolib.bench.data import run_benchmark

    result = run_benchmark(height=32, width=16, num_sequences=16, rounds=1)
    assert result["sequences"] == 16
    assert result["ours_seqs_per_s"] > 0 and result["baseline_seqs_per_s"] > 0
