"""Tests of the VLD Fig. 7-9 analyses: distance distributions and their gaps, the Grad-CAM token
reshape and maps (toy ViT and the real TinyCLIP VLD with its hub), and the figure writers."""
from __future__ import annotations

import copy
import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from reprolib.config import DataConfig, EvalConfig, ExperimentConfig
from reprolib.data.types import EvalSet, Modality, Tracklet, VideoReIDDataset
from reprolib.experiments.analysis import distance_distributions
from reprolib.viz.cam import cam_maps, cross_modal_cams, plot_cam_strips, vit_reshape_transform
from reprolib.viz.distances import paper_deltas, plot_distance_distributions, split_distances
from reprolib.viz.retrieval import HIT, MISS, plot_retrieval_grid, visible_ranking

matplotlib.use("Agg")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
R2 = 1.0 / math.sqrt(2.0)
R5 = 1.0 / math.sqrt(5.0)


def _assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert not list(path.parent.glob(".*.tmp.png"))  # written atomically, no temp file left


# ----------------------------------------------------------------------------- toy world
@pytest.fixture(scope="module")
def frame_path(tmp_path_factory):
    from fixtures_data import tiny_jpeg  # an 8x4 JPEG

    path = tmp_path_factory.mktemp("frames") / "f.jpg"
    path.write_bytes(tiny_jpeg())
    return str(path)


def _tracklet(frame_path: str, pid: int, camid: int, modality: Modality) -> Tracklet:
    return Tracklet((frame_path, frame_path), pid, camid, modality, raw_pid=pid)


#: camid -> hand-made feature; every tracklet has its own camera, so the toy model looks it up.
FEATURES = {
    0: (1.0, 0.0), 1: (0.0, 1.0),  # IR queries, pids 1, 2
    2: (1.0, 0.0), 3: (1.0, 1.0), 4: (0.0, 2.0),  # RGB gallery, pids 1, 2, 2
    10: (1.0, 0.0), 11: (1.0, 2.0), 12: (0.0, 1.0),  # training tracklets, labels 0, 0, 1
}
PROTOTYPES = ((1.0, 0.0), (0.0, 1.0))  # text features of training identities 0 and 1


class _LookupModel(nn.Module):
    """Test feature and f_proj looked up by camera; text prototypes fixed (``text=False``: none)."""

    def __init__(self, text: bool = True) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        if not text:
            self.text_features = None

    def _lookup(self, camid: torch.Tensor) -> torch.Tensor:
        return torch.tensor([FEATURES[int(c)] for c in camid]) + 0 * self.dummy  # (B, 2)

    def extract(self, x, camid=None, modality=None):
        return self._lookup(camid)

    def forward_features(self, x, camid=None, modality=None):
        return {"proj": self._lookup(camid)}

    def text_features(self):
        return torch.tensor(PROTOTYPES)


@pytest.fixture(scope="module")
def toy_world(frame_path):
    query = [_tracklet(frame_path, 1, 0, Modality.IR), _tracklet(frame_path, 2, 1, Modality.IR)]
    gallery = [_tracklet(frame_path, p, c, Modality.RGB) for p, c in ((1, 2), (2, 3), (2, 4))]
    train = [_tracklet(frame_path, 0, 10, Modality.IR), _tracklet(frame_path, 0, 11, Modality.RGB),
             _tracklet(frame_path, 1, 12, Modality.RGB)]
    dataset = VideoReIDDataset("toy", "", train, {"ir2rgb": EvalSet("ir2rgb", query, gallery, "vcm")},
                               num_train_pids=2, num_cameras=13)
    cfg = ExperimentConfig(data=DataConfig(height=8, width=4, seq_len=2, test_batch_size=2),
                           eval=EvalConfig(distance="inner", directions=("ir2rgb",)))
    return dataset, cfg


