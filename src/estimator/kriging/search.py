"""Anisotropic moving-neighbourhood search (SPEC sections 3 and 6).

A search pass is an ellipsoid with GSLIB angles and absolute ranges. A sample is in the
neighbourhood of a target when its distance in the pass's *scaled space*
``|A (x_sample - x_target)|`` (with ``A = rotation_matrix(angles) / ranges[:, None]``) is at
most 1; "closest" means smallest distance in that same space.

Selection rule, per target and pass, in this order:

1. Candidates are the samples with scaled distance <= 1, the distance being measured from
   world coordinate differences (so large coordinates lose no precision).
2. They are sorted by scaled distance; equal distances are broken by sample index (the row
   order of ``samples``), which makes the choice deterministic.
3. They are taken greedily in that order, skipping a sample when its hole already has
   ``max_per_hole`` selected samples or its octant already has ``max_per_octant``, until
   ``max_samples`` are selected.
4. The neighbourhood satisfies the pass when it has at least ``min_samples`` samples and at
   least ``min_octants`` octants holding one or more of them.

Octants are those of the ellipsoid's rotated frame: octant ``o = b0 + 2 b1 + 4 b2`` where
``b_i = 1`` when the sample's coordinate along axis ``i`` (major, semi-major, minor) relative
to the target is >= 0. A value of 0 for ``max_per_hole``, ``max_per_octant`` or
``min_octants`` means no limit.

Index: the samples are binned in a regular grid of the pass's scaled space (cells of
``CELL`` = 0.5 scaled units, a sorted cell list built with NumPy). Targets are grouped by the
cell they fall in; a compiled kernel collects, once per group, every sample within reach of
the group's cell (the candidates) and orders them by shells of distance from the cell's
centre. Per target, the triangle inequality bounds the distance of a whole shell from
below, so the search measures only the candidates that can matter: without limits it keeps
the ``max_samples`` closest and stops at the first shell that cannot hold a closer one; with
limits it measures every candidate in range and sorts them lazily (by buckets of distance)
as far as the greedy pass reads. The bounds are computed in absolute scaled coordinates
and widened by a margin for their rounding (``_margin``), so they never rule out a sample
that the exact test would keep. This is an exact range search, like a ``cKDTree`` query
with ``distance_upper_bound=1``, but it runs inside numba without the GIL
(``cKDTree.query`` holds the GIL when ``workers=1``, so threads would queue on it), and hole
and octant limits need no re-query. Grouping, shells and bounds change only the work, never
the result of a target: it is the rule above, to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from estimator.kriging import _kernels
from estimator.variography.models import anisotropy_matrix, rotation_matrix

#: Targets handled per batch by :func:`estimate_blocks` (bounds the neighbourhood arrays).
QUERY_BATCH = 65_536
#: Edge of the index's grid cells, in scaled units (the search ellipsoid has radius 1).
CELL = 0.5
#: Reach of the index's cheap scaled-space test, slightly beyond 1 so that rounding in the
#: absolute scaled coordinates never loses a sample; membership is decided on distances
#: re-measured from world coordinate differences.
REACH = 1.0 + 1e-8


@dataclass(frozen=True)
class SearchPass:
    """One search pass: an ellipsoid (absolute ranges, GSLIB angles) and sample limits.

    Parameters
    ----------
    ranges : tuple of 3 floats
        Radii along the major, semi-major and minor axes, in data units (already scaled).
    angles : tuple of 3 floats
        GSLIB ``[ang1, ang2, ang3]`` in degrees (SPEC section 6).
    min_samples, max_samples : int
        Fewest samples that satisfy the pass; most samples used.
    max_per_hole : int
        Most samples from one hole (0 = no limit).
    max_per_octant : int
        Most samples from one octant of the ellipsoid (0 = no limit).
    min_octants : int
        Fewest octants holding at least one selected sample (0 = no condition).
    """

    ranges: tuple[float, float, float]
    angles: tuple[float, float, float] = (0.0, 0.0, 0.0)
    min_samples: int = 1
    max_samples: int = 24
    max_per_hole: int = 0
    max_per_octant: int = 0
    min_octants: int = 0

    def __post_init__(self):
        object.__setattr__(self, "ranges", tuple(float(v) for v in self.ranges))
        object.__setattr__(self, "angles", tuple(float(v) for v in self.angles))
        if len(self.ranges) != 3 or not all(np.isfinite(r) and r > 0 for r in self.ranges):
            msg = f"search ranges must be three positive numbers, got {self.ranges!r}"
            raise ValueError(msg)
        if len(self.angles) != 3 or not all(np.isfinite(a) for a in self.angles):
            msg = f"search angles must be three finite numbers, got {self.angles!r}"
            raise ValueError(msg)
        for name in ("min_samples", "max_samples", "max_per_hole", "max_per_octant", "min_octants"):
            value = getattr(self, name)
            if int(value) != value or value < 0:
                msg = f"{name} must be a non-negative integer, got {value!r}"
                raise ValueError(msg)
            object.__setattr__(self, name, int(value))
        if not 1 <= self.min_samples <= self.max_samples:
            msg = (
                f"need 1 <= min_samples <= max_samples, got min_samples={self.min_samples}, "
                f"max_samples={self.max_samples}"
            )
            raise ValueError(msg)
        if self.min_octants > 8:
            msg = f"min_octants must be at most 8, got {self.min_octants}"
            raise ValueError(msg)

    @property
    def rotation(self) -> np.ndarray:
        """Rows: unit major, semi-major and minor axes (see :func:`rotation_matrix`)."""
        return rotation_matrix(self.angles)

    @property
    def matrix(self) -> np.ndarray:
        """Scaling matrix ``A``: ``|A d| <= 1`` inside the ellipsoid."""
        return anisotropy_matrix(self.ranges, self.angles)

    @property
    def limited(self) -> bool:
        """Whether a per-hole or per-octant limit applies."""
        return self.max_per_hole > 0 or self.max_per_octant > 0


@dataclass(frozen=True)
class Neighbours:
    """Neighbourhoods of a set of targets for one pass.

    Attributes
    ----------
    indices : numpy.ndarray, shape (n, max_samples), int64
        Selected sample rows, closest first; -1 past ``count``.
    distances : numpy.ndarray, shape (n, max_samples)
        Their scaled search distances; NaN past ``count``.
    count, holes, octants : numpy.ndarray, shape (n,), int64
        Samples selected, distinct holes among them, octants holding at least one.
    ok : numpy.ndarray, shape (n,), bool
        Whether the neighbourhood satisfies the pass (``min_samples``, ``min_octants``).
    """

    indices: np.ndarray
    distances: np.ndarray
    count: np.ndarray
    holes: np.ndarray
    octants: np.ndarray
    ok: np.ndarray


def transform(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Return ``points @ matrix.T`` computed element-wise.

    Unlike a BLAS product, each output row is computed by the same operations whatever the
    number of rows, so a row's result does not depend on how the points were chunked.

    Parameters
    ----------
    points : numpy.ndarray, shape (n, 3)
    matrix : numpy.ndarray, shape (3, 3)

    Returns
    -------
    numpy.ndarray, shape (n, 3)
    """
    p = np.asarray(points, dtype=float)
    out = np.empty_like(p)
    for i in range(3):
        out[:, i] = matrix[i, 0] * p[:, 0] + matrix[i, 1] * p[:, 1] + matrix[i, 2] * p[:, 2]
    return out


