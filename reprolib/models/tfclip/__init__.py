"""TF-CLIP (Yu et al.): CLIP-Memory, SSP and TMD, the ``tfclip`` family (X-ReID Table 1's video CLIP
baseline).

:mod:`.options` holds the ``model.extra`` schema (torch-free), :mod:`.model` the registered class.
"""
from reprolib.utils.lazy import lazy_exports

_EXPORTS = {"TFCLIP": "model", "SequenceSpecificPrompt": "model", "TemporalMemoryDiffusion": "model",
            "class_means": "model", "ssp_params": "model", "tmd_params": "model", "TFCLIPExtra": "options"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
