"""``model.extra`` schema of the ``clipreid`` family (torch-free: config loading validates with it)."""
from __future__ import annotations

from dataclasses import dataclass

from reprolib.config import from_dict
from reprolib.data.frames import TEST_SAMPLING
from reprolib.models.options import BANK_NAMES, check_choice, resolve_template

__all__ = ["CLIPReIDExtra", "OPTIONS"]

_STAGE1_SOURCES = ("cache", "batch")
_TEST_FEATURES = ("pre_bn", "bn")


@dataclass(frozen=True)
class CLIPReIDExtra:
    """Schema of ``model.extra`` for the ``clipreid`` family (defaults: CLIP-ReID's released
    person config, docs/decisions/clip_baselines.md#clip-reid-two-stages; ``clipreid.yaml`` selects X-ReID's Table 4 banks)."""

    # stages
    stage1_epochs: int = 61  # epochs of prompt learning; 120 x floor(9751/64) = 18,240 steps ~ 61 x 300
    stage1_lr: float = 3.5e-4  # peak lr of the prompt contexts (their own optimiser group)
    stage1_weight_decay: float = 1e-4
    stage1_batch: int = 64  # cached features per stage-1 step
    stage1_source: str = "cache"  # "cache" (released: frozen features extracted once) | "batch" (the step's clips)
    cache_sampling: str = "chunk_first"  # frames of the cache clips (a data.test_sampling name)
    supcon_temperature: float = 1.0
    # prompts
    prompt_banks: str = "shared"  # "shared" (CLIP-ReID) | "per_modality" (X-ReID Table 4 "Textual Prompts")
    prompt_template: str = "A photo of a {ctx} person."  # shared bank (CLIP-ReID)
    prompt_template_rgb: str = "A visible video of a {ctx} person."  # per_modality (X-ReID's wording)
    prompt_template_ir: str = "An infrared video of a {ctx} person."
    n_ctx: int = 4
    ctx_init_std: float = 0.02
    truncate_text: bool = True  # exact EOT+1 causal truncation (reprolib.models.prompts)
    # stage-2 loss and test feature
    i2t_weight: float = 1.0
    triplet_last: bool = True  # triplet on the layer-11 [CLS] (released: [last, cls, proj])
    test_feature: str = "pre_bn"  # "pre_bn" ([f ; f_p], TEST.NECK_FEAT before) | "bn"

    @classmethod
    def from_dict(cls, extra: dict) -> "CLIPReIDExtra":
        """Validate ``model.extra``; unknown keys, wrong types or values raise naming the key."""
        out = from_dict(cls, extra, "model.extra")
        for key, choices in (("prompt_banks", tuple(BANK_NAMES)), ("stage1_source", _STAGE1_SOURCES),
                             ("test_feature", _TEST_FEATURES), ("cache_sampling", tuple(TEST_SAMPLING))):
            check_choice(f"model.extra.{key}", getattr(out, key), choices, "clipreid")
        for key in ("prompt_template", "prompt_template_rgb", "prompt_template_ir"):
            try:
                resolve_template(getattr(out, key))
            except ValueError as e:
                raise ValueError(f"model.extra.{key}: {str(e).split(': ', 1)[-1]}") from None
        for key in ("stage1_epochs", "i2t_weight", "stage1_weight_decay"):
            if getattr(out, key) < 0:
                raise ValueError(f"model.extra.{key} must be >= 0, got {getattr(out, key)}")
        for key in ("stage1_lr", "stage1_batch", "supcon_temperature", "n_ctx"):
            if getattr(out, key) <= 0:
                raise ValueError(f"model.extra.{key} must be > 0, got {getattr(out, key)}")
        return out

    def templates(self) -> dict[str, str]:
        """Template of every bank, in :data:`BANK_NAMES` order."""
        if self.prompt_banks == "shared":
            return {"shared": self.prompt_template}
        return {"rgb": self.prompt_template_rgb, "ir": self.prompt_template_ir}


#: The options class the registry returns for ``clipreid`` (``family_options``).
OPTIONS = CLIPReIDExtra