def build_index(samples: np.ndarray, spass: SearchPass) -> tuple:
    """Grid index of the samples in the scaled space of ``spass``.

    A dense grid of cubic cells (edge ``CELL`` in scaled units, coarser when the grid would
    have more than ``max(4 m, 65536)`` cells) with the samples sorted by cell.

    Returns
    -------
    tuple
        ``(origin (3,), cell, shape (3,) int64, start (ncells + 1,) int64, order (m,) int64,
        scaled (m, 3))``: samples ``order[start[c]:start[c + 1]]`` lie in cell ``c``, and
        ``scaled`` holds their scaled coordinates in that order.
    """
    u = transform(samples, spass.matrix)
    m = u.shape[0]
    if m == 0:
        u = np.zeros((1, 3))
    origin = u.min(axis=0)
    extent = u.max(axis=0) - origin
    cell = CELL
    limit = max(4 * m, 65_536)
    while np.prod(np.floor(extent / cell) + 1) > limit:
        cell *= 1.25
    shape = (np.floor(extent / cell) + 1).astype(np.int64)
    ijk = np.minimum(np.floor((u - origin) / cell).astype(np.int64), shape - 1)
    flat = (ijk[:, 0] * shape[1] + ijk[:, 1]) * shape[2] + ijk[:, 2]
    if m == 0:
        flat = flat[:0]
    order = np.argsort(flat, kind="stable").astype(np.int64)
    start = np.zeros(int(np.prod(shape)) + 1, dtype=np.int64)
    np.cumsum(np.bincount(flat, minlength=start.size - 1), out=start[1:])
    return origin, float(cell), shape, start, order, np.ascontiguousarray(u[order] if m else u[:0])


