"""Official released checkpoints imported into reprolib's model families
(``python -m reprolib weights import``; docs/decisions/official_weights.md#families).

* :mod:`~reprolib.models.official.mapping`: rules, drops, derived tensors and the strict audit;
* :mod:`~reprolib.models.official.reader`: reading a released file safely (tensors only);
* :mod:`~reprolib.models.official.vld`, :mod:`~reprolib.models.official.clipreid`,
  :mod:`~reprolib.models.official.tfclip`, :mod:`~reprolib.models.official.xreid`: the families' mappings,
  each naming the repository, commit and files its key names and shapes come from;
* :mod:`~reprolib.models.official.releases`: what each family's releases are and which reported numbers
  ``make eval-released`` (notebook ``95_eval_released``) sets beside our evaluation of one;
* :mod:`reprolib.experiments.official_import`: the run directory and the command line (it needs the data,
  engine and run store, which sit above the models).

Example::

    python -m reprolib weights import vld VLD_VCM.pth                    # config vld, paper profile
    python -m reprolib weights import vld VLD_BUPT.pth --config vld_bupt
    python -m reprolib eval results/paper/imported/vld-<sha12>
"""
from reprolib.models.official.mapping import (Derived, Drop, FamilyMapping, ImportAudit, ImportAuditError, Rule,
                                              apply_mapping, invert_mapping)
from reprolib.models.official.reader import OfficialFormatError, read_official_state_dict

__all__ = ["Derived", "Drop", "FamilyMapping", "ImportAudit", "ImportAuditError", "Rule", "apply_mapping",
           "invert_mapping", "OfficialFormatError", "read_official_state_dict"]
