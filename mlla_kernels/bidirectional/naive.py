"""Reference bidirectional scan (Vim's bimamba v2 core): forward + reversed scan, summed."""
from ..selective_scan.naive import selective_scan_naive


def bidirectional_selective_scan_naive(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                                       delta_softplus=True):
    outs = []
    for i, reverse in enumerate((False, True)):
        outs.append(selective_scan_naive(
            u[:, i], delta[:, i], A[i], B[:, i], C[:, i],
            D=None if D is None else D[i], z=z,
            delta_bias=None if delta_bias is None else delta_bias[i],
            delta_softplus=delta_softplus, reverse=reverse))
    return outs[0] + outs[1]
