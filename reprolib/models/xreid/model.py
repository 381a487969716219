"""X-ReID (AAAI 2026, "Multi-granularity Information Interaction for Video-Based Visible-Infrared
Person Re-Identification"): the ``xreid`` model family.

CLIP ViT-B/16 at 288x144 with SIE on [CLS] and a frozen patch embedding (docs/decisions/xreid.md#backbone),
TAP, BNNeck heads, plus the paper's two modules behind switches, so that one family gives
Table 3 (Baseline, +CPC, +MII), every Table 4 row and the eight Table 5 combinations:

* **CPC** (:mod:`reprolib.models.xreid.cpc`): ``memory`` none | single | per_modality,
  ``update_source`` same | other | pooled, ``contrast`` own | both;
* **MII** (:mod:`reprolib.models.xreid.mii`): ``sii``, ``lii``, ``cii`` on the detached
  last-layer tokens (D18).

Forward per clip batch ``(B, T, 3, H, W)``::

    frames -> CLIP ViT (+SIE) -> tokens Z (B*T, 1+N, D) after ln_post; f_t = Z[:, 0] (D),
        f_{p,t} = f_t @ proj (d)
    f = TAP(f_t), f_p = TAP(f_{p,t});   b = [BN(f) ; BN(f_p)] (D + d: the CPC feature, D8)
    SII: O^SII (B, T, D) = blocks(query [CLS]_t, keys shift(patches)_t)        (eqs. 5-6)
    LII: O^LII (B, T, D) = block(query [CLS]_t, keys patches_{(t+S) mod T})    (eq. 7)
    CII (training only): O_CMII of each branch feature with the paired other-modality clip

Loss (``forward_train``; the trainer logs each key). The released code's structure
(docs/decisions/xreid.md#loss-composition; D11, D12), with LII mirroring SII:

    id          = loss.id_weight * CE(W([BN f ; BN f_p]))          (0.25; plain CE)
    id_frame    = frame_id_weight * CE over the B*T frames          (default 1/T)
    triplet, triplet_proj                                            (batch-hard, raw f and f_p)
    id_sii, id_sii_frame, triplet_sii (and _lii)                     (one classifier per branch,
                                                                      shared by its sequence and
                                                                      frame features)
    cpcl_vis, cpcl_ir (or cpcl)  = cpcl_weight * CPCL                (eqs. 3-4)
    cmcl        = cmcl_weight * sum over {SII, LII} x {vis, ir}      (eq. 9, D21)

``frame_id_weight=0`` and ``loss.id_weight=1`` give the paper's eq. 10 weights.

Test feature (``extract``; D16, D17): ``[BN(f) ; BN(f_p) ; O]`` with
``O = (BN_S(o^SII) + BN_L(o^LII)) / 2`` (2048-d at ViT-B/16; ``fusion=concat`` for
``[BN_S ; BN_L]``); without SII and LII, ``[BN(f) ; BN(f_p)]``. Rank with
``eval.distance=cosine`` (the code's L2-normalised Euclidean distance ranks the same).

Optimiser groups (``param_groups``; docs/decisions/xreid.md#optimiser-and-learning-rate-groups): Adam over the trainable
parameters at ``optim.lr`` (5e-6) times ``bias_lr_mult`` (2) for biases, times
``head_lr_mult`` (10) for names containing ``classifier`` and, again, for the MII modules and
their heads (``mii.``, ``head_sii.``, ``head_lii.``); the multipliers compound (MII
classifiers 100x, MII biases 20x), as the released name rules do. The frozen patch embedding
and BN biases are left out.

CPC memories are re-extracted by :meth:`XReID.on_epoch_start` (the trainer's hook) and live in
buffers (``cpc.memories.*.features``), so a resume restores them.

``model.extra`` keys: :class:`XReIDExtra`.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

import torch
from torch import Tensor, nn

from reprolib.models.base import extract_tracklet_features, is_bias_param, stack_modalities
from reprolib.models.clip_backbone import create_clip_visual
from reprolib.models.clip_family import CLIPFamily
from reprolib.models.heads import BNNeck, IDClassifier, TemporalAvgPool
from reprolib.models.registry import register_model
from reprolib.models.xreid.cmcl import cmcl_loss
from reprolib.models.xreid.cpc import CrossModalityPrototypes
from reprolib.models.xreid.mii import CrossModalityInteraction, LongTermInteraction, ShortTermInteraction, fuse_branches
from reprolib.models.xreid.options import XReIDExtra

__all__ = ["XReID", "BranchHead"]

logger = logging.getLogger(__name__)


class BranchHead(nn.Module):
    """BNNeck for a sequence feature and one for its frame features, sharing one classifier
    (the released ``bn_TSM_tp0``/``bn_TSM_frame0``/``classifier_TSM_tp0`` pattern)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = BNNeck(dim)
        self.bn_frame = BNNeck(dim)
        self.classifier = IDClassifier(dim, num_classes)


