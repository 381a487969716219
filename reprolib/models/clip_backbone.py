"""CLIP visual encoder for video ReID: open_clip's ViT with a resized grid, SIE and split blocks.

:class:`CLIPVisualEncoder` wraps open_clip's ``VisionTransformer`` (``clip_model.visual``) and
adds what the three CLIP-based papers need:

* **input grid**: the positional table is resized to the ReID input grid, e.g. 14x14 -> 18x9
  for 288x144 with patch 16, by **bilinear** interpolation (align_corners=False, no antialias),
  the [CLS] position kept as is (docs/decisions/vld.md#input-grid-and-positional-embedding, docs/decisions/xreid.md#backbone). open_clip's own
  ``resize_pos_embed`` is bicubic with antialias, so we build the model at its native size and
  resize ourselves. ``stride < patch`` gives overlapping patches ((H - p) // s + 1 rows);
* **SIE camera embedding** (X-ReID): a learnable ``(num_cameras, width)`` table, trunc-normal
  std 0.02, whose row ``camid`` times ``sie_coef`` is added to the **[CLS] token only**, after
  the class token is concatenated and before the positional embedding and ``ln_pre``
  (docs/decisions/xreid.md#camera-embedding-sie);
* **frozen patch embedding** (X-ReID's "freeze patch projection");
* **split forward**: :meth:`embed` -> :meth:`forward_blocks` ``[start, end)`` -> :meth:`head`,
  so VLD's STH can insert hub tokens before block ``s`` and run the remaining blocks, X-ReID
  can read all last-layer tokens, and Grad-CAM can hook :attr:`cam_target_layer`
  (the last block's ``ln_1``; docs/decisions/tooling.md#grad-cam-on-clip).

Token layout is batch-first ``(N, L, D)`` (open_clip >= 2.26). Per frame the encoder returns
(docs/decisions/vld.md#per-frame-outputs)::

    tokens          (N, 1 + h*w, D)  ln_post of every last-layer token ([CLS] first)
    cls             (N, D)           ln_post([CLS])             VLD z_cls, X-ReID f_t (768)
    proj            (N, d)           cls @ proj                 VLD z_proj, X-ReID f_{p,t} (512)
    penultimate_cls (N, D)           [CLS] entering the last block, pre-LN   VLD z_last
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.models.weights import WeightsSource, create_clip_model

__all__ = ["CLIPVisualEncoder", "create_clip_visual", "resize_pos_embed", "patch_grid"]

logger = logging.getLogger(__name__)


def patch_grid(image_size: tuple[int, int], patch: int, stride: int) -> tuple[int, int]:
    """Patch grid ``((H - p) // s + 1, (W - p) // s + 1)``: 18x9 for 288x144, p = s = 16."""
    h, w = image_size
    if h < patch or w < patch:
        raise ValueError(f"image size {h}x{w} is smaller than the patch size {patch}")
    return (h - patch) // stride + 1, (w - patch) // stride + 1


def resize_pos_embed(pos_embed: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int],
                     mode: str = "bilinear") -> Tensor:
    """Resize a ``(1 + h*w, D)`` positional table to a new patch grid; [CLS] position kept.

    Args:
        pos_embed: ``(1 + h*w, D)`` table, [CLS] first, patches row-major.
        old_grid: ``(h, w)`` of ``pos_embed``.
        new_grid: target ``(h', w')`` (non-square allowed).
        mode: ``"bilinear"`` (VLD, X-ReID, CLIP-ReID; align_corners=False, no antialias) or
            ``"bicubic"``.

    Returns:
        ``(1 + h'*w', D)`` table.
    """
    if pos_embed.shape[0] != 1 + old_grid[0] * old_grid[1]:
        raise ValueError(f"positional table has {pos_embed.shape[0]} rows, expected 1 + {old_grid[0]}x{old_grid[1]}")
    cls_pos, patch_pos = pos_embed[:1], pos_embed[1:]  # (1, D), (h*w, D)
    dim = pos_embed.shape[1]
    grid = patch_pos.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)  # (1, D, h, w)
    grid = F.interpolate(grid.float(), size=new_grid, mode=mode, align_corners=False)  # (1, D, h', w')
    patch_pos = grid.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], dim).to(pos_embed.dtype)
    return torch.cat([cls_pos, patch_pos], dim=0)  # (1 + h'*w', D)


