"""Experiment configuration: YAML with base inheritance, validated into typed dataclasses.

An experiment is a YAML file. ``base:`` names one or more parent files (relative to the
file, or a bare name resolved in ``reprolib/configs/``); the child holds only its
differences, merged key by key. A ``profiles:`` mapping holds per-profile overrides
(``smoke``, ``embedded``, ``paper``) applied after inheritance, and ``--set key=value``
overrides are applied last. Every key must exist in the dataclasses below: a misspelt key is
an error naming the key and the nearest valid one.

Example::

    cfg = load_config("vld_baseline", profile="embedded", overrides=["train.epochs=2"])
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from reprolib.models.registry import family_options

CONFIG_DIR = Path(__file__).parent / "configs"
PROFILES = ("smoke", "embedded", "paper")
_ENV_VAR = re.compile(r"\$\{(\w+)\}")


class ConfigError(ValueError):
    """Raised for an invalid configuration; the message names the file and key."""


#: A YAML 1.2 core-schema float. PyYAML implements YAML 1.1, whose floats need a dot and a signed
#: exponent, so it reads ``3e-4``, ``1e6`` and ``1.0e6`` as strings; a float field accepts them.
_YAML12_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


# --------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    dataset: str = "hitsz-vcm"  # "hitsz-vcm" | "bupt" | "sysu-mm01" | "regdb"
    root: str = "${REPROLIB_DATA}"  # dataset root; ${VAR} expands from the environment
    layout: str = "auto"  # HITSZ-VCM layout: "auto" | "A" (merged + info/) | "B" (Train/ Test/ info/)
    min_seq_len: int = 12  # tracklets shorter than this are dropped (after the query/gallery split)
    seq_len: int = 6  # frames per clip (T)
    height: int = 288
    width: int = 144
    train_sampling: str = "chunk"  # "chunk" (restricted random) | "bupt_random" | "consecutive" | "bupt_restricted"
    test_sampling: str = "chunk_first"  # "chunk_first" | "dense" | "bupt_uniform" | "consecutive"
    sampler: str = "vcm"  # identity sampler: "vcm" | "bupt"
    num_ids: int = 4  # P: identities per batch
    num_pos: int = 4  # K: tracklets per identity and modality (vcm); cameras per identity (bupt)
    sampler_replace: bool = True  # vcm sampler draws tracklets with replacement (official)
    sampler_length: str = "max"  # vcm epoch length from "max" (VLD) or "min" (MITML) modality count
    augment: str = "vld"  # augmentation recipe: "none" | "mitml" | "vld" | "xreid" | "xreid_released" | "bupt"
    pad: int = 10  # Pad(pad)+RandomCrop of the pad/crop recipes (official 10 px at 288x144)
    augment_per: str = "frame"  # randomness of crop/flip/erasing: "frame" (official) | "tracklet"
    normalization: str = "imagenet"  # "imagenet" (what all official codes use) | "clip"
    bupt_eval_mode: str = "official"  # "official" (batch-64 RGB tail drop) | "full"
    bupt_eval_batch: int = 64  # batch size of the official ConsistentModalitySampler
    sysu_mode: str = "all"  # SYSU-MM01 gallery cameras: "all" (1, 2, 4, 5) | "indoor" (1, 2)
    sysu_trial: int = 0  # SYSU-MM01 single-shot gallery seed of eval_sets (official trials 0..9)
    regdb_trial: int = 1  # RegDB split idx/*_{t}.txt to train and test on (official 1..10)
    num_workers: int = 0
    test_batch_size: int = 32


@dataclass
class BackboneConfig:
    arch: str = "ViT-B-16-quickgelu"  # open_clip model name
    pretrained: str = "openai"  # "openai" | "none" (random init) | a file or local-dir path | "tinyclip"
    weights_path: str = ""  # explicit local weights file; else $CLIP_WEIGHTS or the HF cache
    stride: int = 0  # patch-embedding stride; 0 = the patch size (non-overlapping, as CLIP)
    sie: bool = False  # camera embedding (SIE) added to [CLS]
    sie_coef: float = 1.0
    freeze_patch_embed: bool = False


@dataclass
class ModelConfig:
    name: str = "baseline"  # registered model family
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    feature: str = "proj"  # which per-frame feature the baseline pools: "cls" (768) | "proj" (512)
    temporal_pool: str = "tap"  # fixed: "tap" (temporal average pooling); kept so run configs keep their keys
    neck: str = "bnneck"  # "bnneck" | "none"
    extra: dict = field(default_factory=dict)  # validated at load by the family's options class (validate_model)


@dataclass
class LossConfig:
    id_weight: float = 1.0
    label_smoothing: float = 0.0
    triplet: str = "wrt"  # metric loss: "wrt" | "batch_hard" | "none"
    triplet_weight: float = 1.0
    triplet_margin: float = 0.3
    wrt_legacy_numerics: bool = True  # VLD's exact shift and 1e-6 epsilon (docs/decisions/vld.md#v26-wrt-numerics)


@dataclass
class OptimConfig:
    name: str = "adamw"  # "adam" | "adamw" | "sgd"
    lr: float = 2.5e-5
    weight_decay: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = False  # SGD only (CMFT's recommended preset, docs/decisions/cmft.md#c8-optimiser-epochs-and-learning-rate)
    betas: tuple = (0.9, 0.999)
    head_lr_mult: float = 25.0  # multiplier for heads (classifiers, BNNeck) and new modules
    bias_lr_mult: float = 1.0
    bias_weight_decay: float = 1e-4
    grad_clip: float = 0.0  # max grad norm; 0 disables


@dataclass
class SchedulerConfig:
    name: str = "cosine"  # "cosine" (timm-style per epoch) | "warmup_multistep" | "cosine_then_multistep"
    warmup_epochs: int = 3
    warmup_factor: float = 0.01  # warmup starts at lr * warmup_factor
    milestones: tuple = (30, 50)
    gamma: float = 0.1
    min_lr: float = 1e-6  # cosine floor (absolute, shared by every group, as timm)
    warmup_lr_init: Optional[float] = None  # cosine warmup start (absolute); None = min_lr
    switch_epoch: int = 0  # cosine_then_multistep: cosine over [0, switch), then warmup + steps from it
    first_warmup_epochs: int = 0  # cosine_then_multistep: warmup of the first stage (from warmup_lr_init)


@dataclass
class TrainConfig:
    epochs: int = 24
    iters_per_epoch: int = 200
    amp: str = "auto"  # "auto" (bf16 on CUDA, off on CPU) | "bf16" | "fp16" | "off"
    log_every: int = 20  # console log line every N steps (0: none; train_log.jsonl records every step)
    ckpt_every_iters: int = 0  # extra checkpoints inside an epoch (0: at epoch ends only)
    eval_every: int = 0  # evaluate every N epochs (0: only at the end)
    nan_guard: bool = True
    deterministic: bool = True  # torch.use_deterministic_algorithms(warn_only=True), no TF32
    find_unused_parameters: bool = True  # DDP: some paper modules leave parameters without gradient


@dataclass
class EvalConfig:
    distance: str = "inner"  # "cosine" | "euclidean" (on L2-normalised features) | "inner" (raw)
    directions: tuple = ("ir2rgb", "rgb2ir")
    max_rank: int = 20
    flip_test: bool = False
    # Cross-dataset testing (VLD Table VIII): evaluate on another dataset than the one trained on,
    # with that dataset's test protocol. "" = the training dataset / its root.
    dataset: str = ""
    root: str = ""


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    paper: str = ""  # "xreid" | "vld" | "cmft" | "" (shared)
    seed: int = 1
    profile: str = "embedded"
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedulerConfig = field(default_factory=SchedulerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def _resolve_path(name: str, relative_to: Optional[Path]) -> Path:
    candidates = []
    p = Path(name)
    if p.suffix not in (".yaml", ".yml"):
        p = p.with_suffix(".yaml")
    if p.is_absolute():
        candidates.append(p)
    else:
        if relative_to is not None:
            candidates.append(relative_to / p)
        candidates.append(Path.cwd() / p)
        candidates.append(CONFIG_DIR / p)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    available = sorted(q.stem for q in CONFIG_DIR.rglob("*.yaml"))
    near = difflib.get_close_matches(Path(name).stem, available, n=1)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    raise ConfigError(
        f"config '{name}' not found (looked in {', '.join(str(c.parent) for c in candidates)}).{hint}"
    )


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_yaml_tree(name: str, relative_to: Optional[Path] = None, _seen: tuple = ()) -> dict:
    """Load a YAML config and its ``base:`` ancestors into one merged mapping.

    ``"a+b"`` (bare names joined by ``+``) composes configs without a file: ``b`` is merged over
    ``a`` exactly as ``base: [a, b]`` would, and the experiment is named ``a_b``
    (``xreid+bupt``: X-ReID on BUPTCampus through the ``bupt`` data mixin).
    """
    if "+" in name and not name.endswith((".yaml", ".yml")):
        parts = [p.strip() for p in name.split("+")]
        merged: dict = {}
        for part in parts:
            merged = deep_merge(merged, load_yaml_tree(part, relative_to, _seen))
        merged["name"] = "_".join(parts)
        return merged
    path = _resolve_path(name, relative_to)
    if path in _seen:
        raise ConfigError(f"circular 'base:' inheritance: {' -> '.join(map(str, _seen + (path,)))}")
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    bases = raw.pop("base", [])
    if isinstance(bases, str):
        bases = [bases]
    merged: dict = {}
    for b in bases:
        merged = deep_merge(merged, load_yaml_tree(b, path.parent, _seen + (path,)))
    merged = deep_merge(merged, raw)
    merged.setdefault("_sources", [])
    merged["_sources"] = list(merged.get("_sources", [])) + [str(path)]
    return merged


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (numbers, lists, booleans)."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key.path=value")
    key, value = item.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def _set_path(tree: dict, keys: list[str], value: Any) -> None:
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {'.'.join(keys)}: '{k}' is not a section")
    node[keys[-1]] = value


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Union:  # Optional[X], Union[X, Y]: the first type that accepts the value
        if value is None and type(None) in typing.get_args(tp):
            return None
        errors = []
        for arg in (a for a in typing.get_args(tp) if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e).split(": expected ", 1)[-1].split(",")[0])
        raise ConfigError(f"{where}: expected {' or '.join(errors)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _YAML12_FLOAT.match(value.strip()):
            return float(value)  # YAML 1.2 number PyYAML (YAML 1.1) left as a string: 3e-4, 1e6, 1.0e6
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number (e.g. 3e-4 or 0.0003), got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is tuple or origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(value)
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys raise with the nearest valid key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        if key.startswith("_"):
            continue
        if key not in names:
            near = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            hint = f"; did you mean '{where}.{near[0]}'?" if near else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown key '{where}.{key}'{hint}")
        kwargs[key] = _coerce(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


def _expand_env(obj: Any) -> Any:
    if isinstance(obj, str):
        return os.path.expandvars(obj)
    if isinstance(obj, dict):
        return {k: _expand_env(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_expand_env(v) for v in obj]
    return obj


def resolve_tree(name: str, profile: Optional[str] = None, overrides: Optional[list[str]] = None) -> dict:
    """Merged mapping of a config: bases, then ``profiles[profile]``, then ``--set`` overrides."""
    tree = load_yaml_tree(name)
    profiles = tree.pop("profiles", {}) or {}
    profile = profile or tree.get("profile", "embedded")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'; expected one of {', '.join(PROFILES)}")
    unknown = set(profiles) - set(PROFILES)
    if unknown:
        raise ConfigError(f"{tree['_sources'][-1]}: unknown profile section(s) {sorted(unknown)}")
    tree = deep_merge(tree, profiles.get(profile, {}) or {})
    tree["profile"] = profile
    for item in overrides or []:
        keys, value = parse_override(item)
        _set_path(tree, keys, value)
    return tree


def load_config(name: str, profile: Optional[str] = None, overrides: Optional[list[str]] = None,
                expand_env: bool = False) -> ExperimentConfig:
    """Load, merge and validate an experiment config.

    Args:
        name: a YAML path, or a bare name resolved in ``reprolib/configs/``.
        profile: ``smoke`` | ``embedded`` | ``paper``; default: the file's ``profile`` key.
        overrides: ``key.path=value`` strings applied last.
        expand_env: expand ``${VAR}`` in string values now. Off by default: paths stay as
            written (so a run's hash does not depend on where the data lives) and are resolved
            when used, by :func:`resolve_path`.

    Returns:
        The validated :class:`ExperimentConfig`.

    Raises:
        ConfigError: on a missing file, unknown key, wrong type or unknown profile.
    """
    tree = resolve_tree(name, profile, overrides)
    sources = tree.pop("_sources", [])
    if expand_env:
        tree = _expand_env(tree)
    try:
        cfg = from_dict(ExperimentConfig, tree, "config")
        validate_ranges(cfg)
        validate_model(cfg.model)
    except ConfigError as e:
        raise ConfigError(f"{_blame(str(e), sources, overrides, tree.get('profile'), name)}: {e}") from None
    return cfg


#: Datasets a config can name (``data.dataset``; ``eval.dataset`` may also be empty).
DATASETS = ("hitsz-vcm", "bupt", "sysu-mm01", "regdb")
#: ``key: minimum`` of the integer and float values checked by :func:`validate_ranges`.
_MINIMUMS: dict[str, int] = {
    "data.seq_len": 1, "data.num_ids": 1, "data.num_pos": 1, "data.min_seq_len": 0, "data.height": 1,
    "data.width": 1, "data.num_workers": 0, "data.test_batch_size": 1, "data.bupt_eval_batch": 1,
    "data.pad": 0, "train.iters_per_epoch": 1, "train.epochs": 0, "train.log_every": 0,
    "train.ckpt_every_iters": 0, "train.eval_every": 0, "eval.max_rank": 1, "optim.lr": 0,
    "optim.weight_decay": 0, "sched.warmup_epochs": 0,
}


def validate_ranges(cfg: "ExperimentConfig") -> None:
    """Check value ranges and names that the types alone do not catch, naming the key.

    ``data.seq_len >= 1``, ``data.num_ids >= 1`` and the other minimums of :data:`_MINIMUMS`;
    ``data.dataset`` (and a non-empty ``eval.dataset``) one of :data:`DATASETS`, with the nearest
    name suggested.

    Raises:
        ConfigError: the first value out of range; the message starts with its key.
    """
    for key, minimum in _MINIMUMS.items():
        section, leaf = key.split(".")
        value = getattr(getattr(cfg, section), leaf)
        if value < minimum:
            raise ConfigError(f"{key}: expected {key} >= {minimum}, got {value!r}")
    for key, value, allowed in (("data.dataset", cfg.data.dataset, DATASETS),
                                ("eval.dataset", cfg.eval.dataset, ("",) + DATASETS)):
        if value not in allowed:
            near = difflib.get_close_matches(value, DATASETS, n=1, cutoff=0.3)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ConfigError(f"{key}: unknown dataset {value!r}; expected one of {', '.join(DATASETS)}{hint}")


def validate_model(model_cfg: "ModelConfig") -> None:
    """Check ``model.name`` against the registered families and ``model.extra`` against the family's
    options class (:func:`reprolib.models.registry.family_options`), without building a model.

    ``model.extra`` stays a plain mapping in :class:`ExperimentConfig` (what run keys hash); here it
    is only validated: unknown keys with the nearest valid key and wrong types as for the rest of the
    config, then the family's own value checks (its options class's ``from_dict``).

    Raises:
        ConfigError: an unknown family (with the nearest name), an unknown or mistyped
            ``model.extra`` key, a bad value, or a ``model.temporal_pool`` other than ``tap``.
    """
    if model_cfg.temporal_pool != "tap":
        raise ConfigError(f"model.temporal_pool: fixed to 'tap' (temporal average pooling, the clip pooling of "
                          f"every family; VLD's Table IV heads are model.extra.temporal_head), got "
                          f"{model_cfg.temporal_pool!r}")
    try:
        options = family_options(model_cfg.name)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    if options is None:
        if model_cfg.extra:
            raise ConfigError(f"model.extra: family '{model_cfg.name}' takes no model.extra keys, got "
                              f"{sorted(model_cfg.extra)}")
        return
    from_dict(options, model_cfg.extra, "config.model.extra")  # unknown keys (nearest key), types
    parse = getattr(options, "from_dict", None)
    if parse is not None:
        try:
            parse(model_cfg.extra)  # the family's value checks
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(str(e)) from None


def _blame(message: str, sources: list, overrides: Optional[list[str]], profile: Optional[str], name: str) -> str:
    """Where the value a :class:`ConfigError` is about came from: the ``--set`` that set its key,
    else the last YAML file (of the ``base:`` chain) that writes it, else the config itself."""
    m = re.search(r"config\.([\w.]+)", message) or re.match(r"([A-Za-z_]\w*(?:\.\w+)+):", message)
    key = m.group(1).rstrip(".") if m else ""
    if key:
        for item in reversed(overrides or []):
            k = item.split("=", 1)[0].strip()
            if k == key or key.startswith(k + ".") or k.startswith(key + "."):
                return f"--set {item}"
        parts = key.split(".")
        for src in reversed(sources):
            try:
                with open(src) as f:
                    raw = yaml.safe_load(f) or {}
            except (OSError, yaml.YAMLError):
                continue
            for node in (((raw.get("profiles") or {}).get(profile) or {}) if isinstance(raw, dict) else {}, raw):
                for p in parts:
                    node = node.get(p) if isinstance(node, dict) else None
                if node is not None:
                    return str(src)
    return str(sources[-1]) if sources else name


def to_dict(cfg: Any) -> dict:
    """Plain, JSON-serialisable mapping of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=list))


def config_hash(cfg: Any, extra: Optional[dict] = None, length: int = 12) -> str:
    """Stable hash of a resolved config (a config dataclass or its :func:`to_dict` mapping) and
    optional extra keys (the run store adds the profile, the number of processes and the family's
    results version)."""
    payload = {"config": cfg if isinstance(cfg, dict) else to_dict(cfg), "extra": extra or {}}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def resolve_path(value: str, what: str = "data.root") -> Path:
    """Resolve a path from a config: expand ``${VAR}`` and ``~``; relative paths are taken from
    the project root (where the README is), so notebooks and the CLI agree whatever their cwd.

    Raises:
        ConfigError: when a referenced environment variable is not set.
    """
    from reprolib import PROJECT_ROOT

    missing = [v for v in _ENV_VAR.findall(value) if v not in os.environ]
    if missing:
        raise ConfigError(
            f"{what} is '{value}' but the environment variable {missing[0]} is not set; set it "
            f"(e.g. export {missing[0]}=/path/to/dataset), pass DATA_ROOT=... to make, "
            f"or override with --set {what}=/path")
    p = Path(os.path.expanduser(os.path.expandvars(value)))
    return p if p.is_absolute() else (PROJECT_ROOT / p)
