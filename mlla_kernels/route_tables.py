"""The route vocabulary: the orders in which a scan may visit the pixels of an H x W map.

A route is a walk over all H*W pixels (a permutation of the row-major indices), optionally
reversed. :func:`route_table` turns a sequence of routes into an index table -- for each route,
the pixel visited at step t (``order``) and the step at which each pixel is visited
(``inverse``) -- built once per (routes, H, W, device) and cached.

Kinds (4 x 4 examples give the pixels of ``order`` in row-major numbering):

============== ===========================================================================
``row``         row-major raster: 0, 1, 2, 3, 4, ...
``col``         column-major raster: 0, 4, 8, 12, 1, ...
``snake_row``   rows alternately left->right and right->left: 0, 1, 2, 3, 7, 6, 5, 4, 8, ...
``snake_col``   columns alternately down and up: 0, 4, 8, 12, 13, 9, 5, 1, 2, ...
``zigzag``      anti-diagonals i + j = k, i descending for even k, ascending for odd k
                (JPEG order): 0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15
``zigzag_mirror`` ``zigzag`` mirrored left <-> right: 3, 2, 7, 11, 6, 1, 0, 5, ...
``spiral``      clockwise from the top-left corner, ring by ring: 0, 1, 2, 3, 7, 11, 15, 14,
                13, 12, 8, 4, 5, 6, 10, 9
``spiral_flip`` ``spiral`` flipped top <-> bottom (counter-clockwise from the bottom-left):
                12, 13, 14, 15, 11, 7, 3, 2, ...
============== ===========================================================================

Every kind is defined for any H, W >= 1 (thin maps and a single pixel included). VMamba's four
cross-scan routes are ``row, col, row~, col~`` (``~`` = reversed), Vim's two ``row, row~`` on a
1 x L map, MHS-VM's heads ``C, X, S, Z`` pair ``snake_row/snake_col``, ``zigzag/zigzag_mirror``,
``spiral/spiral_flip`` and ``row/col``, each with its reverse.
"""
import threading
from functools import lru_cache
from typing import Dict, NamedTuple, Sequence, Tuple, Union

import numpy as np
import torch


class Route(NamedTuple):
    """One walk over the pixels: a ``kind`` of :data:`ROUTE_KINDS`, optionally reversed."""
    kind: str
    reverse: bool = False

    def __str__(self) -> str:
        return self.kind + ('~' if self.reverse else '')


def _row(h, w):
    return np.arange(h * w).reshape(h, w)


def _walk_rows(grid):
    return grid.reshape(-1)


def _walk_cols(grid):
    return grid.T.reshape(-1)


def _snake_rows(grid):
    rows = [r if i % 2 == 0 else r[::-1] for i, r in enumerate(grid)]
    return np.concatenate(rows)


def _zigzag(grid):
    h, w = grid.shape
    out = []
    for k in range(h + w - 1):
        lo, hi = max(0, k - w + 1), min(k, h - 1)
        rows = range(hi, lo - 1, -1) if k % 2 == 0 else range(lo, hi + 1)
        out.extend(grid[i, k - i] for i in rows)
    return np.asarray(out)


def _spiral(grid):
    h, w = grid.shape
    top, bottom, left, right = 0, h - 1, 0, w - 1
    out = []
    while top <= bottom and left <= right:
        out.extend(grid[top, left:right + 1])                        # top row, left -> right
        out.extend(grid[top + 1:bottom + 1, right])                  # right column, down
        if top < bottom:
            out.extend(grid[bottom, left:right][::-1])               # bottom row, right -> left
        if left < right:
            out.extend(grid[top + 1:bottom, left][::-1])             # left column, up
        top, bottom, left, right = top + 1, bottom - 1, left + 1, right - 1
    return np.asarray(out)


