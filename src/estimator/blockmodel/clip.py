"""Volume fraction of each block of a (rotated) regular grid inside a closed wireframe.

Grid conventions are those of ``estimator.blockmodel.grid`` (SPEC section 3): ``origin`` is the
grid's minimum corner, ``rotation`` turns the grid clockwise (seen from above) about the
vertical axis through the origin, and grid-frame coordinates keep the world origin, so an offset
``(du, dv)`` along the grid's axes is the world offset::

    x - x0 = du cos(r) + dv sin(r)
    y - y0 = -du sin(r) + dv cos(r)

With r = 90 the grid's x-axis points south (azimuth 180) and its y-axis east (azimuth 90).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from estimator.geometry import _kernels
from estimator.geometry.mesh import _prepare

__all__ = ["block_fractions", "grid_to_world", "window_bounds", "world_to_grid"]


def _cos_sin(rotation: float) -> tuple[float, float]:
    r = np.deg2rad(float(rotation))
    return float(np.cos(r)), float(np.sin(r))


def grid_to_world(u, v, origin: Sequence[float], rotation: float = 0.0):
    """Grid-frame ``(u, v)`` to world ``(x, y)`` (same as ``BlockGrid.to_world``).

    Parameters
    ----------
    u, v : array_like
        Grid-frame coordinates, origin included: ``u = x0 + du`` where ``du`` is the distance
        from the origin along the grid's x-axis. Broadcastable against each other.
    origin : sequence of float
        ``(x0, y0[, z0])``, the grid's minimum corner (world and grid frame agree there).
    rotation : float, default 0
        Clockwise rotation of the grid about the vertical through the origin, in degrees.

    Returns
    -------
    x, y : numpy.ndarray
        ``x = x0 + du cos(r) + dv sin(r)``, ``y = y0 - du sin(r) + dv cos(r)``.

    Examples
    --------
    >>> [round(float(c), 9) for c in grid_to_world(101.0, 200.0, (100, 200), 90)]
    [100.0, 199.0]
    """
    c, s = _cos_sin(rotation)
    du = np.asarray(u, dtype=np.float64) - origin[0]
    dv = np.asarray(v, dtype=np.float64) - origin[1]
    return origin[0] + (du * c + dv * s), origin[1] + (-du * s + dv * c)


def world_to_grid(x, y, origin: Sequence[float], rotation: float = 0.0):
    """World ``(x, y)`` to grid-frame ``(u, v)``: the inverse of :func:`grid_to_world`.

    Examples
    --------
    >>> [round(float(c), 9) for c in world_to_grid(100.0, 199.0, (100, 200), 90)]
    [101.0, 200.0]
    """
    c, s = _cos_sin(rotation)
    dx = np.asarray(x, dtype=np.float64) - origin[0]
    dy = np.asarray(y, dtype=np.float64) - origin[1]
    return origin[0] + (dx * c - dy * s), origin[1] + (dx * s + dy * c)


def _positive_ints(values, name: str, n: int = 3) -> tuple[int, ...]:
    out = tuple(int(k) for k in values)
    if (
        len(out) != n
        or min(out) < 1
        or any(k != float(x) for k, x in zip(out, values, strict=True))
    ):
        msg = f"{name} must be {n} positive integers, got {tuple(values)!r}"
        raise ValueError(msg)
    return out


def block_fractions(
    vertices,
    faces,
    origin: Sequence[float],
    block_size: Sequence[float],
    shape: Sequence[int],
    rotation: float = 0.0,
    subcells: Sequence[int] = (4, 4, 4),
    *,
    parallel: bool = True,
    window: Sequence[slice] | None = None,
) -> np.ndarray:
    """Fraction of each block inside a closed surface, from regular sub-cell centres.

    Each block is split into ``subcells = (su, sv, sw)`` equal sub-cells and the fraction is
    the share of sub-cell centres inside the surface (the parity rule of
    :func:`estimator.geometry.mesh.points_inside`, identical point for point). Along each
    vertical column of sub-cell centres the surface crossings are found once and every centre
    of the column is classified from them, so the cost is one ray per column and memory is the
    output array; only blocks whose box meets the surface's box are visited.

    Parameters
    ----------
    vertices : (nv, 3) array_like of float
        World coordinates of the surface's vertices.
    faces : (nf, 3) array_like of int
        Triangles of one or more closed bodies.
    origin : sequence of 3 float
        Minimum corner ``(x0, y0, z0)`` of the grid (not the first block's centre).
    block_size : sequence of 3 float
        ``(dx, dy, dz)`` in data units.
    shape : sequence of 3 int
        ``(nx, ny, nz)``, blocks along the grid's x, y and z axes.
    rotation : float, default 0
        Clockwise rotation of the grid about the vertical through ``origin``, in degrees
        (see :func:`grid_to_world`).
    subcells : sequence of 3 int, default (4, 4, 4)
        Sub-cells per block along x, y and z.
    parallel : bool, default True
        Use numba threads over rows of blocks.
    window : (slice, slice, slice), optional
        Only the blocks ``[z, y, x]`` of these index ranges (steps of 1), e.g. one chunk of a
        chunked estimate. Sub-cell centres are placed from the blocks' global indices, so every
        block of the window gets the same bits as in the whole-grid call.

    Returns
    -------
    (nz, ny, nx) numpy.ndarray of float64
        Volume fraction in [0, 1], a multiple of ``1 / (su sv sw)`` (the window's shape when
        one is given).

    Notes
    -----
    Sub-cell ``(a, b, c)`` of block ``(i, j, k)`` has its centre at grid offset
    ``du = (i su + a + 1/2) dx / su`` (same for v and w) from the origin. The sum of the
    fractions times the block volume converges to the enclosed volume as the sub-cells shrink.

    Examples
    --------
    >>> v = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    >>> f = [[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]]
    >>> frac = block_fractions(v, f, (0, 0, 0), (1, 1, 1), (1, 1, 1), subcells=(20, 20, 20))
    >>> frac.shape, float(frac[0, 0, 0])  # exact volume 1/6
    ((1, 1, 1), 0.16625)
    """
    (vx, vy, vz), faces = _prepare(vertices, faces)
    x0, y0, z0 = (float(o) for o in origin)
    size = np.array([float(d) for d in block_size])
    if size.shape != (3,) or not (size > 0).all():
        msg = f"block_size must be 3 positive numbers, got {tuple(block_size)!r}"
        raise ValueError(msg)
    nx, ny, nz = _positive_ints(shape, "shape")
    sub = np.array(_positive_ints(subcells, "subcells"), dtype=np.int64)
    lo_win, hi_win = window_bounds(window, (nx, ny, nz))
    out = np.zeros(tuple((hi_win - lo_win)[::-1]), dtype=np.float64)
    if len(faces) == 0:
        return out
    # the surface in the grid frame, relative to the origin
    c, s = _cos_sin(rotation)
    dx, dy = vx - x0, vy - y0
    gu = np.ascontiguousarray(dx * c - dy * s)
    gv = np.ascontiguousarray(dx * s + dy * c)
    gw = vz - z0
    used = np.unique(faces)
    lo = np.array([gu[used].min(), gv[used].min(), gw[used].min()])
    hi = np.array([gu[used].max(), gv[used].max(), gw[used].max()])
    first = np.clip(np.floor(lo / size), lo_win, hi_win).astype(np.int64)
    last = np.clip(np.floor(hi / size) + 1, lo_win, hi_win).astype(np.int64)
    if (last <= first).any():
        return out
    bounds, h, gnx, gny, start, items = _kernels.xy_index(gu, gv, faces)
    counts = np.zeros(tuple((last - first)[::-1]), dtype=np.int32)
    kernel = _kernels.fraction_counts_parallel if parallel else _kernels.fraction_counts_serial
    kernel(
        gu, gv, gw, faces, bounds, h, gnx, gny, start, items,
        first * sub, size / sub, sub, counts, int(np.diff(start).max()),
    )  # fmt: skip
    a, b = first - lo_win, last - lo_win
    out[a[2] : b[2], a[1] : b[1], a[0] : b[0]] = counts / float(sub.prod())
    return out


def window_bounds(window: Sequence[slice] | None, shape: Sequence[int]):
    """``(lo, hi)`` block index bounds in (x, y, z) order of a ``(z, y, x)`` slice window.

    ``None`` is the whole grid of ``shape`` ``(nx, ny, nz)``. The window must lie inside the
    grid, with steps of 1.
    """
    n = np.array([int(k) for k in shape], dtype=np.int64)
    if window is None:
        return np.zeros(3, dtype=np.int64), n
    zs, ys, xs = window
    lo, hi = [], []
    for s, size in zip((xs, ys, zs), n, strict=True):
        start, stop, step = s.indices(int(size))
        if step != 1 or stop <= start:
            msg = f"window {tuple(window)!r} is not a non-empty range of blocks with step 1"
            raise ValueError(msg)
        lo.append(start)
        hi.append(stop)
    return np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)
