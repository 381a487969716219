"""VLD Fig. 8: focus regions of a video ReID model, by Grad-CAM on its CLIP ViT.

The paper cites CAM (Zhou et al. 2016) without saying which layer or target; no code was
released (docs/decisions/vld.md#v30-figures-7-and-8). We use the named
alternative, **Grad-CAM** (``pytorch_grad_cam``, grad-cam 1.5.x) on the input of the last
block's attention, i.e. the output of its ``ln_1`` (``CLIPVisualEncoder.cam_target_layer``): at
the last block's *output* the gradient of a [CLS]-based embedding w.r.t. the patch tokens is
zero (docs/decisions/tooling.md#grad-cam-on-clip).

* **Video** (docs/decisions/tooling.md#grad-cam-on-clip): the model sees the ``N*T`` frames as one image batch
  through a wrapper that views them as ``(N, T, 3, H, W)`` clips and returns the clip embedding
  ``model.extract`` (TAP over frames, VLD's hub included), so each frame's map shows its
  contribution to the *sequence* feature.
* **Tokens**: the hooked activations are ``(N*T, 1 + h*w + k, D)``: [CLS], the patch grid in
  row-major order, then ``k`` trailing tokens (VLD's STP appends the T hub tokens of a frame
  at the end in the blocks after ``hub_layer``; ``k = 0`` otherwise). :func:`vit_reshape_transform`
  drops [CLS] and the trailing tokens, ``k`` being derived from the token count and the grid.
* **Target**: an embedding has no class logit, so the score is the cosine similarity of the
  clip's embedding to a reference feature (:class:`EmbeddingSimilarityTarget`); for Fig. 8,
  the same identity's feature in the other modality (:func:`cross_modal_cams`). A clip's
  own feature is no use: the cosine is at its maximum there and its gradient vanishes.

Maps are ReLU'd and min-max normalised per frame by Grad-CAM, at the input size.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.data.types import Modality, Tracklet
from reprolib.viz.save import save_figure

__all__ = ["EmbeddingSimilarityTarget", "vit_reshape_transform", "cam_maps", "load_clip", "cross_modal_cams",
           "plot_cam_strips"]

log = logging.getLogger(__name__)


class EmbeddingSimilarityTarget:
    """Grad-CAM target: cosine similarity of one output embedding ``(D,)`` to a reference ``(D,)``."""

    def __init__(self, reference: Tensor) -> None:
        self.reference = reference.detach()

    def __call__(self, output: Tensor) -> Tensor:
        return F.cosine_similarity(output, self.reference.to(output), dim=0)


def vit_reshape_transform(grid: tuple[int, int], num_extra_tokens: Optional[int] = None
                          ) -> Callable[[Tensor], Tensor]:
    """Grad-CAM ``reshape_transform`` for ViT tokens with [CLS] first and optional trailing tokens.

    Args:
        grid: the patch grid ``(h, w)`` (``CLIPVisualEncoder.grid_size``).
        num_extra_tokens: trailing tokens after the patches (VLD's hub: T); ``None`` derives
            them from the token count, ``L - 1 - h*w``.

    Returns:
        A function ``(N, 1 + h*w + k, D) -> (N, D, h, w)`` putting patch ``i*w + j`` at ``[:, :, i, j]``.
    """
    h, w = grid

    def transform(tokens: Tensor) -> Tensor:
        n, length, d = tokens.shape
        extra = length - 1 - h * w
        if extra < 0 or (num_extra_tokens is not None and extra != num_extra_tokens):
            expected = "k >= 0" if num_extra_tokens is None else f"k = {num_extra_tokens}"
            raise ValueError(f"Grad-CAM reshape: {length} tokens do not make [CLS] + a {h}x{w} patch grid + "
                             f"{expected} trailing tokens")
        patches = tokens[:, 1:1 + h * w]  # (N, h*w, D): [CLS] and trailing (hub) tokens dropped
        return patches.reshape(n, h, w, d).permute(0, 3, 1, 2)  # (N, D, h, w)

    return transform


class _FramesToClipEmbedding(nn.Module):
    """``(N*T, 3, H, W)`` frames -> ``(N, D)`` clip embeddings of ``model.extract`` (recipe (a))."""

    def __init__(self, model: nn.Module, seq_len: int, camid: Optional[Tensor], modality: Optional[Tensor]) -> None:
        super().__init__()
        self.model, self.seq_len, self.camid, self.modality = model, seq_len, camid, modality

    def forward(self, frames: Tensor) -> Tensor:
        clips = frames.view(-1, self.seq_len, *frames.shape[1:])  # (N, T, 3, H, W)
        return self.model.extract(clips, self.camid, self.modality)  # (N, D)


def _visual(model: nn.Module) -> nn.Module:
    visual = getattr(model, "visual", None)
    if visual is None or not hasattr(visual, "cam_target_layer"):
        raise TypeError(f"cam_maps: {type(model).__name__} has no CLIP visual encoder at .visual with a "
                        "cam_target_layer; pass layer= and a model whose .visual has grid_size")
    return visual


def cam_maps(model: nn.Module, clips: Tensor, target_feature: Tensor, layer: Optional[nn.Module] = None,
             camid: Optional[Tensor] = None, modality: Optional[Tensor] = None) -> np.ndarray:
    """Grad-CAM maps of every frame of every clip, for an embedding-similarity target.

    Args:
        model: a ``ReIDModel`` with a CLIP ViT at ``model.visual`` (``grid_size``,
            ``cam_target_layer``); its train/eval mode is restored afterwards.
        clips: ``(N, T, 3, H, W)`` normalised clips (as the test loader yields them).
        target_feature: ``(N, D)`` reference features, one per clip (or ``(D,)`` for all), in
            the space of ``model.extract``; the score is cos(extract(clip_n), target_n).
        layer: the hooked module (default ``model.visual.cam_target_layer``, the last block's
            ``ln_1``); its output must be ViT tokens ``(N*T, 1 + h*w + k, D)``.
        camid: ``(N,)`` camera ids passed to ``extract`` (SIE), or ``None``.
        modality: ``(N,)`` modality codes passed to ``extract``, or ``None``.

    Returns:
        ``(N, T, H, W)`` float32 maps in [0, 1] (per-frame min-max), at the input size.
    """
    from pytorch_grad_cam import GradCAM

    if clips.dim() != 5:
        raise ValueError(f"cam_maps: clips must be (N, T, 3, H, W), got {tuple(clips.shape)}")
    n, t = clips.shape[:2]
    device = next(model.parameters()).device
    targets = target_feature.detach().to(device).float()
    targets = targets.expand(n, -1) if targets.dim() == 1 else targets  # (N, D)
    if targets.shape[0] != n:
        raise ValueError(f"cam_maps: {targets.shape[0]} target features for {n} clips")
    visual = _visual(model)
    layer = visual.cam_target_layer if layer is None else layer
    camid, modality = (None if v is None else v.to(device) for v in (camid, modality))
    wrapper = _FramesToClipEmbedding(model, t, camid, modality)
    frames = clips.to(device).flatten(0, 1).detach().requires_grad_(True)  # (N*T, 3, H, W): a graph even if frozen
    was_training = model.training
    try:
        with GradCAM(model=wrapper, target_layers=[layer],
                     reshape_transform=vit_reshape_transform(tuple(visual.grid_size))) as cam:
            maps = cam(input_tensor=frames, targets=[EmbeddingSimilarityTarget(f) for f in targets])  # (N*T, H, W)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return maps.reshape(n, t, *maps.shape[1:]).astype(np.float32)  # (N, T, H, W)


def load_clip(tracklet: Tracklet, data_cfg) -> tuple[Tensor, np.ndarray]:
    """A tracklet's test clip, normalised for the model and as displayable pixels.

    Args:
        tracklet: the tracklet.
        data_cfg: the run's ``DataConfig`` (size, ``seq_len``, ``test_sampling``, ``normalization``);
            with dense sampling the first clip is taken.

    Returns:
        ``(clip (T, 3, H, W) float32, frames (T, H, W, 3) uint8)``.
    """
    from reprolib.data.transforms import NORMALIZATION, build_test_transform
    from reprolib.data.video import ClipDataset

    transform = build_test_transform(data_cfg.height, data_cfg.width, data_cfg.normalization)
    clip = ClipDataset([tracklet], data_cfg.seq_len, data_cfg.test_sampling, transform)[0]["frames"]
    clip = clip[0] if clip.dim() == 5 else clip  # (T, 3, H, W)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZATION[data_cfg.normalization])
    pixels = ((clip * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)  # (T, 3, H, W)
    return clip, pixels.permute(0, 2, 3, 1).numpy()


def cross_modal_cams(model: nn.Module, rgb: Tracklet, ir: Tracklet, data_cfg) -> dict[str, np.ndarray]:
    """Fig. 8 maps of a visible and an infrared tracklet of one identity, each scored against the other.

    The visible clip's target is the infrared clip's feature and vice versa, so the maps show
    what makes each sequence match its counterpart in the other modality.

    Args:
        model: a ``ReIDModel`` with a CLIP ViT (see :func:`cam_maps`).
        rgb: the visible tracklet.
        ir: the infrared tracklet (normally the same identity).
        data_cfg: the run's ``DataConfig``.

    Returns:
        ``{"rgb": (T, H, W), "ir": (T, H, W), "frames_rgb": (T, H, W, 3) uint8, "frames_ir": ...}``.
    """
    if rgb.modality != Modality.RGB or ir.modality != Modality.IR:
        raise ValueError(f"cross_modal_cams: expected a visible then an infrared tracklet, got "
                         f"{rgb.modality.name} and {ir.modality.name}")
    (clip_rgb, frames_rgb), (clip_ir, frames_ir) = load_clip(rgb, data_cfg), load_clip(ir, data_cfg)
    device = next(model.parameters()).device
    clips = torch.stack([clip_rgb, clip_ir]).to(device)  # (2, T, 3, H, W)
    camid = torch.tensor([rgb.camid, ir.camid], device=device)  # (2,)
    modality = torch.tensor([int(rgb.modality), int(ir.modality)], device=device)  # (2,)
    was_training = model.training
    with torch.no_grad():
        feats = model.eval().extract(clips, camid, modality).float()  # (2, D)
    model.train(was_training)
    maps = cam_maps(model, clips, feats.flip(0), camid=camid, modality=modality)  # (2, T, H, W)
    return {"rgb": maps[0], "ir": maps[1], "frames_rgb": frames_rgb, "frames_ir": frames_ir}


def plot_cam_strips(frames_rgb: np.ndarray, frames_ir: np.ndarray, cams_by_model: Mapping[str, Mapping[str, np.ndarray]],
                    path: Optional[os.PathLike] = None, alpha: float = 0.5, cmap: str = "jet", title: str = "",
                    dpi: int = 110):
    """Fig. 8: frame strips of a visible and an infrared sequence with each model's Grad-CAM overlay.

    The first row shows the frames; every further row is one model, its maps over the same
    frames (warm = more weight for the cross-modality match). Visible frames on the left,
    infrared on the right.

    Args:
        frames_rgb: ``(T, H, W, 3)`` uint8 visible frames (:func:`load_clip`).
        frames_ir: ``(T', H, W, 3)`` uint8 infrared frames.
        cams_by_model: ``{model_label: {"rgb": (T, H, W), "ir": (T', H, W)}}`` in display order
            (e.g. :func:`cross_modal_cams`' dicts for the baseline and VLD).
        path: PNG to write (atomically); ``None`` to only return the figure.
        alpha: opacity of the heat map.
        cmap: matplotlib colour map of the heat map.
        title: figure title (say the identity and the profile).
        dpi: resolution of the PNG.

    Returns:
        The matplotlib ``Figure``.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    t_rgb, t_ir = len(frames_rgb), len(frames_ir)
    for label, cams in cams_by_model.items():
        if cams["rgb"].shape[0] != t_rgb or cams["ir"].shape[0] != t_ir:
            raise ValueError(f"plot_cam_strips: {label}'s maps have {cams['rgb'].shape[0]} visible and "
                             f"{cams['ir'].shape[0]} infrared frames, the strips {t_rgb} and {t_ir}")
    rows = 1 + len(cams_by_model)
    h, w = frames_rgb.shape[1:3]
    cell = 0.75
    fig = Figure(figsize=(cell * (t_rgb + t_ir + 0.4) + 1.6, cell * (h / w) * rows + 1.0))
    grid = fig.add_gridspec(rows, t_rgb + t_ir + 2, width_ratios=[1] * t_rgb + [0.3] + [1] * t_ir + [0.15],
                            wspace=0.05, hspace=0.08, left=0.12, right=0.93, top=0.86, bottom=0.03)
    strips = [("rgb", frames_rgb, 0, "visible"), ("ir", frames_ir, t_rgb + 1, "infrared")]
    for key, frames, first_col, name in strips:
        for r, label in enumerate(["input", *cams_by_model]):
            for k, frame in enumerate(frames):
                ax = fig.add_subplot(grid[r, first_col + k])
                ax.imshow(frame)
                if r:
                    heat = cams_by_model[label][key][k]
                    ax.imshow(heat, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0,
                              extent=(-0.5, frame.shape[1] - 0.5, frame.shape[0] - 0.5, -0.5))
                ax.set_xticks([]), ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{name} t{k + 1}", fontsize=7)
                if k == 0 and first_col == 0:
                    ax.set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
    cax = fig.add_subplot(grid[1:, -1] if rows > 1 else grid[:, -1])
    fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=cmap), cax=cax)
    cax.set_ylabel("Grad-CAM (per frame)", fontsize=7)
    cax.tick_params(labelsize=6)
    fig.suptitle(title or "Focus regions: Grad-CAM of each sequence's similarity to the other modality",
                 fontsize=9)
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig
