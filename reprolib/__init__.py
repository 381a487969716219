"""reprolib: a reproducibility workbook for video visible-infrared person re-identification.

It reproduces X-ReID, VLD and CMFT on the real benchmarks (``paper`` profile, GPU) and on a
miniature world generated offline (``embedded`` profile, CPU): same loaders, models, losses,
trainer and evaluator in every profile. See the README and ``docs/architecture.md``.
"""
from pathlib import Path

__version__ = "0.1.0"

PACKAGE_ROOT = Path(__file__).resolve().parent
#: The checkout root (README, notebooks/, results/); relative data roots resolve against it.
PROJECT_ROOT = PACKAGE_ROOT.parent
