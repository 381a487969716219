"""Official VLD checkpoints (HITSZ-VCM and BUPTCampus releases) -> the ``vld`` family.

Read from ``Visuang/VLD`` at commit ``63a6bbccf9d6b3a92a59c198a2930b2e59eea8fa`` (the single code upload;
HEAD ``69688ef`` changes only the README), file ``network/model.py`` (``Model.__init__``: the modules
and parameters that make up the saved ``model.state_dict()``; ``Classifier``/``Classifier2``;
``PromptLearner``'s buffers; ``TextEncoder``), with the CLIP tower of ``network/clip/model.py``, which
has the key names and shapes of ``Syliz517/CLIP-ReID`` ``model/clip/model.py`` (commit
``4c0eb208a43347d53c964e80853a3d90dcb1671e``): ``VisionTransformer`` = ``conv1`` (no bias),
``class_embedding``, ``positional_embedding (1 + h*w, 768)``, ``ln_pre``, ``transformer.resblocks.#``
(``attn.in_proj_*``, ``attn.out_proj.*``, ``ln_1``, ``mlp.c_fc``, ``mlp.c_proj``, ``ln_2``), ``ln_post``,
``proj (768, 512)`` -- the names open_clip's ViT uses, so the tower maps by prefix.

The released state dict (C = 500 identities for HITSZ-VCM, 1074 for BUPTCampus; T = 6; 288x144 input)::

    image_encoder.*                          -> visual.vit.*
    prompt_embedding (T, T, 768)             -> stp.sth.weight            the hub H
    attn.{in_proj_*, out_proj.*}             -> stp.sta.attn.*            STA's MultiheadAttention(768, 12)
    classifier.BN.* / .classifier.weight     -> neck.* / classifier.weight            (f_cls)
    classifier_proj.BN.* / .classifier.weight-> neck_proj.* / classifier_proj.weight  (f_proj)
    classifier_STP.BN.* / .classifier.weight -> neck_hub.* / classifier_hub.weight    (f_H)
    prompt_learner.cls_ctx (C, 4, 512)       -> prompt_learner.ctx
    prompt_learner.token_prefix (1, 2, 512)  -> prompt_learner.prefix (2, 512)
    prompt_learner.token_suffix (1, 71, 512) -> prompt_learner.suffix (71, 512)
    text_encoder.*                           -> text_encoder.*            frozen CLIP text tower

Dropped, with the reason (docs/decisions/official_weights.md#vld): ``logit_scale``, ``ln_post2.*``,
``classifier_proj_STP.*`` -- the official forward never uses them (discrepancy 29 of
docs/decisions/vld.md#numbered-decisions).

The released model is ``vld.yaml`` (``vld_bupt.yaml`` for BUPTCampus) under the paper profile:
IMLP, STH at block 9, STA with the shared ``ln_post``, the 8-term loss heads, template 4.
"""
from __future__ import annotations

from reprolib.models.official.mapping import Drop, FamilyMapping, Rule, squeeze_leading, unsqueeze_leading

__all__ = ["VLD_MAPPING"]

_BACKBONE_HINT = ("the released backbone is CLIP ViT-B/16 (model.backbone.arch=ViT-B-16-quickgelu) at 288x144 "
                  "with stride 16: image_encoder.positional_embedding has 1 + 18*9 = 163 rows; set data.height, "
                  "data.width and model.backbone.stride to the release's")


def _head(official: str, ours_neck: str, ours_classifier: str, feature: str) -> tuple[Rule, Rule]:
    return (Rule(f"{official}.BN.*", f"{ours_neck}.*", f"BNNeck of {feature}"),
            Rule(f"{official}.classifier.weight", f"{ours_classifier}.weight", f"ID classifier of {feature}",
                 per_identity=True))


VLD_MAPPING = FamilyMapping(
    family="vld",
    official_name="VLD (Visuang/VLD)",
    source="Visuang/VLD@63a6bbccf9d6b3a92a59c198a2930b2e59eea8fa network/model.py; CLIP tower as "
           "Syliz517/CLIP-ReID@4c0eb208a43347d53c964e80853a3d90dcb1671e model/clip/model.py",
    default_config="vld",
    rules=(
        Rule("image_encoder.*", "visual.vit.*", "CLIP ViT-B/16 image encoder", hint=_BACKBONE_HINT),
        Rule("prompt_embedding", "stp.sth.weight", "STH hub H (T, T, D)",
             hint="prompt_embedding is the hub H of shape (T, T, D): data.seq_len must equal the release's T "
                  "(6) and model.extra.use_stp=true"),
        Rule("attn.*", "stp.sta.attn.*", "STA multi-head attention"),
        *_head("classifier", "neck", "classifier", "f_cls"),
        *_head("classifier_proj", "neck_proj", "classifier_proj", "f_proj"),
        *_head("classifier_STP", "neck_hub", "classifier_hub", "f_H"),
        Rule("prompt_learner.cls_ctx", "prompt_learner.ctx", "per-identity prompt context (C, M, d)",
             per_identity=True),
        Rule("prompt_learner.token_prefix", "prompt_learner.prefix", "embedded template prefix",
             to_ours=squeeze_leading, to_official=unsqueeze_leading,
             hint="the prompt template's prefix/suffix lengths differ: the release uses template 4 "
                  "(model.extra.prompt_template=4, n_ctx=4) and CLIP's 77-token text context"),
        Rule("prompt_learner.token_suffix", "prompt_learner.suffix", "embedded template suffix",
             to_ours=squeeze_leading, to_official=unsqueeze_leading,
             hint="the prompt template's prefix/suffix lengths differ: the release uses template 4 "
                  "(model.extra.prompt_template=4, n_ctx=4) and CLIP's 77-token text context"),
        Rule("text_encoder.*", "text_encoder.*", "frozen CLIP text tower"),
    ),
    drops=(
        Drop("logit_scale", "created but never used: L_v2t is a raw dot product (VLD discrepancies 2 and 29)"),
        Drop("ln_post2.*", "deep copy of ln_post that the forward never calls; STA uses the shared ln_post "
                           "(VLD discrepancies 8 and 29)"),
        Drop("classifier_proj_STP.*", "head on the projected STA feature f_Hproj; its logits are computed but no "
                                      "loss reads them, so it is never trained (VLD discrepancy 29)"),
    ),
    identity_config_hint="HITSZ-VCM releases have 500 identities (config vld), BUPTCampus releases 1074 "
                         "(config vld_bupt)",
)
