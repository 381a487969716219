"""X-ReID (AAAI 2026): CPC prototype memories, MII (SII, LII, CII) and the ``xreid`` family.

* :mod:`reprolib.models.xreid.options`: the ``model.extra`` schema (torch-free);
* :mod:`reprolib.models.xreid.cpc`: prototype memories, hard-sample momentum update, CPCL;
* :mod:`reprolib.models.xreid.mii`: the cross-attention block, SII, LII, the eq. 8 fusion, CII;
* :mod:`reprolib.models.xreid.cmcl`: the loss of eq. 9 (CMCL);
* :mod:`reprolib.models.xreid.model`: :class:`XReID`, registered as ``model.name: xreid``.
"""
from reprolib.utils.lazy import lazy_exports

_EXPORTS = {
    "CrossModalityPrototypes": "cpc", "PrototypeMemory": "cpc", "cpcl_loss": "cpc",
    "CrossAttentionBlock": "mii", "ReadoutAttentionBlock": "mii", "ShortTermInteraction": "mii",
    "LongTermInteraction": "mii", "CrossModalityInteraction": "mii", "channel_shift": "mii",
    "lii_partner_frames": "mii", "fuse_branches": "mii", "cross_attention_block_params": "mii",
    "cmcl_loss": "cmcl",
    "XReID": "model", "XReIDExtra": "options",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