# ----------------------------------------------------------------------------- Fig. 7
def test_split_distances_by_hand():
    dist = np.array([[0.1, 0.5, 0.9], [0.7, 0.2, 0.3]])
    out = split_distances(dist, [1, 2], [1, 2, 2])
    assert sorted(out["intra"].tolist()) == pytest.approx([0.1, 0.2, 0.3])
    assert sorted(out["inter"].tolist()) == pytest.approx([0.5, 0.7, 0.9])
    assert out["delta"] == pytest.approx(0.7 - 0.2)
    with pytest.raises(ValueError, match="inter-class"):
        split_distances(dist[:, :1], [1, 1], [1])


def test_distance_distributions_give_the_hand_computed_gaps(toy_world):
    dataset, cfg = toy_world
    res = distance_distributions(_LookupModel(), dataset, cfg)
    # cross-modality, cosine distance although eval.distance is "inner" (g3 = (0, 2) has norm 2):
    # intra (q1,g1) 0, (q2,g2) 1 - 1/sqrt2, (q2,g3) 0; inter (q1,g2) 1 - 1/sqrt2, (q1,g3) 1, (q2,g1) 1
    cross = res["cross"]
    assert sorted(cross["intra"].tolist()) == pytest.approx([0.0, 0.0, 1 - R2], abs=1e-6)
    assert cross["intra_mean"] == pytest.approx((1 - R2) / 3, abs=1e-6)
    assert cross["inter_mean"] == pytest.approx((3 - R2) / 3, abs=1e-6)
    assert cross["delta"] == pytest.approx(2 / 3, abs=1e-6)
    assert cross["split"] == "test:ir2rgb"
    # text-to-visual on the training tracklets: a = (1,0), b = (1,2) of identity 0, c = (0,1) of 1
    # intra a-t0 0, b-t0 1 - 1/sqrt5, c-t1 0; inter a-t1 1, b-t1 1 - 2/sqrt5, c-t0 1
    text = res["text"]
    assert text["split"] == "train"
    assert text["intra_mean"] == pytest.approx((1 - R5) / 3, abs=1e-6)
    assert text["inter_mean"] == pytest.approx((3 - 2 * R5) / 3, abs=1e-6)
    assert text["delta"] == pytest.approx((2 - R5) / 3, abs=1e-6)
    assert res["metric"] == "cosine"


def test_model_without_text_branch_and_the_paper_deltas(toy_world, tmp_path):
    dataset, cfg = toy_world
    results = {"baseline": distance_distributions(_LookupModel(text=False), dataset, cfg),
               "CLIP-ReID-like": distance_distributions(_LookupModel(), dataset, cfg)}
    assert results["baseline"]["text"] is None
    deltas = paper_deltas(results, "baseline", "CLIP-ReID-like")
    assert deltas["delta1"] is None and deltas["delta2"] == pytest.approx((2 - R5) / 3, abs=1e-6)
    assert deltas["delta3"] == deltas["delta4"] == pytest.approx(2 / 3, abs=1e-6)
    path = tmp_path / "fig7.png"
    fig = plot_distance_distributions(results, path, paper_pair=("baseline", "CLIP-ReID-like"))
    _assert_png(path)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no text branch" in t for t in texts)
    assert any(t.startswith(r"$\delta_2$ = 0.518" + "\n") for t in texts)  # (2 - 1/sqrt5) / 3 = 0.5176


# ----------------------------------------------------------------------------- Fig. 8: reshape
def test_reshape_transform_drops_cls_and_hub_tokens_and_keeps_grid_positions():
    h, w, hub, n = 3, 2, 4, 2
    tokens = torch.full((n, 1 + h * w + hub, 3), -1.0)  # [CLS] and hub tokens: -1 (CLS), -2 (hub)
    tokens[:, -hub:] = -2.0
    for i in range(h):
        for j in range(w):
            tokens[:, 1 + i * w + j] = torch.tensor([i, j, 10 * i + j], dtype=torch.float32)
    out = vit_reshape_transform((h, w))(tokens)  # hub count derived: 11 - 1 - 6 = 4
    assert out.shape == (n, 3, h, w)
    assert (out >= 0).all()  # neither [CLS] nor a hub token survived
    ii, jj = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    assert torch.equal(out[:, 0], ii.float().expand(n, h, w)) and torch.equal(out[:, 1], jj.float().expand(n, h, w))
    assert torch.equal(vit_reshape_transform((h, w), num_extra_tokens=4)(tokens), out)
    with pytest.raises(ValueError, match="trailing"):
        vit_reshape_transform((h, w), num_extra_tokens=3)(tokens)
    with pytest.raises(ValueError, match="3x2 patch grid"):
        vit_reshape_transform((h, w))(tokens[:, :5])


