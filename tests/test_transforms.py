"""Clip transforms: exact geometry, channel ops, erasing, granularity and normalisation."""
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TVF

from reprolib.data import transforms as TR

H, W = 16, 8


def frames(num=6, seed=0, channels=3, height=H, width=W):
    gen = np.random.default_rng(seed)
    return [gen.integers(0, 256, size=(height, width, channels), dtype=np.uint8) for _ in range(num)]


def rng(seed=0):
    return np.random.default_rng(seed)


def test_normalization_constants():
    assert TR.NORMALIZATION["imagenet"] == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert TR.NORMALIZATION["clip"] == ((0.48145466, 0.4578275, 0.40821073),
                                        (0.26862954, 0.26130258, 0.27577711))
    with pytest.raises(ValueError, match="data.normalization 'imagnet'"):
        TR.Normalize.named("imagnet")


@pytest.mark.parametrize("name", ["imagenet", "clip"])
def test_normalize_matches_to_tensor_then_normalize(name):
    frame = frames(1)[0]
    mean, std = TR.NORMALIZATION[name]
    expected = TVF.normalize(TVF.to_tensor(Image.fromarray(frame)), mean, std)  # (3, H, W)
    got = TR.Normalize.named(name)(TR.FrameClip.from_frames([frame]))[0]
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("top, left, flip", [(0, 0, False), (-10, 7, False), (3, -4, True),
                                             (10, -10, True), (-2, 0, True)])
def test_pending_geometry_equals_pad_crop_flip(top, left, flip):
    """Pad(10) -> crop at offset (top+10, left+10) -> hflip, as torchvision does it."""
    frame = frames(1)[0]
    clip = TR.FrameClip.from_frames([frame])
    clip.top[:], clip.left[:], clip.flip[:] = top, left, flip
    img = TVF.pad(Image.fromarray(frame), 10)
    img = TVF.crop(img, top + 10, left + 10, H, W)
    if flip:
        img = TVF.hflip(img)
    expected = np.asarray(img).transpose(2, 0, 1)
    assert np.array_equal(TR.Normalize.render(clip)[0], expected)


def test_pad_crop_after_flip_moves_the_window_consistently():
    frame = frames(1)[0]
    flipped_first = TR.FrameClip.from_frames([frame])
    flipped_first.flip[:] = True
    TR.RandomPadCrop(10, "frame")(flipped_first, rng(4))
    dy = int(flipped_first.top[0])
    dx = -int(flipped_first.left[0])  # the offset drawn, in the flipped image's coordinates
    img = TVF.crop(TVF.pad(TVF.hflip(Image.fromarray(frame)), 10), dy + 10, dx + 10, H, W)
    assert np.array_equal(TR.Normalize.render(flipped_first)[0], np.asarray(img).transpose(2, 0, 1))


def test_grey_frames_broadcast_to_three_equal_channels():
    grey = frames(2, channels=1)
    out = TR.Normalize.render(TR.FrameClip.from_frames(grey))
    assert out.shape == (2, 3, H, W)
    assert np.array_equal(out[:, 0], out[:, 1]) and np.array_equal(out[:, 1], out[:, 2])
    assert np.array_equal(out[:, 0], np.stack([g[:, :, 0] for g in grey]))


def test_resize_changes_size_and_skips_when_equal():
    big = frames(3, height=32, width=16)
    clip = TR.Resize(H, W)(TR.FrameClip.from_frames(big), rng())
    assert TR.Normalize.render(clip).shape == (3, 3, H, W)
    same = frames(2)
    clip = TR.Resize(H, W)(TR.FrameClip.from_frames(same), rng())
    assert clip.frames[0] is same[0]


def test_mixed_frame_sizes_need_resize():
    mixed = frames(1) + frames(1, height=H + 2)
    with pytest.raises(ValueError, match="must start with Resize"):
        TR.Normalize.named("imagenet")(TR.FrameClip.from_frames(mixed))
    clip = TR.Resize(H, W)(TR.FrameClip.from_frames(mixed), rng())
    assert TR.Normalize.render(clip).shape == (2, 3, H, W)


def test_channel_exchange_gives_three_equal_channels():
    x = torch.randn(6, 3, H, W)
    original = x.clone()
    out = TR.ChannelExchange("frame")(x, rng(1))
    for t in range(6):
        assert torch.equal(out[t, 0], out[t, 1]) and torch.equal(out[t, 1], out[t, 2])
        assert any(torch.equal(out[t, 0], original[t, c]) for c in range(3))


def test_channel_adap_gray_outcomes():
    outcomes = Counter()
    for seed in range(200):
        x = torch.randn(1, 3, H, W)
        original = x.clone()
        out = TR.ChannelAdapGray(0.5, "frame")(x, rng(seed))[0]
        if torch.equal(out, original[0]):
            outcomes["unchanged"] += 1
            continue
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
        grey = 0.2989 * original[0, 0] + 0.587 * original[0, 1] + 0.114 * original[0, 2]
        if any(torch.equal(out[0], original[0, c]) for c in range(3)):
            outcomes["channel"] += 1
        else:
            assert torch.allclose(out[0], grey)
            outcomes["grey"] += 1
    # Expected shares 3/4, 1/8, 1/8.
    assert 120 < outcomes["channel"] < 180 and outcomes["grey"] > 10 and outcomes["unchanged"] > 10


