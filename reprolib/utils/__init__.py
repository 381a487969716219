"""Small, dependency-free helpers shared by the whole library (seeding, atomic file writes)."""
from reprolib.utils.io import atomic_torch_save, atomic_write_json, atomic_write_text, read_json
from reprolib.utils.seed import (
    configure_determinism,
    get_rng_state,
    seed_everything,
    seed_worker,
    set_rng_state,
)

__all__ = [
    "atomic_torch_save",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
    "configure_determinism",
    "get_rng_state",
    "seed_everything",
    "seed_worker",
    "set_rng_state",
]
