"""CLIP-ReID (Li, Sun and Li, AAAI 2023) for video VI-ReID: the ``clipreid`` family.

The comparison row "CLIP-ReID" of X-ReID Table 1 and, with one prompt bank per modality, its
Table 4 row "Textual Prompts" (the two rows have identical numbers; docs/decisions/clip_baselines.md#clip-reid-in-the-vvi-setting).
Two-stage prompt learning, both stages inside **one** run of the Trainer:

**Stage 1** (epochs ``[0, stage1_epochs)``; prompt learning). Every identity c owns learnable
context tokens in the template "A photo of a X X X X person." (:class:`~reprolib.models.prompts.
PromptLearner`, reused from VLD's IMLP), encoded by CLIP's frozen text tower
(:class:`~reprolib.models.prompts.FrozenTextEncoder`). The image encoder is frozen: as the
official code, the 512-d feature of every training tracklet (TAP of the projected [CLS], test
transform, no SIE, eval mode) is extracted **once** into a cache, and each step draws
``stage1_batch`` (64) cached features (a fresh permutation per pass over the cache) and
minimises ``L_i2t + L_t2i``, the supervised contrastive losses of :func:`supcon_loss` between
the image features and the text features of their labels (positives: same label; temperature
1, unnormalised features). ``stage1_source="batch"`` instead encodes the step's own training
clips with the frozen encoder (no cache; augmented P x K batches).

**Stage 2** (epochs ``[stage1_epochs, train.epochs)``; fine-tuning). At the switch the text
features of all identities are computed once into the buffer ``text_features``; then::

    id       = loss.id_weight * CE_ls(W(BN(f)))        (0.25; label smoothing 0.1)
    id_proj  = loss.id_weight * CE_ls(W_p(BN(f_p)))
    triplet_last, triplet, triplet_proj                 (batch-hard 0.3 on raw f_last, f, f_p)
    i2t      = i2t_weight * CE_ls(f_p . text^T)         (raw dot products, no temperature)

with f, f_p, f_last the TAP of the per-frame ln_post [CLS] (D), its projection (d) and the
[CLS] entering the last block (CLIP-ReID's layer-11 feature).

**Prompt banks** (``prompt_banks``): ``shared`` is CLIP-ReID (one bank, "A photo of a X X X X
person."); ``per_modality`` keeps one bank per modality with X-ReID's wording "A visible/infrared
video of a X X X X person." (paper section "Cross-modality Prototype Collaboration"): in stage 1
each modality's features are contrasted only with its own bank's texts, in stage 2 a clip's
I2T logits use its own modality's bank.

**One optimiser for both stages.** The Trainer builds the optimiser once, so nothing is frozen
by ``requires_grad``. Instead each stage keeps the other stage's parameters **out of the
graph**: in stage 1 the visual encoder only runs under ``torch.no_grad`` (cache extraction or
``stage1_source="batch"``), and heads/classifiers are not used; in stage 2 the text features are
a constant buffer. Their gradients therefore stay ``None`` (the Trainer zeroes with
``set_to_none=True``), and Adam/AdamW/SGD skip parameters without a gradient entirely: no
update, no weight decay, no momentum drift. The prompt contexts form their own optimiser group
at ``stage1_lr`` (3.5e-4, weight decay ``stage1_weight_decay``); every other group follows
:func:`~reprolib.models.base.build_param_groups` (CLIP-ReID stage 2: lr 5e-6, biases x2,
classifiers x1). All groups share the Trainer's per-epoch schedule (see ``clipreid.yaml`` for
how the two official schedules are approximated).

**State across a resume.** The stage (``stage``), the text features and the stage-1 cache with
its permutation and cursor are buffers, so ``last.pt`` restores them; the cache resizes itself
on load (:class:`FeatureCache`) and is emptied at the switch.

Test feature (``extract``): the raw ``[f ; f_p]`` (``TEST.NECK_FEAT: before``; 1280-d at
ViT-B/16), ranked by cosine (``FEAT_NORM: yes``); ``test_feature=bn`` gives ``[BN f ; BN f_p]``.

``model.extra`` keys: :class:`CLIPReIDExtra`.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

import torch
from torch import Tensor, nn

from reprolib.models.base import build_param_groups, extract_tracklet_features, stack_modalities
from reprolib.models.clip_backbone import create_clip_with_visual
from reprolib.models.clip_family import CLIPFamily
from reprolib.models.clipreid.options import CLIPReIDExtra
from reprolib.models.heads import BNNeck, IDClassifier, TemporalAvgPool
from reprolib.models.prompts import FrozenTextEncoder, PromptLearner, bank_index
from reprolib.models.registry import register_model

__all__ = ["CLIPReID", "FeatureCache", "supcon_loss"]

logger = logging.getLogger(__name__)



def supcon_loss(anchors: Tensor, contrast: Tensor, anchor_labels: Tensor, contrast_labels: Tensor,
                temperature: float = 1.0) -> Tensor:
    """Supervised contrastive loss of CLIP-ReID's stage 1 (one direction).

    ``L = -(1/N) sum_i (1/|P(i)|) sum_{p in P(i)} log softmax_j(<a_i, c_j> / tau)_p`` with
    ``P(i) = {j : y_j = y_i}`` among the contrast samples; unnormalised features (as released).

    Args:
        anchors: ``(N, d)`` anchor features (images for L_i2t, texts for L_t2i).
        contrast: ``(M, d)`` the other modality's features.
        anchor_labels: ``(N,)`` labels.
        contrast_labels: ``(M,)`` labels; every anchor needs at least one positive.
        temperature: tau (1.0 in CLIP-ReID).

    Returns:
        Scalar loss (float32).
    """
    logits = anchors.float() @ contrast.float().t() / temperature  # (N, M)
    positives = (anchor_labels.unsqueeze(1) == contrast_labels.unsqueeze(0)).float()  # (N, M)
    if not bool(positives.sum(dim=1).gt(0).all()):
        raise ValueError("supcon_loss: every anchor needs a positive (same label) among the contrast samples")
    log_prob = logits.log_softmax(dim=1)  # (N, M)
    return -((positives * log_prob).sum(dim=1) / positives.sum(dim=1)).mean()


class FeatureCache(nn.Module):
    """Stage-1 cache of frozen image features, with a resumable random batch order.

    All state is in buffers (saved in ``last.pt``); their sizes depend on the training set, so
    :meth:`_load_from_state_dict` resizes them to the checkpoint's before loading.

    Args:
        dim: feature width d.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("features", torch.zeros(0, dim))
        self.register_buffer("labels", torch.zeros(0, dtype=torch.long))
        self.register_buffer("modality", torch.zeros(0, dtype=torch.long))
        self.register_buffer("order", torch.zeros(0, dtype=torch.long))  # permutation of the current pass
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long))  # next position in ``order``

    def __len__(self) -> int:
        return self.features.shape[0]

    @torch.no_grad()
    def fill(self, features: Tensor, labels: Tensor, modality: Tensor) -> None:
        """Store ``features (n, d)``, ``labels (n,)`` and ``modality (n,)``; the order restarts."""
        device = self.features.device
        self.features = features.detach().to(device, torch.float32)
        self.labels = labels.to(device, torch.long)
        self.modality = modality.to(device, torch.long)
        self.order = torch.zeros(0, dtype=torch.long, device=device)
        self.cursor.zero_()

    def clear(self) -> None:
        """Free the cache (stage 2 does not need it)."""
        self.fill(self.features[:0], self.labels[:0], self.modality[:0])

    def next_batch(self, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
        """The next ``batch_size`` samples of the current random pass (official stage 1: a new
        permutation each pass, ``floor(n / batch_size)`` full batches per pass).

        The permutation is drawn from the global torch RNG, which the Trainer checkpoints, so a
        resumed run draws the same batches.
        """
        n = len(self)
        if n == 0:
            raise RuntimeError("CLIP-ReID stage 1: the feature cache is empty; the Trainer fills it in "
                               "model.on_epoch_start (or call model.build_feature_cache / feature_cache.fill)")
        size = min(batch_size, n)
        start = int(self.cursor)
        if self.order.numel() != n or start + size > n:
            self.order = torch.randperm(n).to(self.features.device)  # (n,)
            start = 0
        idx = self.order[start:start + size]  # (size,)
        self.cursor.fill_(start + size)
        return self.features[idx], self.labels[idx], self.modality[idx]

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        for name, buf in list(self._buffers.items()):
            saved = state_dict.get(prefix + name)
            if buf is not None and saved is not None and saved.shape != buf.shape:
                self._buffers[name] = torch.empty(saved.shape, dtype=buf.dtype, device=buf.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@register_model("clipreid", options=CLIPReIDExtra, results_version=1)
class CLIPReID(CLIPFamily):
    """CLIP-ReID's two stages in one model (see the module docstring).

    Args:
        model_cfg: a ``ModelConfig`` (``backbone``, ``feature`` must be ``cls``, ``neck`` must be
            ``bnneck``, ``extra`` validated by :class:`CLIPReIDExtra`).
        num_classes: number of training identities C (classifiers and prompts).
        num_cameras: camera-table size (largest camid + 1), used when ``backbone.sie``.
        image_size: input ``(H, W)``; the positional embedding is resized to its grid.
        loss_cfg: ``LossConfig`` (``id_weight`` 0.25, ``label_smoothing`` 0.1, batch-hard triplet).
        clip_model: an already loaded open_clip CLIP (visual and text towers).
        seq_len: part of the factory signature; T is read from the input.
    """

    backbone_prefixes = ("visual.",)
    prompt_prefix = "prompt_learner."
    family, options = "clipreid", CLIPReIDExtra

    def __init__(self, model_cfg: Any, num_classes: int, num_cameras: int,
                 image_size: Optional[tuple[int, int]] = None, loss_cfg: Optional[Any] = None,
                 clip_model: Optional[nn.Module] = None, seq_len: Optional[int] = None) -> None:
        super().__init__()
        self.extra = ex = self.check_model_cfg(model_cfg)
        clip_model, self.visual = create_clip_with_visual(model_cfg.backbone, image_size, num_cameras, clip_model)
        width, out_dim = self.visual.width, self.visual.output_dim
        self.temporal_pool = TemporalAvgPool()
        self.bn_feat, self.bn_proj = BNNeck(width), BNNeck(out_dim)  # BN biases frozen (CLIP-ReID)
        self.classifier, self.classifier_proj = IDClassifier(width, num_classes), IDClassifier(out_dim, num_classes)
        self.prompt_learner = nn.ModuleDict({
            name: PromptLearner(clip_model.token_embedding, num_classes, clip_model.context_length, template,
                                ex.n_ctx, ex.ctx_init_std) for name, template in ex.templates().items()})
        self.text_encoder = FrozenTextEncoder(clip_model, truncate=ex.truncate_text)
        text_dim = self._text_dim(clip_model)
        if text_dim != out_dim:
            raise ValueError(f"CLIP-ReID compares f_p ({out_dim}-d) with text features ({text_dim}-d): the CLIP "
                             "model's text and image embeddings differ in width")
        self.register_buffer("stage", torch.tensor(1, dtype=torch.long))  # 1: prompt learning, 2: fine-tuning
        self.register_buffer("text_features", torch.zeros(len(self.prompt_learner), num_classes, out_dim))
        self.feature_cache = FeatureCache(out_dim)
        self.init_losses(loss_cfg)
        logger.info("CLIP-ReID: %s prompt bank(s) %s, stage 1 for %d epochs (%s features), test feature %s",
                    ex.prompt_banks, list(ex.templates().values()), ex.stage1_epochs, ex.stage1_source,
                    ex.test_feature)

    @staticmethod
    def _text_dim(clip_model: nn.Module) -> int:
        proj = clip_model.text_projection
        if proj is None:
            return clip_model.positional_embedding.shape[1]
        return proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1]

    # -- features -------------------------------------------------------------------------
    def forward_features(self, x: Tensor, camid: Optional[Tensor] = None,
                         modality: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Features of a clip batch.

        Args:
            x: ``(B, T, 3, H, W)`` clips (``(B, 3, H, W)`` is read as T = 1).
            camid: ``(B,)`` camera ids for SIE (``None``: no camera embedding).
            modality: ``(B,)`` modality codes (unused by the encoder).

        Returns:
            ``tokens (B*T, L, D)``, ``frame (B, T, D)``, ``feat`` f, ``proj`` f_p, ``last`` f_last
            (TAP of the [CLS] entering the last block), ``bn_feat``, ``bn_proj``.
        """
        out, b, t = self.visual.encode_video(x, camid)  # per frame: B*T
        frame = out["cls"].view(b, t, -1)  # (B, T, D)
        feat = self.temporal_pool(frame)  # (B, D)
        proj = self.temporal_pool(out["proj"].view(b, t, -1))  # (B, d)
        last = self.temporal_pool(out["penultimate_cls"].view(b, t, -1))  # (B, D)
        return {"tokens": out["tokens"], "frame": frame, "feat": feat, "proj": proj, "last": last,
                "bn_feat": self.bn_feat(feat), "bn_proj": self.bn_proj(proj)}

    @torch.no_grad()
    def image_features(self, x: Tensor, camid: Optional[Tensor] = None) -> Tensor:
        """Frozen stage-1 feature ``(B, d)``: TAP of the projected [CLS], without SIE (``camid`` is ignored)."""
        out, b, t = self.visual.encode_video(x)  # per frame: B*T
        return self.temporal_pool(out["proj"].view(b, t, -1))  # (B, d)

    def text_features_of(self, bank: str, labels: Optional[Tensor] = None) -> Tensor:
        """Text features ``(C', d)`` of one bank's prompts (all identities, or ``labels``);
        gradients reach that bank's context."""
        learner = self.prompt_learner[bank]
        prompts, eot = learner(), learner.eot_index()  # (C, L, d_text), (C,)
        if labels is not None:
            prompts, eot = prompts[labels], eot[labels]  # (C', L, d_text), (C',)
        return self.text_encoder(prompts, eot)  # (C', d)

    # -- stages ---------------------------------------------------------------------------
    @property
    def bank_names(self) -> tuple[str, ...]:
        return tuple(self.prompt_learner)

    def prompt_losses(self, feats: Tensor, labels: Tensor, modality: Tensor) -> dict[str, Tensor]:
        """Stage 1: ``L_i2t`` and ``L_t2i`` (:func:`supcon_loss`) of frozen image features.

        Each bank contrasts only the features of its own modality (``per_modality``); the terms
        are averaged over all samples.

        Args:
            feats: ``(N, d)`` frozen image features.
            labels: ``(N,)`` labels.
            modality: ``(N,)`` modality codes.

        Returns:
            ``{"supcon_i2t": L_i2t, "supcon_t2i": L_t2i}`` (unweighted, float32).
        """
        banks = bank_index(modality, self.extra.prompt_banks)  # (N,)
        tau = self.extra.supcon_temperature
        i2t = t2i = feats.new_zeros((), dtype=torch.float32)
        for k, name in enumerate(self.bank_names):
            sel = banks == k  # (N,)
            if not bool(sel.any()):
                continue
            ids, inverse = labels[sel].unique(return_inverse=True)  # each identity's text once
            text = self.text_features_of(name, ids)[inverse]  # (n_k, d), one per sample
            img, y, share = feats[sel].detach(), labels[sel], float(sel.sum()) / labels.numel()
            i2t = i2t + share * supcon_loss(img, text, y, y, tau)
            t2i = t2i + share * supcon_loss(text, img, y, y, tau)
        return {"supcon_i2t": i2t, "supcon_t2i": t2i}

    @torch.no_grad()
    def finish_prompt_learning(self) -> None:
        """The stage switch: text features of every bank and identity into ``text_features``,
        ``stage`` = 2, the stage-1 cache freed."""
        for k, name in enumerate(self.bank_names):
            self.text_features[k] = self.text_features_of(name).float()  # (C, d)
        self.stage.fill_(2)
        self.feature_cache.clear()
        logger.info("CLIP-ReID: stage 2, text features of %d bank(s) x %d identities fixed",
                    len(self.bank_names), self.text_features.shape[1])

    def build_feature_cache(self, batches: Iterable[dict[str, Tensor]], device: torch.device,
                            amp_dtype: Optional[torch.dtype] = None) -> None:
        """Extract the stage-1 cache: one frozen feature per training tracklet (eval mode, test
        transform, no SIE) from ``batches`` of clips sampled by ``cache_sampling``
        (``trainer.tracklet_loader(tracklets, self.extra.cache_sampling)``)."""
        feats, labels, modality = extract_tracklet_features(self.image_features, self, batches, device, amp_dtype,
                                                            desc="CLIP-ReID: stage-1 cache")
        self.feature_cache.fill(feats, labels, modality)
        logger.info("CLIP-ReID: stage-1 cache of %d training tracklets", len(self.feature_cache))

    def on_epoch_start(self, epoch: int, trainer: Any) -> None:
        """Stage 1 for epochs ``< stage1_epochs`` (the cache is extracted on first use), then the
        switch (:meth:`finish_prompt_learning`) at the first stage-2 epoch."""
        sched = trainer.cfg.sched
        if sched.name == "cosine_then_multistep" and sched.switch_epoch != self.extra.stage1_epochs:
            raise ValueError(f"sched.switch_epoch={sched.switch_epoch} must equal model.extra.stage1_epochs="
                             f"{self.extra.stage1_epochs}: the learning-rate stages and the training stages differ")
        if epoch < self.extra.stage1_epochs:
            if self.extra.stage1_source == "cache" and len(self.feature_cache) == 0:
                self.build_feature_cache(trainer.tracklet_loader(trainer.dataset.train, self.extra.cache_sampling),
                                         trainer.device, trainer.amp.dtype)
            self.stage.fill_(1)
        elif int(self.stage) == 1:
            if self.extra.stage1_epochs == 0:
                logger.warning("CLIP-ReID: model.extra.stage1_epochs=0, the text features come from the "
                               "randomly initialised prompts")
            self.finish_prompt_learning()

    # -- training -------------------------------------------------------------------------
    def needs_train_batch(self) -> bool:
        """Whether the next step uses the training batch: not in stage 1 with the feature cache
        (the Trainer then does not load one; the cache is the step's data)."""
        return not (int(self.stage) == 1 and self.extra.stage1_source == "cache")

    def logged_lr_group(self) -> Optional[str]:
        """The parameter group a step trains now: ``prompt`` in stage 1 (the only one with
        gradients there), else ``None`` (the Trainer logs the first group, the visual encoder's)."""
        return "prompt" if int(self.stage) == 1 else None

    def forward_train(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted loss terms of the current stage (RGB clips then IR clips, labels repeated).

        Args:
            batch: ``rgb (B, T, 3, H, W)``, ``ir (B, T, 3, H, W)``, ``label (B,)``,
                ``camid_rgb (B,)``, ``camid_ir (B,)``. Stage 1 with the cache ignores it.

        Returns:
            Stage 1: ``supcon_i2t``, ``supcon_t2i``; stage 2: ``id``, ``id_proj``, the metric
            terms (``triplet_last``, ``triplet``, ``triplet_proj``) and ``i2t``. Terms with
            weight 0 are left out.
        """
        if int(self.stage) == 1:
            if self.extra.stage1_source == "cache":
                feats, labels, modality = self.feature_cache.next_batch(self.extra.stage1_batch)
            else:
                x, labels, _, modality = stack_modalities(batch)
                feats = self.image_features(x)  # (2B, d), frozen encoder
            return self.prompt_losses(feats, labels, modality)
        x, labels, camid, modality = stack_modalities(batch)
        feats = self.forward_features(x, camid, modality)
        cfg, ex = self.loss_cfg, self.extra
        losses: dict[str, Tensor] = {}
        if cfg.id_weight:
            losses["id"] = cfg.id_weight * self.id_loss(self.classifier(feats["bn_feat"]), labels)
            losses["id_proj"] = cfg.id_weight * self.id_loss(self.classifier_proj(feats["bn_proj"]), labels)
        if self.metric_loss is not None and cfg.triplet_weight:
            names = (("_last", "last"),) if ex.triplet_last else ()
            for suffix, key in names + (("", "feat"), ("_proj", "proj")):
                losses[self.metric_name + suffix] = cfg.triplet_weight * self.metric_loss(feats[key], labels)
        if ex.i2t_weight:
            text = self.text_features[bank_index(modality, ex.prompt_banks)]  # (2B, C, d), constant
            logits = torch.einsum("bd,bcd->bc", feats["proj"].float(), text)  # (2B, C) raw dot products
            losses["i2t"] = ex.i2t_weight * self.id_loss(logits, labels)
        return losses

    # -- test -----------------------------------------------------------------------------
    def extract_clip(self, x: Tensor, camid: Optional[Tensor] = None,
                     modality: Optional[Tensor] = None) -> Tensor:
        """Test feature ``(B, D + d)``: raw ``[f ; f_p]`` (or ``[BN f ; BN f_p]`` with ``test_feature=bn``)."""
        feats = self.forward_features(x, camid, modality)
        if self.extra.test_feature == "bn":
            return torch.cat([feats["bn_feat"], feats["bn_proj"]], dim=1)
        return torch.cat([feats["feat"], feats["proj"]], dim=1)  # (B, D + d)

    # -- optimiser ------------------------------------------------------------------------
    def param_groups(self, optim_cfg: Any) -> list[dict]:
        """:func:`~reprolib.models.base.build_param_groups` for the visual encoder and heads,
        plus the group ``prompt`` of the contexts at ``stage1_lr`` / ``stage1_weight_decay``."""
        named = list(self.named_parameters())
        groups = build_param_groups(((n, p) for n, p in named if not n.startswith(self.prompt_prefix)),
                                    lambda n: n.startswith(self.backbone_prefixes), optim_cfg)
        prompts = [p for n, p in named if n.startswith(self.prompt_prefix) and p.requires_grad]
        ex = self.extra
        return groups + [{"name": "prompt", "params": prompts, "lr": ex.stage1_lr,
                          "weight_decay": ex.stage1_weight_decay, "lr_mult": ex.stage1_lr / optim_cfg.lr}]
