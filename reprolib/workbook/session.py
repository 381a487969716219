"""What every notebook does first: turn its ``parameters`` cell into configs, data and outputs.

A notebook's parameters cell holds plain literals (``profile``, ``data_root``, ``device``,
``clip_weights``, ``overrides``, and the per-dataset roots, the ResNet-50 weights and ``rehearsal``).
:class:`Workbook` maps them onto config overrides, makes sure the miniature world exists for the
``smoke`` and ``embedded`` profiles (generating it on first use, so a notebook also runs on its own
outside ``make``), and knows where the notebook's tables and figures go (``results/<profile>/``).

**Each dataset has its own root, each backbone kind its own weights.** A notebook may train on
several datasets (X-ReID Table 3: HITSZ-VCM and BUPTCampus) and several backbones (CMFT's ResNet-50
streams beside CLIP rows), so a root or a weights file is applied only to the rows it belongs to:
``data_root`` to HITSZ-VCM (``data.root`` of a HITSZ-VCM row, ``eval.root`` of a row tested on it),
``bupt_root`` to BUPTCampus, ``sysu_root`` to SYSU-MM01, ``regdb_root`` to RegDB (the parameters
of ``$REPROLIB_DATA``, ``$REPROLIB_BUPT``, ``$REPROLIB_SYSU``, ``$REPROLIB_REGDB``, which the
configs read when no parameter is given); ``clip_weights`` to rows with a CLIP backbone,
``resnet_weights`` to rows with a ResNet backbone (``$CLIP_WEIGHTS`` / ``$RESNET50_WEIGHTS``).
Nothing given for one dataset or backbone reaches another.

Example::

    wb = Workbook(profile, data_root=data_root, device=device, clip_weights=clip_weights,
                  overrides=overrides)
    run = wb.run("baseline")                  # from the run store, trained only if missing
    wb.save_figure(fig, "vld_table3_bars")
"""
from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from reprolib.config import ExperimentConfig, load_config
from reprolib.experiments.preflight import is_resnet_backbone
from reprolib.experiments.runstore import Run, default_store, ensure_world, get_run
from reprolib.workbook.compare import results_dir, save_table

log = logging.getLogger(__name__)



#: The notebook parameter (and make variable) of each dataset's root, and the environment variable
#: its configs read under the paper profile.
DATASET_ROOTS: dict[str, tuple[str, str]] = {
    "hitsz-vcm": ("data_root", "REPROLIB_DATA"),
    "bupt": ("bupt_root", "REPROLIB_BUPT"),
    "sysu-mm01": ("sysu_root", "REPROLIB_SYSU"),
    "regdb": ("regdb_root", "REPROLIB_REGDB"),
}