class CLIPVisualEncoder(nn.Module):
    """open_clip ViT visual tower adapted to a ReID input grid, with optional SIE.

    Args:
        vit: ``clip_model.visual`` of an open_clip CLIP ViT (token pooling, no attentional pool).
        image_size: input ``(H, W)``; the positional table is resized to its grid.
        stride: patch-embedding stride; ``<= 0`` or ``None`` means the patch size.
        num_cameras: rows of the SIE camera table; 0 disables SIE.
        sie_coef: scale of the camera embedding (X-ReID ``SIE_COE`` = 1.0).
        freeze_patch_embed: freeze ``conv1`` (X-ReID).
        pos_interpolation: ``"bilinear"`` (the official codes) or ``"bicubic"``.
    """

    def __init__(self, vit: nn.Module, image_size: tuple[int, int], stride: Optional[int] = None,
                 num_cameras: int = 0, sie_coef: float = 1.0, freeze_patch_embed: bool = False,
                 pos_interpolation: str = "bilinear") -> None:
        super().__init__()
        from open_clip.transformer import VisionTransformer

        if not isinstance(vit, VisionTransformer) or vit.attn_pool is not None or vit.pool_type != "tok":
            raise TypeError("CLIPVisualEncoder needs an open_clip VisionTransformer with [CLS]-token pooling "
                            f"(got {type(vit).__name__})")
        self.vit = vit
        patch = vit.patch_size[0]
        stride = patch if not stride or stride <= 0 else stride
        if stride > patch:
            raise ValueError(f"model.backbone.stride={stride} is larger than the patch size {patch} of the "
                             "architecture: pixels would be skipped (use the patch size, or 0 for it)")
        if stride != patch:
            vit.conv1.stride = (stride, stride)
        self.stride = stride
        image_size = (int(image_size[0]), int(image_size[1]))
        new_grid = patch_grid(image_size, patch, stride)
        old_grid = tuple(vit.grid_size)
        if new_grid != old_grid:
            with torch.no_grad():
                resized = resize_pos_embed(vit.positional_embedding.data, old_grid, new_grid, pos_interpolation)
            vit.positional_embedding = nn.Parameter(resized)
            logger.info("positional embedding resized %s -> %s (%s) for input %sx%s",
                        old_grid, new_grid, pos_interpolation, *image_size)
        vit.grid_size = new_grid
        vit.image_size = image_size
        self.image_size = image_size
        self.sie_coef = float(sie_coef)
        self.camera_embed: Optional[nn.Parameter] = None
        if num_cameras > 0:
            self.camera_embed = nn.Parameter(torch.zeros(num_cameras, self.width))
            nn.init.trunc_normal_(self.camera_embed, std=0.02)
        if freeze_patch_embed:
            vit.conv1.weight.requires_grad_(False)

    # -- properties ---------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Token width D (768 for ViT-B/16)."""
        return self.vit.class_embedding.shape[0]

    @property
    def output_dim(self) -> int:
        """Width d of the projected feature (512 for ViT-B/16)."""
        return self.vit.proj.shape[1]

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patch grid ``(h, w)``."""
        return tuple(self.vit.grid_size)

    @property
    def num_tokens(self) -> int:
        """1 + h*w tokens per frame."""
        return 1 + self.grid_size[0] * self.grid_size[1]

    @property
    def blocks(self) -> nn.ModuleList:
        """The residual attention blocks."""
        return self.vit.transformer.resblocks

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def cam_target_layer(self) -> nn.Module:
        """Grad-CAM target: the last block's ``ln_1`` (gradients w.r.t. patch tokens are non-zero)."""
        return self.blocks[-1].ln_1

    # -- split forward ------------------------------------------------------------------
    def embed(self, x: Tensor, camid: Optional[Tensor] = None) -> Tensor:
        """Patch embedding, [CLS] (+ SIE), positional embedding and ``ln_pre``.

        Args:
            x: ``(N, 3, H, W)`` frames.
            camid: ``(N,)`` camera ids; used only when SIE is enabled (``None``: no camera
                embedding, as X-ReID's memory extraction).

        Returns:
            ``(N, 1 + h*w, D)`` tokens entering block 0.
        """
        vit = self.vit
        if tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(f"encoder built for {self.image_size[0]}x{self.image_size[1]} inputs, got "
                             f"{x.shape[-2]}x{x.shape[-1]} (pass image_size=(data.height, data.width))")
        patches = vit.conv1(x)  # (N, D, h, w)
        patches = patches.flatten(2).transpose(1, 2)  # (N, h*w, D)
        cls = vit.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)  # (N, 1, D)
        if self.camera_embed is not None and camid is not None:
            if camid.numel() != patches.shape[0]:
                raise ValueError(f"camid has {camid.numel()} entries for {patches.shape[0]} frames")
            if int(camid.min()) < 0 or int(camid.max()) >= self.camera_embed.shape[0]:
                raise ValueError(f"camid range [{int(camid.min())}, {int(camid.max())}] is outside the camera "
                                 f"table of {self.camera_embed.shape[0]} rows (num_cameras = largest camid + 1)")
            cls = cls + self.sie_coef * self.camera_embed[camid].unsqueeze(1).to(patches.dtype)  # (N, 1, D)
        tokens = torch.cat([cls, patches], dim=1)  # (N, 1 + h*w, D)
        tokens = tokens + vit.positional_embedding.to(tokens.dtype)
        tokens = vit.patch_dropout(tokens)
        return vit.ln_pre(tokens)  # (N, 1 + h*w, D)

    def forward_blocks(self, tokens: Tensor, start: int = 0, end: Optional[int] = None) -> Tensor:
        """Run residual blocks ``[start, end)`` on ``(N, L, D)`` tokens (any L: hub tokens allowed)."""
        end = self.num_blocks if end is None else end
        if not 0 <= start <= end <= self.num_blocks:
            raise ValueError(f"block range [{start}, {end}) outside [0, {self.num_blocks}]")
        for block in self.blocks[start:end]:
            tokens = block(tokens)  # (N, L, D)
        return tokens

    def project(self, x: Tensor) -> Tensor:
        """CLIP projection ``(..., D) -> (..., d)`` (no bias)."""
        return x @ self.vit.proj

    def head(self, tokens: Tensor) -> dict[str, Tensor]:
        """``ln_post`` on every token, [CLS] and its projection.

        Args:
            tokens: ``(N, L, D)`` last-layer tokens, [CLS] first.

        Returns:
            ``{"tokens": (N, L, D), "cls": (N, D), "proj": (N, d)}``.
        """
        normed = self.vit.ln_post(tokens)  # (N, L, D)
        cls = normed[:, 0]  # (N, D)
        return {"tokens": normed, "cls": cls, "proj": self.project(cls)}

    def forward_tokens(self, x: Tensor, camid: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Full forward of ``(N, 3, H, W)`` frames.

        Returns:
            ``{"tokens": (N, L, D), "cls": (N, D), "proj": (N, d), "penultimate_cls": (N, D)}``.
        """
        tokens = self.forward_blocks(self.embed(x, camid), 0, self.num_blocks - 1)  # (N, L, D)
        penultimate_cls = tokens[:, 0]  # (N, D)
        tokens = self.forward_blocks(tokens, self.num_blocks - 1)  # (N, L, D)
        return {**self.head(tokens), "penultimate_cls": penultimate_cls}

    def forward(self, x: Tensor, camid: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Same as :meth:`forward_tokens`."""
        return self.forward_tokens(x, camid)

    def encode_video(self, x: Tensor, camid: Optional[Tensor] = None) -> tuple[dict[str, Tensor], int, int]:
        """Per-frame outputs of a clip batch: every frame through the ViT, each with its clip's camera.

        Args:
            x: ``(B, T, 3, H, W)`` clips (``(B, 3, H, W)`` is read as T = 1).
            camid: ``(B,)`` camera ids (SIE), repeated over the T frames.

        Returns:
            ``(out, B, T)`` with ``out`` the :meth:`forward_tokens` dict of the ``B*T`` frames
            (frame ``b*T + t`` is frame t of clip b; ``out[k].view(B, T, -1)`` regroups them).
        """
        if x.dim() == 4:
            x = x.unsqueeze(1)  # (B, 1, 3, H, W)
        b, t = x.shape[:2]
        frame_camid = camid.repeat_interleave(t) if camid is not None else None  # (B*T,)
        return self.forward_tokens(x.flatten(0, 1), frame_camid), b, t


def create_clip_visual(backbone_cfg: Any, image_size: Optional[tuple[int, int]] = None, num_cameras: int = 0,
                       clip_model: Optional[nn.Module] = None) -> CLIPVisualEncoder:
    """Build the CLIP visual encoder described by a ``BackboneConfig``.

    Args:
        backbone_cfg: ``arch``, ``pretrained``, ``weights_path``, ``stride``, ``sie``,
            ``sie_coef``, ``freeze_patch_embed``.
        image_size: input ``(H, W)`` (``(data.height, data.width)``); ``None`` keeps the
            architecture's native size.
        num_cameras: camera-table size for SIE (largest camid + 1); used when ``backbone.sie``.
        clip_model: an already loaded open_clip CLIP model to take ``.visual`` from (a family
            that also needs the text tower loads the weights once); else the weights are
            resolved and loaded by :func:`~reprolib.models.weights.create_clip_model`.

    Returns:
        The encoder; ``encoder.weights_source`` records where the weights came from.

    Raises:
        WeightsNotFoundError: no weights found for ``pretrained="openai"``/``"tinyclip"``.
        ValueError: SIE requested with ``num_cameras < 1``, or an invalid stride/size.
    """
    source: Optional[WeightsSource] = None
    if clip_model is None:
        clip_model, source = create_clip_model(backbone_cfg.arch, backbone_cfg.pretrained,
                                               backbone_cfg.weights_path or None)
    if backbone_cfg.sie and num_cameras < 1:
        raise ValueError(f"model.backbone.sie=true needs num_cameras >= 1 (got {num_cameras})")
    vit = clip_model.visual
    encoder = CLIPVisualEncoder(
        vit,
        image_size=tuple(image_size) if image_size is not None else tuple(vit.image_size),
        stride=backbone_cfg.stride,
        num_cameras=num_cameras if backbone_cfg.sie else 0,
        sie_coef=backbone_cfg.sie_coef,
        freeze_patch_embed=backbone_cfg.freeze_patch_embed,
    )
    encoder.weights_source = source
    return encoder


def create_clip_with_visual(backbone_cfg: Any, image_size: Optional[tuple[int, int]] = None, num_cameras: int = 0,
                           clip_model: Optional[nn.Module] = None) -> tuple[nn.Module, CLIPVisualEncoder]:
    """The whole CLIP model (for a family that also uses the text tower) and its visual encoder.

    The weights are loaded once; the encoder records where they came from (``weights_source``).

    Args:
        backbone_cfg, image_size, num_cameras: as :func:`create_clip_visual`.
        clip_model: an already loaded open_clip CLIP model (tests), else loaded from ``backbone_cfg``.

    Returns:
        ``(clip_model, visual_encoder)``.
    """
    source: Optional[WeightsSource] = None
    if clip_model is None:
        clip_model, source = create_clip_model(backbone_cfg.arch, backbone_cfg.pretrained,
                                               backbone_cfg.weights_path or None)
    visual = create_clip_visual(backbone_cfg, image_size, num_cameras, clip_model=clip_model)
    visual.weights_source = source
    return clip_model, visual
