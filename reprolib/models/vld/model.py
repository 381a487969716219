"""VLD (video-level language-driven VVI-ReID, TIFS 2025): the ``vld`` model family.

CLIP ViT + TAP + BNNeck heads (the ``baseline`` family's row "B") plus the paper's two modules,
each behind a switch so one family gives Table III's rows B+IMLP, B+STP and B+IMLP+STP:

* **IMLP** (``use_imlp``; :mod:`reprolib.models.prompts`): per-identity prompts through the
  frozen CLIP text encoder, for all C identities every iteration, give text prototypes
  ``T_feat (C, d)``; L_v2t = CE(f_proj . T_feat^T, y) (paper eq. 5) on the TAP (or ``temporal_head``)
  of the 512-d projected [CLS] (discrepancy 12), raw dot product by default (discrepancy 2);
* **STP** (``use_stp``, ``use_sta``; :mod:`reprolib.models.vld.stp`): the hub H enters before block
  ``hub_layer`` and is transposed before every later block; STA aggregates it into f_H, trained
  with lambda2 * L_id^H + lambda3 * L_wrt^H (paper eqs. 10-13).

Table IV's temporal fusion (``temporal_head``; :mod:`reprolib.models.vld.temporal`, discrepancy 22):
the 512-d heads Conv1D / Transf / Transf_cls replace TAP on the per-frame projected [CLS], i.e.
f_proj = head(z_proj) wherever f_proj is used (L_v2t, and with the extra terms CE and WRT on
f_proj); the 768-d branch (f_cls, f_last, f_H) and thus the test feature keep TAP
(docs/decisions/vld.md#v22-table-iv-temporal-heads). ``tap`` (default) is the unchanged model.

Forward (docs/decisions/vld.md#reference-forward-pass), per clip batch ``(B, T, 3, H, W)``::

    frames (B*T, 3, H, W) -> CLIP ViT (+ hub) -> z_last (penultimate [CLS], pre-LN, 768),
        z_cls = ln_post([CLS]) (768), z_proj = z_cls @ proj (512), z_H = STA (768)
    TAP over T -> f_last, f_cls, f_H; temporal_head over T (TAP by default) -> f_proj

Loss (``forward_train``; names are the keys the trainer logs). With
``clipreid_extra_terms=true`` (default: the released code, docs/decisions/vld.md#v1-loss-terms),
eight terms::

    id       = id_weight * CE(W(BN(f_cls)))          wrt      = triplet_weight * WRT(f_cls)
    id_proj  = id_weight * CE(W_p(BN_p(f_proj)))     wrt_proj = triplet_weight * WRT(f_proj)
    wrt_last = triplet_weight * WRT(f_last)          v2t      = lambda1 * CE(f_proj . T_feat^T)
    id_hub   = lambda2 * CE(W_H(BN_H(f_H)))          wrt_hub  = lambda3 * WRT(f_H)

With ``clipreid_extra_terms=false`` the paper's eq. 14 (five terms: id, wrt, v2t, id_hub,
wrt_hub). ``wrt`` is ``loss.triplet`` (its key from ``metric_loss_name``; WRT with
``loss.wrt_legacy_numerics``, discrepancy 26). CE has no label smoothing by default
(``loss.label_smoothing``, discrepancy 18); L_v2t never has any.

With ``use_imlp=false, use_stp=false, clipreid_extra_terms=false`` the family computes exactly
the ``baseline`` family's losses (same parameter names: ``visual``, ``neck``, ``classifier``;
tests/test_vld.py checks it). With the extra terms on, that configuration is "B with the
CLIP-ReID terms", the like-for-like reference for B+IMLP / B+STP run with the code's loss.

Test feature (``extract``, discrepancy 13): pre-BN, unnormalised ``[f_cls; f_H]`` (1536-d at
ViT-B/16), scored by raw inner product (``eval.distance=inner``); ``f_cls`` alone without STA
(``test_feature=auto``).

Optimiser groups (``param_groups``, docs/decisions/vld.md#v4-learning-rate-groups): the visual encoder,
H, the STA weights and the temporal head's weights at ``optim.lr``; every bias at
``optim.lr * bias_lr_mult``; heads (BN and classifiers) and the prompt context at
``optim.lr * head_lr_mult`` (25x in ``vld.yaml``). The frozen text encoder is in no group.

``model.extra`` keys: see :class:`VLDExtra`.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.models.base import stack_modalities
from reprolib.models.clip_backbone import create_clip_with_visual
from reprolib.models.clip_family import CLIPFamily
from reprolib.models.heads import BNNeck, IDClassifier, TemporalAvgPool
from reprolib.models.prompts import FrozenTextEncoder, PromptLearner
from reprolib.models.registry import register_model
from reprolib.models.vld.options import VLDExtra
from reprolib.models.vld.stp import SpatialTemporalPrompting
from reprolib.models.vld.temporal import build_temporal_head

__all__ = ["VLD"]

logger = logging.getLogger(__name__)

@register_model("vld", options=VLDExtra, results_version=1)
class VLD(CLIPFamily):
    """VLD: CLIP ViT with IMLP and STP (see the module docstring).

    Args:
        model_cfg: a ``ModelConfig`` (``backbone``, ``feature`` must be ``cls``, ``neck``,
            ``extra`` validated by :class:`VLDExtra`).
        num_classes: number of training identities C (classifiers and prompts).
        num_cameras: camera-table size (largest camid + 1), used when ``backbone.sie``.
        image_size: input ``(H, W)``; the positional embedding is resized to its grid.
        loss_cfg: the ``LossConfig`` (ID/metric losses, WRT numerics); default ``LossConfig()``.
        clip_model: an already loaded open_clip CLIP (visual and text towers); else loaded
            from ``model.backbone``.
        seq_len: frames per clip T (``data.seq_len``); required with ``use_stp`` (H is T x T) and
            with ``temporal_head=transf_cls`` (T + 1 positions).

    Raises:
        ValueError: invalid ``model.extra``, ``model.feature`` other than ``cls``, a missing
            ``seq_len`` with STP or ``transf_cls``, or a ``hub_layer`` outside the backbone's blocks.
    """

    # 1x LR for the ViT, H, STA and temporal-head weights (biases: bias_lr_mult): VLD's rule by parameter
    # name gives 25x only to biases, classifiers/BN and the prompt context (docs/decisions/vld.md#v4-learning-rate-groups)
    backbone_prefixes = ("visual.", "stp.", "temporal_head.")
    family, options, features, necks = "vld", VLDExtra, ("cls",), ("bnneck", "none")

    def __init__(self, model_cfg: Any, num_classes: int, num_cameras: int,
                 image_size: Optional[tuple[int, int]] = None, loss_cfg: Optional[Any] = None,
                 clip_model: Optional[nn.Module] = None, seq_len: Optional[int] = None) -> None:
        super().__init__()
        self.extra = ex = self.check_model_cfg(model_cfg)  # model.feature: f_cls is VLD's ID/test feature
        clip_model, self.visual = create_clip_with_visual(model_cfg.backbone, image_size, num_cameras, clip_model)
        width, out_dim = self.visual.width, self.visual.output_dim

        def neck(dim: int) -> nn.Module:
            return BNNeck(dim, bias_trainable=ex.bn_bias_trainable) if model_cfg.neck == "bnneck" else nn.Identity()

        self.temporal_pool = TemporalAvgPool()
        self.temporal_head = build_temporal_head(ex.temporal_head, out_dim, seq_len,
                                                 conv1d_as_released=ex.conv1d_as_released,
                                                 transf_frame_position=ex.transf_frame_position)  # f_proj's pool
        self.neck, self.classifier = neck(width), IDClassifier(width, num_classes)  # names as the baseline
        if ex.clipreid_extra_terms:
            self.neck_proj, self.classifier_proj = neck(out_dim), IDClassifier(out_dim, num_classes)
        self.stp: Optional[SpatialTemporalPrompting] = None
        if ex.use_stp:
            if seq_len is None:
                raise ValueError("model 'vld' with model.extra.use_stp=true needs the clip length: "
                                 "create_model(..., seq_len=cfg.data.seq_len) (the hub H is T x T)")
            heads = ex.sta_heads or self.visual.blocks[0].attn.num_heads
            self.stp = SpatialTemporalPrompting(
                seq_len, width, heads, ex.hub_layer, self.visual.num_blocks, use_sta=ex.use_sta,
                as_released=ex.hub_as_released, separate_norm=self.visual.vit.ln_post if ex.sta_separate_ln else None)
            if ex.use_sta:
                self.neck_hub, self.classifier_hub = neck(width), IDClassifier(width, num_classes)
        if ex.use_imlp:
            self.prompt_learner = PromptLearner(clip_model.token_embedding, num_classes, clip_model.context_length,
                                                ex.prompt_template, ex.n_ctx, ex.ctx_init_std)
            self.text_encoder = FrozenTextEncoder(clip_model, truncate=ex.truncate_text)
            self.v2t_scale = (float(clip_model.logit_scale.detach().exp()) if ex.v2t_scale is None
                              else ex.v2t_scale)
        logger.info("VLD: IMLP %s, STH %s, STA %s, f_proj pooled by %s, %s loss terms", self._imlp_summary(),
                    self._sth_summary(), "on" if self.stp is not None and self.stp.sta is not None else "off",
                    ex.temporal_head, "8 (code)" if ex.clipreid_extra_terms else "5 (eq. 14)")
        self.init_losses(loss_cfg)

    def _imlp_summary(self) -> str:
        if not self.extra.use_imlp:
            return "off"
        pl = self.prompt_learner
        used = pl.eot_position + 1 if self.text_encoder.truncate else self.text_encoder.context_length
        return (f"on ({pl.num_classes} prompts of {pl.template!r}, ctx at [{pl.ctx_start}, {pl.ctx_start + pl.n_ctx}), "
                f"text encoder on {used} of {self.text_encoder.context_length} tokens)")

    def _sth_summary(self) -> str:
        if self.stp is None:
            return "off"
        sth = self.stp.sth
        return f"on (H {tuple(sth.weight.shape)} before block {sth.start_layer} of {sth.num_blocks})"

    # -- features -------------------------------------------------------------------------
    @property
    def seq_len(self) -> Optional[int]:
        """T of the hub (``None`` without STP: any clip length works)."""
        return self.stp.seq_len if self.stp is not None else None

    def forward_features(self, x: Tensor, camid: Optional[Tensor] = None,
                         modality: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Features of a clip batch.

        Args:
            x: ``(B, T, 3, H, W)`` clips; with STP, T must equal ``data.seq_len``.
            camid: ``(B,)`` camera ids (SIE), repeated over the T frames.
            modality: ``(B,)`` modality codes (unused: H and the prompts are modality-shared).

        Returns:
            ``tokens (B*T, L, D)`` (ln_post, hub tokens removed), ``frame (B, T, D)`` per-frame
            z_cls, and the sequence features ``feat`` (f_cls, D), ``bn_feat`` (D), ``proj`` (f_proj, d;
            pooled by ``temporal_head``), ``last`` (f_last, D); with STA also ``hub`` (f_H, D). All
            but ``proj`` are TAP.
        """
        if x.dim() == 4:
            x = x.unsqueeze(1)  # (B, 1, 3, H, W)
        b, t = x.shape[:2]
        if self.stp is not None and t != self.stp.seq_len:
            raise ValueError(f"VLD's hub was built for clips of data.seq_len={self.stp.seq_len} frames, got {t}")
        frames = x.flatten(0, 1)  # (B*T, 3, H, W)
        frame_camid = camid.repeat_interleave(t) if camid is not None else None  # (B*T,)
        out = (self.stp.encode(self.visual, frames, frame_camid) if self.stp is not None
               else self.visual(frames, frame_camid))

        def tap(z: Tensor) -> Tensor:
            return self.temporal_pool(z.view(b, t, -1))  # (B, D)

        frame = out["cls"].view(b, t, -1)  # (B, T, D)
        feat = self.temporal_pool(frame)  # (B, D)
        feats = {"tokens": out["tokens"], "frame": frame, "feat": feat, "bn_feat": self.neck(feat),
                 "proj": self.temporal_head(out["proj"].view(b, t, -1)), "last": tap(out["penultimate_cls"])}
        if self.stp is not None and self.stp.sta is not None:
            z_hub = self.stp.aggregate(out["cls_pre_ln"], out["hub"], self.visual.vit.ln_post)  # (B, T, D)
            feats["hub"] = self.temporal_pool(z_hub)  # (B, D)
        return feats

    def text_features(self) -> Tensor:
        """Text prototypes of all C identities, ``(C, d)`` (IMLP; gradients reach the prompts)."""
        if not self.extra.use_imlp:
            raise RuntimeError("text_features: IMLP is disabled (model.extra.use_imlp=false)")
        return self.text_encoder(self.prompt_learner(), self.prompt_learner.eot_index())

    def v2t_logits(self, f_proj: Tensor, text: Tensor) -> Tensor:
        """Similarities s(f_proj, t_c) of eq. 5, ``(B, C)``: raw dot product or scaled cosine."""
        if self.extra.v2t_similarity == "cosine":
            return self.v2t_scale * F.normalize(f_proj, dim=-1) @ F.normalize(text, dim=-1).t()  # (B, C)
        return f_proj @ text.t()  # (B, C)

    # -- training -------------------------------------------------------------------------
    def forward_train(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted loss terms of a training batch (RGB clips then IR clips, labels repeated).

        Args:
            batch: ``rgb (B, T, 3, H, W)``, ``ir (B, T, 3, H, W)``, ``label (B,)``,
                ``camid_rgb (B,)``, ``camid_ir (B,)``.

        Returns:
            The terms listed in the module docstring; terms with weight 0 are left out.
        """
        x, labels, camid, modality = stack_modalities(batch)
        feats = self.forward_features(x, camid, modality)
        cfg, ex = self.loss_cfg, self.extra
        metric = self.metric_name if self.metric_loss is not None else None
        losses: dict[str, Tensor] = {}

        def add_id(name: str, weight: float, neck: nn.Module, classifier: nn.Module, f: Tensor) -> None:
            if weight:
                losses[name] = weight * self.id_loss(classifier(neck(f)), labels)

        def add_metric(suffix: str, weight: float, f: Tensor) -> None:
            if metric is not None and weight:
                losses[metric + suffix] = weight * self.metric_loss(f, labels)

        add_id("id", cfg.id_weight, self.neck, self.classifier, feats["feat"])  # L_id^cls, eq. 3
        add_metric("", cfg.triplet_weight, feats["feat"])  # L_wrt^cls, eq. 4
        if ex.clipreid_extra_terms:
            add_id("id_proj", cfg.id_weight, self.neck_proj, self.classifier_proj, feats["proj"])
            add_metric("_last", cfg.triplet_weight, feats["last"])
            add_metric("_proj", cfg.triplet_weight, feats["proj"])
        if ex.use_imlp and ex.lambda1:
            logits = self.v2t_logits(feats["proj"], self.text_features())  # (2B, C)
            losses["v2t"] = ex.lambda1 * F.cross_entropy(logits.float(), labels)  # eq. 5, no smoothing
        if "hub" in feats:
            add_id("id_hub", ex.lambda2, self.neck_hub, self.classifier_hub, feats["hub"])  # eq. 12
            add_metric("_hub", ex.lambda3, feats["hub"])  # eq. 13
        return losses

    # -- test -----------------------------------------------------------------------------
    def extract_clip(self, x: Tensor, camid: Optional[Tensor] = None,
                     modality: Optional[Tensor] = None) -> Tensor:
        """Test feature ``(B, D')``: pre-BN ``[f_cls; f_H]`` (default with STA), ``f_cls`` or ``f_H``."""
        feats = self.forward_features(x, camid, modality)
        choice = self.extra.test_feature
        if choice == "cls" or (choice == "auto" and "hub" not in feats):
            return feats["feat"]
        if choice == "hub":
            return feats["hub"]
        return torch.cat([feats["feat"], feats["hub"]], dim=1)  # (B, 2D)
