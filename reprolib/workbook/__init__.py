"""The notebook machinery in one place: what the workbook's notebooks are made of and how they run.

* :mod:`.targets`: reproduction targets as data (``specs/<paper>.yaml``: rows, claims) and
  :func:`~reprolib.workbook.targets.reproduce`, which asks the run store for a target's rows;
* :mod:`.session`: :class:`~reprolib.workbook.session.Workbook`, a notebook's session (profile,
  data root, device, overrides; the miniature world; tables and figures under ``results/<profile>/``);
* :mod:`.compare`: the paper-vs-ours tables and where results are written;
* :mod:`.checks`: :func:`~reprolib.workbook.checks.check_target`, the checks cell of every target notebook;
* :mod:`.generate`: writes ``notebooks/<NNN>_<paper>_<item>.ipynb`` from the specs
  (``python -m reprolib notebook generate [--check]``);
* :mod:`.runner`: renders notebooks headless with papermill (``python -m reprolib notebook run|list``).

Import the submodules (``from reprolib.workbook.session import Workbook``); this package itself
imports nothing heavy.
"""
