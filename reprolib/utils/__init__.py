"""Small, dependency-free helpers shared by the whole library (seeding, atomic file writes, lazy
exports). The names below are exported lazily (:mod:`reprolib.utils.lazy`): importing
``reprolib.utils`` does not import torch."""
from reprolib.utils.lazy import lazy_exports

_EXPORTS = {
    "atomic_torch_save": "io",
    "atomic_write_json": "io",
    "atomic_write_text": "io",
    "read_json": "io",
    "configure_determinism": "seed",
    "get_rng_state": "seed",
    "seed_everything": "seed",
    "seed_worker": "seed",
    "set_rng_state": "seed",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
