"""X-ReID checkpoints saved by the official code (AAAI 2026) -> the ``xreid`` family.

X-ReID publishes no weights; this maps what its training code saves, so that a checkpoint trained
with it (by the authors or by a user) can be evaluated with our loaders and evaluator.

Read from ``AsuradaYuci/X-ReID`` at commit ``1ba37783bee301f1764ab6832144b00ea730bc68`` (HEAD; the
model files are unchanged since ``29927fe``): ``model/make_model_clipreid.py``
(``build_transformer.__init__``: the modules and parameters of the saved ``model.state_dict()``;
``forward``: which of them the training and test paths use), ``model/SP_TPM.py`` (``TPM_space_shift``:
two ``BlockRotation`` blocks ``Reconstuct_shift``/``Reconstuct_shift2``, each a ``RotationAttention``
``Rotation`` with ``norm1``, ``attn`` = ``CrossAttention`` (``normy`` on the keys only, ``q_``/``k_``/``v_``
without bias, ``proj`` with bias), ``norm2`` and ``mlp``), ``model/TP_TPM.py`` (``TPM_temp_shift``: one
such block), ``model/vit_pytorch.py`` (``Mlp``: ``fc1``, ``fc2``), ``model/clip/model.py``
(``VisionTransformer``: CLIP-ReID's key names, which are open_clip's) and
``processor/processor_clipreid_stage2.py`` (``save_checkpoint(model.state_dict(), ...)``: a bare state
dict, ``checkpoint_ep.pth.tar`` / ``best_model.pth.tar``; the CPC ``ClusterMemory`` objects live in the
processor, not in the model).

The saved state dict (C = 500 identities on HITSZ-VCM; T = 10; 288x144 input; D = 768, d = 512)::

    image_encoder.*                           -> visual.vit.*
    cv_embed (12, D)                          -> visual.camera_embed (13, D)   row 0 added (see below)
    bn_feat_temp.*, bn_proj_temp.*            -> bn_feat.*, bn_proj.*          BNNecks of f, f_p
    bn_feat_frame.*, bn_proj_frame.*          -> bn_feat_frame.*, bn_proj_frame.*
    classifier_clip_temp.weight (C, D + d)    -> classifier.weight
    classifier_clip_frame.weight (C, D + d)   -> classifier_frame.weight
    TSM_space.Reconstuct_shift.Rotation.*     -> mii.sii.blocks.0.*            SII block 1
    TSM_space.Reconstuct_shift2.Rotation.*    -> mii.sii.blocks.1.*            SII block 2
        norm1 / attn.normy / attn.{q_,k_,v_} / attn.proj / norm2 / mlp.fc1 / mlp.fc2
        -> norm_q / norm_k / {q,k,v} / proj / norm_ffn / ffn.0 / ffn.2
    bn_TSM_tp0.*, bn_TSM_frame0.*             -> head_sii.bn.*, head_sii.bn_frame.*
    classifier_TSM_tp0.weight (C, D)          -> head_sii.classifier.weight    (sequence and frame logits)

**Camera table.** The official HITSZ-VCM loader indexes ``cv_embed`` by ``camid - 1`` (12 rows); our
loader keeps the raw ids 1..12 and sizes the table by the largest id + 1 (13 rows, row 0 unused;
``reprolib.data.hitsz_vcm``). The import puts official row c - 1 at our row c and fills row 0 with
zeros (no HITSZ-VCM tracklet has camera 0); the inverse drops row 0. The official code has no
runnable BUPTCampus path, so no other layout is mapped.

**The released model is CPC + SII** (Table 5 row 2): the forward builds ``TSM_temp`` (LII) and its
heads but comments out their call, and has no CII. The import therefore applies
``model.extra.lii=false`` and ``model.extra.cii=false`` (recorded as implied overrides); our test
feature is then the official ``out1`` = ``[BN f ; BN f_p ; BN_tp0(TAP SII)]`` (2048-d).

Dropped (docs/decisions/official_weights.md#x-reid): ``TSM_temp.*``, ``bn_TSM_tp1.*``, ``bn_TSM_frame1.*``,
``classifier_TSM_tp1.weight``, ``classifier_TSM_frame1.weight`` (LII and its heads: built, never called,
so never trained), ``classifier_TSM_frame0.weight`` (its call is commented out: the SII frame logits go
through ``classifier_TSM_tp0``), ``bottleneck_local.*`` (created, never used). Derived: the CPC memories
``cpc.*`` (re-extracted from the training set at every epoch start by the processor and never saved; only
the training loss reads them; left empty).

SII's channel exchange runs out of place (eq. 5, discrepancy D10); ``--set model.extra.sii_as_released=true``
gives the CPU result of the released in-place copy instead (its CUDA result is a data race).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from reprolib.models.official.mapping import Derived, Drop, FamilyMapping, Rule

__all__ = ["XREID_MAPPING", "SII_BLOCKS", "add_camera_row", "drop_camera_row"]

#: Official SII block modules in order (our ``mii.sii.blocks.#``).
SII_BLOCKS = ("TSM_space.Reconstuct_shift.Rotation", "TSM_space.Reconstuct_shift2.Rotation")

#: Official name inside a ``RotationAttention`` -> ours inside a ``CrossAttentionBlock``.
_BLOCK_PARTS = (("norm1.*", "norm_q.*"), ("attn.normy.*", "norm_k.*"), ("attn.q_.weight", "q.weight"),
                ("attn.k_.weight", "k.weight"), ("attn.v_.weight", "v.weight"), ("attn.proj.*", "proj.*"),
                ("norm2.*", "norm_ffn.*"), ("mlp.fc1.*", "ffn.0.*"), ("mlp.fc2.*", "ffn.2.*"))

_BACKBONE_HINT = ("the X-ReID backbone is CLIP ViT-B/16 at 288x144 with stride 16: image_encoder.positional_embedding "
                  "has 1 + 18*9 = 163 rows; set data.height, data.width and model.backbone.stride to the training "
                  "run's")
_CAMERA_HINT = ("X-ReID's cv_embed is indexed by camid - 1 (HITSZ-VCM: 12 rows) and ours by the raw camid (13 rows, "
                "row 0 unused); the import adds row 0, so our table must have one row more than the file's: the "
                "mapping covers HITSZ-VCM-layout data (config xreid), the only dataset the official code trains")
_SII_HINT = ("the SII blocks are D x D cross-attention blocks with a 4D feed-forward: model.extra.mii_heads and the "
             "backbone width must be the training run's")


def add_camera_row(t: Tensor) -> Tensor:
    """Official ``cv_embed (C, D)`` (row ``camid - 1``) -> ours ``(C + 1, D)`` (row ``camid``; row 0 zeros)."""
    return torch.cat([t.new_zeros(1, *t.shape[1:]), t], dim=0)


def drop_camera_row(t: Tensor) -> Tensor:
    """Ours ``(C + 1, D)`` -> official ``(C, D)`` (the inverse of :func:`add_camera_row`)."""
    return t[1:]


def _implied(keys: Iterable[str]) -> list[str]:
    """The released forward is CPC + SII: LII is built but never called, CII does not exist."""
    return ["model.extra.lii=false", "model.extra.cii=false"]


def _block_rules(official: str, ours: str, what: str) -> tuple[Rule, ...]:
    return tuple(Rule(f"{official}.{o}", f"{ours}.{u}", f"{what} {u.rstrip('.*')}", hint=_SII_HINT)
                 for o, u in _BLOCK_PARTS)


_LII_UNUSED = "LII (TSM_temp) and its heads are built, but the released forward comments out their call: never trained"

XREID_MAPPING = FamilyMapping(
    family="xreid",
    official_name="X-ReID (AsuradaYuci/X-ReID)",
    source="AsuradaYuci/X-ReID@1ba37783bee301f1764ab6832144b00ea730bc68 model/make_model_clipreid.py, "
           "model/SP_TPM.py, model/TP_TPM.py, model/vit_pytorch.py, model/clip/model.py",
    default_config="xreid",
    rules=(
        Rule("image_encoder.*", "visual.vit.*", "CLIP ViT-B/16 image encoder", hint=_BACKBONE_HINT),
        Rule("cv_embed", "visual.camera_embed", "SIE camera table (added to [CLS]); row camid - 1 -> row camid",
             to_ours=add_camera_row, to_official=drop_camera_row, hint=_CAMERA_HINT),
        Rule("bn_feat_temp.*", "bn_feat.*", "BNNeck of f"),
        Rule("bn_proj_temp.*", "bn_proj.*", "BNNeck of f_p"),
        Rule("bn_feat_frame.*", "bn_feat_frame.*", "BNNeck of the frame [CLS]"),
        Rule("bn_proj_frame.*", "bn_proj_frame.*", "BNNeck of the frame projections"),
        Rule("classifier_clip_temp.weight", "classifier.weight", "ID classifier of [BN f ; BN f_p]",
             per_identity=True),
        Rule("classifier_clip_frame.weight", "classifier_frame.weight", "ID classifier of the frame features",
             per_identity=True),
        *(rule for i, block in enumerate(SII_BLOCKS)
          for rule in _block_rules(block, f"mii.sii.blocks.{i}", f"SII block {i}")),
        Rule("bn_TSM_tp0.*", "head_sii.bn.*", "BNNeck of the SII sequence feature"),
        Rule("bn_TSM_frame0.*", "head_sii.bn_frame.*", "BNNeck of the SII frame features"),
        Rule("classifier_TSM_tp0.weight", "head_sii.classifier.weight",
             "ID classifier of the SII sequence and frame features", per_identity=True),
    ),
    drops=(
        Drop("TSM_temp.*", _LII_UNUSED),
        Drop("bn_TSM_tp1.*", _LII_UNUSED),
        Drop("bn_TSM_frame1.*", _LII_UNUSED),
        Drop("classifier_TSM_tp1.weight", _LII_UNUSED),
        Drop("classifier_TSM_frame1.weight", _LII_UNUSED),
        Drop("classifier_TSM_frame0.weight", "created, never used: its call is commented out and the SII frame "
                                             "logits go through classifier_TSM_tp0"),
        Drop("bottleneck_local.*", "created, never used by the forward"),
    ),
    derived=(
        Derived("cpc.*", "CPC memories: re-extracted from the training set at every epoch start by the official "
                         "processor (ClusterMemory objects outside the model), never saved; only the training loss "
                         "reads them; left empty"),
    ),
    implied_overrides=_implied,
    identity_config_hint="the official code trains HITSZ-VCM (500 identities, config xreid)",
    missing_hints=(
        ("mii.lii.*", "the released model has no trained LII (TSM_temp is built but never called): keep "
                      "model.extra.lii=false (applied by the import unless a --set turns it on)"),
        ("head_lii.*", "the released model has no trained LII heads: keep model.extra.lii=false"),
        ("mii.cii.*", "the released code has no CII: keep model.extra.cii=false"),
        ("mii.sii.blocks.*", "the released SII has two blocks (TSM_space.Reconstuct_shift, Reconstuct_shift2): "
                             "model.extra.sii=true, model.extra.sii_depth=2"),
    ),
)
