"""Trial-based protocols: evaluate over several trials and report the mean and spread.

Two image benchmarks of CMFT (Tables 7 and 8; ``docs/decisions/data.md#image-benchmarks``) average ten
trials:

* **SYSU-MM01**: one trained model, ten random single-shot galleries (trial ``t`` draws its
  gallery with ``random.seed(t)``, ``t = 0..9``, as DDAG's ``process_gallery_sysu``):
  :data:`SYSU_TRIALS`.
* **RegDB**: ten train/test identity splits ``idx/*_{t}.txt``, ``t = 1..10``, one model per
  split: :data:`REGDB_TRIALS`.

The papers print only the mean; we also keep every trial and the standard deviation.

Example::

    summary = run_trials(lambda t: evaluate_sysu(dist[:, ds.gallery_indices(t)], ...), SYSU_TRIALS)
    summary.mean["R1"], summary.std["R1"]
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np

from reprolib.metrics.result import EvalResult

#: Metrics of Tables 7 and 8 (percentages, as :meth:`EvalResult.to_dict` gives them).
TRIAL_METRICS = ("R1", "R10", "R20", "mAP", "mINP")
#: SYSU-MM01 gallery trials: the seed of each single-shot gallery draw (official 0..9).
SYSU_TRIALS = tuple(range(10))
#: RegDB split trials: the ``t`` of ``idx/train_visible_{t}.txt`` (official 1..10).
REGDB_TRIALS = tuple(range(1, 11))

TrialResult = Union[EvalResult, Mapping[str, float]]


@dataclass(frozen=True)
class TrialSummary:
    """Metrics of every trial with their mean and standard deviation.

    Attributes:
        trials: trial ids in evaluation order.
        per_trial: one ``{metric: value}`` per trial, aligned with ``trials``.
        mean: ``{metric: mean over trials}``.
        std: ``{metric: standard deviation over trials}`` (``ddof`` below; NaN when
            ``ddof >= number of trials``).
        ddof: delta degrees of freedom of ``std`` (0: population, 1: sample).
    """

    trials: tuple[int, ...]
    per_trial: tuple[dict[str, float], ...]
    mean: dict[str, float]
    std: dict[str, float]
    ddof: int = 0

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metric names, in report order."""
        return tuple(self.mean)

    def to_dict(self) -> dict:
        """JSON-serialisable form: ``{trials, ddof, mean, std, per_trial: {trial: metrics}}``."""
        return {
            "trials": list(self.trials),
            "ddof": self.ddof,
            "mean": dict(self.mean),
            "std": dict(self.std),
            "per_trial": {str(t): dict(m) for t, m in zip(self.trials, self.per_trial)},
        }

    def summary(self) -> str:
        """One line such as ``R1 82.47 ± 1.20 | ... | mINP 64.67 ± 0.90 (10 trials)``."""
        parts = [f"{k} {self.mean[k]:.2f} ± {self.std[k]:.2f}" for k in self.metrics]
        return " | ".join(parts) + f" ({len(self.trials)} trial{'s' if len(self.trials) != 1 else ''})"


def _metrics_of(result: TrialResult, metrics: Sequence[str], trial: int) -> dict[str, float]:
    """Pick ``metrics`` from an :class:`EvalResult` (as percentages) or a metrics mapping."""
    values = result.to_dict() if isinstance(result, EvalResult) else result
    missing = [m for m in metrics if m not in values]
    if missing:
        raise KeyError(f"trial {trial}: result has no {', '.join(missing)} (has {', '.join(values)}); "
                       f"evaluate with max_rank >= 20 for R20")
    return {m: float(values[m]) for m in metrics}


def summarize_trials(results: Mapping[int, TrialResult], metrics: Sequence[str] = TRIAL_METRICS,
                     ddof: int = 0) -> TrialSummary:
    """Mean and standard deviation of per-trial metrics.

    Args:
        results: ``{trial: EvalResult or {metric: value}}`` in trial order; an
            :class:`EvalResult` contributes its percentages (:meth:`EvalResult.to_dict`).
        metrics: which metrics to aggregate (default R1, R10, R20, mAP, mINP).
        ddof: delta degrees of freedom of the standard deviation (0: population, NumPy's
            default; 1: sample).

    Returns:
        The :class:`TrialSummary`.

    Raises:
        ValueError: no trial given, or ``ddof < 0``.
        KeyError: a trial lacks one of ``metrics``.
    """
    if not results:
        raise ValueError("summarize_trials: no trial results given")
    if ddof < 0:
        raise ValueError(f"summarize_trials: ddof must be >= 0, got {ddof}")
    trials = tuple(int(t) for t in results)
    per_trial = tuple(_metrics_of(r, metrics, t) for t, r in zip(trials, results.values()))
    table = np.array([[row[m] for m in metrics] for row in per_trial], dtype=np.float64)  # (n_trials, n_metrics)
    mean = table.mean(axis=0)  # (n_metrics,)
    if len(trials) > ddof:
        std = table.std(axis=0, ddof=ddof)  # (n_metrics,)
    else:
        std = np.full(len(metrics), np.nan)
    return TrialSummary(trials=trials, per_trial=per_trial, mean=dict(zip(metrics, mean.tolist())),
                        std=dict(zip(metrics, std.tolist())), ddof=ddof)


def run_trials(evaluate_trial: Callable[[int], TrialResult], trials: Iterable[int],
               metrics: Sequence[str] = TRIAL_METRICS, ddof: int = 0) -> TrialSummary:
    """Run one evaluation per trial and summarise them.

    Args:
        evaluate_trial: ``trial -> EvalResult`` (or a ``{metric: value}`` mapping such as a
            run's ``metrics.json`` entry), e.g. an evaluation on the trial's SYSU-MM01 gallery
            or of the model trained on the trial's RegDB split.
        trials: trial ids (:data:`SYSU_TRIALS`, :data:`REGDB_TRIALS`).
        metrics: which metrics to aggregate.
        ddof: delta degrees of freedom of the standard deviation.

    Returns:
        The :class:`TrialSummary`.
    """
    return summarize_trials({int(t): evaluate_trial(int(t)) for t in trials}, metrics, ddof)