def find_neighbours(
    targets: np.ndarray,
    samples: np.ndarray,
    hole_ids: np.ndarray,
    spass: SearchPass,
    *,
    index: tuple | None = None,
    parallel: bool = False,
) -> Neighbours:
    """Select the neighbourhood of every target for one pass (rule in the module docstring).

    Parameters
    ----------
    targets : numpy.ndarray, shape (n, 3)
        Target points (block centres), world coordinates.
    samples : numpy.ndarray, shape (m, 3)
        Sample coordinates.
    hole_ids : numpy.ndarray, shape (m,), int64
        Hole of each sample.
    spass : SearchPass
        The pass.
    index : tuple, optional
        ``build_index(samples, spass)``, when the caller already has it.
    parallel : bool
        Use every core (numba ``prange``); leave False inside dask.

    Returns
    -------
    Neighbours
    """
    targets = np.ascontiguousarray(targets, dtype=float).reshape(-1, 3)
    samples = np.ascontiguousarray(samples, dtype=float).reshape(-1, 3)
    hole_ids = np.ascontiguousarray(hole_ids, dtype=np.int64)
    n, m, maxs = targets.shape[0], samples.shape[0], spass.max_samples
    out = Neighbours(
        indices=np.full((n, maxs), -1, dtype=np.int64),
        distances=np.full((n, maxs), np.nan),
        count=np.zeros(n, dtype=np.int64),
        holes=np.zeros(n, dtype=np.int64),
        octants=np.zeros(n, dtype=np.int64),
        ok=np.zeros(n, dtype=bool),
    )
    if n == 0 or m == 0:
        return out
    if index is None:
        index = build_index(samples, spass)
    amat = np.ascontiguousarray(spass.matrix)
    limits = np.array([maxs, spass.max_per_hole, spass.max_per_octant], dtype=np.int64)
    kernel = _kernels.select_parallel if parallel else _kernels.select_serial
    scaled = transform(targets, amat)
    groups, gstart, gcell = _group_targets(scaled, index[0], index[1])
    kernel(
        targets, scaled, groups, gstart, gcell, samples, hole_ids, amat, index, REACH,
        _margin(amat, samples, targets), limits,
        out.indices, out.distances, out.count, out.holes, out.octants,
    )  # fmt: skip
    out.ok[:] = out.count >= spass.min_samples
    if spass.min_octants > 0:
        out.ok[:] &= out.octants >= spass.min_octants
    return out


def _margin(amat, samples, targets):
    """Bound on the rounding error of distances measured between absolute scaled coordinates.

    A scaled coordinate ``(A x)_i`` is computed with an absolute error below
    ``3.3e-16 * sum_j |A_ij| |x_j|``; two of them and the norm of their difference stay well
    within ``1e-14`` times the largest such sum (about 45 units of roundoff), plus ``1e-8``
    as for ``REACH``. The kernel skips a candidate only when a distance measured in absolute
    scaled coordinates exceeds what it needs by more than this, so rounding can never make
    it skip one that the exact distance (from world coordinate differences) would keep.
    """
    a = np.abs(amat)

    def largest(points):
        # element-wise, not a BLAS product: on a big chunk OpenBLAS would spin threads that take
        # the other core from the kriging threads
        if len(points) == 0:
            return 0.0
        p = np.abs(points)
        return float(np.max(p[:, 0:1] * a[:, 0] + p[:, 1:2] * a[:, 1] + p[:, 2:3] * a[:, 2]))

    size = max(largest(samples), largest(targets))
    return 1e-8 + 1e-14 * size


def _group_targets(scaled, origin, cell):
    """Group targets by index cell: ``(order, group starts, cell coordinates of each group)``."""
    ijk = np.floor((scaled - origin) / cell).astype(np.int64)
    order = np.lexsort((ijk[:, 2], ijk[:, 1], ijk[:, 0])).astype(np.int64)
    sorted_ijk = ijk[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = np.any(sorted_ijk[1:] != sorted_ijk[:-1], axis=1)
    first = np.flatnonzero(new)
    gstart = np.append(first, len(order)).astype(np.int64)
    return order, gstart, np.ascontiguousarray(sorted_ijk[first])
