"""Kernels of the exact inside test: vertical rays against triangles binned on an xy grid.

A point is inside a closed surface when a ray from it along +z crosses the surface an odd
number of times. Each triangle is tested in its xy projection with a rule that is exact and
consistent between neighbours:

* the side of a point ``p`` relative to an edge ``(a, b)`` is the sign of the 2-D cross product
  ``(b - a) x (p - a)``, always evaluated with the edge's endpoints in ascending vertex-index
  order (then negated when needed), so two triangles sharing an edge see bit-identical values;
* a point exactly on the line through an edge is decided as if it were moved by
  ``eps * (1, delta)`` with ``eps >> delta > 0`` infinitesimal (simulation of simplicity): the
  side is then ``sign(a_y - b_y)``, or ``sign(b_x - a_x)`` for an edge parallel to x.

Every point therefore lies strictly inside or strictly outside each projected triangle, and a
ray through a shared edge or vertex is counted by exactly one triangle of each sheet it crosses
(two at a fold, which keeps the parity). Vertical triangles (zero projected area) are never
hit. Kernels take arrays only; ``inside_numpy`` is the brute-force reference the tests compare
the compiled path with. ``first_crossing`` finds where two surfaces cross (an edge of one
through a triangle of the other), for the overlap check of ``build_wireframe``;
``crossings_numpy`` is its brute-force reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# ---------------------------------------------------------------------------------------
# Predicates
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def _edge_side(ax, ay, bx, by, px, py):
    """Side (+1 left, -1 right, 0 degenerate edge) of p relative to a -> b, ties perturbed."""
    e = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    if e > 0.0:
        return 1
    if e < 0.0:
        return -1
    # p on the line: perturb p by eps * (1, delta).
    if ay > by:
        return 1
    if ay < by:
        return -1
    if bx > ax:
        return 1
    if bx < ax:
        return -1
    return 0


@njit(cache=True)
def _side(i, j, vx, vy, px, py):
    """Side of p relative to the directed edge i -> j, evaluated in canonical order."""
    if i < j:
        return _edge_side(vx[i], vy[i], vx[j], vy[j], px, py)
    return -_edge_side(vx[j], vy[j], vx[i], vy[i], px, py)


@njit(cache=True)
def _crossing(a, b, c, vx, vy, vz, px, py):
    """Whether the vertical line through (px, py) hits triangle (a, b, c), and at which z."""
    s = _side(a, b, vx, vy, px, py)
    if s == 0 or _side(b, c, vx, vy, px, py) != s or _side(c, a, vx, vy, px, py) != s:
        return False, 0.0
    wa = (vx[c] - vx[b]) * (py - vy[b]) - (vy[c] - vy[b]) * (px - vx[b])
    wb = (vx[a] - vx[c]) * (py - vy[c]) - (vy[a] - vy[c]) * (px - vx[c])
    wc = (vx[b] - vx[a]) * (py - vy[a]) - (vy[b] - vy[a]) * (px - vx[a])
    t = wa + wb + wc
    if t == 0.0:  # a sliver too thin for the weights: any z of the triangle will do
        return True, (vz[a] + vz[b] + vz[c]) / 3.0
    return True, (wa * vz[a] + wb * vz[b] + wc * vz[c]) / t


@njit(cache=True)
def _cell(x, x0, h, n):
    """Bin index of coordinate x (clipped to [0, n - 1]); monotonic in x."""
    k = int(np.floor((x - x0) / h))
    if k < 0:
        return 0
    if k >= n:
        return n - 1
    return k


# ---------------------------------------------------------------------------------------
# Binning of triangles on an xy grid (CSR lists of the triangles whose xy box meets a cell)
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def bin_triangles(vx, vy, faces, x0, y0, h, nx, ny):
    """CSR ``(start, items)``: triangles of cell ``j * nx + i`` are ``items[start[c]:start[c+1]]``."""
    nf = faces.shape[0]
    counts = np.zeros(nx * ny + 1, dtype=np.int64)
    for pass_ in range(2):
        if pass_ == 1:
            for c in range(nx * ny):
                counts[c + 1] += counts[c]
            items = np.empty(counts[nx * ny], dtype=np.int64)
            fill = counts[:-1].copy()
        else:
            items = np.empty(0, dtype=np.int64)
            fill = np.empty(0, dtype=np.int64)
        for t in range(nf):
            a, b, c = faces[t, 0], faces[t, 1], faces[t, 2]
            i0 = _cell(min(vx[a], vx[b], vx[c]), x0, h, nx)
            i1 = _cell(max(vx[a], vx[b], vx[c]), x0, h, nx)
            j0 = _cell(min(vy[a], vy[b], vy[c]), y0, h, ny)
            j1 = _cell(max(vy[a], vy[b], vy[c]), y0, h, ny)
            for j in range(j0, j1 + 1):
                for i in range(i0, i1 + 1):
                    if pass_ == 0:
                        counts[j * nx + i + 1] += 1
                    else:
                        items[fill[j * nx + i]] = t
                        fill[j * nx + i] += 1
    return counts, items


def xy_index(vx, vy, faces):
    """Bin the triangles on an xy grid of about four cells per triangle.

    Returns ``bounds`` (xmin, ymin, xmax, ymax), the cell size ``h``, the cell counts ``nx,
    ny`` and the CSR lists of :func:`bin_triangles`. Four cells per triangle left about six
    candidate triangles per cell on Babbitt's Mpz.stl (63,749 triangles); coarser grids test
    more triangles per point, finer ones cost memory for little gain.
    """
    used = np.unique(faces)
    bounds = np.array([vx[used].min(), vy[used].min(), vx[used].max(), vy[used].max()])
    wx, wy = bounds[2] - bounds[0], bounds[3] - bounds[1]
    nf = len(faces)
    if wx > 0 and wy > 0:
        h = 0.5 * np.sqrt(wx * wy / nf)
    else:
        h = max(wx, wy) / nf if max(wx, wy) > 0 else 1.0
    nx = int(min(wx / h + 1, 4096))
    ny = int(min(wy / h + 1, 4096))
    h = max(wx / nx, wy / ny, h * 1e-9) * (1 + 1e-12)
    start, items = bin_triangles(vx, vy, faces, bounds[0], bounds[1], h, nx, ny)
    return bounds, h, nx, ny, start, items


# ---------------------------------------------------------------------------------------
# Points
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def _inside_one(vx, vy, vz, faces, px, py, pz, bounds, h, nx, ny, start, items):
    if not (bounds[0] <= px <= bounds[2] and bounds[1] <= py <= bounds[3]):
        return False  # also False for NaN coordinates
    c = _cell(py, bounds[1], h, ny) * nx + _cell(px, bounds[0], h, nx)
    count = 0
    for q in range(start[c], start[c + 1]):
        t = items[q]
        hit, z = _crossing(faces[t, 0], faces[t, 1], faces[t, 2], vx, vy, vz, px, py)
        if hit and z > pz:
            count += 1
    return count % 2 == 1


@njit(cache=True)
def inside_serial(vx, vy, vz, faces, px, py, pz, bounds, h, nx, ny, start, items, out):
    """Fill ``out[k]`` with the parity test of point k (serial loop)."""
    for k in range(px.shape[0]):
        out[k] = _inside_one(
            vx, vy, vz, faces, px[k], py[k], pz[k], bounds, h, nx, ny, start, items
        )


@njit(cache=True, parallel=True)
def inside_parallel(vx, vy, vz, faces, px, py, pz, bounds, h, nx, ny, start, items, out):
    """Fill ``out[k]`` with the parity test of point k (threads over points)."""
    for k in prange(px.shape[0]):
        out[k] = _inside_one(
            vx, vy, vz, faces, px[k], py[k], pz[k], bounds, h, nx, ny, start, items
        )


# ---------------------------------------------------------------------------------------
# Sub-cell columns of a block grid (grid frame, origin at 0)
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def _sub_index_range(lo, hi, step, k_first, n):
    """Range [k0, k1) of k in [0, n) with lo <= (k_first + k + 0.5) * step < hi (z > pz rule)."""
    k0 = 0
    if lo > -np.inf:
        k0 = min(max(int(np.floor(lo / step - 0.5)) - k_first - 1, 0), n)
    while k0 < n and (k_first + k0 + 0.5) * step < lo:
        k0 += 1
    k1 = n
    if hi < np.inf:
        k1 = min(max(int(np.floor(hi / step - 0.5)) - k_first + 2, k0), n)
    while k1 > k0 and (k_first + k1 - 1 + 0.5) * step >= hi:
        k1 -= 1
    return k0, k1


@njit(cache=True)
def _fraction_row(
    iy, vx, vy, vz, faces, bounds, h, gnx, gny, start, items, first, step, sub, nsub, out, buf
):
    """Count inside sub-cells of block row ``iy`` of ``out`` (int64, shape (nz, ny, nx))."""
    nx = out.shape[2]
    for b in range(sub[1]):
        py = (first[1] + iy * sub[1] + b + 0.5) * step[1]
        if not (bounds[1] <= py <= bounds[3]):
            continue
        j = _cell(py, bounds[1], h, gny)
        for ix in range(nx):
            for a in range(sub[0]):
                px = (first[0] + ix * sub[0] + a + 0.5) * step[0]
                if not (bounds[0] <= px <= bounds[2]):
                    continue
                c = j * gnx + _cell(px, bounds[0], h, gnx)
                n = 0
                for q in range(start[c], start[c + 1]):
                    t = items[q]
                    hit, z = _crossing(faces[t, 0], faces[t, 1], faces[t, 2], vx, vy, vz, px, py)
                    if hit:
                        # insertion sort: columns cross the surface a few times only
                        m = n
                        while m > 0 and buf[m - 1] > z:
                            buf[m] = buf[m - 1]
                            m -= 1
                        buf[m] = z
                        n += 1
                # sub-cell centre w is inside when the count of crossings with z > w is odd;
                # for w in [buf[m-1], buf[m]) that count is n - m (buf[-1] = -inf).
                for m in range(n + 1):
                    if (n - m) % 2 == 0:
                        continue
                    lo = -np.inf if m == 0 else buf[m - 1]
                    hi = buf[m] if m < n else np.inf
                    k0, k1 = _sub_index_range(lo, hi, step[2], first[2], nsub)
                    if k1 <= k0:
                        continue
                    kb0, kb1 = k0 // sub[2], (k1 - 1) // sub[2]
                    if kb0 == kb1:
                        out[kb0, iy, ix] += k1 - k0
                        continue
                    out[kb0, iy, ix] += (kb0 + 1) * sub[2] - k0
                    for kb in range(kb0 + 1, kb1):
                        out[kb, iy, ix] += sub[2]
                    out[kb1, iy, ix] += k1 - kb1 * sub[2]


@njit(cache=True)
def fraction_counts_serial(
    vx, vy, vz, faces, bounds, h, gnx, gny, start, items, first, step, sub, out, maxcell
):
    """Inside sub-cell counts per block, serial over block rows."""
    nsub = out.shape[0] * sub[2]
    buf = np.empty(maxcell + 1, dtype=np.float64)
    for iy in range(out.shape[1]):
        _fraction_row(
            iy,
            vx,
            vy,
            vz,
            faces,
            bounds,
            h,
            gnx,
            gny,
            start,
            items,
            first,
            step,
            sub,
            nsub,
            out,
            buf,
        )


@njit(cache=True, parallel=True)
def fraction_counts_parallel(
    vx, vy, vz, faces, bounds, h, gnx, gny, start, items, first, step, sub, out, maxcell
):
    """Inside sub-cell counts per block, threads over block rows (each row is written once)."""
    nsub = out.shape[0] * sub[2]
    for iy in prange(out.shape[1]):
        buf = np.empty(maxcell + 1, dtype=np.float64)
        _fraction_row(
            iy,
            vx,
            vy,
            vz,
            faces,
            bounds,
            h,
            gnx,
            gny,
            start,
            items,
            first,
            step,
            sub,
            nsub,
            out,
            buf,
        )


# ---------------------------------------------------------------------------------------
# Segments against triangles (do two closed surfaces cross?)
# ---------------------------------------------------------------------------------------

#: Signed volumes smaller than this times the product of the three edge lengths are zero:
#: a point on (or within rounding of) a plane is not on either side, so surfaces that only
#: touch (a shared vertex, edge or face) never count as crossing.
CROSS_TOLERANCE = 1e-9


@njit(cache=True)
def _orient(ax, ay, az, bx, by, bz, cx, cy, cz, dx, dy, dz):
    """Sign of det[b - a, c - a, d - a] (+1, -1, or 0 within ``CROSS_TOLERANCE``)."""
    ux, uy, uz = bx - ax, by - ay, bz - az
    vx, vy, vz = cx - ax, cy - ay, cz - az
    wx, wy, wz = dx - ax, dy - ay, dz - az
    det = (uy * vz - uz * vy) * wx + (uz * vx - ux * vz) * wy + (ux * vy - uy * vx) * wz
    scale = (
        np.sqrt(ux * ux + uy * uy + uz * uz)
        * np.sqrt(vx * vx + vy * vy + vz * vz)
        * np.sqrt(wx * wx + wy * wy + wz * wz)
    )
    if det > CROSS_TOLERANCE * scale:
        return 1
    if det < -CROSS_TOLERANCE * scale:
        return -1
    return 0


@njit(cache=True)
def segment_crosses_triangle(px, py, pz, qx, qy, qz, ax, ay, az, bx, by, bz, cx, cy, cz):
    """Whether segment pq passes through the inside of triangle abc, ends strictly apart.

    p and q must lie strictly on opposite sides of the triangle's plane, and the line pq must
    pass strictly inside the triangle (the signed volumes of pq with each edge agree).
    """
    s1 = _orient(ax, ay, az, bx, by, bz, cx, cy, cz, px, py, pz)
    s2 = _orient(ax, ay, az, bx, by, bz, cx, cy, cz, qx, qy, qz)
    if s1 == 0 or s2 == 0 or s1 == s2:
        return False
    t1 = _orient(px, py, pz, qx, qy, qz, ax, ay, az, bx, by, bz)
    t2 = _orient(px, py, pz, qx, qy, qz, bx, by, bz, cx, cy, cz)
    t3 = _orient(px, py, pz, qx, qy, qz, cx, cy, cz, ax, ay, az)
    return t1 != 0 and t1 == t2 and t2 == t3


@njit(cache=True)
def first_crossing(s0, s1, vx, vy, vz, faces, bounds, h, nx, ny, start, items):
    """First segment ``(s0[k], s1[k])`` (vertex indices) that crosses a triangle of ``faces``.

    Triangles are looked up in the xy index of :func:`xy_index` (every cell the segment's xy
    box meets). Returns ``(k, t)``, or ``(-1, -1)`` when no segment crosses any triangle.
    """
    for k in range(s0.shape[0]):
        p, q = s0[k], s1[k]
        xlo, xhi = min(vx[p], vx[q]), max(vx[p], vx[q])
        ylo, yhi = min(vy[p], vy[q]), max(vy[p], vy[q])
        if xhi < bounds[0] or xlo > bounds[2] or yhi < bounds[1] or ylo > bounds[3]:
            continue
        i0, i1 = _cell(xlo, bounds[0], h, nx), _cell(xhi, bounds[0], h, nx)
        j0, j1 = _cell(ylo, bounds[1], h, ny), _cell(yhi, bounds[1], h, ny)
        zlo, zhi = min(vz[p], vz[q]), max(vz[p], vz[q])
        for j in range(j0, j1 + 1):
            for i in range(i0, i1 + 1):
                c = j * nx + i
                for r in range(start[c], start[c + 1]):
                    t = items[r]
                    a, b, d = faces[t, 0], faces[t, 1], faces[t, 2]
                    if max(vz[a], vz[b], vz[d]) < zlo or min(vz[a], vz[b], vz[d]) > zhi:
                        continue
                    if segment_crosses_triangle(
                        vx[p], vy[p], vz[p], vx[q], vy[q], vz[q],
                        vx[a], vy[a], vz[a], vx[b], vy[b], vz[b], vx[d], vy[d], vz[d],
                    ):  # fmt: skip
                        return k, t
    return -1, -1


# ---------------------------------------------------------------------------------------
# NumPy reference (brute force over every triangle; for tests and small meshes)
# ---------------------------------------------------------------------------------------


def _side_numpy(vx, vy, i, j, px, py):
    """Vectorised ``_side``: edges (i, j) of shape (nf,), points (m, 1) -> (m, nf) int."""
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    ax, ay, bx, by = vx[lo], vy[lo], vx[hi], vy[hi]
    e = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    tie = np.where(ay != by, np.sign(ay - by), np.sign(bx - ax))
    s = np.where(e != 0.0, np.sign(e), tie)
    return np.where(i < j, s, -s).astype(np.int8)


def inside_numpy(vertices, faces, points, chunk=2048):
    """Parity inside test against every triangle, in NumPy (same rule as the kernels)."""
    vx, vy, vz = (np.ascontiguousarray(vertices[:, k], dtype=np.float64) for k in range(3))
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    out = np.zeros(len(points), dtype=bool)
    for s0 in range(0, len(points), chunk):
        p = points[s0 : s0 + chunk]
        px, py, pz = p[:, :1], p[:, 1:2], p[:, 2:3]
        s1 = _side_numpy(vx, vy, a, b, px, py)
        s2 = _side_numpy(vx, vy, b, c, px, py)
        s3 = _side_numpy(vx, vy, c, a, px, py)
        hit = (s1 != 0) & (s1 == s2) & (s2 == s3)
        wa = (vx[c] - vx[b]) * (py - vy[b]) - (vy[c] - vy[b]) * (px - vx[b])
        wb = (vx[a] - vx[c]) * (py - vy[c]) - (vy[a] - vy[c]) * (px - vx[c])
        wc = (vx[b] - vx[a]) * (py - vy[a]) - (vy[b] - vy[a]) * (px - vx[a])
        t = wa + wb + wc
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(
                t != 0.0, (wa * vz[a] + wb * vz[b] + wc * vz[c]) / t, (vz[a] + vz[b] + vz[c]) / 3
            )
        out[s0 : s0 + chunk] = (np.count_nonzero(hit & (z > pz), axis=1) % 2) == 1
    return out


def crossings_numpy(vertices, s0, s1, faces, eps=1e-9):
    """``(m, nf)`` bool: segment k crosses the inside of triangle t (Moller-Trumbore, NumPy).

    An independent formulation of :func:`segment_crosses_triangle` for tests: the segment's
    parameter and the barycentric coordinates of its hit must all be strictly inside (by
    ``eps``).
    """
    v = np.asarray(vertices, dtype=np.float64)
    p, q = v[np.asarray(s0)][:, None, :], v[np.asarray(s1)][:, None, :]
    a, b, c = (v[np.asarray(faces)[:, k]][None, :, :] for k in range(3))
    d = q - p
    e1, e2 = b - a, c - a
    pv = np.cross(d, e2)
    det = np.einsum("ijk,ijk->ij", e1, pv)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / det
        tv = p - a
        u = np.einsum("ijk,ijk->ij", tv, pv) * inv
        qv = np.cross(tv, e1)
        w = np.einsum("ijk,ijk->ij", d, qv) * inv
        t = np.einsum("ijk,ijk->ij", e2, qv) * inv
    ok = np.abs(det) > 0
    return ok & (u > eps) & (w > eps) & (u + w < 1 - eps) & (t > eps) & (t < 1 - eps)
