"""Official CLIP-ReID checkpoints (Li, Sun and Li, AAAI 2023) -> the ``clipreid`` family.

Read from ``Syliz517/CLIP-ReID`` at commit ``4c0eb208a43347d53c964e80853a3d90dcb1671e``: file
``model/make_model_clipreid.py`` (``build_transformer.__init__``: the saved ``model.state_dict()`` of
the two-stage model; ``PromptLearner``'s parameter and buffers; ``TextEncoder``; ``load_param`` strips
``module.``) and ``model/clip/model.py`` (``VisionTransformer``: ``conv1``, ``class_embedding``,
``positional_embedding (1 + h*w, 768)``, ``ln_pre``, ``transformer.resblocks.#``, ``ln_post``,
``proj (768, 512)``; the names of open_clip's ViT).

The released (ViT-B-16) state dict::

    image_encoder.*                          -> visual.vit.*
    cv_embed (cameras [x views], 768)        -> visual.camera_embed      SIE (present when SIE_CAMERA/VIEW)
    bottleneck.*, bottleneck_proj.*          -> bn_feat.*, bn_proj.*     BNNecks (frozen bias)
    classifier.weight (C, 768)               -> classifier.weight
    classifier_proj.weight (C, 512)          -> classifier_proj.weight
    prompt_learner.cls_ctx (C, 4, 512)       -> prompt_learner.shared.ctx
    prompt_learner.token_prefix (1, 5, 512)  -> prompt_learner.shared.prefix  "A photo of a" + SOT
    prompt_learner.token_suffix (1, 72, 512) -> prompt_learner.shared.suffix
    text_encoder.*                           -> text_encoder.*

The official model has **one** prompt bank, so the import sets ``model.extra.prompt_banks=shared``,
and ``model.backbone.sie`` to whether the file has ``cv_embed`` (both logged and recorded). Our
tensors without a counterpart (docs/decisions/official_weights.md#clip-reid): ``stage`` (set to 2,
the release is a finished stage-2 model), ``text_features`` (recomputed from the imported prompts and
text tower, exactly as at our stage switch) and the stage-1 ``feature_cache.*`` (empty).

The official releases are image ReID models (Market-1501, MSMT17, ...): 256x128 inputs
(``positional_embedding`` of 1 + 16*8 rows) and their datasets' identities, so importing one into
a VVI config needs ``--set data.height=256 --set data.width=128`` and ``--identity-heads fresh``.
"""
from __future__ import annotations

from typing import Any, Iterable

from reprolib.models.official.mapping import Derived, FamilyMapping, Rule, squeeze_leading, unsqueeze_leading

__all__ = ["CLIPREID_MAPPING"]

_BACKBONE_HINT = ("the released backbone is CLIP ViT-B/16 at the training input size with stride 16 "
                  "(person configs: 256x128, image_encoder.positional_embedding of 1 + 16*8 = 129 rows); set "
                  "data.height, data.width and model.backbone.stride to the release's")
_PROMPT_HINT = ("the prompt template's prefix/suffix lengths differ: the release uses \"A photo of a X X X X "
                "person.\" (model.extra.prompt_template, n_ctx=4) and CLIP's 77-token text context")


def _finalize(model: Any) -> None:
    """The release is a finished stage-2 model: text features from the imported prompts, stage 2."""
    model.finish_prompt_learning()


def _implied(keys: Iterable[str]) -> list[str]:
    has_sie = "cv_embed" in set(keys)
    return ["model.extra.prompt_banks=shared", f"model.backbone.sie={'true' if has_sie else 'false'}"]


CLIPREID_MAPPING = FamilyMapping(
    family="clipreid",
    official_name="CLIP-ReID (Syliz517/CLIP-ReID)",
    source="Syliz517/CLIP-ReID@4c0eb208a43347d53c964e80853a3d90dcb1671e model/make_model_clipreid.py, "
           "model/clip/model.py",
    default_config="clipreid",
    rules=(
        Rule("image_encoder.*", "visual.vit.*", "CLIP ViT-B/16 image encoder", hint=_BACKBONE_HINT),
        Rule("cv_embed", "visual.camera_embed", "SIE camera table (added to [CLS])",
             hint="cv_embed has one row per camera (x view) of the release's training set; our camera table "
                  "has data's largest camid + 1 rows"),
        Rule("bottleneck.*", "bn_feat.*", "BNNeck of f"),
        Rule("bottleneck_proj.*", "bn_proj.*", "BNNeck of f_p"),
        Rule("classifier.weight", "classifier.weight", "ID classifier of f", per_identity=True),
        Rule("classifier_proj.weight", "classifier_proj.weight", "ID classifier of f_p", per_identity=True),
        Rule("prompt_learner.cls_ctx", "prompt_learner.shared.ctx", "per-identity prompt context (C, M, d)",
             per_identity=True),
        Rule("prompt_learner.token_prefix", "prompt_learner.shared.prefix", "embedded template prefix",
             to_ours=squeeze_leading, to_official=unsqueeze_leading, hint=_PROMPT_HINT),
        Rule("prompt_learner.token_suffix", "prompt_learner.shared.suffix", "embedded template suffix",
             to_ours=squeeze_leading, to_official=unsqueeze_leading, hint=_PROMPT_HINT),
        Rule("text_encoder.*", "text_encoder.*", "frozen CLIP text tower"),
    ),
    derived=(
        Derived("stage", "our two-stage switch; set to 2 (the release is a finished stage-2 model)"),
        Derived("text_features", "stage-2 text features; recomputed from the imported prompts and text tower, "
                                 "as at our stage switch (the official code recomputes them too)"),
        Derived("feature_cache.*", "stage-1 feature cache (training state only); empty"),
    ),
    finalize=_finalize,
    implied_overrides=_implied,
    identity_config_hint="the official CLIP-ReID releases are image ReID models (Market-1501: 751, MSMT17: 1041 "
                         "identities), not VVI ones",
)
