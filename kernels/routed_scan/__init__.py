"""Selective scan over routes given as data (permutation tables): see
:func:`mlla_kernels.routed_selective_scan` and :mod:`mlla_kernels.route_tables`."""
