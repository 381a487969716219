"""CMFT (Mukhtar & Khan, "Progressive Learning in Cross-Modal Cross-scale Fusion Transformer for
Visible-Infrared Video-based Person Re-ID"): the ``cmft`` model family.

Modules: :mod:`.options` (the ``model.extra`` schema and the CCF options, torch-free), :mod:`.tsm`
(temporal shift), :mod:`.resnet` (TSM ResNet-50 streams and their weights), :mod:`.ccf` (the CCF
cascade and the Table 2 fusion baselines), :mod:`.losses` (the CMFT losses), :mod:`.model` (the
registered family), :mod:`.profile` (parameters and FLOPs of the fusion part; the table against
Tables 2-3 is :func:`reprolib.experiments.costs.cmft_profile_table`).
There is no official code; every design decision cites docs/decisions/cmft.md#numbered-decisions (#1-#22).
"""
from reprolib.utils.lazy import lazy_exports

_EXPORTS = {
    "CCF": "ccf", "CCFCascade": "ccf", "ConcatFusion": "ccf", "ScoreFusion": "ccf", "build_fusion": "ccf",
    "CCFOptions": "options", "CMFTExtra": "options", "VARIANTS": "options",
    "CMFT": "model", "FEATURE_KEYS": "model", "cmft_loss_table": "model",
    "cmft_profile": "profile",
    "TSMResNet": "resnet", "build_tsm_resnet": "resnet", "resolve_resnet_weights": "resnet",
    "TemporalShift": "tsm", "temporal_shift": "tsm",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
