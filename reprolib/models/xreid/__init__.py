"""X-ReID (AAAI 2026): CPC prototype memories, MII (SII, LII, CII) and the ``xreid`` family.

* :mod:`reprolib.models.xreid.cpc`: prototype memories, hard-sample momentum update, CPCL;
* :mod:`reprolib.models.xreid.mii`: the cross-attention block, SII, LII, the eq. 8 fusion, CII;
* :mod:`reprolib.models.xreid.model`: :class:`XReID`, registered as ``model.name: xreid``.

The loss of eq. 9 (CMCL) is :func:`reprolib.losses.cmcl.cmcl_loss`.
"""
from reprolib.models.xreid.cpc import CrossModalityPrototypes, PrototypeMemory, cpcl_loss
from reprolib.models.xreid.mii import (CrossAttentionBlock, CrossModalityInteraction, LongTermInteraction,
                                       ReadoutAttentionBlock, ShortTermInteraction, channel_shift,
                                       cross_attention_block_params, fuse_branches, lii_partner_frames)
from reprolib.models.xreid.model import XReID, XReIDExtra

__all__ = [
    "CrossModalityPrototypes", "PrototypeMemory", "cpcl_loss",
    "CrossAttentionBlock", "ReadoutAttentionBlock", "ShortTermInteraction", "LongTermInteraction",
    "CrossModalityInteraction", "channel_shift", "lii_partner_frames", "fuse_branches",
    "cross_attention_block_params",
    "XReID", "XReIDExtra",
]
