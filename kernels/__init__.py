"""mlla_kernels: selective-scan kernels for MLLA-MM (torch only; triton optional).

Public entry points (each with ``backend='auto' | 'naive' | 'torch' | 'triton'``):

- :func:`selective_scan` -- Mamba's selective scan.
- :func:`cross_scan_selective_scan` -- VMamba's SS2D: K-route 2D scan + merge.
- :func:`bidirectional_selective_scan` -- Vim's forward + backward scan.

NOTE: provisional module (naive backend only); the dispatcher replaces this.
"""
from .bidirectional.naive import bidirectional_selective_scan_naive
from .cross_scan.naive import cross_scan_selective_scan_naive
from .selective_scan.naive import selective_scan_naive


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend='auto'):
    return selective_scan_naive(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                return_last_state)


def cross_scan_selective_scan(u, delta, A, B, C, D=None, delta_bias=None, delta_softplus=True,
                              directions=4, backend='auto'):
    return cross_scan_selective_scan_naive(u, delta, A, B, C, D, delta_bias, delta_softplus,
                                           directions)


def bidirectional_selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                                 delta_softplus=True, backend='auto'):
    return bidirectional_selective_scan_naive(u, delta, A, B, C, D, z, delta_bias,
                                              delta_softplus)