# ----------------------------------------------------------------------------- Fig. 8: toy CAM
PATCH, GRID, HUB = 4, (4, 3), 2


class _ToyViT(nn.Module):
    """Patch tokens = mean colour of each 4x4 patch; [CLS] zeros; two large trailing hub tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, PATCH, stride=PATCH, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            for c in range(3):
                self.conv.weight[c, c] = 1.0 / PATCH ** 2
        self.ln_1 = nn.Identity()
        self.grid_size = GRID

    @property
    def cam_target_layer(self) -> nn.Module:
        return self.ln_1

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        patches = self.conv(frames).flatten(2).transpose(1, 2)  # (N, h*w, 3)
        cls = torch.zeros_like(patches[:, :1])  # (N, 1, 3)
        hub = torch.full_like(patches[:, :HUB], 9.0)  # (N, HUB, 3)
        return self.ln_1(torch.cat([cls, patches, hub], dim=1))  # (N, 1 + h*w + HUB, 3)


class _ToyReID(nn.Module):
    """Embedding (1, s): s = TAP of one colour channel's activation at one patch, all else ignored."""

    def __init__(self, patch: int, channel: int) -> None:
        super().__init__()
        self.visual, self.patch, self.channel = _ToyViT(), patch, channel

    def extract(self, x, camid=None, modality=None):
        b, t = x.shape[:2]
        tokens = self.visual(x.flatten(0, 1))  # (B*T, L, 3)
        s = tokens[:, 1 + self.patch, self.channel].view(b, t).mean(1)  # (B,)
        return torch.stack([torch.ones_like(s), s], dim=1)  # (B, 2)


def _patch_means(cam: np.ndarray) -> np.ndarray:
    h, w = GRID
    return cam.reshape(h, PATCH, w, PATCH).mean(axis=(1, 3))  # (h, w)


def test_cam_peaks_at_the_only_patch_that_matters():
    h, w = GRID
    red, blue = (1, 2), (3, 0)  # (row, col): a red square and a blue square
    g = torch.Generator().manual_seed(0)
    clips = 0.05 * torch.rand(1, 2, 3, h * PATCH, w * PATCH, generator=g)  # (N=1, T=2, 3, 16, 12)
    for (i, j), c in ((red, 0), (blue, 2)):
        clips[..., c, i * PATCH:(i + 1) * PATCH, j * PATCH:(j + 1) * PATCH] = 1.0
    target = torch.tensor([0.0, 1.0])  # cosine similarity rises with s
    for (i, j), channel in ((red, 0), (blue, 2)):  # a model reading the red patch, then one reading the blue
        model = _ToyReID(i * w + j, channel)
        cams = cam_maps(model, clips, target)
        assert cams.shape == (1, 2, h * PATCH, w * PATCH)
        for frame in cams[0]:
            means = _patch_means(frame)
            assert np.unravel_index(means.argmax(), means.shape) == (i, j)
            other = blue if (i, j) == red else red
            assert means[i, j] > 0.7 and means[other] < 0.1


