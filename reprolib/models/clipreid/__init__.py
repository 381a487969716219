"""CLIP-ReID (Li et al.): prompt learning then fine-tuning, the ``clipreid`` family (X-ReID Table 4's
"Textual Prompts" baseline).

:mod:`.options` holds the ``model.extra`` schema (torch-free), :mod:`.model` the registered class.
"""
from reprolib.utils.lazy import lazy_exports

_EXPORTS = {"CLIPReID": "model", "FeatureCache": "model", "supcon_loss": "model", "CLIPReIDExtra": "options"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