def test_vld_channel_erasing_fills_normalised_constants_within_area():
    erase = TR.RandomErasing.vld("frame")
    for seed in range(30):
        x = torch.full((1, 3, 64, 32), 100.0)
        out = erase(x, rng(seed))
        mask = out[0, 0] != 100.0
        if mask.any():
            fill = torch.tensor(TR.VLD_ERASE_FILL)
            assert torch.allclose(out[0, :, mask].T, fill.expand(int(mask.sum()), 3))
            assert 0.02 * 64 * 32 * 0.8 <= mask.sum() <= 0.4 * 64 * 32 * 1.2


def test_xreid_eraser_as_released_pastes_at_its_own_size():
    norm = TR.Normalize.named("imagenet")
    fixed, released = TR.RandomErasing.xreid(norm), TR.RandomErasing.xreid(norm, as_released=True)
    fixed.p = released.p = 1.0
    tops = set()
    for seed in range(30):
        a = fixed(torch.full((1, 3, 64, 32), 100.0), rng(seed))[0, 0] != 100.0
        b = released(torch.full((1, 3, 64, 32), 100.0), rng(seed))[0, 0] != 100.0
        rows, cols = np.nonzero(b.numpy())
        fixed_rows, fixed_cols = np.nonzero(a.numpy())
        h, w = np.ptp(fixed_rows) + 1, np.ptp(fixed_cols) + 1  # same draws: same box size
        assert rows.min() == h and cols.min() == w  # top-left corner at (h, w)
        tops.add(int(fixed_rows.min()))
    assert len(tops) > 5  # the fixed eraser lands at the sampled positions


def _identical_frame_clip(recipe, per, seed):
    same = frames(1, seed=11, height=32, width=16) * 6  # six identical frames
    return TR.build_train_transforms(recipe, 32, 16, per=per).rgb(same, rng(seed))


@pytest.mark.parametrize("recipe", ["mitml", "vld", "xreid", "bupt"])
def test_per_tracklet_applies_one_set_of_parameters_to_all_frames(recipe):
    for seed in range(10):
        clip = _identical_frame_clip(recipe, "tracklet", seed)
        for t in range(1, 6):
            assert torch.equal(clip[t], clip[0])


@pytest.mark.parametrize("recipe", ["mitml", "vld", "bupt"])
def test_per_frame_draws_parameters_independently(recipe):
    differing = sum(any(not torch.equal(clip[t], clip[0]) for t in range(1, 6))
                    for clip in (_identical_frame_clip(recipe, "frame", s) for s in range(10)))
    assert differing >= 9  # 6 independent crops of +-10 px coincide with negligible probability


def test_xreid_flip_is_per_sequence_even_per_frame():
    transform = TR.build_train_transforms("xreid", 32, 16, per="frame").rgb
    transform.photometric = []  # isolate the flip from the per-frame erasing
    same = frames(1, seed=2, height=32, width=16) * 6
    for seed in range(10):
        clip = transform(same, rng(seed))
        assert all(torch.equal(clip[t], clip[0]) for t in range(6))


def test_joint_flip_mirrors_the_clip():
    transform = TR.build_test_transform(H, W)
    clip = frames(2)
    assert torch.equal(transform(clip, rng(), flip=True), transform(clip, rng()).flip(-1))


def test_recipes_and_errors():
    for recipe in TR.RECIPES:
        out = TR.build_train_transforms(recipe, H, W, per="frame", paired=True)
        assert out.rgb(frames(), rng()).shape == (6, 3, H, W)
        assert out.ir(frames(channels=1), rng()).shape == (6, 3, H, W)
    assert TR.build_train_transforms("bupt", H, W).joint_flip == 0.5
    assert TR.build_train_transforms("vld", H, W, paired=True).joint_flip == 0.5
    assert TR.build_train_transforms("vld", H, W, paired=False).joint_flip == 0.0
    with pytest.raises(ValueError, match="data.augment recipe 'fancy'"):
        TR.build_train_transforms("fancy", H, W)
    with pytest.raises(ValueError, match="data.augment_per"):
        TR.build_train_transforms("mitml", H, W, per="clip")


def test_transforms_are_deterministic_given_the_generator():
    transform = TR.build_train_transforms("vld", H, W).rgb
    clip = frames()
    assert torch.equal(transform(clip, rng(9)), transform(clip, rng(9)))
    assert not torch.equal(transform(clip, rng(9)), transform(clip, rng(10)))


