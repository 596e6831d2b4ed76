"""Seeds for every random stream that feeds training.

A run seeds its streams at fixed points from a few integers it can always recompute --
the run seed (``randomness.seed``, stored in every checkpoint), the rank, and the
iteration or the (epoch, batch, slot) of a sample -- instead of letting them drift from a
single seed at start-up. The state of every stream at any point of training is then a
function of numbers a checkpoint already holds, so a resumed run is back on the same
streams without pickling generator states (and without gathering them from every rank).
"""
import contextlib
import random
from typing import Iterator, Optional

import numpy as np
import torch

# First key of every seed, so that the model's and the data's seeds never coincide.
MODEL_STREAM, DATA_STREAM = 1, 2


def sample_seed(*keys: int) -> int:
    """A 63-bit seed mixed from non-negative integers.

    ``SeedSequence`` hashes its input, so neighbouring keys give unrelated streams.
    """
    words = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: Optional[int]) -> Iterator[None]:
    """Run a block with Python, NumPy and torch (CPU) seeded from ``seed``, then put the
    caller's streams back, so the block neither depends on nor disturbs them.

    ``seed=None`` runs the block on the caller's streams unchanged.
    """
    if seed is None:
        yield
        return
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)  # CPU only: CUDA streams belong to the model
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
