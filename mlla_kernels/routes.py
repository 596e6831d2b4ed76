"""The four operations as *routed scans*: their arguments in the routed scan's layout.

The routed scan (the operator ``mlla_kernels::routed_scan`` on an engine,
:func:`mlla_kernels.library.engine`) runs K routes over an H x W map: u (batch, Ku, DIM, H, W)
with Ku = 1 (shared by all routes) or K; delta (batch, K, DIM, H, W); A (K, DIM, N); B, C
(batch, K, G, N, H, W); D, delta_bias (K, DIM); z (batch, DIM, H, W), a gate shared by the
routes; ``routes``, K routes of the vocabulary (:mod:`mlla_kernels.route_tables`); the routes'
outputs summed (``merge``) or apart. It returns (y, last_state (batch, K, DIM, N)).

Each function below maps one public operation's (already validated) arguments onto that form
with views only -- no tensor is copied, routed or flipped -- runs ``engine`` and shapes its
output; :func:`bind` makes an operation's implementation out of an engine (how
:func:`mlla_kernels.dispatch.get_impl` serves a backend whose table row names an engine). The
routes come from the vocabulary: a plain scan is the route ``row`` (or ``row~``, reversed) of
a 1 x L map, Vim's bidirectional scan ``row, row~`` of a 1 x L map, VMamba's cross-scan
:data:`~mlla_kernels.route_tables.CROSS_SCAN_ROUTES` of the H x W map. The engines themselves
(``mlla_kernels/routed_scan/<backend>.py``) read the flat layout (the maps as sequences of
H*W) and the route tables, which the operator builds.
"""
from .route_tables import CROSS_SCAN_ROUTES, Route


def _optional(t, fn):
    return None if t is None else fn(t)


def _row_map(t):
    """A sequence (..., L) as a 1 x L map (..., 1, L)."""
    return t.unsqueeze(-2)


def selective_scan(engine, u, delta, A, B, C, D=None, z=None, delta_bias=None,
                   delta_softplus=False, return_last_state=False, reverse=False):
    """One route over L steps, forward or (``reverse``) backward in time: ``row`` (``row~``)
    of a 1 x L map."""
    def grouped(t):  # (batch, N, L) or (batch, G, N, L) -> (batch, 1, G, N, 1, L)
        return _row_map(t.unsqueeze(1) if t.dim() == 3 else t).unsqueeze(1)
    y, last = engine(_row_map(u).unsqueeze(1), _row_map(delta).unsqueeze(1), A.unsqueeze(0),
                     grouped(B), grouped(C), D=_optional(D, lambda t: t.unsqueeze(0)),
                     z=_optional(z, _row_map),
                     delta_bias=_optional(delta_bias, lambda t: t.unsqueeze(0)),
                     delta_softplus=delta_softplus, routes=(Route('row', bool(reverse)),))
    y = y.squeeze(-2)
    return (y, last[:, 0]) if return_last_state else y


def routed_selective_scan(engine, u, delta, A, B, C, D=None, delta_bias=None,
                          delta_softplus=True, routes=CROSS_SCAN_ROUTES[4], merge=True):
    """K routes given as data over the (H, W) map, all reading the one map u (batch, Di, H, W)
    or each its own (u (batch, K, Di, H, W))."""
    k, dim, n_state = len(routes), u.shape[-3], A.shape[1]
    u_routes = u if u.dim() == 5 else u.unsqueeze(1)
    y, _ = engine(u_routes, delta, A.reshape(k, dim, n_state), B.unsqueeze(2),
                  C.unsqueeze(2), D=_optional(D, lambda t: t.reshape(k, dim)),
                  delta_bias=_optional(delta_bias, lambda t: t.reshape(k, dim)),
                  delta_softplus=delta_softplus, routes=routes, merge=merge)
    return y


def cross_scan_selective_scan(engine, u, delta, A, B, C, D=None, delta_bias=None,
                              delta_softplus=True, directions=4):
    """VMamba's K routes over the (H, W) map, merged."""
    return routed_selective_scan(engine, u, delta, A, B, C, D=D, delta_bias=delta_bias,
                                 delta_softplus=delta_softplus,
                                 routes=CROSS_SCAN_ROUTES[directions])


def bidirectional_selective_scan(engine, u, delta, A, B, C, D=None, z=None, delta_bias=None,
                                 delta_softplus=True):
    """Vim's two routes ``row, row~`` of a 1 x L map: [:, 0] forward in time, [:, 1]
    backward, sharing the gate z."""
    y, _ = engine(_row_map(u), _row_map(delta), A, _row_map(B).unsqueeze(2),
                  _row_map(C).unsqueeze(2), D=D, z=_optional(z, _row_map),
                  delta_bias=delta_bias, delta_softplus=delta_softplus,
                  routes=CROSS_SCAN_ROUTES[2])
    return y.squeeze(-2)


#: operation name -> its mapping onto an engine
MAPPINGS = {f.__name__: f for f in (selective_scan, cross_scan_selective_scan,
                                    bidirectional_selective_scan, routed_selective_scan)}


def bind(op, engine, backend):
    """Operation ``op`` run on ``engine`` (a ``routed_scan`` function), as the function
    ``<op>_<backend>``, with the public entry point's arguments."""
    mapping = MAPPINGS[op]

    def run(*args, **kwargs):
        return mapping(engine, *args, **kwargs)
    run.__name__ = run.__qualname__ = f'{op}_{backend}'
    run.__doc__ = f'{op} on the {backend} engine (see :func:`mlla_kernels.{op}`).'
    return run