class _MII(nn.Module):
    """Container of the MII blocks (parameter names ``mii.sii.*``, ``mii.lii.*``, ``mii.cii.*``)."""

    def __init__(self, dim: int, heads: int, ex: XReIDExtra) -> None:
        super().__init__()
        self.sii = (ShortTermInteraction(dim, heads, ex.sii_depth, ex.sii_stride, ex.sii_as_released)
                    if ex.sii else None)
        self.lii = LongTermInteraction(dim, heads, ex.lii_stride, ex.lii_depth) if ex.lii else None
        self.cii = (CrossModalityInteraction(dim, heads, ex.cii_sharing, ex.cii_attend_self, ex.cii_residual)
                    if ex.cii else None)


@register_model("xreid", options=XReIDExtra, results_version=1)
class XReID(CLIPFamily):
    """X-ReID: CLIP ViT + CPC + MII (see the module docstring).

    Args:
        model_cfg: a ``ModelConfig`` (``backbone`` with ``sie``/``freeze_patch_embed``,
            ``feature`` must be ``cls``, ``neck`` must be ``bnneck``, ``extra``: :class:`XReIDExtra`).
        num_classes: N_c training identities (classifiers and memories).
        num_cameras: SIE table size (largest camid + 1).
        image_size: input ``(H, W)``; the positional embedding is resized to its grid.
        loss_cfg: ``LossConfig`` (``id_weight`` 0.25, ``triplet`` batch_hard, margin 0.3).
        clip_model: an already loaded open_clip CLIP (else loaded from ``model.backbone``).
        seq_len: part of the factory signature; T is read from the input.
    """

    backbone_prefixes = ("visual.",)
    family, options = "xreid", XReIDExtra
    #: Parameter-name prefixes of MII (x ``head_lr_mult``, the released "TSM" rule).
    mii_prefixes: tuple[str, ...] = ("mii.", "head_sii.", "head_lii.")

    def __init__(self, model_cfg: Any, num_classes: int, num_cameras: int,
                 image_size: Optional[tuple[int, int]] = None, loss_cfg: Optional[Any] = None,
                 clip_model: Optional[nn.Module] = None, seq_len: Optional[int] = None) -> None:
        super().__init__()
        self.extra = ex = self.check_model_cfg(model_cfg)  # model.feature: D = 768 [CLS] + its projection
        self.visual = create_clip_visual(model_cfg.backbone, image_size, num_cameras, clip_model=clip_model)
        width, out_dim = self.visual.width, self.visual.output_dim
        self.temporal_pool = TemporalAvgPool()
        # backbone heads (docs/decisions/xreid.md#bnneck-and-classifiers); BN biases frozen
        self.bn_feat, self.bn_proj = BNNeck(width), BNNeck(out_dim)
        self.bn_feat_frame, self.bn_proj_frame = BNNeck(width), BNNeck(out_dim)
        self.classifier = IDClassifier(width + out_dim, num_classes)
        self.classifier_frame = IDClassifier(width + out_dim, num_classes)
        self.cpc = (CrossModalityPrototypes(num_classes, width + out_dim, ex.memory, ex.update_source,
                                            ex.contrast, ex.momentum, ex.temperature, ex.cpcl_negatives)
                    if ex.memory != "none" else None)
        heads = ex.mii_heads or self.visual.blocks[0].attn.num_heads
        self.mii = _MII(width, heads, ex)
        self.head_sii = BranchHead(width, num_classes) if ex.sii else None
        self.head_lii = BranchHead(width, num_classes) if ex.lii else None
        self.init_losses(loss_cfg)
        logger.info("X-ReID: CPC %s, SII %s, LII %s, CII %s, MII %.2fM parameters",
                    "off" if self.cpc is None else f"{ex.memory}/{ex.update_source}/{ex.contrast} (mu {ex.momentum})",
                    f"depth {ex.sii_depth} S={ex.sii_stride}" if ex.sii else "off",
                    f"S={ex.lii_stride}" if ex.lii else "off", ex.cii_sharing if ex.cii else "off",
                    self.num_parameters("mii.") / 1e6)

    @property
    def branches(self) -> list[tuple[str, nn.Module, BranchHead]]:
        """The enabled MII branches as ``(name, module, head)``."""
        out = []
        if self.mii.sii is not None:
            out.append(("sii", self.mii.sii, self.head_sii))
        if self.mii.lii is not None:
            out.append(("lii", self.mii.lii, self.head_lii))
        return out

    # -- features -------------------------------------------------------------------------
    def forward_features(self, x: Tensor, camid: Optional[Tensor] = None,
                         modality: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Features of a clip batch.

        Args:
            x: ``(B, T, 3, H, W)`` clips (``(B, 3, H, W)`` is read as T = 1).
            camid: ``(B,)`` camera ids for SIE (``None``: no camera embedding, as the memory
                extraction).
            modality: ``(B,)`` modality codes (unused: the encoder is shared).

        Returns:
            ``frame (B, T, D)``, ``frame_proj (B, T, d)``, ``feat (B, D)`` f, ``proj (B, d)`` f_p,
            ``bn_feat``, ``bn_proj``, ``memory_feat (B, D + d)`` = [BN f ; BN f_p],
            ``patches (B, T, N, D)`` (detached with ``mii_detach``), and per enabled branch
            ``sii``/``lii`` ``(B, T, D)`` frame outputs.
        """
        out, b, t = self.visual.encode_video(x, camid)  # per frame: B*T
        frame = out["cls"].view(b, t, -1)  # (B, T, D)
        frame_proj = out["proj"].view(b, t, -1)  # (B, T, d)
        feat, proj = self.temporal_pool(frame), self.temporal_pool(frame_proj)  # (B, D), (B, d)
        bn_feat, bn_proj = self.bn_feat(feat), self.bn_proj(proj)
        tokens = out["tokens"].detach() if self.extra.mii_detach else out["tokens"]  # (B*T, 1+N, D)
        tokens = tokens.view(b, t, *tokens.shape[1:])  # (B, T, 1+N, D)
        feats = {"frame": frame, "frame_proj": frame_proj, "feat": feat, "proj": proj, "bn_feat": bn_feat,
                 "bn_proj": bn_proj, "memory_feat": torch.cat([bn_feat, bn_proj], dim=1),  # (B, D + d)
                 "patches": tokens[:, :, 1:]}  # (B, T, N, D)
        cls = tokens[:, :, 0]  # (B, T, D)
        for name, module, _ in self.branches:
            feats[name] = module(cls, feats["patches"])  # (B, T, D)
        return feats

    def _fused(self, feats: dict[str, Tensor]) -> Optional[Tensor]:
        """O of eq. 8 from the BN'd branch sequence features (``None`` without branches)."""
        bn = {name: head.bn(self.temporal_pool(feats[name])) for name, _, head in self.branches}
        return fuse_branches(bn.get("sii"), bn.get("lii"), self.extra.fusion)

    # -- training -------------------------------------------------------------------------
    def forward_train(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted loss terms of a training batch (RGB clips then IR clips, labels repeated).

        Args:
            batch: ``rgb (B, T, 3, H, W)``, ``ir (B, T, 3, H, W)``, ``label (B,)``,
                ``camid_rgb (B,)``, ``camid_ir (B,)``; item i of ``rgb`` and ``ir`` share an
                identity (CII pairs them).

        Returns:
            The terms listed in the module docstring; terms with weight 0 are left out.
        """
        x, labels, camid, modality = stack_modalities(batch)
        n, t = batch["label"].shape[0], x.shape[1]
        feats = self.forward_features(x, camid, modality)
        cfg, ex = self.loss_cfg, self.extra
        frame_weight = 1.0 / t if ex.frame_id_weight is None else ex.frame_id_weight
        frame_labels = labels.repeat_interleave(t)  # (2B*T,)
        losses: dict[str, Tensor] = {}

        def add_id(key: str, weight: float, logits: Tensor, target: Tensor) -> None:
            if weight:
                losses[key] = weight * self.id_loss(logits, target)

        def add_metric(suffix: str, f: Tensor) -> None:
            if self.metric_loss is not None and cfg.triplet_weight:
                losses[self.metric_name + suffix] = cfg.triplet_weight * self.metric_loss(f, labels)

        add_id("id", cfg.id_weight, self.classifier(feats["memory_feat"]), labels)
        frames = torch.cat([self.bn_feat_frame(feats["frame"].flatten(0, 1)),
                            self.bn_proj_frame(feats["frame_proj"].flatten(0, 1))], dim=1)  # (2B*T, D + d)
        add_id("id_frame", frame_weight, self.classifier_frame(frames), frame_labels)
        add_metric("", feats["feat"])
        add_metric("_proj", feats["proj"])
        seq: dict[str, Tensor] = {}
        for name, _, head in self.branches:
            seq[name] = self.temporal_pool(feats[name])  # (2B, D) o^branch
            add_id(f"id_{name}", cfg.id_weight, head.classifier(head.bn(seq[name])), labels)
            add_id(f"id_{name}_frame", frame_weight, head.classifier(head.bn_frame(feats[name].flatten(0, 1))),
                   frame_labels)
            add_metric(f"_{name}", seq[name])
        if self.cpc is not None and ex.cpcl_weight:
            for key, value in self.cpc(feats["memory_feat"], labels, modality).items():
                losses[key] = ex.cpcl_weight * value
        if self.mii.cii is not None and ex.cmcl_weight:
            losses["cmcl"] = ex.cmcl_weight * self._cmcl(feats, seq, n)
        return losses

    def _cmcl(self, feats: dict[str, Tensor], seq: dict[str, Tensor], n: int) -> Tensor:
        """Eq. 9 summed over the branches and both directions (D21).

        Clip i of the RGB half is paired with clip i of the IR half (same identity). Without
        SII/LII (Table 5 row 4) the interacting feature is the backbone's f.
        """
        patches = feats["patches"]  # (2B, T, N, D)
        sources = seq or {"sii": feats["feat"]}  # CII alone: f, keyed like a branch for the block choice
        total = patches.new_zeros((), dtype=torch.float32)
        for branch, o_bar in sources.items():
            for direction, mine, other in (("rgb", slice(0, n), slice(n, 2 * n)), ("ir", slice(n, 2 * n), slice(0, n))):
                o_cmii = self.mii.cii(o_bar[mine], patches[other], branch, direction)  # (B, D)
                total = total + cmcl_loss(o_bar[mine], o_cmii, self.extra.cmcl_normalize, self.extra.cmcl_stop_grad)
        return total

    # -- test -----------------------------------------------------------------------------
    def extract_clip(self, x: Tensor, camid: Optional[Tensor] = None,
                     modality: Optional[Tensor] = None) -> Tensor:
        """Test feature ``[BN f ; BN f_p ; O]`` ``(B, D + d + D)`` (``[BN f ; BN f_p]`` without MII)."""
        feats = self.forward_features(x, camid, modality)
        fused = self._fused(feats)
        return feats["memory_feat"] if fused is None else torch.cat([feats["memory_feat"], fused], dim=1)

    # -- CPC memories ---------------------------------------------------------------------
    @torch.no_grad()
    def memory_features(self, x: Tensor, camid: Optional[Tensor] = None) -> Tensor:
        """CPC feature ``[BN f ; BN f_p]`` of a clip batch ``(B, T, 3, H, W)`` or a dense batch
        ``(B, C_clips, T, 3, H, W)`` (clip features averaged); SIE only when ``camid`` is given."""
        if x.dim() == 6:
            b, c = x.shape[:2]
            cam = camid.repeat_interleave(c) if camid is not None else None
            return self.memory_features(x.flatten(0, 1), cam).view(b, c, -1).mean(dim=1)  # (B, D + d)
        out, b, t = self.visual.encode_video(x, camid)  # per frame: B*T
        feat = self.temporal_pool(out["cls"].view(b, t, -1))  # (B, D)
        proj = self.temporal_pool(out["proj"].view(b, t, -1))  # (B, d)
        return torch.cat([self.bn_feat(feat), self.bn_proj(proj)], dim=1)  # (B, D + d)

    @torch.no_grad()
    def refresh_memories(self, batches: Iterable[dict[str, Tensor]], device: torch.device,
                         amp_dtype: Optional[torch.dtype] = None) -> None:
        """Re-extract the CPC memories from the training tracklets (D9).

        The model runs in eval mode (BN running statistics; PCL's practice) without SIE unless
        ``memory_sie``, over clips sampled by ``memory_sampling`` with the test transform, and
        is returned to its previous mode.

        Args:
            batches: test batches of the training tracklets of both modalities (labels 0..N_c-1),
                clips sampled by ``memory_sampling``: ``trainer.tracklet_loader(tracklets,
                self.extra.memory_sampling)``.
            device: where the model lives.
            amp_dtype: autocast dtype of the extraction (``trainer.amp.dtype``), or ``None``.
        """
        if self.cpc is None:
            return
        feats_t, labels, modality = extract_tracklet_features(
            self.memory_features, self, batches, device, amp_dtype, use_camid=self.extra.memory_sie,
            desc="X-ReID: CPC memories")  # (n, D + d)
        self.cpc.initialize(feats_t, labels, modality)
        logger.info("X-ReID: CPC memories extracted from %d training tracklets", feats_t.shape[0])

    def on_epoch_start(self, epoch: int, trainer: Any) -> None:
        """Refill the CPC memories at every epoch start (or only once with ``memory_refresh=once``)."""
        if self.cpc is None or (self.extra.memory_refresh == "once" and bool(self.cpc.initialized)):
            return
        self.refresh_memories(trainer.tracklet_loader(trainer.dataset.train, self.extra.memory_sampling),
                              trainer.device, trainer.amp.dtype)

    # -- optimiser ------------------------------------------------------------------------
    def param_groups(self, optim_cfg: Any) -> list[dict]:
        """Released LR rules (docs/decisions/xreid.md#optimiser-and-learning-rate-groups): lr x bias_lr_mult for biases, x head_lr_mult
        for ``classifier`` names and again for MII names (compounding); weight decay
        ``bias_weight_decay`` for biases, else ``weight_decay``. Frozen parameters are left out.

        Returns:
            Groups ``{"name", "params", "lr", "weight_decay", "lr_mult"}``, one per distinct rule set.
        """
        groups: dict[str, dict] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            tags = [tag for tag, hit in (("mii", name.startswith(self.mii_prefixes)),
                                         ("classifier", "classifier" in name),
                                         ("bias", is_bias_param(name))) if hit]
            key = "_".join(tags) or "base"
            if key not in groups:
                mult = ((optim_cfg.head_lr_mult if "mii" in tags else 1.0)
                        * (optim_cfg.head_lr_mult if "classifier" in tags else 1.0)
                        * (optim_cfg.bias_lr_mult if "bias" in tags else 1.0))
                wd = optim_cfg.bias_weight_decay if "bias" in tags else optim_cfg.weight_decay
                groups[key] = {"name": key, "params": [], "lr": optim_cfg.lr * mult, "weight_decay": wd,
                               "lr_mult": mult}
            groups[key]["params"].append(p)
        return list(groups.values())