#: kind -> walk of a (H, W) grid of row-major pixel indices
_WALKS = {
    'row': _walk_rows,
    'col': _walk_cols,
    'snake_row': _snake_rows,
    'snake_col': lambda g: _snake_rows(g.T),
    'zigzag': _zigzag,
    'zigzag_mirror': lambda g: _zigzag(g[:, ::-1]),
    'spiral': _spiral,
    'spiral_flip': lambda g: _spiral(g[::-1, :]),
}
ROUTE_KINDS: Tuple[str, ...] = tuple(_WALKS)

#: VMamba v2's cross-scan routes in its order (its checkpoints depend on it)
CROSS_SCAN_ROUTES = {1: (Route('row'),),
                     2: (Route('row'), Route('row', True)),
                     4: (Route('row'), Route('col'), Route('row', True), Route('col', True))}

RouteLike = Union[Route, str, Tuple[str, bool]]


def as_route(route: RouteLike) -> Route:
    """A :class:`Route` from a Route, a kind name (``'spiral'``, ``'spiral~'`` reversed) or a
    ``(kind, reverse)`` pair; unknown kinds raise a ValueError listing the valid ones."""
    if isinstance(route, str):
        route = Route(route[:-1], True) if route.endswith('~') else Route(route)
    elif isinstance(route, tuple) and not isinstance(route, Route):
        route = Route(*route)
    if not isinstance(route, Route) or route.kind not in _WALKS:
        raise ValueError(f'unknown route {route!r}: a route is one of {", ".join(ROUTE_KINDS)} '
                         "(append '~' or pass Route(kind, reverse=True) for its reverse)")
    return Route(route.kind, bool(route.reverse))


def as_routes(routes: Sequence[RouteLike]) -> Tuple[Route, ...]:
    """A tuple of :class:`Route` from a non-empty sequence of route-likes (see
    :func:`as_route`)."""
    if isinstance(routes, (str, Route)) or not len(routes):
        raise ValueError(f'routes must be a non-empty sequence of routes; got {routes!r}')
    if isinstance(routes, tuple):
        return _as_routes(routes)
    return tuple(as_route(r) for r in routes)


@lru_cache(maxsize=256)
def _as_routes(routes: tuple) -> Tuple[Route, ...]:    # a call per scan: cache the parsing
    return tuple(as_route(r) for r in routes)


@lru_cache(maxsize=256)
def _order_np(route: Route, height: int, width: int) -> np.ndarray:
    order = _WALKS[route.kind](_row(height, width))
    return np.ascontiguousarray(order[::-1] if route.reverse else order, dtype=np.int64)


def route_order(route: RouteLike, height: int, width: int) -> np.ndarray:
    """The row-major pixel index visited at each step of ``route`` on an H x W map (int64)."""
    if height < 1 or width < 1:
        raise ValueError(f'route maps need H, W >= 1; got {height} x {width}')
    return _order_np(as_route(route), int(height), int(width))


_TABLES: Dict[tuple, Tuple[torch.Tensor, torch.Tensor]] = {}
_TABLES_LOCK = threading.Lock()


def route_table(routes: Sequence[RouteLike], height: int, width: int,
                device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(order, inverse), each (K, H*W) int64 on ``device``, for K routes.

    ``order[k, t]`` is the pixel route k visits at step t; ``inverse[k, p]`` the step at which
    it visits pixel p. Cached per (routes, H, W, device): the tables are built once.
    """
    routes = as_routes(routes)
    device = torch.device('cpu' if device is None else device)
    key = (routes, int(height), int(width), str(device))
    table = _TABLES.get(key)
    if table is None:
        order = np.stack([route_order(r, height, width) for r in routes])
        inverse = np.empty_like(order)
        rows = np.arange(order.shape[0])[:, None]
        inverse[rows, order] = np.arange(order.shape[1])[None, :]
        table = (torch.from_numpy(order).to(device), torch.from_numpy(inverse).to(device))
        with _TABLES_LOCK:
            table = _TABLES.setdefault(key, table)
    return table
