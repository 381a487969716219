"""Experiments: the run store and the paper-vs-ours comparison used by every notebook."""
from reprolib.experiments.runstore import Run, code_version, default_store, get_run, list_runs, run_key

__all__ = ["Run", "get_run", "list_runs", "run_key", "code_version", "default_store"]
