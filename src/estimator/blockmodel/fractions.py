"""Which part of each block belongs to each domain: wireframes, block rules and topography.

Every rule works on the same regular sub-cells of a block (``block_model.subcells``), so the
fraction of a block in a domain is the share of its sub-cell centres that the domain holds:

* a domain with a **wireframe** holds the sub-cell centres inside it (parity rule, exactly as
  :func:`estimator.blockmodel.clip.block_fractions`);
* a domain with the block rule ``nearest_sample`` holds the sub-cell centres whose nearest sample
  (assay interval mid-point or positioned sample; samples outside every domain count too) is one
  of its own and lies within the rule's ``max_distance`` (data units, straight-line distance);
* without any domain the whole grid is the domain ``all``;
* a **topography** surface removes the sub-cell centres above it (where the surface has no
  triangle above a sub-cell column, nothing is removed there: that area is reported);
* where domains overlap, a sub-cell belongs to the first domain in config order.

Pure functions of arrays and the grid; no file access.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from estimator.blockmodel.clip import window_bounds
from estimator.blockmodel.grid import BlockGrid

__all__ = [
    "DomainVolumes",
    "SampleIndex",
    "Surface",
    "domain_fractions",
    "surface_elevation_at",
    "surface_elevation_columns",
    "topography_totals",
]

#: Sub-cell centres handled per batch (memory: a few hundred bytes each).
BATCH = 400_000


@dataclass(frozen=True)
class Surface:
    """An open triangulated surface (topography): ``vertices (n, 3)``, ``faces (m, 3)``."""

    vertices: np.ndarray
    faces: np.ndarray
    source: str = ""


@dataclass
class DomainVolumes:
    """Fractions ``(n_domains, nz, ny, nx)`` and what a geologist should know about them."""

    fractions: np.ndarray
    #: Volume above the topography inside the grid (cubic data units), removed.
    above_topography: float = 0.0
    #: Horizontal area of the grid's sub-cell columns no topography triangle covers.
    uncovered_area: float = 0.0


def surface_elevation_columns(
    surface: Surface,
    grid: BlockGrid,
    subcells: Sequence[int],
    window: Sequence[slice] | None = None,
) -> np.ndarray:
    """Elevation of the surface above each sub-cell column of the grid.

    Parameters
    ----------
    surface : Surface
        Triangles in world coordinates.
    grid : BlockGrid
        The grid (possibly rotated).
    subcells : sequence of 3 int
        Sub-cells per block along x, y, z.
    window : (slice, slice, slice), optional
        Only the columns of the blocks ``[z, y, x]`` of these ranges (z is ignored). Each
        column's value is the same as in the whole-grid call.

    Returns
    -------
    numpy.ndarray, shape (ny * sv, nx * su)
        The highest elevation of the surface over the column's centre, ``-inf`` where no
        triangle lies over it. Triangles seen edge-on from above (vertical) are ignored.
        With a window: the window's ``(wy * sv, wx * su)`` columns.
    """
    su, sv, _ = (int(k) for k in subcells)
    lo_win, hi_win = window_bounds(window, grid.shape)
    dx, dy, _ = grid.block_size
    hu, hv = dx / su, dy / sv
    # column index ranges [ci0, ci1) x [cj0, cj1) of the window
    ci0, ci1 = int(lo_win[0]) * su, int(hi_win[0]) * su
    cj0, cj1 = int(lo_win[1]) * sv, int(hi_win[1]) * sv
    ncu, ncv = ci1 - ci0, cj1 - cj0
    ztop = np.full(ncv * ncu, -np.inf)
    v = np.asarray(surface.vertices, dtype=np.float64)
    f = np.asarray(surface.faces, dtype=np.int64)
    if f.size == 0:
        return ztop.reshape(ncv, ncu)
    gu, gv = grid.from_world(v[:, 0], v[:, 1])
    gu = gu - grid.origin[0]
    gv = gv - grid.origin[1]
    a, b, c = f[:, 0], f[:, 1], f[:, 2]
    ua, ub, uc = gu[a], gu[b], gu[c]
    va, vb, vc = gv[a], gv[b], gv[c]
    det = (vb - vc) * (ua - uc) + (uc - ub) * (va - vc)
    scale = np.maximum.reduce([np.abs(ua - uc), np.abs(ub - uc), np.abs(va - vc), np.abs(vb - vc)])
    flat = np.abs(det) > 1e-12 * np.maximum(scale * scale, 1e-300)
    # column index ranges of each triangle's box: centre of column i at (i + 0.5) h
    i0 = np.ceil(np.minimum.reduce([ua, ub, uc]) / hu - 0.5).astype(np.int64)
    i1 = np.floor(np.maximum.reduce([ua, ub, uc]) / hu - 0.5).astype(np.int64)
    j0 = np.ceil(np.minimum.reduce([va, vb, vc]) / hv - 0.5).astype(np.int64)
    j1 = np.floor(np.maximum.reduce([va, vb, vc]) / hv - 0.5).astype(np.int64)
    i0, j0 = np.maximum(i0, ci0), np.maximum(j0, cj0)
    i1, j1 = np.minimum(i1, ci1 - 1), np.minimum(j1, cj1 - 1)
    keep = flat & (i1 >= i0) & (j1 >= j0)
    tri = np.flatnonzero(keep)
    wi = i1[tri] - i0[tri] + 1
    wj = j1[tri] - j0[tri] + 1
    count = wi * wj
    zv = v[:, 2]
    start = 0
    while start < tri.size:
        # triangles of this batch: at most about BATCH (triangle, column) pairs
        csum = np.cumsum(count[start:])
        stop = start + max(1, int(np.searchsorted(csum, BATCH, side="right")))
        t = tri[start:stop]
        n = count[start:stop]
        rep = np.repeat(np.arange(t.size), n)
        off = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        w = wi[start:stop][rep]
        ci = i0[t][rep] + off % w
        cj = j0[t][rep] + off // w
        pu, pv = (ci + 0.5) * hu, (cj + 0.5) * hv
        tt = t[rep]
        d = det[tt]
        l1 = ((vb[tt] - vc[tt]) * (pu - uc[tt]) + (uc[tt] - ub[tt]) * (pv - vc[tt])) / d
        l2 = ((vc[tt] - va[tt]) * (pu - uc[tt]) + (ua[tt] - uc[tt]) * (pv - vc[tt])) / d
        l3 = 1.0 - l1 - l2
        eps = -1e-12
        inside = (l1 >= eps) & (l2 >= eps) & (l3 >= eps)
        z = l1 * zv[a[tt]] + l2 * zv[b[tt]] + l3 * zv[c[tt]]
        col = (cj - cj0) * ncu + (ci - ci0)
        np.maximum.at(ztop, col[inside], z[inside])
        start = stop
    return ztop.reshape(ncv, ncu)


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``counts[i]`` items of each row i: (row of each item, its offset in the row)."""
    rows = np.repeat(np.arange(counts.size), counts)
    offset = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, offset


