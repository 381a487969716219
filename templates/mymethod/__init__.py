"""``mymethod``: a template model family for your own method (copy this folder and rename it).

The method here is deliberately small so that the template trains in minutes on the miniature
world: the common CLIP baseline (VLD Table III "B") with its temporal average pooling replaced by
a choice of temporal pooling (``model.extra.pool``: ``max`` or ``mean``). Replace :mod:`.model` with
your model and :mod:`.options` with its ``model.extra`` schema; keep the ``register_model`` call.

How the workbook finds this family (``docs/new_method.md``): put the folder holding this package on
``REPROLIB_FAMILY_PATH`` (``export REPROLIB_FAMILY_PATH=$PWD/templates/mymethod``), or install your
package with an entry point in the ``reprolib.models`` group. Importing the package registers the
family.
"""
from .model import MyMethod
from .options import MyMethodOptions

__all__ = ["MyMethod", "MyMethodOptions"]
