"""Every random stream that feeds training: capture, restore, store in a checkpoint.

The streams are Python's ``random``, NumPy's global generator, torch's CPU generator and,
once CUDA is in use, every CUDA generator. A captured state is a plain dict of tensors and
Python numbers, so checkpoints holding it still load with ``torch.load(weights_only=True)``.
"""
import contextlib
import random
from typing import Iterator, Optional

import numpy as np
import torch


def capture() -> dict:
    """The current state of every generator, as a checkpoint-safe dict."""
    _, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = dict(
        python=dict(version=version, internal=torch.tensor(internal, dtype=torch.int64),
                    gauss_next=gauss_next),
        numpy=dict(keys=torch.from_numpy(keys.astype(np.int64)), pos=int(pos),
                   has_gauss=int(has_gauss), cached_gaussian=float(cached_gauss)),
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict) -> None:
    """Set every generator to a state returned by :func:`capture`."""
    py = state['python']
    random.setstate((py['version'], tuple(int(v) for v in py['internal'].tolist()),
                     py['gauss_next']))
    npy = state['numpy']
    np.random.set_state(('MT19937', npy['keys'].numpy().astype(np.uint32), npy['pos'],
                         npy['has_gauss'], npy['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def sample_seed(*keys: int) -> int:
    """A 63-bit seed mixed from non-negative integers (run seed, rank, epoch, batch, slot).

    ``SeedSequence`` hashes its input, so neighbouring keys give unrelated streams.
    """
    words = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


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
