"""TF-CLIP (Yu et al., AAAI 2024, "Learning text-free CLIP for video-based person
re-identification") for video VI-ReID: the ``tfclip`` family (X-ReID Table 1's row "TF-CLIP").

One stage, no text: identity prototypes of the pre-trained visual encoder replace CLIP-ReID's
learned text features (docs/decisions/clip_baselines.md#tf-clip-recipe).

* **CLIP-Memory** (:meth:`TFCLIP.refresh_memory`): for every training tracklet, the TAP of the
  projected [CLS] of its dense clips (averaged over the clips), then the per-identity **mean,
  not normalised**; computed once, before training, with the pre-trained encoder (the Trainer's
  ``on_epoch_start`` at epoch 0; ``memory_refresh=epoch`` re-extracts every epoch), eval mode,
  no SIE, and never momentum-updated. ``memory_banks=per_modality`` keeps one memory per
  modality (X-ReID's "modality-specific memories"); ``shared`` (default) is TF-CLIP's single
  memory over all tracklets.
* **SSP** (:class:`SequenceSpecificPrompt`): the memory, broadcast per clip, is refined by two
  decoder layers (self-attention among the N_c prototypes, cross-attention to the clip's
  projected tokens averaged over T, MLP) into ``M_i = M + SSP(M, V_i)``; the image-to-memory
  logits are the raw dot products ``f_p . M_i^T`` (no normalisation, no temperature), trained
  with label-smoothed CE (``i2t``).
* **TMD** (:class:`TemporalMemoryDiffusion`): on the **detached** last-layer tokens, each frame
  gets a message token (a linear map of the mean of its tokens) that exchanges information
  with the other frames of the clip (pre-LN attention over T), is appended to the frame's
  tokens, and a pre-LN transformer block runs over the L + 1 tokens; the frame feature is the
  mean of its L + 1 output tokens, the clip feature their TAP.

Loss (``forward_train``; label-smoothed CE eps 0.1, batch-hard triplet 0.3)::

    id, id_proj, id_tmd = loss.id_weight * CE_ls(W(BN(.)))   on f, f_p, o^TMD       (0.25)
    id_tmd_frame        = frame_id_weight * CE_ls over the B*T TMD frames        (1/T;
                          the TMD clip classifier, its own frame BN)
    triplet, triplet_proj, triplet_tmd                       on raw f, f_p, o^TMD
    i2t                 = i2t_weight * CE_ls(f_p . (M + SSP(M, V))^T)

Test feature (``extract``): the raw ``[f ; f_p ; o^TMD]`` (2048-d at ViT-B/16;
``TEST.NECK_FEAT: before``), ranked by cosine (``FEAT_NORM: yes``).

Optimiser groups (``param_groups``; TF-CLIP's released rules): everything at ``optim.lr``
(5e-6), biases x ``bias_lr_mult`` (2), and the TMD classifier x ``head_lr_mult`` (10: the
released ``LARGE_FC_LR`` rule matches ``classifier_proj_temp`` only; its ``LARGE_Prompt_LR``
rule matches no module of the model, so SSP and TMD stay at 1x).

Why not X-ReID's :class:`~reprolib.models.xreid.cpc.PrototypeMemory`: CPC's prototypes are
L2-normalised and momentum-updated with hard samples, while TF-CLIP's memory is an
**unnormalised** mean that is never updated and enters raw dot-product logits (its scale
matters). The memory here is therefore a plain buffer ``(banks, N_c, d)``; the extraction loop
is shared with CLIP-ReID's stage-1 cache (:func:`~reprolib.models.base.extract_tracklet_features`).

``model.extra`` keys: :class:`TFCLIPExtra`.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

import torch
from torch import Tensor, nn

from reprolib.models.attention import multihead_attention
from reprolib.models.base import build_param_groups, extract_tracklet_features, stack_modalities
from reprolib.models.clip_backbone import create_clip_visual
from reprolib.models.clip_family import CLIPFamily
from reprolib.models.heads import BNNeck, IDClassifier, TemporalAvgPool
from reprolib.models.options import BANK_NAMES
from reprolib.models.prompts import bank_index
from reprolib.models.registry import register_model
from reprolib.models.tfclip.options import TFCLIPExtra

__all__ = ["TFCLIP", "SequenceSpecificPrompt", "TemporalMemoryDiffusion", "class_means",
           "ssp_params", "tmd_params"]

logger = logging.getLogger(__name__)


def class_means(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Unnormalised per-label mean ``(num_classes, d)`` of ``features (n, d)``; labels without a
    sample keep a zero row (with a warning)."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)  # (N_c, d)
    counts = torch.bincount(labels, minlength=num_classes).to(features.device)  # (N_c,)
    if int(counts.eq(0).sum()):
        logger.warning("TF-CLIP memory: %d of %d labels have no tracklet; their prototypes stay zero",
                       int(counts.eq(0).sum()), num_classes)
    return sums / counts.clamp(min=1).unsqueeze(1).to(sums.dtype)  # (N_c, d)


def ssp_params(dim: int = 512, layers: int = 2, mlp_ratio: int = 4) -> int:
    """Parameters of :class:`SequenceSpecificPrompt`: 9,193,984 at d = 512 (docs/decisions/xreid.md#parameter-counts
    lists 9,195,520, which also counts the released module's unused LayerNorm and alpha, 3d)."""
    ln, lin = 2 * dim, dim * dim + dim
    attn = 3 * dim * dim + lin  # q/k/v without bias, output projection with bias
    layer = 2 * attn + 3 * ln + (dim * mlp_ratio * dim + mlp_ratio * dim) + (mlp_ratio * dim * dim + dim)
    return (2 * ln + lin) + (ln + lin) + layers * layer + (ln + lin)


def tmd_params(dim: int = 768, mlp_ratio: int = 4) -> int:
    """Parameters of :class:`TemporalMemoryDiffusion` (one layer): 10,042,368 at D = 768
    (docs/decisions/xreid.md#parameter-counts)."""
    ln, lin, mha = 2 * dim, dim * dim + dim, 4 * (dim * dim + dim)
    return lin + ln + mha + mha + ln + (dim * mlp_ratio * dim + mlp_ratio * dim) + (mlp_ratio * dim * dim + dim) + ln


class QuickGELU(nn.Module):
    """CLIP's GELU approximation ``x * sigmoid(1.702 x)`` (TF-CLIP's MLPs)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


def _mlp(dim: int, mlp_ratio: int, dropout: float = 0.0) -> nn.Sequential:
    hidden = mlp_ratio * dim
    layers = [nn.Linear(dim, hidden), QuickGELU()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(hidden, dim)]
    return nn.Sequential(*layers)


class _Attention(nn.Module):
    """Multi-head attention with q/k/v without bias and an output projection with bias, then
    dropout on the output (SSP's attention; head dim = dim / heads, scale 1/sqrt(head dim))."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"SSP width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, query: Tensor, tokens: Tensor) -> Tensor:
        """``(N, Lq, d)`` queries over ``(N, Lk, d)`` keys/values -> ``(N, Lq, d)``."""
        return self.drop(self.proj(multihead_attention(self.q(query), self.k(tokens), self.v(tokens), self.heads)))


class _SSPLayer(nn.Module):
    """One SSP decoder layer: pre-LN self-attention among the prototypes, pre-LN cross-attention
    to the visual tokens (not re-normalised), pre-LN MLP (4x, QuickGELU, dropout)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = _Attention(dim, heads, dropout)
        self.cross_attn = _Attention(dim, heads, dropout)
        self.mlp = _mlp(dim, 4, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, visual: Tensor) -> Tensor:
        """``x (B, N_c, d)`` prototypes, ``visual (B, L, d)`` tokens -> ``(B, N_c, d)``."""
        h = self.norm1(x)  # (B, N_c, d)
        x = x + self.self_attn(h, h)  # (B, N_c, d)
        x = x + self.cross_attn(self.norm2(x), visual)  # (B, N_c, d)
        return x + self.drop(self.mlp(self.norm3(x)))  # (B, N_c, d)


class SequenceSpecificPrompt(nn.Module):
    """SSP: the residual ``SSP(M, V)`` that adapts the identity memory to one video.

    ``V <- LN(Linear(LN(V)))``, ``M <- Linear(LN(M))``, ``layers`` decoder layers
    (:class:`_SSPLayer`), then ``Linear(LN(.))``. Linear weights trunc-normal std 0.02 with zero
    bias, LayerNorms 1/0 (as released).

    Args:
        dim: width d of the memory and of the projected tokens (512 at ViT-B/16).
        layers: decoder layers (2).
        heads: attention heads (``None``: d / 64, i.e. 8 at 512).
        dropout: dropout of the attention outputs and MLP (0.1).
    """

    def __init__(self, dim: int, layers: int = 2, heads: Optional[int] = None, dropout: float = 0.1) -> None:
        super().__init__()
        heads = heads or max(1, dim // 64)
        self.visual_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.memory_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.layers = nn.ModuleList(_SSPLayer(dim, heads, dropout) for _ in range(layers))
        self.out_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, memory: Tensor, visual: Tensor) -> Tensor:
        """Residual of the memory for each clip.

        Args:
            memory: ``(B, N_c, d)`` identity memory per clip.
            visual: ``(B, L, d)`` the clip's projected tokens averaged over its frames.

        Returns:
            ``(B, N_c, d)``; the refined memory is ``memory + output``.
        """
        v = self.visual_proj(visual)  # (B, L, d)
        x = self.memory_proj(memory)  # (B, N_c, d)
        for layer in self.layers:
            x = layer(x, v)  # (B, N_c, d)
        return self.out_proj(x)  # (B, N_c, d)


class TemporalMemoryDiffusion(nn.Module):
    """TMD: one cross-frame block with per-frame message tokens (see the module docstring).

    Args:
        dim: token width D (768).
        heads: attention heads (12).
        mlp_ratio: MLP hidden width / D.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.message_fc = nn.Linear(dim, dim)
        self.message_ln = nn.LayerNorm(dim)
        self.message_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = _mlp(dim, mlp_ratio)

    def forward(self, tokens: Tensor) -> Tensor:
        """Frame features of a clip batch.

        Args:
            tokens: ``(B, T, L, D)`` last-layer tokens of every frame.

        Returns:
            ``(B, T, D)``: per frame, the mean of its L + 1 output tokens.
        """
        b, t, n, d = tokens.shape
        msg = self.message_fc(tokens.mean(dim=2))  # (B, T, D) one message per frame
        h = self.message_ln(msg)
        msg = msg + self.message_attn(h, h, h, need_weights=False)[0]  # (B, T, D) across the clip's frames
        x = torch.cat([tokens, msg.unsqueeze(2)], dim=2).flatten(0, 1)  # (B*T, L + 1, D)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]  # (B*T, L + 1, D)
        x = x + self.mlp(self.ln_2(x))  # (B*T, L + 1, D)
        return x.mean(dim=1).view(b, t, d)  # (B, T, D)


@register_model("tfclip", options=TFCLIPExtra, results_version=1)
class TFCLIP(CLIPFamily):
    """TF-CLIP: CLIP-Memory, SSP and TMD (see the module docstring).

    Args:
        model_cfg: a ``ModelConfig`` (``backbone``, ``feature`` must be ``cls``, ``neck`` must be
            ``bnneck``, ``extra`` validated by :class:`TFCLIPExtra`).
        num_classes: number of training identities N_c (classifiers and memory rows).
        num_cameras: camera-table size (largest camid + 1), used when ``backbone.sie``.
        image_size: input ``(H, W)``; the positional embedding is resized to its grid.
        loss_cfg: ``LossConfig`` (``id_weight`` 0.25, ``label_smoothing`` 0.1, batch-hard triplet).
        clip_model: an already loaded open_clip CLIP (else loaded from ``model.backbone``).
        seq_len: part of the factory signature; T is read from the input.
    """

    backbone_prefixes = ("visual.",)
    family, options = "tfclip", TFCLIPExtra
    #: The released ``LARGE_FC_LR`` rule: only the TMD classifier gets ``head_lr_mult``.
    large_lr_prefixes: tuple[str, ...] = ("classifier_tmd.",)

    def __init__(self, model_cfg: Any, num_classes: int, num_cameras: int,
                 image_size: Optional[tuple[int, int]] = None, loss_cfg: Optional[Any] = None,
                 clip_model: Optional[nn.Module] = None, seq_len: Optional[int] = None) -> None:
        super().__init__()
        self.extra = ex = self.check_model_cfg(model_cfg)
        self.visual = create_clip_visual(model_cfg.backbone, image_size, num_cameras, clip_model=clip_model)
        width, out_dim = self.visual.width, self.visual.output_dim
        self.temporal_pool = TemporalAvgPool()
        self.bn_feat, self.bn_proj = BNNeck(width), BNNeck(out_dim)  # BN biases frozen (released)
        self.bn_tmd, self.bn_tmd_frame = BNNeck(width), BNNeck(width)
        self.classifier, self.classifier_proj = IDClassifier(width, num_classes), IDClassifier(out_dim, num_classes)
        self.classifier_tmd = IDClassifier(width, num_classes)  # shared by the TMD clip and frame features
        self.tmd = TemporalMemoryDiffusion(width, ex.tmd_heads or self.visual.blocks[0].attn.num_heads)
        self.ssp = SequenceSpecificPrompt(out_dim, ex.ssp_layers, ex.ssp_heads, ex.ssp_dropout)
        self.register_buffer("memory", torch.zeros(len(BANK_NAMES[ex.memory_banks]), num_classes, out_dim))
        self.register_buffer("memory_ready", torch.zeros((), dtype=torch.bool))
        self.init_losses(loss_cfg)
        logger.info("TF-CLIP: %s memory (%s, %s clips), SSP %.2fM, TMD %.2fM parameters", ex.memory_banks,
                    ex.memory_refresh, ex.memory_sampling, self.num_parameters("ssp.") / 1e6,
                    self.num_parameters("tmd.") / 1e6)

    # -- features -------------------------------------------------------------------------
    def forward_features(self, x: Tensor, camid: Optional[Tensor] = None,
                         modality: Optional[Tensor] = None) -> dict[str, Tensor]:
        """Features of a clip batch.

        Args:
            x: ``(B, T, 3, H, W)`` clips (``(B, 3, H, W)`` is read as T = 1).
            camid: ``(B,)`` camera ids for SIE (``None``: no camera embedding).
            modality: ``(B,)`` modality codes (unused by the encoder).

        Returns:
            ``feat`` f ``(B, D)``, ``proj`` f_p ``(B, d)``, ``visual`` ``(B, L, d)`` (projected
            tokens averaged over T: SSP's input), ``tmd_frame`` ``(B, T, D)``, ``tmd`` o^TMD
            ``(B, D)``, and ``bn_feat``, ``bn_proj``, ``bn_tmd``.
        """
        out, b, t = self.visual.encode_video(x, camid)  # per frame: B*T
        feat = self.temporal_pool(out["cls"].view(b, t, -1))  # (B, D)
        proj = self.temporal_pool(out["proj"].view(b, t, -1))  # (B, d)
        tokens = out["tokens"]  # (B*T, L, D) after ln_post
        visual = self.visual.project(tokens).view(b, t, *tokens.shape[1:-1], -1).mean(dim=1)  # (B, L, d)
        tmd_in = tokens.detach() if self.extra.tmd_detach else tokens
        tmd_frame = self.tmd(tmd_in.view(b, t, *tokens.shape[1:]))  # (B, T, D)
        tmd = self.temporal_pool(tmd_frame)  # (B, D)
        return {"feat": feat, "proj": proj, "visual": visual, "tmd_frame": tmd_frame, "tmd": tmd,
                "bn_feat": self.bn_feat(feat), "bn_proj": self.bn_proj(proj), "bn_tmd": self.bn_tmd(tmd)}

    def memory_logits(self, proj: Tensor, visual: Tensor, modality: Tensor) -> Tensor:
        """Image-to-memory logits ``(B, N_c)``: ``f_p . (M + SSP(M, V))^T`` per clip.

        Args:
            proj: ``(B, d)`` f_p.
            visual: ``(B, L, d)`` projected tokens averaged over T.
            modality: ``(B,)`` modality codes (selects the memory with ``per_modality``).
        """
        memory = self.memory[bank_index(modality, self.extra.memory_banks)].to(visual.dtype)  # (B, N_c, d)
        refined = memory + self.ssp(memory, visual)  # (B, N_c, d)
        return torch.einsum("bd,bcd->bc", proj, refined)  # (B, N_c)

    # -- training -------------------------------------------------------------------------
    def forward_train(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted loss terms of a training batch (RGB clips then IR clips, labels repeated).

        Args:
            batch: ``rgb (B, T, 3, H, W)``, ``ir (B, T, 3, H, W)``, ``label (B,)``,
                ``camid_rgb (B,)``, ``camid_ir (B,)``.

        Returns:
            The terms listed in the module docstring; terms with weight 0 are left out.

        Raises:
            RuntimeError: when the memory was never extracted.
        """
        if not bool(self.memory_ready) and self.extra.i2t_weight:
            raise RuntimeError("TF-CLIP's memory is empty: the Trainer fills it in model.on_epoch_start; call "
                               "model.refresh_memory(...) (or model.set_memory(...)) first")
        x, labels, camid, modality = stack_modalities(batch)
        t = x.shape[1]
        feats = self.forward_features(x, camid, modality)
        cfg, ex = self.loss_cfg, self.extra
        losses: dict[str, Tensor] = {}
        if cfg.id_weight:
            for key, bn, classifier in (("id", "bn_feat", self.classifier), ("id_proj", "bn_proj", self.classifier_proj),
                                        ("id_tmd", "bn_tmd", self.classifier_tmd)):
                losses[key] = cfg.id_weight * self.id_loss(classifier(feats[bn]), labels)
        frame_weight = 1.0 / t if ex.frame_id_weight is None else ex.frame_id_weight
        if frame_weight:
            frames = self.bn_tmd_frame(feats["tmd_frame"].flatten(0, 1))  # (2B*T, D)
            losses["id_tmd_frame"] = frame_weight * self.id_loss(self.classifier_tmd(frames),
                                                                 labels.repeat_interleave(t))
        if self.metric_loss is not None and cfg.triplet_weight:
            for suffix, key in (("", "feat"), ("_proj", "proj"), ("_tmd", "tmd")):
                losses[self.metric_name + suffix] = cfg.triplet_weight * self.metric_loss(feats[key], labels)
        if ex.i2t_weight:
            logits = self.memory_logits(feats["proj"], feats["visual"], modality)  # (2B, N_c)
            losses["i2t"] = ex.i2t_weight * self.id_loss(logits, labels)
        return losses

    # -- test -----------------------------------------------------------------------------
    def extract_clip(self, x: Tensor, camid: Optional[Tensor] = None,
                     modality: Optional[Tensor] = None) -> Tensor:
        """Test feature ``(B, D + d + D)``: the raw ``[f ; f_p ; o^TMD]``."""
        feats = self.forward_features(x, camid, modality)
        return torch.cat([feats["feat"], feats["proj"], feats["tmd"]], dim=1)

    # -- CLIP-Memory ----------------------------------------------------------------------
    @torch.no_grad()
    def memory_features(self, x: Tensor, camid: Optional[Tensor] = None) -> Tensor:
        """Memory feature ``(B, d)`` of a clip batch: TAP of the projected [CLS], without SIE (``camid`` is ignored)."""
        out, b, t = self.visual.encode_video(x)  # per frame: B*T
        return self.temporal_pool(out["proj"].view(b, t, -1))  # (B, d)

    @torch.no_grad()
    def set_memory(self, features: Tensor, labels: Tensor, modality: Tensor) -> None:
        """Fill every bank with the per-identity means of ``features (n, d)`` (per modality with
        ``per_modality``; unnormalised)."""
        banks = bank_index(modality, self.extra.memory_banks)  # (n,)
        for k in range(self.memory.shape[0]):
            sel = banks == k
            self.memory[k] = class_means(features[sel].float().to(self.memory.device),
                                         labels[sel].to(self.memory.device), self.memory.shape[1])
        self.memory_ready.fill_(True)

    def refresh_memory(self, batches: Iterable[dict[str, Tensor]], device: torch.device,
                       amp_dtype: Optional[torch.dtype] = None) -> None:
        """Extract CLIP-Memory from ``batches`` of the training tracklets (eval mode, test transform,
        no SIE), clips sampled by ``memory_sampling``
        (``trainer.tracklet_loader(tracklets, self.extra.memory_sampling)``)."""
        feats, labels, modality = extract_tracklet_features(self.memory_features, self, batches, device, amp_dtype,
                                                            desc="TF-CLIP: CLIP-Memory")
        self.set_memory(feats, labels, modality)
        logger.info("TF-CLIP: memory extracted from %d training tracklets", feats.shape[0])

    def on_epoch_start(self, epoch: int, trainer: Any) -> None:
        """Extract the memory before the first epoch (every epoch with ``memory_refresh=epoch``)."""
        if self.extra.memory_refresh == "once" and bool(self.memory_ready):
            return
        self.refresh_memory(trainer.tracklet_loader(trainer.dataset.train, self.extra.memory_sampling),
                            trainer.device, trainer.amp.dtype)

    # -- optimiser ------------------------------------------------------------------------
    def param_groups(self, optim_cfg: Any) -> list[dict]:
        """Released rules: ``optim.lr`` for all, biases x ``bias_lr_mult``, the TMD classifier
        x ``head_lr_mult`` (via :func:`~reprolib.models.base.build_param_groups`, whose "head"
        groups are the names in :attr:`large_lr_prefixes`)."""
        return build_param_groups(self.named_parameters(), lambda n: not n.startswith(self.large_lr_prefixes),
                                  optim_cfg)