def test_cam_on_tinyclip_vld_with_hub_tokens(tmp_path):
    from reprolib.config import BackboneConfig, ModelConfig
    from reprolib.models import create_clip_model
    from reprolib.models.vld import VLD

    clip_model, _ = create_clip_model("TinyCLIP-ViT-8", "tinyclip")
    cfg = ModelConfig(name="vld", backbone=BackboneConfig(arch="TinyCLIP-ViT-8", pretrained="tinyclip"),
                      feature="cls", extra={"hub_layer": 1, "use_imlp": False})
    torch.manual_seed(0)
    t, size = 3, (32, 16)
    model = VLD(cfg, 4, num_cameras=2, image_size=size, clip_model=copy.deepcopy(clip_model), seq_len=t).train()
    seen = []
    handle = model.visual.cam_target_layer.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    clips = torch.randn(2, t, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats = model.eval().extract(clips)  # (2, 2D)
    model.train()
    cams = cam_maps(model, clips, feats.flip(0))
    handle.remove()
    h, w = model.visual.grid_size
    assert seen[0][1] == 1 + h * w + t  # the hooked tokens hold the T hub tokens at the end
    assert cams.shape == (2, t, *size) and cams.min() >= 0 and cams.max() <= 1 + 1e-6
    assert all(np.ptp(frame) > 0.5 for frame in cams.reshape(-1, *size))  # non-degenerate maps
    assert model.training and all(p.grad is None for p in model.parameters())  # state restored


def test_cross_modal_cams_and_cam_strips_png(tmp_path, frame_path):
    model = _ToyReID(0, 0)
    data_cfg = DataConfig(height=16, width=12, seq_len=2)
    rgb, ir = _tracklet(frame_path, 1, 0, Modality.RGB), _tracklet(frame_path, 1, 1, Modality.IR)
    out = cross_modal_cams(model, rgb, ir, data_cfg)
    assert out["rgb"].shape == out["ir"].shape == (2, 16, 12)
    assert out["frames_rgb"].shape == (2, 16, 12, 3) and out["frames_rgb"].dtype == np.uint8
    assert abs(int(out["frames_rgb"][0, 8, 6, 0]) - 120) <= 8  # de-normalised back to the JPEG's colour
    with pytest.raises(ValueError, match="visible then an infrared"):
        cross_modal_cams(model, ir, rgb, data_cfg)
    path = tmp_path / "fig8.png"
    plot_cam_strips(out["frames_rgb"], out["frames_ir"], {"baseline": out, "VLD": out}, path, title="toy")
    _assert_png(path)


# ----------------------------------------------------------------------------- Fig. 9
def test_retrieval_grid_borders_camera_rule_and_png(tmp_path, frame_path):
    query = [_tracklet(frame_path, 1, 0, Modality.IR)]
    gallery = [_tracklet(frame_path, p, c, Modality.RGB) for p, c in ((1, 0), (2, 1), (1, 1), (3, 2))]
    es = EvalSet("ir2rgb", query, gallery, "vcm")
    # gallery 0 has the query's pid and camera: the evaluator ignores it, so the grid skips it
    assert visible_ranking([0, 1, 2, 3], query[0], gallery, "vcm", topk=2) == [1, 2]
    assert visible_ranking([0, 1, 2, 3], query[0], gallery, "bupt", topk=2) == [0, 1]
    rankings = {"baseline": {"ir2rgb": np.array([[0, 1, 2, 3]])}, "VLD": {"ir2rgb": np.array([[2, 0, 1, 3]])}}
    path = tmp_path / "fig9.png"
    fig = plot_retrieval_grid(rankings, {"ir2rgb": es}, {"ir2rgb": [0]}, path, topk=2)
    _assert_png(path)
    axes = np.array(fig.axes).reshape(2, 3)
    colours = [[matplotlib.colors.to_hex(ax.spines["top"].get_edgecolor()) for ax in row[1:]] for row in axes]
    assert colours == [[MISS, HIT], [HIT, MISS]]  # baseline: ids 2, 1; VLD: ids 1, 2


def test_retrieval_figure_still_importable_from_viz(frame_path):
    from reprolib import viz

    query = [_tracklet(frame_path, 1, 0, Modality.IR)]
    gallery = [_tracklet(frame_path, p, 1, Modality.RGB) for p in (1, 2)]
    fig = viz.retrieval_figure(np.array([[1, 0]]), query, gallery, [0], topk=2)
    assert [matplotlib.colors.to_hex(ax.spines["top"].get_edgecolor()) for ax in fig.axes[1:]] == [MISS, HIT]
