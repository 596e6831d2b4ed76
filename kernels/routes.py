"""The four operations as *routed scans*: their arguments in the engines' layout.

An engine (``routed_scan`` of :mod:`mlla_kernels.routed_scan.numba` or ``.triton``) runs one
routed scan: u (batch, Ku, DIM, L) with Ku = 1 (shared by all routes) or K; delta
(batch, K, DIM, L); A (K, DIM, N); B, C (batch, K, G, N, L); D, delta_bias (K, DIM); z
(batch, DIM, L), a gate shared by the routes; ``order`` (K, L), the position route k visits at
step t (a :func:`~mlla_kernels.route_tables.route_table`); the routes' outputs summed
(``merge``) or apart. It returns (y, last_state (batch, K, DIM, N)).

Each function below maps one public operation's (already validated) arguments onto that form
with views only -- no tensor is copied, routed or flipped -- runs ``engine`` and shapes its
output; :func:`bind` makes an operation's implementation out of an engine (how
:func:`mlla_kernels.dispatch.get_impl` serves a backend whose table row names an engine). The route orders come from the vocabulary: a plain scan is the route ``row`` (or
``row~``, reversed) of a 1 x L map, Vim's bidirectional scan ``row, row~`` of a 1 x L map,
VMamba's cross-scan :data:`~mlla_kernels.route_tables.CROSS_SCAN_ROUTES` of the H x W map.
"""
from .route_tables import CROSS_SCAN_ROUTES, Route, route_table


def _optional(t, fn):
    return None if t is None else fn(t)


def _order(routes, height, width, device):
    return route_table(routes, height, width, device)[0]


def selective_scan(engine, u, delta, A, B, C, D=None, z=None, delta_bias=None,
                   delta_softplus=False, return_last_state=False, reverse=False):
    """One route over L steps, forward or (``reverse``) backward in time."""
    def grouped(t):  # (batch, N, L) or (batch, G, N, L) -> (batch, 1, G, N, L)
        return (t.unsqueeze(1) if t.dim() == 3 else t).unsqueeze(1)
    y, last = engine(u.unsqueeze(1), delta.unsqueeze(1), A.unsqueeze(0), grouped(B),
                     grouped(C), D=_optional(D, lambda t: t.unsqueeze(0)), z=z,
                     delta_bias=_optional(delta_bias, lambda t: t.unsqueeze(0)),
                     delta_softplus=delta_softplus,
                     order=_order((Route('row', bool(reverse)),), 1, u.shape[-1], u.device))
    return (y, last[:, 0]) if return_last_state else y


def routed_selective_scan(engine, u, delta, A, B, C, D=None, delta_bias=None,
                          delta_softplus=True, routes=CROSS_SCAN_ROUTES[4], merge=True):
    """K routes given as data over the (H, W) map, all reading the one map u (batch, Di, H, W)
    or each its own (u (batch, K, Di, H, W))."""
    batch, (dim, height, width) = u.shape[0], u.shape[-3:]
    k, length, n_state = len(routes), height * width, A.shape[1]
    u_routes = u.shape[1] if u.dim() == 5 else 1
    y, _ = engine(u.reshape(batch, u_routes, dim, length), delta.reshape(batch, k, dim, length),
                  A.reshape(k, dim, n_state), B.reshape(batch, k, 1, n_state, length),
                  C.reshape(batch, k, 1, n_state, length),
                  D=_optional(D, lambda t: t.reshape(k, dim)),
                  delta_bias=_optional(delta_bias, lambda t: t.reshape(k, dim)),
                  delta_softplus=delta_softplus, order=_order(routes, height, width, u.device),
                  merge=merge)
    return y.view(batch, dim, height, width) if merge else y.view(batch, k, dim, height, width)


def cross_scan_selective_scan(engine, u, delta, A, B, C, D=None, delta_bias=None,
                              delta_softplus=True, directions=4):
    """VMamba's K routes over the (H, W) map, merged."""
    return routed_selective_scan(engine, u, delta, A, B, C, D=D, delta_bias=delta_bias,
                                 delta_softplus=delta_softplus,
                                 routes=CROSS_SCAN_ROUTES[directions])


def bidirectional_selective_scan(engine, u, delta, A, B, C, D=None, z=None, delta_bias=None,
                                 delta_softplus=True):
    """Vim's two routes: [:, 0] forward in time, [:, 1] backward, sharing the gate z."""
    y, _ = engine(u, delta, A, B.unsqueeze(2), C.unsqueeze(2), D=D, z=z, delta_bias=delta_bias,
                  delta_softplus=delta_softplus,
                  order=_order(CROSS_SCAN_ROUTES[2], 1, u.shape[-1], u.device))
    return y


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
