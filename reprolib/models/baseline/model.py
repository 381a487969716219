"""The common CLIP baseline: CLIP visual encoder + TAP + BNNeck + ID classifier.

This is VLD Table III's row "B" ("the baseline trains the CLIP vision encoder using only
L_id^cls and L_wrt^cls", VLD paper section IV-C) and the "Vanilla" starting point of X-ReID:

    video (B, T, 3, H, W) -> frames (B*T, 3, H, W) -> CLIP ViT -> per-frame feature
    ([CLS] after ln_post, 768-d: ``model.feature=cls``; or its 512-d projection: ``proj``)
    -> TAP (B, D) -> BNNeck -> bias-free linear ID classifier.

Losses (``LossConfig``): ``id`` = id_weight * CE(classifier(BN(f)), y) (VLD eq. 3) and the
metric loss on the **pre-BN** sequence feature f: ``wrt`` (VLD eq. 4) or ``triplet``
(batch-hard), times ``triplet_weight``.

Test feature (VLD code, docs/decisions/vld.md#v13-test-feature): the **pre-BN**, un-normalised TAP feature,
scored by raw inner product (``eval.distance=inner``). ``model.extra.test_feature=bn``
returns the BNNeck output instead (X-ReID's choice, docs/decisions/xreid.md#evaluation-and-test-outputs).

``model.extra`` keys of this family:

* ``test_feature``: ``"pre_bn"`` (default) | ``"bn"``;
* ``bn_bias_trainable``: ``true`` (default; VLD's code trains the BNNeck shift,
  docs/decisions/vld.md#v28-bnneck-bias) | ``false`` (strong baseline / CLIP-ReID / X-ReID).

Not included here: VLD's extra CLIP-ReID terms (CE on f_proj, WRT on z_last and f_proj;
docs/decisions/vld.md#v1-loss-terms) belong to the VLD family.
"""
from __future__ import annotations

from typing import Any, Optional

from torch import Tensor, nn

from reprolib.models.base import stack_modalities
from reprolib.models.baseline.options import BaselineExtra
from reprolib.models.clip_backbone import create_clip_visual
from reprolib.models.clip_family import CLIPFamily
from reprolib.models.heads import BNNeck, IDClassifier, TemporalAvgPool
from reprolib.models.registry import register_model

__all__ = ["CLIPBaseline"]


@register_model("baseline", options=BaselineExtra, results_version=1)
class CLIPBaseline(CLIPFamily):
    """CLIP ViT + TAP + BNNeck + ID classifier (VLD Table III "B").

    Args:
        model_cfg: a ``ModelConfig`` (``backbone``, ``feature``, ``temporal_pool``, ``neck``,
            ``extra``).
        num_classes: number of training identities.
        num_cameras: camera-table size (largest camid + 1), used when ``backbone.sie``.
        image_size: input ``(H, W)``; the positional embedding is resized to its grid.
        loss_cfg: the ``LossConfig`` of :meth:`forward_train` (default: ``LossConfig()``).
        clip_model: an already loaded open_clip CLIP model (else loaded from ``backbone``).
    """

    backbone_prefixes = ("visual.",)
    family, options, features, necks = "baseline", BaselineExtra, ("cls", "proj"), ("bnneck", "none")

    def __init__(self, model_cfg: Any, num_classes: int, num_cameras: int,
                 image_size: Optional[tuple[int, int]] = None, loss_cfg: Optional[Any] = None,
                 clip_model: Optional[nn.Module] = None, seq_len: Optional[int] = None) -> None:
        # seq_len is part of the common factory signature (VLD's hub is T x T); TAP does not need it
        super().__init__()
        self.extra = self.check_model_cfg(model_cfg)
        self.feature = model_cfg.feature
        self.visual = create_clip_visual(model_cfg.backbone, image_size, num_cameras, clip_model=clip_model)
        self.feat_dim = self.visual.width if self.feature == "cls" else self.visual.output_dim
        self.temporal_pool = TemporalAvgPool()
        self.neck = (BNNeck(self.feat_dim, bias_trainable=self.extra.bn_bias_trainable)
                     if model_cfg.neck == "bnneck" else nn.Identity())
        self.classifier = IDClassifier(self.feat_dim, num_classes)
        self.init_losses(loss_cfg)

    def forward_features(self, x: Tensor, camid: Optional[Tensor] = None,
                         modality: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Features of a clip batch.

        Args:
            x: ``(B, T, 3, H, W)`` clips (``(B, 3, H, W)`` is read as T = 1).
            camid: ``(B,)`` camera ids (SIE), repeated over the T frames.
            modality: ``(B,)`` modality codes (unused by the baseline).

        Returns:
            ``{"tokens": (B*T, L, D_vit), "frame": (B, T, D), "feat": (B, D) pre-BN,
            "bn_feat": (B, D)}``.
        """
        out, b, t = self.visual.encode_video(x, camid)  # per frame: B*T
        frame = out[self.feature].view(b, t, -1)  # (B, T, D)
        feat = self.temporal_pool(frame)  # (B, D)
        return {"tokens": out["tokens"], "frame": frame, "feat": feat, "bn_feat": self.neck(feat)}

    def forward_train(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted losses of a training batch: RGB clips then IR clips, labels repeated.

        Args:
            batch: ``rgb (B, T, 3, H, W)``, ``ir (B, T, 3, H, W)``, ``label (B,)``,
                ``camid_rgb (B,)``, ``camid_ir (B,)``.

        Returns:
            ``{"id": id_weight * L_id}`` plus ``{"wrt" | "triplet": triplet_weight * L}``;
            terms with weight 0 are left out.
        """
        x, labels, camid, modality = stack_modalities(batch)
        feats = self.forward_features(x, camid, modality)
        losses: dict[str, Tensor] = {}
        if self.loss_cfg.id_weight:
            logits = self.classifier(feats["bn_feat"])  # (2B, num_classes)
            losses["id"] = self.loss_cfg.id_weight * self.id_loss(logits, labels)
        if self.metric_loss is not None and self.loss_cfg.triplet_weight:
            losses[self.metric_name] = self.loss_cfg.triplet_weight * self.metric_loss(feats["feat"], labels)
        return losses

    def extract_clip(self, x: Tensor, camid: Optional[Tensor] = None,
                     modality: Optional[Tensor] = None) -> Tensor:
        """Test feature ``(B, D)``: pre-BN TAP feature (or BN feature with ``extra.test_feature=bn``)."""
        feats = self.forward_features(x, camid, modality)
        return feats["feat"] if self.extra.test_feature == "pre_bn" else feats["bn_feat"]