# ----------------------------------------------------------------------------- CMFT's recipe
def test_cmft_recipe_is_pmts_pipeline():
    out = TR.build_train_transforms("cmft", 32, 16, per="tracklet")
    for transform in (out.rgb, out.ir):
        assert [type(op) for op in transform.geometry] == [TR.Resize, TR.RandomHorizontalFlip]  # no pad/crop
        erase = transform.photometric[-1]
        assert isinstance(erase, TR.RandomErasing) and erase.fill == TR.PMT_ERASE_FILL
        assert (erase.p, erase.scale, erase.ratio, erase.log_ratio) == (0.5, (0.02, 0.4), (0.3, 1 / 0.3), False)
    assert len(out.rgb.photometric) == 1  # visible clips get no jitter or blur
    choice = out.ir.photometric[0]
    assert isinstance(choice, TR.RandomChoice) and choice.per == "tracklet"
    jitter, blur = choice.ops
    assert isinstance(jitter, TR.ColorJitter) and (jitter.brightness, jitter.contrast) == (0.3, 0.3)
    assert isinstance(blur, TR.GaussianBlur) and (blur.kernel_size, blur.sigma_range) == (21, (0.1, 3.0))
    assert out.joint_flip == 0.0
    assert "cmft" in TR.RECIPES


def _cmft_ir_clip(per, seed, num=6):
    same = frames(1, seed=5, height=32, width=16) * num  # identical frames
    return TR.build_train_transforms("cmft", 32, 16, per=per).ir(same, rng(seed))


def test_cmft_recipe_is_deterministic_per_seed():
    clips = [_cmft_ir_clip("tracklet", s) for s in range(8)]
    assert all(torch.equal(c, _cmft_ir_clip("tracklet", s)) for s, c in enumerate(clips))
    assert len({c.sum().item() for c in clips}) == len(clips)  # jitter/blur/flip/erasing differ by seed


def test_cmft_recipe_applies_one_draw_to_every_frame_of_a_tracklet():
    for seed in range(12):
        clip = _cmft_ir_clip("tracklet", seed)
        assert all(torch.equal(clip[t], clip[0]) for t in range(1, 6))
    # per-frame draws (PMT on single images) make identical frames differ: the check above is not vacuous
    differing = sum(any(not torch.equal(c[t], c[0]) for t in range(1, 6))
                    for c in (_cmft_ir_clip("frame", s) for s in range(6)))
    assert differing == 6


def test_cmft_recipe_both_ir_branches_are_drawn():
    picks = Counter(int(rng(s).integers(2)) for s in range(40))  # RandomChoice's first draw per tracklet
    assert picks[0] > 5 and picks[1] > 5
    blur_seed = next(s for s in range(40) if int(rng(s).integers(2)) == 1)
    jitter_seed = next(s for s in range(40) if int(rng(s).integers(2)) == 0)
    norm = TR.Normalize.named("imagenet")
    plain = norm(TR.FrameClip.from_frames(frames(1, seed=5, height=32, width=16)))  # (1, 3, 32, 16)
    choice = TR.RandomChoice([TR.ColorJitter(norm, 0.3, 0.3, "tracklet"), TR.GaussianBlur(21, (0.1, 3.0), "tracklet")],
                             "tracklet")
    blurred = choice(plain.clone(), rng(blur_seed))
    jittered = choice(plain.clone(), rng(jitter_seed))
    assert not torch.equal(blurred, plain) and blurred.var() < plain.var()  # blurring smooths the noise frame
    assert not torch.equal(jittered, plain)


def test_gaussian_blur_matches_torchvision():
    x = torch.rand(2, 3, 32, 24)  # (T, 3, H, W)
    for seed in range(3):
        sigma = rng(seed).uniform(0.1, 3.0)  # the op's single draw
        got = TR.GaussianBlur(21, (0.1, 3.0), "tracklet")(x.clone(), rng(seed))
        expected = TVF.gaussian_blur(x, [21, 21], [sigma, sigma])
        assert torch.allclose(got, expected, atol=1e-5)


def test_color_jitter_matches_torchvision_on_pixels():
    norm = TR.Normalize.named("imagenet")
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in TR.NORMALIZATION["imagenet"])
    pixels = torch.rand(3, 3, 16, 8)  # (T, 3, H, W) in [0, 1]
    orders = set()
    for seed in range(8):
        draws = rng(seed)
        brightness_first, b, c = draws.random() < 0.5, draws.uniform(0.7, 1.3), draws.uniform(0.7, 1.3)
        orders.add(bool(brightness_first))
        got = TR.ColorJitter(norm, 0.3, 0.3, "tracklet")((pixels - mean) / std, rng(seed)) * std + mean
        ops = [lambda v: TVF.adjust_brightness(v, b), lambda v: TVF.adjust_contrast(v, c)]
        expected = pixels
        for op in ops if brightness_first else ops[::-1]:
            expected = op(expected)
        assert torch.allclose(got, expected, atol=1e-5), seed
    assert orders == {True, False}  # both orders were exercised


def test_gaussian_blur_rejects_even_kernels_and_fits_small_frames():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        TR.GaussianBlur(20)
    x = torch.rand(1, 3, 6, 4)
    out = TR.GaussianBlur(21, (3.0, 3.0))(x.clone(), rng())  # radius cut to 3 on a 4-pixel-wide frame
    assert out.shape == x.shape and torch.isfinite(out).all() and not torch.equal(out, x)
