"""Rehearsal: the paper profile on stand-ins, to test the paper path on a CPU and a GPU box cheaply.

A rehearsal runs the **paper configs unchanged** in model (ViT-B-16-quickgelu, ImageNet-shaped
ResNet-50), resolution (288x144, CMFT/TF-CLIP 256x128), sequence length, text context, losses,
samplers, schedule structure and evaluation protocol. Three things differ, and every output says so
(``Workbook.label``, the ``rehearsal`` profile column of every table, ``results/rehearsal/``):

* **stand-in weights**, written here (:func:`write_standin_weights`): a randomly initialised
  ``ViT-B-16-quickgelu`` in each real format the paper profile accepts (OpenAI TorchScript ``.pt``,
  ``.safetensors``, an open_clip ``.bin``, a local open_clip folder, a pre-filled Hugging Face hub
  cache) and a torchvision ``resnet50()`` state dict named as torchvision's ImageNet file. They are
  loaded by exactly the code that loads the real files (``model.backbone.weights_path``, or the cache
  lookup for ``hf-cache``); nothing is downloaded;
* **a paper-resolution miniature world** (``synthetic.world.WORLD_SPECS["rehearsal"]``, 288x144 on
  disk) in every real layout (HITSZ-VCM layouts B and A, BUPTCampus, SYSU-MM01, RegDB);
* **truncated schedules and small batches** (:data:`SCHEDULE_OVERRIDES`, :func:`schedule_overrides`):
  two "epochs" of one step each, so every phase still runs once: a warm-up epoch and a milestone,
  X-ReID's CPC memory initialisation and its refresh, CLIP-ReID's stage 1 then stage 2, TF-CLIP's
  memory, CMFT's stage switch, a checkpoint per epoch, the evaluation with its real rule and trials.
  BUPTCampus keeps its official tail-drop evaluation at a test batch of 2 instead of 64, so the rule
  runs on the small tree without emptying its sets.

Everything lives under ``data/rehearsal/`` (weights, worlds; generated, never committed) and
``results/rehearsal/`` (runs, notebooks, tables), never mixed with a profile's results.

Entry points: ``make rehearse`` (every notebook), ``make reproduce-<paper>-<item> REHEARSAL=1``,
``python -m reprolib notebook run NAME --profile paper --rehearsal``, the notebook parameter
``rehearsal = True``, ``python -m reprolib rehearse prepare`` (weights and worlds only) and
``python -m reprolib rehearse train CONFIG`` (one config). The phases that need more than one process,
a 2-process ``torchrun`` launch and a kill-and-resume, are ``rehearse ddp CONFIG`` and ``rehearse resume
CONFIG`` (:mod:`reprolib.experiments.rehearsal_phases`). ``docs/rehearsal.md`` has the decisions.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from reprolib import PROJECT_ROOT

__all__ = ["REHEARSAL_DIR", "CLIP_FORMATS", "Setup", "prepare", "write_standin_weights", "write_worlds", "hf_cache_env",
           "rehearsal_device", "SCHEDULE_OVERRIDES", "schedule_overrides", "ENV_OF", "main"]

log = logging.getLogger(__name__)

#: Where the rehearsal's generated inputs live (``REPROLIB_REHEARSAL_DIR`` overrides it).
REHEARSAL_DIR = Path(os.environ.get("REPROLIB_REHEARSAL_DIR", PROJECT_ROOT / "data" / "rehearsal"))
#: The stand-in CLIP files, one per accepted format (``weights_path`` values).
CLIP_FORMATS = {
    "torchscript": "ViT-B-16.pt",                     # OpenAI's TorchScript archive layout
    "safetensors": "vit_b16_standin.safetensors",
    "bin": "open_clip_pytorch_model.bin",            # an open_clip state dict (torch pickle of tensors)
    "local-dir": "vit_b16_standin_dir",              # open_clip_config.json + open_clip_model.safetensors
    "hf-cache": "hf_hub_cache",                      # a pre-filled Hugging Face hub cache (HF_HUB_CACHE)
}
RESNET_FILE = "resnet50-0676ba61.pth"  # torchvision's ImageNet file name (the contents are random)
#: World layout and preset of each dataset.
WORLDS = {"hitsz-vcm": ("vcm", "rehearsal"), "bupt": ("bupt", "rehearsal-bupt"),
          "sysu-mm01": ("sysu", "rehearsal-image"), "regdb": ("regdb", "rehearsal-image")}
#: HITSZ-VCM's other real layout (A: person folders merged in the root), written beside layout B: the
#: same world (same frames, same index files); rows use layout B unless given this root (CI loads it once).
LAYOUT_A_WORLD = ("vcm-a", "rehearsal")
STANDIN_SEED = 0
#: Seed of the rehearsal worlds (seed 2: BUPTCampus's query holds both modalities, see WORLD_SPECS).
WORLD_SEED = 2
#: The environment variable each dataset's paper-profile root is read from.
ENV_OF = {"hitsz-vcm": "REPROLIB_DATA", "bupt": "REPROLIB_BUPT", "sysu-mm01": "REPROLIB_SYSU",
          "regdb": "REPROLIB_REGDB"}
#: What every rehearsal run changes (see the module docstring): the schedule and batch sizes only.
SCHEDULE_OVERRIDES = (
    "train.epochs=2", "train.iters_per_epoch=1", "train.log_every=1", "train.ckpt_every_iters=0",
    "train.eval_every=0", "data.num_ids=2", "data.num_pos=1", "data.num_workers=0", "data.test_batch_size=8",
    "sched.warmup_epochs=1", "sched.milestones=[1]",
)


@dataclass(frozen=True)
class Setup:
    """The rehearsal's inputs: each dataset's root and the stand-in weights files.

    Attributes:
        roots: ``{dataset: root}`` of the worlds the rows read (HITSZ-VCM in layout B).
        clip_weights: the ``model.backbone.weights_path`` of CLIP rows; ``""`` for ``hf-cache`` (the
            weights are then found in the Hugging Face cache that ``env`` names).
        resnet_weights: the ResNet-50 stand-in file.
        clip_files: ``{format: value}``: a ``weights_path`` value per format; for ``hf-cache`` the
            cache folder (an ``HF_HUB_CACHE`` value, not a weights path).
        env: environment variables the chosen format needs (``hf-cache``: ``HF_HUB_CACHE``,
            ``HF_HUB_OFFLINE=1``; otherwise none).
        vcm_layout_a: the same HITSZ-VCM world in layout A.
    """

    roots: dict
    clip_weights: str
    resnet_weights: str
    clip_files: dict
    env: dict = field(default_factory=dict)
    vcm_layout_a: str = ""


def _clip_spec(weights_dir: Path, fmt: str) -> str:
    path = weights_dir / CLIP_FORMATS[fmt]
    return f"local-dir:{path}" if fmt == "local-dir" else str(path)


def hf_cache_env(cache: str) -> dict[str, str]:
    """The environment that makes the CLIP lookup find the stand-in in the pre-filled Hugging Face
    cache ``cache`` (no ``weights_path``, ``$CLIP_WEIGHTS`` empty): ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE=1``."""
    return {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "CLIP_WEIGHTS": ""}


def _write_hf_cache(source: Path, cache: Path, arch: str) -> None:
    """A pre-filled Hugging Face hub cache holding ``source`` as the file open_clip's Hub location of
    (ViT-B-16, openai) names, laid out as ``huggingface_hub`` writes it::

        cache/models--timm--vit_base_patch16_clip_224.openai/
          refs/main                                  the revision (40 hex digits, no newline)
          blobs/<sha256 of the file>                 a hard link to ``source`` (no second copy)
          blobs/<git sha1 of the config>             open_clip_config.json
          snapshots/<revision>/open_clip_model.safetensors -> ../../blobs/<sha256>
          snapshots/<revision>/open_clip_config.json        -> ../../blobs/<sha1>

    The revision is derived from the file's SHA-256 (a stand-in, not a Hub commit). Written once: kept
    while its snapshot's file is ``source`` itself (the same inode).
    """
    import hashlib
    import shutil

    from reprolib.models.weights import HF_WEIGHT_FILES, PAPER_HF_REPO, sha256_file

    repo = cache / f"models--{PAPER_HF_REPO.replace('/', '--')}"
    weights_name = HF_WEIGHT_FILES[0]  # open_clip_model.safetensors: open_clip's first choice
    with contextlib.suppress(OSError):
        current = repo / "snapshots" / (repo / "refs" / "main").read_text() / weights_name
        if os.path.samefile(current, source):
            return
    import open_clip

    digest = sha256_file(source)
    revision = hashlib.sha1(f"reprolib rehearsal stand-in {digest}".encode()).hexdigest()
    snapshot = repo / "snapshots" / revision
    shutil.rmtree(repo, ignore_errors=True)  # ours, from another stand-in
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    snapshot.mkdir(parents=True)
    blob = repo / "blobs" / digest
    try:
        os.link(source, blob)
    except OSError:
        shutil.copyfile(source, blob)
    config = json.dumps({"model_cfg": open_clip.get_model_config(arch), "preprocess_cfg": {}}, indent=1).encode()
    config_id = hashlib.sha1(b"blob %d\0" % len(config) + config).hexdigest()  # git's blob id, as the Hub's etag
    (repo / "blobs" / config_id).write_bytes(config)
    for name, blob_name in ((weights_name, digest), ("open_clip_config.json", config_id)):
        try:
            os.symlink(Path("..") / ".." / "blobs" / blob_name, snapshot / name)
        except OSError:  # no symlinks here (huggingface_hub then stores the file in the snapshot too)
            os.link(repo / "blobs" / blob_name, snapshot / name)
    (repo / "refs" / "main").write_text(revision)


def write_standin_weights(out: Path, arch: str = "ViT-B-16-quickgelu", seed: int = STANDIN_SEED) -> dict[str, str]:
    """Write randomly initialised stand-ins of the paper's weights files (once; a manifest records them).

    Args:
        out: folder (created).
        arch: the CLIP architecture of the stand-ins (the paper profile's).
        seed: initialisation seed.

    Returns:
        ``{format: weights_path value}`` for each of :data:`CLIP_FORMATS` (``hf-cache``: the cache
        folder, an ``HF_HUB_CACHE`` value) and ``resnet50``.
    """
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.json"
    specs = {**{fmt: _clip_spec(out, fmt) for fmt in CLIP_FORMATS}, "resnet50": str(out / RESNET_FILE)}
    expected = {"arch": arch, "seed": seed, "files": specs}
    # the files written from scratch; the Hugging Face cache is made from the .safetensors file (hard links)
    written = {k: v for k, v in specs.items() if k != "hf-cache"}
    if manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text())
            if {k: v for k, v in recorded.get("files", {}).items() if k != "hf-cache"} == written and all(
                    Path(v.removeprefix("local-dir:")).exists() for v in written.values()):
                _write_hf_cache(out / CLIP_FORMATS["safetensors"], Path(specs["hf-cache"]), arch)
                if recorded.get("files") != specs:
                    manifest.write_text(json.dumps({**recorded, "files": specs}, indent=1) + "\n")
                return specs
        except ValueError:
            pass
    import open_clip
    import torchvision
    from safetensors.torch import save_file

    from reprolib.models.weights import register_model_configs

    register_model_configs()
    log.info("rehearsal: writing random-init stand-ins of %s and ResNet-50 to %s (not pretrained weights)", arch, out)
    torch.manual_seed(seed)
    clip = open_clip.create_model(arch, pretrained=None)
    state = {k: v.detach().half().contiguous() for k, v in clip.state_dict().items()}  # OpenAI ships fp16
    _save_torchscript(state, out / CLIP_FORMATS["torchscript"])
    save_file(state, str(out / CLIP_FORMATS["safetensors"]))
    torch.save(state, out / CLIP_FORMATS["bin"])
    folder = out / CLIP_FORMATS["local-dir"]
    folder.mkdir(exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": open_clip.get_model_config(arch), "preprocess_cfg": {}}, indent=1))
    target = folder / "open_clip_model.safetensors"
    target.unlink(missing_ok=True)
    try:
        os.link(out / CLIP_FORMATS["safetensors"], target)  # the same bytes, no second copy on disk
    except OSError:
        save_file(state, str(target))
    _write_hf_cache(out / CLIP_FORMATS["safetensors"], Path(specs["hf-cache"]), arch)
    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet50().state_dict(), out / RESNET_FILE)
    manifest.write_text(json.dumps({**expected, "note": "random-init stand-ins for rehearsals; NOT pretrained"},
                                   indent=1) + "\n")
    return specs


def _save_torchscript(state: dict, path: Path) -> None:
    """A TorchScript archive laid out as OpenAI's ``ViT-B-16.pt``: the tensors under their state-dict
    names (nested modules) plus OpenAI's three scalar entries; read back only with ``torch.jit.load``."""
    import warnings

    import torch
    from torch import nn

    class Holder(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    state = {**state, "input_resolution": torch.tensor(224), "context_length": torch.tensor(77),
             "vocab_size": torch.tensor(49408)}
    root = Holder()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        node = root
        for name in parents:
            if not hasattr(node, name):
                node.add_module(name, Holder())
            node = getattr(node, name)
        node.register_buffer(leaf, value.clone())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(root).save(str(path))


def write_worlds(out: Path, seed: int = WORLD_SEED) -> dict[str, str]:
    """Write the paper-resolution miniature world in every real layout (once each), HITSZ-VCM in
    both of its layouts (B in ``synthvcm-rehearsal``, A in ``synthvcm-a-rehearsal``).

    Returns:
        ``{dataset: root}`` (layout B for ``hitsz-vcm``) and ``{"hitsz-vcm-a": root}`` (layout A).
    """
    from reprolib.data.synthetic import write_world

    roots = {}
    for dataset, (fmt, scale) in [*WORLDS.items(), ("hitsz-vcm-a", LAYOUT_A_WORLD)]:
        root = Path(out) / f"synth{fmt}-rehearsal"
        write_world(root, scale, seed, fmt, progress=False, overwrite=True)  # ours: regenerated when its spec changes
        roots[dataset] = str(root)
    return roots


def prepare(clip_format: Optional[str] = None, directory: Optional[Path] = None) -> Setup:
    """Stand-in weights and worlds under :data:`REHEARSAL_DIR`, written on first use.

    Args:
        clip_format: which stand-in CLIP file the runs load (``$REPROLIB_REHEARSAL_CLIP``, default
            ``torchscript``, OpenAI's format); the others are written too (CI loads each).
            ``hf-cache`` gives no ``weights_path`` but :attr:`Setup.env` (``HF_HUB_CACHE`` at the
            stand-in cache, ``HF_HUB_OFFLINE=1``): the weights are found by the cache lookup.
        directory: another place than :data:`REHEARSAL_DIR`.
    """
    directory = Path(directory or REHEARSAL_DIR)
    fmt = clip_format or os.environ.get("REPROLIB_REHEARSAL_CLIP", "torchscript")
    if fmt not in CLIP_FORMATS:
        raise ValueError(f"REPROLIB_REHEARSAL_CLIP={fmt!r}: expected one of {', '.join(CLIP_FORMATS)}")
    files = write_standin_weights(directory / "weights")
    roots = write_worlds(directory)
    layout_a = roots.pop("hitsz-vcm-a")
    cache = fmt == "hf-cache"
    return Setup(roots=roots, clip_weights="" if cache else files[fmt], resnet_weights=files["resnet50"],
                 clip_files={k: v for k, v in files.items() if k != "resnet50"},
                 env=hf_cache_env(files[fmt]) if cache else {}, vcm_layout_a=layout_a)


def rehearsal_device(device: str) -> str:
    """A rehearsal runs where it is: ``auto`` is the GPU when there is one, else an explicit ``cpu``
    (a real paper run on the CPU needs ``device=cpu`` said by the user; a rehearsal is meant for it)."""
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def schedule_overrides(cfg: Any) -> list[str]:
    """The family-specific part of the truncated schedule, after :data:`SCHEDULE_OVERRIDES`:
    CLIP-ReID's stage switch after the first epoch (stage 1 on a cache batch of 8), CMFT's loss-stage
    switch after the first epoch, BUPTCampus's official evaluation at a test batch of 2."""
    out = []
    name = cfg.model.name
    if name == "clipreid":
        out += ["model.extra.stage1_epochs=1", "model.extra.stage1_batch=8", "sched.switch_epoch=1",
                "sched.first_warmup_epochs=0"]
    if name == "cmft":
        out += ["model.extra.warm_epochs=1"]
    for data in (cfg.data, ):
        if data.dataset == "bupt":
            out += ["data.bupt_eval_batch=2"]
    if cfg.eval.dataset == "bupt" and cfg.data.dataset != "bupt":
        out += ["data.bupt_eval_batch=2"]
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m reprolib rehearse prepare``: write the stand-ins and worlds, print where they are.
    (``python -m reprolib rehearse train CONFIG`` is in :mod:`reprolib.cli`, above the workbook.)"""
    p = argparse.ArgumentParser(prog="reprolib rehearse prepare", description=__doc__.splitlines()[0])
    p.parse_args(argv)
    setup = prepare()
    print(json.dumps({"roots": setup.roots, "vcm_layout_a": setup.vcm_layout_a, "clip_weights": setup.clip_weights,
                      "resnet_weights": setup.resnet_weights, "clip_files": setup.clip_files, "env": setup.env},
                     indent=1))
    return 0
