"""Random initialisation tiled from a fixed pool, for tests that build full-size models only to
check their wiring (tests/test_configs.py: every config builds and runs).

A full-size model's construction and ``init_weights`` spend most of their time drawing random
weights (upernet_mlla_b: 2.5 of 3 s in ``Tensor.normal_``/``uniform_``). Inside
:func:`tiled_random_init` those two fills copy from a fixed pool of random numbers instead (a
prime length, so no weight row lines up with its period), with the requested mean and scale or
bounds. Every constructor and ``init_weights`` runs as usual; only the numbers repeat.
"""
from contextlib import contextmanager

import torch

POOL = 999_983


def _fill(tensor, pool, scale, shift):
    """tensor[:] = pool (tiled) * scale + shift; False where the fast path does not apply."""
    if (not tensor.is_contiguous() or not tensor.dtype.is_floating_point
            or tensor.device.type != 'cpu'):
        return False
    flat = tensor.view(-1)
    with torch.no_grad():
        for start in range(0, flat.numel(), POOL):
            piece = flat[start:start + POOL]
            piece.copy_(pool[:piece.numel()] * scale + shift)
    return True


@contextmanager
def tiled_random_init():
    gen = torch.Generator().manual_seed(0)
    normal_pool, uniform_pool = torch.randn(POOL, generator=gen), torch.rand(POOL, generator=gen)
    real_normal, real_uniform = torch.Tensor.normal_, torch.Tensor.uniform_

    def normal_(tensor, mean=0.0, std=1.0, *, generator=None):
        if _fill(tensor, normal_pool, std, mean):
            return tensor
        return real_normal(tensor, mean, std, generator=generator)

    def uniform_(tensor, a=0.0, b=1.0, *, generator=None):
        if _fill(tensor, uniform_pool, b - a, a):
            return tensor
        return real_uniform(tensor, a, b, generator=generator)

    saved = {name: torch.Tensor.__dict__.get(name) for name in ('normal_', 'uniform_')}
    torch.Tensor.normal_, torch.Tensor.uniform_ = normal_, uniform_
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                delattr(torch.Tensor, name)    # the inherited TensorBase method again
            else:
                setattr(torch.Tensor, name, value)
