"""Experiments: the run store, the seed spread, the cost tables and the analyses that run trained models
(the notebook machinery is :mod:`reprolib.workbook`)."""
from reprolib.experiments.runstore import Run, default_store, get_run, list_runs, run_key, run_name

__all__ = ["Run", "get_run", "list_runs", "run_key", "run_name", "default_store"]
