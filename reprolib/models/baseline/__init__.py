"""The ``baseline`` family: CLIP ViT + TAP + BNNeck + ID classifier (VLD Table III "B", X-ReID's "Vanilla").

:mod:`.options` holds the ``model.extra`` schema (torch-free), :mod:`.model` the registered class.
"""
from reprolib.utils.lazy import lazy_exports

_EXPORTS = {"CLIPBaseline": "model", "BaselineExtra": "options"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
