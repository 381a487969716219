"""Model registry: paper families register a builder under a name; configs pick it by name.

Example::

    @register_model("baseline")
    class CLIPBaseline(ReIDModel):
        def __init__(self, model_cfg, num_classes, num_cameras, **kwargs): ...

    model = create_model(cfg.model, num_classes=500, num_cameras=12,
                         image_size=(cfg.data.height, cfg.data.width), loss_cfg=cfg.loss)
"""
from __future__ import annotations

import difflib
import logging
from typing import Any, Callable, TypeVar

from torch import nn

__all__ = ["register_model", "create_model", "list_models", "get_model_class"]

logger = logging.getLogger(__name__)

_MODELS: dict[str, Callable[..., nn.Module]] = {}
T = TypeVar("T", bound=Callable[..., nn.Module])


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator that registers a model family under ``name`` (``model.name`` in configs).

    Args:
        name: the key configs use; re-registering a name replaces it with a warning.

    Returns:
        The decorator; it returns the class unchanged.
    """
    def decorator(cls: T) -> T:
        if name in _MODELS and _MODELS[name] is not cls:
            logger.warning("register_model: '%s' was already registered (%s); replacing it with %s",
                           name, _MODELS[name], cls)
        _MODELS[name] = cls
        return cls

    return decorator


def list_models() -> list[str]:
    """Sorted names of the registered model families."""
    return sorted(_MODELS)


def get_model_class(name: str) -> Callable[..., nn.Module]:
    """The builder registered under ``name``.

    Raises:
        KeyError: naming the unknown key, the nearest registered name and all registered names.
    """
    if name not in _MODELS:
        near = difflib.get_close_matches(name, list(_MODELS), n=1)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        raise KeyError(f"model.name: unknown model '{name}'.{hint} Registered: {', '.join(list_models())}")
    return _MODELS[name]


def create_model(model_cfg: Any, num_classes: int, num_cameras: int, **kwargs: Any) -> nn.Module:
    """Build the model family named by ``model_cfg.name``.

    Args:
        model_cfg: a ``ModelConfig``.
        num_classes: number of training identities (classifier size).
        num_cameras: size of the camera-embedding table (largest camid + 1).
        **kwargs: passed to the family's constructor; the CLIP families take
            ``image_size=(H, W)`` (the input grid the positional embedding is resized to) and
            ``loss_cfg`` (the ``LossConfig`` that ``forward_train`` uses).

    Returns:
        The model (an ``nn.Module``, normally a :class:`~reprolib.models.base.ReIDModel`).
    """
    return get_model_class(model_cfg.name)(model_cfg, num_classes, num_cameras, **kwargs)