class Workbook:
    """Notebook session: parameters -> overrides, data readiness, output locations.

    Args:
        profile: ``smoke`` | ``embedded`` | ``paper``.
        data_root: HITSZ-VCM root ("" keeps the profile's default, ``${REPROLIB_DATA}`` on paper).
        device: ``auto`` | ``cpu`` | ``cuda``.
        clip_weights: CLIP weights file for the rows with a CLIP backbone; "" keeps the default lookup.
        overrides: extra ``key=value`` overrides applied to every run.
        bupt_root: BUPTCampus root ("" keeps ``${REPROLIB_BUPT}``).
        sysu_root: SYSU-MM01 root ("" keeps ``${REPROLIB_SYSU}``).
        regdb_root: RegDB root ("" keeps ``${REPROLIB_REGDB}``).
        resnet_weights: ImageNet ResNet-50 file for the rows with a ResNet backbone (CMFT); ""
            keeps ``$RESNET50_WEIGHTS`` / torchvision's cache.
        rehearsal: rehearse the paper profile on stand-ins (:mod:`reprolib.experiments.rehearsal`):
            stand-in weights, a paper-resolution miniature world, truncated schedules, outputs in
            ``results/rehearsal/``.
    """

    def __init__(self, profile: str = "embedded", data_root: str = "", device: str = "auto",
                 clip_weights: str = "", overrides: Sequence[str] = (), *, bupt_root: str = "",
                 sysu_root: str = "", regdb_root: str = "", resnet_weights: str = "",
                 rehearsal: bool = False) -> None:
        self.profile = profile
        self.rehearsal = bool(rehearsal)
        self.overrides = list(overrides)
        self.roots = {ds: root for ds, root in zip(DATASET_ROOTS, (data_root, bupt_root, sysu_root, regdb_root))
                      if root}
        self.clip_weights = clip_weights
        self.resnet_weights = resnet_weights
        if self.rehearsal:
            from reprolib.experiments import rehearsal as R

            if profile != "paper":
                raise ValueError(f"rehearsal=True rehearses the paper profile; got profile={profile!r}")
            log.warning("REHEARSAL of the paper profile (docs/rehearsal.md): random stand-in weights, a "
                        "paper-resolution miniature world, truncated schedules; outputs in results/rehearsal/, "
                        "and their numbers mean nothing")
            given = [f"{ds} root {root}" for ds, root in self.roots.items()] + [
                f"{kind} weights {w}" for kind, w in (("CLIP", clip_weights), ("ResNet-50", resnet_weights)) if w]
            if given:
                log.warning("rehearsal: not reading %s (a rehearsal runs on stand-ins; without REHEARSAL=1 / "
                            "rehearsal=True these are what the paper profile trains on)", ", ".join(given))
            setup = R.prepare()  # stand-in weights and the paper-resolution world (written once)
            # a rehearsal never reads real data or real weights: the stand-ins replace whatever was given,
            # and the environment too, for the code paths that read it (cost and timing tables)
            self.roots = dict(setup.roots)
            self.clip_weights, self.resnet_weights = setup.clip_weights, setup.resnet_weights
            os.environ.update({R.ENV_OF[ds]: root for ds, root in setup.roots.items()})
            os.environ.update({"CLIP_WEIGHTS": setup.clip_weights, "RESNET50_WEIGHTS": setup.resnet_weights})
            os.environ.update(setup.env)  # hf-cache: HF_HUB_CACHE at the stand-in cache, HF_HUB_OFFLINE=1
            device = R.rehearsal_device(device)
            self.overrides = [*R.SCHEDULE_OVERRIDES, *self.overrides]
        if device and device != "auto":
            self.overrides.append(f"device={device}")
        #: where this notebook's tables, figures and runs go: ``results/<profile>/`` or ``results/rehearsal/``
        self.out_profile = "rehearsal" if self.rehearsal else profile
        self.out = results_dir(self.out_profile)

    # ----------------------------------------------------------------------------- configs
    def routed_overrides(self, cfg: ExperimentConfig) -> list[str]:
        """The roots and weights files given to this notebook that belong to ``cfg``'s rows: the
        root of its training dataset, the root of the dataset it is tested on (``eval.dataset``),
        the weights of its backbone kind. Nothing else (see the module docstring)."""
        out = []
        if cfg.data.dataset in self.roots:
            out.append(f"data.root={self.roots[cfg.data.dataset]}")
        if cfg.eval.dataset and cfg.eval.dataset in self.roots:
            out.append(f"eval.root={self.roots[cfg.eval.dataset]}")
        weights = self.resnet_weights if is_resnet_backbone(cfg.model.backbone.arch) else self.clip_weights
        if weights:
            out.append(f"model.backbone.weights_path={weights}")
        return out

    def overrides_for(self, name: str, *extra: str) -> list[str]:
        """Every override :meth:`config` applies to ``name``: the notebook's, ``extra``, a rehearsal's
        family schedule, then the roots and weights that belong to it (:meth:`routed_overrides`)."""
        overrides = [*self.overrides, *extra]
        cfg = load_config(name, self.profile, overrides)
        if self.rehearsal:
            from reprolib.experiments.rehearsal import schedule_overrides

            overrides = [*overrides, *schedule_overrides(cfg)]
        return [*overrides, *self.routed_overrides(cfg)]

    def config(self, name: str, *extra: str) -> ExperimentConfig:
        """The resolved config of ``name`` under this profile, notebook overrides and ``extra``,
        with the roots and weights that belong to it (:meth:`overrides_for`)."""
        return load_config(name, self.profile, self.overrides_for(name, *extra))

    def preflight(self, requests: Sequence[tuple[str, Sequence[str]]], what: str = "this notebook") -> None:
        """Check, before anything trains, what the runs still to train need (paper profile and
        rehearsal; the miniature world is generated on demand): one error lists every problem
        (:func:`reprolib.experiments.preflight.check_configs`).

        Args:
            requests: ``(config name, extra overrides)`` of each run the notebook asks for.
            what: the notebook, for the message.
        """
        if self.profile != "paper":
            return
        from reprolib.experiments.preflight import check_configs

        pending = []
        for name, extra in requests:
            cfg = self.config(name, *extra)
            try:
                get_run(cfg, train=False, store=self.store)
            except Exception:  # noqa: BLE001 - not stored, or not even keyable (a root not set): check it
                pending.append(cfg)
        if pending:
            check_configs(pending, what)

    def run(self, name: str, *extra: str, train: bool = True) -> Run:
        """A finished run of config ``name`` (+ ``extra`` overrides) from the run store
        (``results/rehearsal/runs`` for a rehearsal, never mixed with a profile's store)."""
        return get_run(self.config(name, *extra), train=train, store=self.store)

    @property
    def store(self) -> Optional[Path]:
        """The run store of this notebook: ``None`` (the profile's) or the rehearsal's."""
        return default_store("rehearsal") if self.rehearsal else None

    @functools.lru_cache(maxsize=8)
    def dataset(self, name: str = "baseline", *extra: str):
        """The parsed dataset a config is tested on (cached per notebook): its training dataset,
        or ``eval.dataset`` for a cross-dataset run."""
        from reprolib.engine.evaluator import eval_setup

        cfg = self.config(name, *extra)
        ensure_world(cfg)
        return eval_setup(cfg)[1]

    def model(self, run: Run):
        """``(cfg, test_dataset, model, device)`` of a finished run, for analyses on its weights.

        Checkpoints are never committed, so on a fresh clone the run is retrained in place first
        (training is deterministic: the metrics come out as committed, which is checked).
        """
        from reprolib.engine import load_trained
        from reprolib.engine.evaluator import eval_setup

        if not (run.path / "last.pt").exists():
            log.warning("%s has no checkpoint (checkpoints are not committed); retraining it", run.path.name)
            again = get_run(run.config, force=True, store=self.store)
            for d, m in run.metrics["eval"].items():
                if abs(again.metrics["eval"][d]["mAP"] - m["mAP"]) > 1e-6:
                    log.warning("retrained %s: %s mAP %.4f differs from the stored %.4f (another machine?)",
                                run.path.name, d, again.metrics["eval"][d]["mAP"], m["mAP"])
        cfg, dataset, model, device = load_trained(run.path)
        cfg, dataset = eval_setup(cfg, dataset)
        return cfg, dataset, model, device

    # ---------------------------------------------------------------------------- outputs
    def save_figure(self, fig, name: str) -> Path:
        """Write ``results/<profile>/figures/<name>.png``."""
        from reprolib.viz import save_figure

        return save_figure(fig, self.out / "figures" / f"{name}.png")

    def save_table(self, table, paper: str, item: str, meta: Optional[dict] = None) -> Path:
        """Write ``results/<profile>/tables/<paper>_<item>.csv`` (+ JSON with ``meta``);
        ``results/rehearsal/tables/`` with the profile column ``rehearsal`` for a rehearsal."""
        return save_table(table, paper, item, self.out_profile, meta)

    def ranking(self, run: Run, direction: str, topk: int = 20):
        """See :func:`ranking`."""
        return ranking(run, direction, topk)

    def label(self) -> str:
        """A caption fragment saying what the numbers are (for titles and tables)."""
        if self.rehearsal:
            return ("REHEARSAL of the paper profile: random stand-in weights, a paper-resolution miniature "
                    "world, truncated schedules; the numbers mean nothing, only that every row runs")
        if self.profile == "paper":
            return "paper profile (real data)"
        return f"{self.profile} profile: SynthVCM miniature world — not a claim about the real benchmark"


