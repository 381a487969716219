"""reprolib models: the ReIDModel contract, the registry, the CLIP backbone and the model families.

``huggingface_hub`` (imported by open_clip and timm) reads ``HF_HUB_OFFLINE`` and its timeouts
into module constants **at import time**. So before anything below imports open_clip,
:func:`~reprolib.models.weights.configure_hub_env` defaults the hub to offline mode with short
timeouts (unless the user set ``HF_HUB_OFFLINE``, e.g. ``HF_HUB_OFFLINE=0`` to allow
downloads). Without it, a machine without network can hang for minutes per file in retries.
"""
from reprolib.models.weights import configure_hub_env

configure_hub_env()  # must precede every open_clip / huggingface_hub import

from reprolib.models.base import ReIDModel, build_param_groups  # noqa: E402
from reprolib.models.registry import create_model, get_model_class, list_models, register_model  # noqa: E402
from reprolib.models.weights import (  # noqa: E402
    PAPER_ARCH,
    TINYCLIP_ARCH,
    WeightsNotFoundError,
    WeightsSource,
    check_weights,
    create_clip_model,
    resolve_weights,
)
from reprolib.models.clip_backbone import CLIPVisualEncoder, create_clip_visual  # noqa: E402
from reprolib.models import baseline  # noqa: E402,F401  (registers "baseline")
from reprolib.models import vld  # noqa: E402,F401  (registers "vld")
from reprolib.models import xreid  # noqa: E402,F401  (registers "xreid")
from reprolib.models import cmft  # noqa: E402,F401  (registers "cmft")
from reprolib.models import clipreid  # noqa: E402,F401  (registers "clipreid")
from reprolib.models import tfclip  # noqa: E402,F401  (registers "tfclip")

__all__ = [
    "ReIDModel", "build_param_groups",
    "create_model", "get_model_class", "list_models", "register_model",
    "PAPER_ARCH", "TINYCLIP_ARCH", "WeightsNotFoundError", "WeightsSource", "check_weights",
    "create_clip_model", "resolve_weights",
    "CLIPVisualEncoder", "create_clip_visual",
]
