"""VLD (Li et al., TIFS): IMLP prompts, the spatial-temporal hub (STP: STH + STA) and the Table IV
temporal heads, the ``vld`` family.

* :mod:`.options`: the ``model.extra`` schema (torch-free);
* :mod:`.stp`: STH and STA (paper section III-D);
* :mod:`.temporal`: the Table IV temporal heads (TAP, Conv1D, Transf, Transf_cls);
* :mod:`.model`: :class:`VLD`, registered as ``model.name: vld``.
"""
from reprolib.utils.lazy import lazy_exports

_EXPORTS = {"VLD": "model", "VLDExtra": "options", "TEMPORAL_HEADS": "options",
            "SpatialTemporalHub": "stp", "SpatialTemporalAggregation": "stp", "SpatialTemporalPrompting": "stp",
            "build_temporal_head": "temporal"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
