"""CMFT (Mukhtar & Khan, "Progressive Learning in Cross-Modal Cross-scale Fusion Transformer for
Visible-Infrared Video-based Person Re-ID"): the ``cmft`` model family.

Modules: :mod:`.tsm` (temporal shift), :mod:`.resnet` (TSM ResNet-50 streams and their weights),
:mod:`.ccf` (the CCF cascade and the Table 2 fusion baselines), :mod:`.model` (the registered
family), :mod:`.profile` (parameters and FLOPs of the fusion part against Tables 2-3).
There is no official code; every design decision cites reference/cmft.md section 8 (#1-#22).
"""
from reprolib.models.cmft.ccf import CCF, CCFCascade, CCFOptions, ConcatFusion, ScoreFusion, build_fusion
from reprolib.models.cmft.model import CMFT, FEATURE_KEYS, CMFTExtra, cmft_loss_table
from reprolib.models.cmft.profile import cmft_profile, cmft_profile_table
from reprolib.models.cmft.resnet import TSMResNet, build_tsm_resnet, resolve_resnet_weights
from reprolib.models.cmft.tsm import TemporalShift, temporal_shift

__all__ = [
    "CCF", "CCFCascade", "CCFOptions", "ConcatFusion", "ScoreFusion", "build_fusion",
    "CMFT", "CMFTExtra", "FEATURE_KEYS", "cmft_loss_table",
    "cmft_profile", "cmft_profile_table",
    "TSMResNet", "build_tsm_resnet", "resolve_resnet_weights",
    "TemporalShift", "temporal_shift",
]
