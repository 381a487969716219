"""Official TF-CLIP checkpoints (Yu et al., AAAI 2024) -> the ``tfclip`` family.

Read from ``AsuradaYuci/TF-CLIP`` at commit ``ac8c41723dcdd505790e8021e27477fa85a24a00``, file
``model/make_model_clipreid.py``: ``build_transformer.__init__`` (the saved state dict),
``CrossFramelAttentionBlock`` / ``Temporal_Memory_Difusion`` (TMD: one block, ``resblocks.0``),
``ImageSpecificPrompt`` / ``PromptGeneratorLayer`` / ``MulitHeadAttention`` (SSP: two decoder layers,
q/k/v without bias) and ``forward`` (which tensors are used); the CLIP tower has CLIP-ReID's key names.

The released state dict::

    image_encoder.*                        -> visual.vit.*
    cv_embed                               -> visual.camera_embed
    bottleneck.*, bottleneck_proj.*        -> bn_feat.*, bn_proj.*
    bottleneck_proj_temp.*                 -> bn_tmd_frame.*      BN of the per-frame TMD features
    bottleneck_proj_temp2.*                -> bn_tmd.*            BN of the clip TMD feature
    classifier2.weight                     -> classifier.weight
    classifier_proj.weight                 -> classifier_proj.weight
    classifier_proj_temp.weight            -> classifier_tmd.weight   (frame and clip TMD logits)
    TMD.resblocks.0.mlp.c_fc.* / c_proj.*  -> tmd.mlp.0.* / tmd.mlp.2.*
    TMD.resblocks.0.*                      -> tmd.*               message_fc/_ln/_attn, attn, ln_1, ln_2
    SSP.memory_proj.*  (LN, Linear, LN)    -> ssp.visual_proj.*   the official name; it maps the *video* tokens
    SSP.text_proj.*    (LN, Linear)        -> ssp.memory_proj.*   it maps the memory ("text") prototypes
    SSP.out_proj.*                         -> ssp.out_proj.*
    SSP.decoder.#.{self,cross}_attn.{q,k,v}_proj.weight -> ssp.layers.#.{self,cross}_attn.{q,k,v}.weight
    SSP.decoder.#.*                        -> ssp.layers.#.*      norm1-3, mlp.0/mlp.3, attention proj

Dropped (docs/decisions/official_weights.md#tf-clip): ``classifier_proj_temp2.weight`` (created, never used:
both TMD logits use ``classifier_proj_temp``), ``SSP.norm.*`` and ``SSP.alpha`` (created, the forward never
reads them). Derived: the CLIP-Memory ``memory`` / ``memory_ready`` (extracted with the *pre-trained*
encoder before training and passed to the forward, never saved; only the training loss reads it; left
empty).
"""
from __future__ import annotations

from typing import Iterable

from reprolib.models.official.mapping import Derived, Drop, FamilyMapping, Rule

__all__ = ["TFCLIP_MAPPING"]

_BACKBONE_HINT = ("the released backbone is CLIP ViT-B/16 at the training input size with stride 16 (TF-CLIP: "
                  "256x128, image_encoder.positional_embedding of 1 + 16*8 = 129 rows); set data.height, data.width "
                  "and model.backbone.stride to the release's")


def _implied(keys: Iterable[str]) -> list[str]:
    has_sie = "cv_embed" in set(keys)
    return ["model.extra.memory_banks=shared", f"model.backbone.sie={'true' if has_sie else 'false'}"]


def _attn_rules(kind: str) -> tuple[Rule, ...]:
    return tuple(Rule(f"SSP.decoder.{i}.{kind}.{p}_proj.weight", f"ssp.layers.{i}.{kind}.{p}.weight",
                      f"SSP layer {i} {kind} {p}") for i in range(8) for p in "qkv")  # the release has 2 layers


TFCLIP_MAPPING = FamilyMapping(
    family="tfclip",
    official_name="TF-CLIP (AsuradaYuci/TF-CLIP)",
    source="AsuradaYuci/TF-CLIP@ac8c41723dcdd505790e8021e27477fa85a24a00 model/make_model_clipreid.py",
    default_config="tfclip",
    rules=(
        Rule("image_encoder.*", "visual.vit.*", "CLIP ViT-B/16 image encoder", hint=_BACKBONE_HINT),
        Rule("cv_embed", "visual.camera_embed", "SIE camera table",
             hint="cv_embed has one row per camera of the release's training set"),
        Rule("bottleneck.*", "bn_feat.*", "BNNeck of f"),
        Rule("bottleneck_proj_temp2.*", "bn_tmd.*", "BNNeck of the clip TMD feature"),
        Rule("bottleneck_proj_temp.*", "bn_tmd_frame.*", "BNNeck of the frame TMD features"),
        Rule("bottleneck_proj.*", "bn_proj.*", "BNNeck of f_p"),
        Rule("classifier2.weight", "classifier.weight", "ID classifier of f", per_identity=True),
        Rule("classifier_proj.weight", "classifier_proj.weight", "ID classifier of f_p", per_identity=True),
        Rule("classifier_proj_temp.weight", "classifier_tmd.weight", "ID classifier of the TMD features",
             per_identity=True),
        Rule("TMD.resblocks.0.mlp.c_fc.*", "tmd.mlp.0.*", "TMD MLP in"),
        Rule("TMD.resblocks.0.mlp.c_proj.*", "tmd.mlp.2.*", "TMD MLP out"),
        Rule("TMD.resblocks.0.*", "tmd.*", "TMD block"),
        Rule("SSP.memory_proj.*", "ssp.visual_proj.*", "SSP projection of the video tokens"),
        Rule("SSP.text_proj.*", "ssp.memory_proj.*", "SSP projection of the memory"),
        Rule("SSP.out_proj.*", "ssp.out_proj.*", "SSP output projection"),
        *_attn_rules("self_attn"),
        *_attn_rules("cross_attn"),
        Rule("SSP.decoder.*", "ssp.layers.*", "SSP decoder layers"),
    ),
    drops=(
        Drop("classifier_proj_temp2.*", "created but never used: both TMD logits go through classifier_proj_temp"),
        Drop("SSP.norm.*", "created but never used (its call is commented out in ImageSpecificPrompt.forward)"),
        Drop("SSP.alpha", "created but never used by ImageSpecificPrompt.forward"),
    ),
    derived=(
        Derived("memory", "CLIP-Memory: identity prototypes of the pre-trained encoder, passed to the official "
                          "forward, never saved; only the training loss reads it; left empty"),
        Derived("memory_ready", "our flag that the memory was extracted; false (see memory)"),
    ),
    implied_overrides=_implied,
    identity_config_hint="TF-CLIP's releases are RGB video ReID models (MARS: 625 identities, LS-VID, iLIDS-VID)",
)
