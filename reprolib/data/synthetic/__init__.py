"""SynthVCM: the miniature world, a procedurally generated video visible-infrared ReID dataset.

Identities (:mod:`.identities`) walk past cameras (:mod:`.world`), are drawn by a tiny
renderer (:mod:`.renderer`: colour only in visible frames, near-infrared grey frames) and are
written in a real dataset's exact on-disk format (:mod:`.writers`; the image benchmarks
SYSU-MM01 and RegDB in :mod:`.writers_image`), so the real loaders read them unchanged.
:mod:`.captions` describes identities in words (TinyCLIP pretraining).

Example::

    from reprolib.data.synthetic import write_world
    root = write_world("data/synthvcm", scale="embedded", seed=0, fmt="vcm")
"""
from .captions import identity_captions
from .identities import IdentityAttributes, sample_identity
from .renderer import render_frame, render_tracklet
from .world import (
    GENERATOR_VERSION,
    WORLD_SPECS,
    CameraSpec,
    TrackletPlan,
    World,
    WorldSpec,
    build_world,
    get_world_spec,
    sample_camera,
)
from .writers import WRITERS, BUPTWriter, LayoutWriter, VCMLayoutAWriter, VCMWriter, main, world_summary, write_world
from .writers_image import RegDBWriter, SYSUWriter  # registers the "sysu" and "regdb" formats

__all__ = [
    "GENERATOR_VERSION",
    "WORLD_SPECS",
    "WRITERS",
    "BUPTWriter",
    "CameraSpec",
    "IdentityAttributes",
    "LayoutWriter",
    "RegDBWriter",
    "SYSUWriter",
    "TrackletPlan",
    "VCMLayoutAWriter",
    "VCMWriter",
    "World",
    "WorldSpec",
    "build_world",
    "get_world_spec",
    "identity_captions",
    "main",
    "render_frame",
    "render_tracklet",
    "sample_camera",
    "sample_identity",
    "world_summary",
    "write_world",
]