def surface_elevation_at(surface: Surface, x, y) -> np.ndarray:
    """Elevation of the surface above each point ``(x, y)`` (the highest triangle there).

    Returns ``-inf`` where no triangle lies over the point. Triangles are bucketed on a
    regular cell grid; each is tested only against the points in the cells its box touches.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    out = np.full(x.size, -np.inf)
    v = np.asarray(surface.vertices, dtype=np.float64)
    f = np.asarray(surface.faces, dtype=np.int64)
    if x.size == 0 or f.size == 0:
        return out
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    lo = np.minimum(np.minimum(a, b), c)[:, :2]
    hi = np.maximum(np.maximum(a, b), c)[:, :2]
    span = float(np.median(np.max(hi - lo, axis=1)))
    ok = np.abs(det) > 1e-12 * np.maximum(np.max(hi - lo, axis=1) ** 2, 1e-300)
    if not ok.any():
        return out
    h = span if span > 0 else 1.0
    x0, y0 = float(min(x.min(), lo[:, 0].min())), float(min(y.min(), lo[:, 1].min()))
    ncx = int((max(x.max(), hi[:, 0].max()) - x0) // h) + 1
    pkey = ((y - y0) // h).astype(np.int64) * ncx + ((x - x0) // h).astype(np.int64)
    order = np.argsort(pkey, kind="stable")
    skey = pkey[order]
    tri = np.flatnonzero(ok)
    i0 = ((lo[tri, 0] - x0) // h).astype(np.int64)
    i1 = ((hi[tri, 0] - x0) // h).astype(np.int64)
    j0 = ((lo[tri, 1] - y0) // h).astype(np.int64)
    j1 = ((hi[tri, 1] - y0) // h).astype(np.int64)
    wi = i1 - i0 + 1
    ncell = wi * (j1 - j0 + 1)
    step = max(1, BATCH // max(1, int(np.median(ncell))))
    for s in range(0, tri.size, step):
        sl = slice(s, s + step)
        rows, off = _expand(ncell[sl])
        t = tri[sl][rows]
        cell = (j0[sl][rows] + off // wi[sl][rows]) * ncx + i0[sl][rows] + off % wi[sl][rows]
        first = np.searchsorted(skey, cell, side="left")
        last = np.searchsorted(skey, cell, side="right")
        rows2, off2 = _expand(last - first)
        t = t[rows2]
        pt = order[first[rows2] + off2]
        px, py = x[pt], y[pt]
        d = det[t]
        l1 = ((b[t, 1] - c[t, 1]) * (px - c[t, 0]) + (c[t, 0] - b[t, 0]) * (py - c[t, 1])) / d
        l2 = ((c[t, 1] - a[t, 1]) * (px - c[t, 0]) + (a[t, 0] - c[t, 0]) * (py - c[t, 1])) / d
        l3 = 1.0 - l1 - l2
        inside = (l1 >= -1e-12) & (l2 >= -1e-12) & (l3 >= -1e-12)
        z = l1 * a[t, 2] + l2 * b[t, 2] + l3 * c[t, 2]
        np.maximum.at(out, pt[inside], z[inside])
    return out


def _below_levels(ztop: np.ndarray, grid: BlockGrid, subcells: Sequence[int]) -> np.ndarray:
    """Sub-cell levels (from the grid's bottom) below ``ztop`` in each column (all where -inf)."""
    sw = int(subcells[2])
    hw = grid.block_size[2] / sw
    levels = grid.shape[2] * sw
    t = (ztop - grid.origin[2]) / hw
    # sub-cell level m has its centre at z0 + (m + 1/2) hw: below ztop when m < t - 1/2
    with np.errstate(invalid="ignore"):
        below = np.where(np.isfinite(ztop), np.clip(np.ceil(t - 0.5), 0, levels), levels)
    return below.astype(np.int64)


def _below_counts(
    ztop: np.ndarray, grid: BlockGrid, subcells: Sequence[int], window: Sequence[slice] | None
) -> np.ndarray:
    """Sub-cell centres below ``ztop`` in each block of the window, ``(wz, wy, wx)`` ints."""
    su, sv, sw = (int(k) for k in subcells)
    lo, hi = window_bounds(window, grid.shape)
    wx, wy = int(hi[0] - lo[0]), int(hi[1] - lo[1])
    below = _below_levels(ztop, grid, subcells)
    out = np.empty((int(hi[2] - lo[2]), wy, wx), dtype=np.int64)
    for i, k in enumerate(range(int(lo[2]), int(hi[2]))):
        layer = np.clip(below - k * sw, 0, sw)
        out[i] = layer.reshape(wy, sv, wx, su).sum(axis=(1, 3))
    return out


def topography_totals(
    surface: Surface, grid: BlockGrid, subcells: Sequence[int], columns: Sequence[int] = (64, 64)
) -> tuple[float, float]:
    """Volume above the surface inside the grid, and the grid area it leaves uncovered.

    The same two numbers as :func:`domain_fractions` gives for the whole grid
    (``above_topography``, ``uncovered_area``), computed over windows of ``columns``
    ``(bx, by)`` blocks so that memory stays bounded by one window's sub-cell columns. Both
    are integer sub-cell counts until the last multiplication, so any window gives the same
    bits.
    """
    su, sv, sw = (int(k) for k in subcells)
    per = su * sv * sw
    nx, ny, _ = grid.shape
    levels = grid.shape[2] * sw
    bx, by = (max(1, int(c)) for c in columns)
    above = np.int64(0)
    uncovered = np.int64(0)
    for y0 in range(0, ny, by):
        for x0 in range(0, nx, bx):
            window = (slice(0, 1), slice(y0, min(y0 + by, ny)), slice(x0, min(x0 + bx, nx)))
            ztop = surface_elevation_columns(surface, grid, subcells, window)
            uncovered += np.int64(np.isinf(ztop).sum())
            above += np.int64((levels - _below_levels(ztop, grid, subcells)).sum())
    sub_area = (grid.block_size[0] / su) * (grid.block_size[1] / sv)
    return float(above / per * grid.block_volume), float(uncovered * sub_area)


def _subcell_centres(grid: BlockGrid, subcells, blocks_zyx: np.ndarray, window=None):
    """World centres of every sub-cell of the given blocks, and their column indices.

    ``blocks_zyx`` holds global block indices. Returns ``xyz (n * s, 3)``, ``block (n * s,)``
    (row into ``blocks_zyx``) and ``col (n * s,)`` (flat index into the window's
    ``(wy * sv, wx * su)`` column grid; the whole grid's without a window).
    """
    su, sv, sw = (int(k) for k in subcells)
    lo, hi = window_bounds(window, grid.shape)
    dx, dy, dz = grid.block_size
    cz, cy, cx = np.meshgrid(np.arange(sw), np.arange(sv), np.arange(su), indexing="ij")
    cz, cy, cx = cz.ravel(), cy.ravel(), cx.ravel()
    kz, jy, ix = (blocks_zyx[:, i][:, None] for i in range(3))
    gu = ix * su + cx[None, :]
    gv = jy * sv + cy[None, :]
    gw = kz * sw + cz[None, :]
    u = grid.origin[0] + (gu + 0.5) * (dx / su)
    v = grid.origin[1] + (gv + 0.5) * (dy / sv)
    w = grid.origin[2] + (gw + 0.5) * (dz / sw)
    x, y = grid.to_world(u, v)
    xyz = np.stack([x.ravel(), y.ravel(), w.ravel()], axis=1)
    block = np.repeat(np.arange(blocks_zyx.shape[0]), cx.size)
    ncu = int(hi[0] - lo[0]) * su
    col = ((gv - int(lo[1]) * sv) * ncu + (gu - int(lo[0]) * su)).ravel()
    return xyz, block, col


def _window_blocks(window, grid: BlockGrid) -> np.ndarray:
    """Global ``(z, y, x)`` indices of every block of the window, C order, shape (n, 3)."""
    lo, hi = window_bounds(window, grid.shape)
    kk, jj, ii = np.meshgrid(
        np.arange(lo[2], hi[2]), np.arange(lo[1], hi[1]), np.arange(lo[0], hi[0]), indexing="ij"
    )
    return np.stack([kk.ravel(), jj.ravel(), ii.ravel()], axis=1)


@dataclass(frozen=True)
class SampleIndex:
    """The samples a ``nearest_sample`` block rule looks at, with their k-d tree.

    Build it once (:meth:`build`) and pass it to every :func:`domain_fractions` call of a
    chunked estimate: the nearest sample of a sub-cell centre (ties included) then comes from
    the same tree in every chunk.
    """

    points: np.ndarray
    labels: np.ndarray
    tree: object

    @classmethod
    def build(cls, points, labels) -> SampleIndex:
        """Index sample positions ``(n, 3)`` and their domain names (``""`` = no domain)."""
        from scipy.spatial import cKDTree

        pts = np.zeros((0, 3)) if points is None else np.asarray(points, dtype=float)
        labs = np.zeros(0, dtype=object) if labels is None else np.asarray(labels)
        labs = labs.astype(str)
        return cls(pts, labs, cKDTree(pts) if pts.shape[0] else None)


def _nearest_sample_counts(
    grid: BlockGrid,
    subcells,
    index: SampleIndex,
    rule_domains: Mapping[str, float],
    ztop: np.ndarray | None,
    window=None,
) -> dict[str, np.ndarray]:
    """Per rule domain, the sub-cell centres whose nearest sample is its own and close enough."""
    lo, hi = window_bounds(window, grid.shape)
    shape = tuple(int(v) for v in (hi - lo)[::-1])
    out = {d: np.zeros(shape, dtype=np.int64) for d in rule_domains}
    if index.tree is None or not rule_domains:
        return out
    tree = index.tree
    reach = max(rule_domains.values())
    names = list(rule_domains)
    label_code = np.full(index.labels.shape[0], -1, dtype=np.int64)
    for i, name in enumerate(names):
        label_code[index.labels == name] = i
    limit = np.array([rule_domains[d] for d in names])
    # candidate blocks: a sample within reach of some point of the block
    allb = _window_blocks(window, grid)
    centres = grid.block_centres(allb[:, 0], allb[:, 1], allb[:, 2])
    dist, _ = tree.query(centres, k=1, distance_upper_bound=reach + grid.half_diagonal)
    cand = allb[np.isfinite(dist)]
    per = int(np.prod(subcells))
    step = max(1, BATCH // per)
    flat_ztop = None if ztop is None else ztop.ravel()
    start = lo[::-1]
    for s in range(0, cand.shape[0], step):
        blocks = cand[s : s + step]
        xyz, block, col = _subcell_centres(grid, subcells, blocks, window)
        d, nearest = tree.query(xyz, k=1, distance_upper_bound=reach)
        ok = np.isfinite(d)
        dom = np.full(d.size, -1, dtype=np.int64)
        dom[ok] = label_code[nearest[ok]]
        hit = dom >= 0
        hit[hit] &= d[hit] <= limit[dom[hit]]
        if flat_ztop is not None:
            hit &= _below(xyz[:, 2], flat_ztop[col])
        for i, name in enumerate(names):
            sel = hit & (dom == i)
            if not sel.any():
                continue
            counts = np.bincount(block[sel], minlength=blocks.shape[0])
            b = blocks[counts > 0] - start
            out[name][b[:, 0], b[:, 1], b[:, 2]] += counts[counts > 0]
    return out


def _below(z: np.ndarray, ztop: np.ndarray) -> np.ndarray:
    """Below the surface, or where no surface covers the column (nothing removed there)."""
    return ~np.isfinite(ztop) | (z < ztop)


def _clip_straddling(grid, subcells, wf, below, ztop, frac_wf, window=None, parallel=True):
    """Exact sub-cell fractions of a wireframe below the topography, where a block straddles it."""
    from estimator.geometry.mesh import points_inside

    per = int(np.prod(subcells))
    straddle = (below > 0) & (below < per) & (frac_wf > 0)
    blocks = np.argwhere(straddle)
    out = frac_wf * (below == per)
    if blocks.size == 0:
        return out
    start = window_bounds(window, grid.shape)[0][::-1]
    flat_ztop = ztop.ravel()
    step = max(1, BATCH // per)
    for s in range(0, blocks.shape[0], step):
        b = blocks[s : s + step]
        xyz, block, col = _subcell_centres(grid, subcells, b + start, window)
        keep = _below(xyz[:, 2], flat_ztop[col])
        inside = np.zeros(xyz.shape[0], dtype=bool)
        inside[keep] = points_inside(wf.vertices, wf.faces, xyz[keep], parallel=parallel)
        counts = np.bincount(block[inside], minlength=b.shape[0])
        out[b[:, 0], b[:, 1], b[:, 2]] = counts / per
    return out


def domain_fractions(
    grid: BlockGrid,
    subcells: Sequence[int],
    domains: Sequence,
    wireframes: Mapping[str, object],
    *,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    topography: Surface | None = None,
    window: Sequence[slice] | None = None,
    sample_index: SampleIndex | None = None,
    parallel: bool = True,
) -> DomainVolumes:
    """Volume fraction of every block in every domain (SPEC section 5 ``fraction``).

    Parameters
    ----------
    grid : BlockGrid
        The block grid.
    subcells : sequence of 3 int
        ``block_model.subcells``.
    domains : sequence of DomainConfig
        In config order (an empty sequence means the one domain ``all``). Only ``name`` and
        ``blocks.max_distance`` (the ``nearest_sample`` rule, or ``blocks = None``) are read.
    wireframes : mapping
        ``{domain name: Wireframe}`` (``vertices``, ``faces``) for the domains that have one.
    points, labels : numpy.ndarray, optional
        Sample positions ``(n, 3)`` and their domain names (``""`` = outside every domain), for
        the domains with a ``nearest_sample`` block rule.
    topography : Surface, optional
        Volume above it is removed.
    window : (slice, slice, slice), optional
        Only the blocks ``[z, y, x]`` of these index ranges (one chunk of a chunked estimate).
        Every value is the same, bit for bit, as the whole-grid call's for that block: sub-cell
        centres come from global indices. ``above_topography`` and ``uncovered_area`` then
        describe the window only (:func:`topography_totals` gives the whole grid's).
    sample_index : SampleIndex, optional
        ``SampleIndex.build(points, labels)``, built once for many windows (overrides
        ``points`` and ``labels``).
    parallel : bool, default True
        Numba threads in the wireframe kernels (False inside an already parallel run).

    Returns
    -------
    DomainVolumes
        Fractions of shape ``(n_domains, nz, ny, nx)`` (the window's shape when given).
    """
    from estimator.blockmodel.clip import block_fractions

    subcells = tuple(int(k) for k in subcells)
    per = int(np.prod(subcells))
    lo, hi = window_bounds(window, grid.shape)
    wx, wy, wz = (int(v) for v in hi - lo)
    names = [d.name for d in domains] or ["all"]
    frac = np.zeros((len(names), wz, wy, wx))
    ztop = below = None
    result = DomainVolumes(frac)
    if topography is not None:
        ztop = surface_elevation_columns(topography, grid, subcells, window)
        below = _below_counts(ztop, grid, subcells, window)
        sub_area = (grid.block_size[0] / subcells[0]) * (grid.block_size[1] / subcells[1])
        result.uncovered_area = float(np.isinf(ztop).sum() * sub_area)
        result.above_topography = float((per - below).sum() / per * grid.block_volume)
    rules = {d.name: d.blocks.max_distance for d in domains if getattr(d, "blocks", None)}
    rule_counts = {}
    if rules:
        index = sample_index if sample_index is not None else SampleIndex.build(points, labels)
        rule_counts = _nearest_sample_counts(grid, subcells, index, rules, ztop, window)
    taken = np.zeros((wz, wy, wx))
    for i, name in enumerate(names):
        wf = wireframes.get(name)
        if name in rule_counts:
            f = rule_counts[name] / per
        elif wf is not None:
            f = block_fractions(
                wf.vertices, wf.faces, grid.origin, grid.block_size, grid.shape, grid.rotation,
                subcells, parallel=parallel, window=window,
            )  # fmt: skip
            if below is not None:
                f = _clip_straddling(grid, subcells, wf, below, ztop, f, window, parallel)
        else:
            f = np.ones((wz, wy, wx)) if below is None else below / per
        f = np.minimum(f, 1.0 - taken)
        taken = taken + f
        frac[i] = f
    return result
