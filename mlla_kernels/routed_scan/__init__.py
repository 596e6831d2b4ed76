"""The routed scan -- the scan every operation is a set of routes of -- and its engines:
``naive`` (the reference, on gathered copies), ``torch`` (gathers + the chunked torch scan), and
the engines that index the route tables in place: ``numba`` (CPU), ``triton`` (GPU), ``meta``
(shapes only). See :func:`mlla_kernels.routed_selective_scan`, :mod:`mlla_kernels.routes` and
:mod:`mlla_kernels.route_tables`."""
