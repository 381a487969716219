"""What every notebook does first: turn its ``parameters`` cell into configs, data and outputs.

A notebook's parameters cell holds plain literals (``profile``, ``data_root``, ``device``,
``clip_weights``, ``overrides``). :class:`Workbook` maps them onto config overrides once, makes
sure the miniature world exists for the ``smoke`` and ``embedded`` profiles (generating it on
first use, so a notebook also runs on its own outside ``make``), and knows where the notebook's
tables and figures go (``results/<profile>/``).

Example::

    wb = Workbook(profile, data_root=data_root, device=device, clip_weights=clip_weights,
                  overrides=overrides)
    run = wb.run("baseline")                  # from the run store, trained only if missing
    wb.save_figure(fig, "vld_table3_bars")
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Optional, Sequence

from reprolib.config import ExperimentConfig, load_config
from reprolib.experiments.compare import results_dir, save_table
from reprolib.experiments.runstore import Run, ensure_world, get_run

log = logging.getLogger(__name__)



class Workbook:
    """Notebook session: parameters -> overrides, data readiness, output locations.

    Args:
        profile: ``smoke`` | ``embedded`` | ``paper``.
        data_root: real dataset root (paper profile); "" keeps the profile's default.
        device: ``auto`` | ``cpu`` | ``cuda``.
        clip_weights: CLIP weights file for the paper profile; "" keeps the default lookup.
        overrides: extra ``key=value`` overrides applied to every run.
    """

    def __init__(self, profile: str = "embedded", data_root: str = "", device: str = "auto",
                 clip_weights: str = "", overrides: Sequence[str] = ()) -> None:
        self.profile = profile
        self.overrides = list(overrides)
        if data_root:
            self.overrides.append(f"data.root={data_root}")
        if device and device != "auto":
            self.overrides.append(f"device={device}")
        if clip_weights:
            self.overrides.append(f"model.backbone.weights_path={clip_weights}")
        self.out = results_dir(profile)

    # ----------------------------------------------------------------------------- configs
    def config(self, name: str, *extra: str) -> ExperimentConfig:
        """The resolved config of ``name`` under this profile, notebook overrides and ``extra``."""
        return load_config(name, self.profile, [*self.overrides, *extra])

    # ------------------------------------------------------------------------------- runs
    def run(self, name: str, *extra: str, train: bool = True) -> Run:
        """A finished run of config ``name`` (+ ``extra`` overrides) from the run store."""
        return get_run(self.config(name, *extra), train=train)

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
            again = get_run(run.config, force=True)
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
        """Write ``results/<profile>/tables/<paper>_<item>.csv`` (+ JSON with ``meta``)."""
        return save_table(table, paper, item, self.profile, meta)

    def ranking(self, run: Run, direction: str, topk: int = 20):
        """See :func:`ranking`."""
        return ranking(run, direction, topk)

    def label(self) -> str:
        """A caption fragment saying what the numbers are (for titles and tables)."""
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

    from reprolib.eval import evaluate

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