def chance_trials(eval_set, trials: int = 200, seed: int = 0):
    """Metrics of ``trials`` random rankings of an eval set, one row per trial (a DataFrame).

    The reference every result should clear: its mean is the chance level (R1 of a random ranking
    is about the fraction of gallery items sharing the query's identity), and its maximum is the
    bar for a one-sided test at p < 1/trials.
    """
    import numpy as np
    import pandas as pd

    from reprolib.metrics import evaluate

    rng = np.random.default_rng(seed)
    q_p = np.array([t.pid for t in eval_set.query])
    g_p = np.array([t.pid for t in eval_set.gallery])
    q_c = np.array([t.camid for t in eval_set.query])
    g_c = np.array([t.camid for t in eval_set.gallery])
    rows = [evaluate(rng.random((len(q_p), len(g_p))), q_p, g_p, q_c, g_c, rule=eval_set.rule).to_dict()
            for _ in range(trials)]
    return pd.DataFrame(rows)


def chance_level(eval_set, trials: int = 200, seed: int = 0) -> dict:
    """Mean metrics of random rankings (see :func:`chance_trials`)."""
    return chance_trials(eval_set, trials, seed).mean().to_dict()


def above_chance(metrics: dict, eval_set, metric: str = "mAP", trials: int = 200) -> bool:
    """Whether ``metrics[metric]`` beats every one of ``trials`` random rankings (p < 1/trials)."""
    return float(metrics[metric]) > float(chance_trials(eval_set, trials)[metric].max())


def ranking(run: Run, direction: str, topk: int = 20):
    """Top-``topk`` gallery indices per query of a run in one direction, nearest first.

    Rankings are small, so they are kept in the run directory (``ranking_<direction>.npy``, committed
    with the embedded results) and figures can be redrawn without the checkpoint, which never is.
    The first call computes them from ``last.pt`` exactly as the run was evaluated.

    Returns:
        (num_query, topk) int array of indices into ``dataset.eval_sets[direction].gallery``.
    """
    import numpy as np

    from reprolib.utils.io import atomic_write

    path = run.path / f"ranking_{direction}.npy"
    if path.exists():
        return np.load(path)
    from reprolib.engine import load_trained
    from reprolib.engine.evaluator import direction_distances, eval_setup

    cfg, dataset, model, dev = load_trained(run.path)
    cfg, dataset = eval_setup(cfg, dataset)
    dist = direction_distances(model, dataset, cfg, (direction,), dev)[direction][0]  # (Q, G)
    top = np.argsort(np.asarray(dist), axis=1, kind="stable")[:, :topk].astype(np.int32)
    atomic_write(path, lambda f: np.save(f, top))
    return top
