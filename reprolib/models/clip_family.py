"""The opening every CLIP family shares (baseline, VLD, X-ReID, CLIP-ReID, TF-CLIP).

Each of these families checks the same ``model`` keys, validates ``model.extra`` with its options
class and builds its losses from the ``LossConfig`` the same way; :class:`CLIPFamily` does it once.
The calls sit where each family's constructor made them before, so the module construction order
(and hence parameter order and RNG use) is unchanged.
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional

from reprolib.config import LossConfig
from reprolib.losses import build_id_loss, build_metric_loss, metric_loss_name
from reprolib.models.base import ReIDModel
from reprolib.models.options import check_choice

__all__ = ["CLIPFamily"]


class CLIPFamily(ReIDModel):
    """Base of the CLIP families: :meth:`check_model_cfg` and :meth:`init_losses`.

    Subclasses set :attr:`family` (the registry name, used in error messages), :attr:`options`
    (the ``model.extra`` schema), :attr:`features` and :attr:`necks` (the ``model.feature`` and
    ``model.neck`` values they support).
    """

    family: ClassVar[str] = ""
    options: ClassVar[type]
    features: ClassVar[tuple[str, ...]] = ("cls",)
    necks: ClassVar[tuple[str, ...]] = ("bnneck",)

    def check_model_cfg(self, model_cfg: Any) -> Any:
        """Check ``model.feature`` and ``model.neck`` against the family's choices and return
        ``model.extra`` validated by :attr:`options` (``model.temporal_pool`` is fixed to ``tap``;
        ``reprolib.config`` checks it)."""
        check_choice("model.feature", model_cfg.feature, self.features, self.family)
        check_choice("model.neck", model_cfg.neck, self.necks, self.family)
        return self.options.from_dict(model_cfg.extra)

    def init_losses(self, loss_cfg: Optional[Any]) -> None:
        """``loss_cfg`` (default ``LossConfig()``), the ID loss, the metric loss and its component name."""
        self.loss_cfg = loss_cfg if loss_cfg is not None else LossConfig()
        self.id_loss = build_id_loss(self.loss_cfg)
        self.metric_loss = build_metric_loss(self.loss_cfg)
        self.metric_name = metric_loss_name(self.loss_cfg)
