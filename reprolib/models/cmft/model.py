"""CMFT (Mukhtar & Khan): dual-stream TSM ResNet-50 + CCF fusion cascade, trained progressively.

    RGB clip (B, T, 3, H, W) -> stream_rgb (TSM ResNet-50) -> taps Conv2..Conv6 ---+
                                                                                    +-> CCF cascade -> Z^Fusion
    IR clip  (B, T, 3, H, W) -> stream_ir  (TSM ResNet-50) -> taps Conv2..Conv6 ---+
    Z^RGB, Z^IR = GAP of Conv6, mean over T (B, 2048), pre-BN (metric losses)
    shared BNNeck over [Z^RGB; Z^IR] + shared bias-free classifier (L_ID); Z^Fusion has its own
    BNNeck and the same classifier (its own classifier when its width differs: S6F, 1024-d).

The two streams are independent (no shared weights), identically initialised, and not modified
by the CCFs (the fusion path only reads their taps; docs/decisions/cmft.md#dual-stream-extractor). Training pairs are an
RGB and an IR tracklet of the same identity, not registered frames (#5).

**Evaluation** (``model.extra.eval_protocol``; docs/decisions/cmft.md#c6-evaluation-protocol): ``p1`` (default) sends
each tracklet through its own modality's stream only (``modality`` codes are required) and
returns the BN feature (``test_feature=bn``, #17; score it with ``eval.distance=cosine``); the
fusion path is a training-time aid whose parameters are unused at test. ``p2`` feeds the same
tracklet to both streams (self-pairing) and returns the fused BN feature (ablation only; not
available for the score-fusion baselines).

**Losses** (:meth:`CMFT.forward_train`): ``L_ID`` is computed here (CE of the post-BN logits
of RGB, IR and fused features through the shared classifier, summed, times ``loss.id_weight``;
for ``score_avg``/``score_mul`` the fused term is the NLL of the fused posterior, #21). Every
other term is named in ``model.extra.losses`` per training stage and looked up in
:func:`cmft_loss_table`, **the single plug-in point** of ``reprolib.models.cmft.losses``:

* stage 1 = epochs ``[0, warm_epochs)``, stage 2 afterwards (:meth:`CMFT.on_epoch_start`; the
  stage is a buffer, so it survives a resume). Paper: stage 1 L_ID + L_cross (eq. 18), stage 2
  L_ID + 0.3 L_MSRL + 0.7 L_MDL (eq. 19; #9, #10: keeping the triplet in stage 2 is the
  config ``stage2: {..., cross: 1.0}``);
* a CMFT loss is ``fn(features, **options) -> scalar Tensor`` with ``features`` the dict
  documented at :data:`FEATURE_KEYS` and ``options`` = ``model.extra.loss_options[name]``;
  the component is reported under its name, times its weight;
* the terms are ``reprolib.models.cmft.losses.CMFT_LOSSES``: ``cross`` (L_cross, eqs. 7-10), ``msrl``,
  ``mdl``, and the Table 4 comparison terms ``wrt``, ``hetero_center``, ``cmt_standin``.

``model.extra`` keys: see :class:`CMFTExtra`.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from reprolib.config import LossConfig
from reprolib.data.types import Modality
from reprolib.losses import build_id_loss
from reprolib.models.base import ReIDModel
from reprolib.models.cmft.ccf import build_fusion
from reprolib.models.cmft.losses import CMFT_LOSSES
from reprolib.models.cmft.options import CMFTExtra
from reprolib.models.cmft.resnet import build_tsm_resnet
from reprolib.models.heads import BNNeck, IDClassifier, TemporalAvgPool
from reprolib.models.options import check_choice
from reprolib.models.registry import register_model

__all__ = ["CMFT", "CMFTLoss", "FEATURE_KEYS", "cmft_loss_table"]

#: The ``features`` dict every CMFT loss receives (all pre-BN unless ``_bn``; B = pairs in the batch):
#: ``rgb (B, D)`` Z^RGB, ``ir (B, D)`` Z^IR, ``fused (B, D_f)`` Z^Fusion (absent for the score-fusion
#: baselines), ``labels (B,)`` identities (shared by the three: pair j is one identity), and the
#: BNNeck outputs ``rgb_bn``, ``ir_bn``, ``fused_bn`` (for cosine variants such as MSRL_cosine).
FEATURE_KEYS: tuple[str, ...] = ("rgb", "ir", "fused", "labels", "rgb_bn", "ir_bn", "fused_bn")

#: A CMFT loss: ``fn(features: Mapping[str, Tensor], **options) -> Tensor`` (a scalar).
CMFTLoss = Callable[..., Tensor]

def cmft_loss_table() -> dict[str, CMFTLoss]:
    """Every CMFT loss by name (``reprolib.models.cmft.losses.CMFT_LOSSES``): the single plug-in point.

    An entry is ``fn(features: Mapping[str, Tensor], **options) -> Tensor`` with ``features`` as in
    :data:`FEATURE_KEYS` and ``options`` from ``model.extra.loss_options[name]``.
    """
    return dict(CMFT_LOSSES)


@register_model("cmft", options=CMFTExtra, results_version=1)
class CMFT(ReIDModel):
    """Dual-stream TSM ResNet-50 + CCF cascade (CMFT; see the module docstring).

    Args:
        model_cfg: a ``ModelConfig``: ``backbone.arch`` (``resnet50`` | ``resnet50-w<N>``),
            ``backbone.pretrained`` (``imagenet`` | ``none`` | a file), ``backbone.weights_path``,
            ``temporal_pool`` (``tap``), ``neck`` (``bnneck``), ``extra`` (:class:`CMFTExtra`).
        num_classes: number of training identities.
        num_cameras: unused (CMFT has no camera embedding); part of the factory signature.
        image_size: unused (the CNN takes any size); part of the factory signature.
        loss_cfg: ``LossConfig`` (``id_weight``, ``label_smoothing``, ``triplet_margin``).
        seq_len: unused (T is read from each clip); part of the factory signature.

    Raises:
        WeightsNotFoundError: ImageNet weights asked for but not found (before anything is built).
    """

    backbone_prefixes = ("stream_rgb.", "stream_ir.")

    def __init__(self, model_cfg: Any, num_classes: int, num_cameras: int = 0,
                 image_size: Optional[tuple[int, int]] = None, loss_cfg: Optional[Any] = None,
                 seq_len: Optional[int] = None) -> None:
        super().__init__()
        check_choice("model.neck", model_cfg.neck, ("bnneck",), "cmft")
        self.extra = CMFTExtra.from_dict(model_cfg.extra)
        self.loss_cfg = loss_cfg if loss_cfg is not None else LossConfig(triplet="none")
        if self.loss_cfg.triplet != "none":
            raise ValueError(f"loss.triplet={self.loss_cfg.triplet!r}: the cmft family takes its metric terms from "
                             "model.extra.losses (e.g. stage1: {cross: 1.0}); set loss.triplet=none")
        table = cmft_loss_table()
        for stage in (1, 2):
            for name in self.extra.stage_losses(stage):
                if name not in table:
                    raise ValueError(f"model.extra.losses.stage{stage}: unknown CMFT loss {name!r}; available: "
                                     f"{', '.join(sorted(table))} (reprolib.models.cmft.losses.CMFT_LOSSES)")
        self.loss_fns = table
        bb = model_cfg.backbone
        self.stream_rgb = build_tsm_resnet(bb.arch, bb.pretrained, bb.weights_path, self.extra.last_stride,
                                           self.extra.shift_div, self.extra.shift, self.extra.zero_init_residual)
        self.stream_ir = copy.deepcopy(self.stream_rgb)  # independent weights, same initialisation
        self.feat_dim = self.stream_rgb.out_channels
        self.fusion = build_fusion(self.extra.variant, self.stream_rgb.specs, self.extra.ccf_options())
        self.temporal_pool = TemporalAvgPool()
        self.neck = BNNeck(self.feat_dim, bias_trainable=self.extra.bn_bias_trainable)  # shared by RGB and IR
        self.classifier = IDClassifier(self.feat_dim, num_classes)  # shared by RGB, IR and fused
        self.fused_dim = getattr(self.fusion, "out_dim", None) if self.fusion.kind == "feature" else None
        self.neck_fused = (BNNeck(self.fused_dim, bias_trainable=self.extra.bn_bias_trainable)
                           if self.fused_dim else None)
        # S6F's 1024-d Z^Fusion cannot use the 2048-d shared classifier: it gets its own (docs/decisions/cmft.md#ccf-variants)
        self.classifier_fused = (IDClassifier(self.fused_dim, num_classes)
                                 if self.fused_dim and self.fused_dim != self.feat_dim else None)
        self.id_loss = build_id_loss(self.loss_cfg)
        self.register_buffer("stage", torch.tensor(1, dtype=torch.long))  # progressive-learning stage (1 | 2)

    # -- features ---------------------------------------------------------------------------

    @property
    def _fusion_taps(self) -> tuple[str, ...]:
        return getattr(self.fusion, "taps", ("conv6",))

    def _stream(self, stream: nn.Module, x: Tensor, taps: tuple[str, ...] = ("conv6",)) -> tuple[dict, Tensor]:
        """``(taps {name: (B*T, C, h, w)}, frame features (B, T, C))`` of one stream."""
        if x.dim() == 4:
            x = x.unsqueeze(1)  # (B, 1, 3, H, W)
        b, t = x.shape[:2]
        maps = stream(x, taps)
        frame = maps["conv6"].mean(dim=(2, 3)).view(b, t, -1)  # (B, T, C), GAP per frame
        return maps, frame

    def _fuse(self, maps_rgb: dict, maps_ir: dict, z_rgb: Tensor, z_ir: Tensor, b: int) -> Tensor:
        """Z^Fusion ``(B, D_f)`` of a feature-level fusion (CCF cascade or concatenation)."""
        if self.fusion.kind != "feature":
            raise RuntimeError(f"variant {self.extra.variant!r} has no fused feature")
        if hasattr(self.fusion, "taps"):
            tokens = self.fusion(maps_rgb, maps_ir)  # (B*T, N_6, D_f)
            return self.temporal_pool(tokens.mean(dim=1).view(b, -1, tokens.shape[-1]))  # (B, D_f)
        return self.fusion(z_rgb, z_ir)  # (B, D_f)

    def _classify_fused(self, bn_fused: Tensor) -> Tensor:
        head = self.classifier_fused if self.classifier_fused is not None else self.classifier
        return head(bn_fused)  # (B, num_classes)

    def forward_features(self, x: Tensor, camid: Optional[Tensor] = None,
                         modality: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Test-time features of a clip batch under ``model.extra.eval_protocol``.

        Args:
            x: ``(B, T, 3, H, W)`` clips.
            camid: unused.
            modality: ``(B,)`` codes (``Modality.RGB`` = 2, ``Modality.IR`` = 1); required by P1,
                which routes each clip through its own modality's stream.

        Returns:
            P1: ``{"frame": (B, T, C), "feat": (B, C) pre-BN, "bn_feat": (B, C)}``;
            P2: ``{"feat": (B, D_f) Z^Fusion, "bn_feat": (B, D_f)}`` of the self-paired clip.
        """
        if self.extra.eval_protocol == "p2":
            b = x.shape[0]
            maps_r, frame_r = self._stream(self.stream_rgb, x, self._fusion_taps)
            maps_i, frame_i = self._stream(self.stream_ir, x, self._fusion_taps)
            fused = self._fuse(maps_r, maps_i, self.temporal_pool(frame_r), self.temporal_pool(frame_i), b)
            return {"feat": fused, "bn_feat": self.neck_fused(fused)}
        if modality is None:
            raise ValueError("CMFT with model.extra.eval_protocol='p1' needs the (B,) modality codes: "
                             "extract(x, camid, modality) routes each clip through its own stream")
        modality = modality.to(x.device)
        known = (modality == int(Modality.RGB)) | (modality == int(Modality.IR))
        if not bool(known.all()):
            raise ValueError(f"CMFT: modality codes must be {int(Modality.RGB)} (RGB) or {int(Modality.IR)} (IR), "
                             f"got {sorted(set(modality.tolist()))}")
        frame: Optional[Tensor] = None
        for code, stream in ((Modality.RGB, self.stream_rgb), (Modality.IR, self.stream_ir)):
            idx = (modality == int(code)).nonzero().squeeze(1)  # (B_m,)
            if idx.numel():
                _, f = self._stream(stream, x[idx])  # (B_m, T, C)
                if frame is None:
                    frame = f.new_empty(x.shape[0], *f.shape[1:])  # (B, T, C)
                frame[idx] = f
        feat = self.temporal_pool(frame)  # (B, C)
        return {"frame": frame, "feat": feat, "bn_feat": self.neck(feat)}

    def extract_clip(self, x: Tensor, camid: Optional[Tensor] = None,
                     modality: Optional[Tensor] = None) -> Tensor:
        """Test feature ``(B, D)``: BN (default) or pre-BN feature of :meth:`forward_features`."""
        feats = self.forward_features(x, camid, modality)
        return feats["bn_feat"] if self.extra.test_feature == "bn" else feats["feat"]

    # -- training ---------------------------------------------------------------------------

    def on_epoch_start(self, epoch: int, trainer: Any) -> None:
        """Progressive learning: stage 1 for epochs ``[0, warm_epochs)``, stage 2 afterwards."""
        self.stage.fill_(1 if epoch < self.extra.warm_epochs else 2)

    def train_features(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Features and logits of a training batch of RGB/IR pairs.

        Args:
            batch: ``rgb (B, T, 3, H, W)``, ``ir (B, T, 3, H, W)``, ``label (B,)``.

        Returns:
            ``(features, logits)``: ``features`` as :data:`FEATURE_KEYS`; ``logits`` with
            ``rgb``/``ir`` ``(B, K)`` and either ``fused`` ``(B, K)`` logits or, for the
            score-fusion baselines, ``fused_log_prob`` ``(B, K)``.
        """
        labels = batch["label"]
        b = labels.shape[0]
        maps_r, frame_r = self._stream(self.stream_rgb, batch["rgb"], self._fusion_taps)
        maps_i, frame_i = self._stream(self.stream_ir, batch["ir"], self._fusion_taps)
        z_r, z_i = self.temporal_pool(frame_r), self.temporal_pool(frame_i)  # (B, C) each
        bn = self.neck(torch.cat([z_r, z_i], dim=0))  # (2B, C): one BNNeck over both modalities (AGW)
        bn_r, bn_i = bn[:b], bn[b:]
        logits_all = self.classifier(bn)  # (2B, K)
        features = {"rgb": z_r, "ir": z_i, "labels": labels, "rgb_bn": bn_r, "ir_bn": bn_i}
        logits = {"rgb": logits_all[:b], "ir": logits_all[b:]}
        if self.fusion.kind == "score":
            logits["fused_log_prob"] = self.fusion(logits["rgb"], logits["ir"])  # (B, K)
        else:
            z_f = self._fuse(maps_r, maps_i, z_r, z_i, b)  # (B, D_f)
            bn_f = self.neck_fused(z_f)  # (B, D_f)
            features.update(fused=z_f, fused_bn=bn_f)
            logits["fused"] = self._classify_fused(bn_f)  # (B, K)
        return features, logits

    def forward_train(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted losses of one step: ``id`` plus the current stage's ``model.extra.losses``.

        Args:
            batch: ``rgb (B, T, 3, H, W)``, ``ir (B, T, 3, H, W)``, ``label (B,)`` (pair j of the
                two modalities is one identity), ``camid_rgb``, ``camid_ir`` (unused).

        Returns:
            ``{"id": id_weight * L_ID, name: weight * loss(features) ...}``; zero weights are
            left out.
        """
        features, logits = self.train_features(batch)
        labels = features["labels"]
        losses: dict[str, Tensor] = {}
        if self.loss_cfg.id_weight:
            # log_softmax of normalised log-probabilities is the identity: CE on them is the fused NLL (#21)
            fused = logits.get("fused", logits.get("fused_log_prob"))
            l_id = sum(self.id_loss(v, labels) for v in (logits["rgb"], logits["ir"], fused))
            losses["id"] = self.loss_cfg.id_weight * l_id
        for name, weight in self.extra.stage_losses(int(self.stage)).items():
            if weight:
                options = self.extra.loss_options.get(name, {}) or {}
                losses[name] = weight * self.loss_fns[name](features, **options)
        return losses
