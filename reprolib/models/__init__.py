"""reprolib models: the ReIDModel contract, the registry, the shared blocks and one package per family.

Layout (timm style): shared blocks in this folder (:mod:`.base` the contract, :mod:`.registry`,
:mod:`.options` torch-free option helpers, :mod:`.clip_backbone` the CLIP visual encoder,
:mod:`.clip_family` the opening shared by the CLIP families, :mod:`.heads`, :mod:`.prompts`,
:mod:`.attention`, :mod:`.weights`), and one folder per family: ``baseline/``, ``vld/``, ``xreid/``,
``clipreid/``, ``tfclip/``, ``cmft/``, each with ``options.py`` (its ``model.extra`` schema, torch-free),
``model.py`` (the registered class) and its own blocks and losses.

``huggingface_hub`` (imported by open_clip and timm) reads ``HF_HUB_OFFLINE`` and its timeouts
into module constants **at import time**. So before anything below imports open_clip,
:func:`~reprolib.models.weights.configure_hub_env` defaults the hub to offline mode with short
timeouts (unless the user set ``HF_HUB_OFFLINE``, e.g. ``HF_HUB_OFFLINE=0`` to allow
downloads). Without it, a machine without network can hang for minutes per file in retries.

The torch-backed names are exported lazily (:mod:`reprolib.utils.lazy`): config loading imports
``reprolib.models.registry`` and the families' ``options`` modules, which must not import torch.
"""
from reprolib.models.weights import configure_hub_env

configure_hub_env()  # must precede every open_clip / huggingface_hub import

from reprolib.models.registry import (  # noqa: E402
    create_model,
    family_options,
    get_model_class,
    list_models,
    register_model,
    results_version,
)
from reprolib.models.weights import (  # noqa: E402
    PAPER_ARCH,
    TINYCLIP_ARCH,
    WeightsNotFoundError,
    WeightsSource,
    check_weights,
    create_clip_model,
    resolve_weights,
)
from reprolib.utils.lazy import lazy_exports  # noqa: E402

_EXPORTS = {
    "ReIDModel": "base",
    "build_param_groups": "base",
    "CLIPVisualEncoder": "clip_backbone",
    "create_clip_visual": "clip_backbone",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "ReIDModel", "build_param_groups",
    "create_model", "family_options", "get_model_class", "list_models", "register_model", "results_version",
    "PAPER_ARCH", "TINYCLIP_ARCH", "WeightsNotFoundError", "WeightsSource", "check_weights",
    "create_clip_model", "resolve_weights",
    "CLIPVisualEncoder", "create_clip_visual",
]
