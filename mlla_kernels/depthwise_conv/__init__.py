"""Depthwise 2-D convolution on channels-last maps (stride 1, same size), with the activation
and residual fused: MLLA's CPE / LePE / input conv, VMamba's SS2D conv and Vim's causal and
anti-causal token convs. Backends: ``naive`` (shifted sums, the reference), ``torch``
(``F.conv2d``), ``numba`` (fused CPU kernels). See :func:`mlla_kernels.depthwise_conv2d`."""
from typing import Optional, Sequence, Tuple, Union

ACTIVATIONS = (None, 'silu')

Padding = Union[None, Sequence[int], Sequence[Sequence[int]]]


def kernel_paddings(padding: Padding, n_kernels: int, kh: int, kw: int
                    ) -> Tuple[Tuple[int, int], ...]:
    """One (top, left) pair per kernel: ``None`` centres every kernel ((kh-1)//2, (kw-1)//2);
    one pair applies to all kernels; or one pair per kernel."""
    if padding is None:
        return (((kh - 1) // 2, (kw - 1) // 2),) * n_kernels
    pairs = list(padding)
    if len(pairs) == 2 and all(isinstance(p, int) for p in pairs):
        pairs = [tuple(pairs)] * n_kernels
    return tuple((int(top), int(left)) for top, left in pairs)


def check_options(op: str, n_kernels: int, kh: int, kw: int, padding: Padding,
                  activation: Optional[str], residual: bool) -> None:
    """Errors naming the problem for padding, activation and residual."""
    try:
        pads = kernel_paddings(padding, n_kernels, kh, kw)
    except (TypeError, ValueError):
        raise ValueError(f'{op}: padding must be None, (top, left) or one (top, left) pair per '
                         f'kernel; got {padding!r}') from None
    if len(pads) != n_kernels:
        raise ValueError(f'{op}: padding gives {len(pads)} (top, left) pairs for {n_kernels} '
                         'kernels; give one pair, or one per kernel')
    for top, left in pads:
        if not (0 <= top < kh and 0 <= left < kw):
            raise ValueError(f'{op}: padding (top, left) = ({top}, {left}) must lie within the '
                             f'{kh}x{kw} kernel (0 <= top < {kh}, 0 <= left < {kw}): the output '
                             'keeps the input size')
    if activation not in ACTIVATIONS:
        raise ValueError(f'{op}: activation must be one of {ACTIVATIONS}; got {activation!r}')
    if residual and n_kernels != 1:
        raise ValueError(f'{op}: residual=True adds the input to the output of one kernel; got '
                         f'{n_kernels} kernels (weight (K, C, kh, kw))')
