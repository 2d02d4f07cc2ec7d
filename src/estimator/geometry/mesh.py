"""Closed triangulated surfaces (wireframes): topology checks, volume and the inside test.

Everything here is a pure function of arrays: ``vertices`` is ``(nv, 3)`` float (x, y, z) and
``faces`` is ``(nf, 3)`` int, vertex indices of each triangle, wound counter-clockwise seen from
outside (outward normals by the right-hand rule). Reading files is ``estimator.io.wireframe``.

scipy.sparse and the compiled kernels (``_kernels``, numba) are imported by the functions that
use them, so a run without wireframes never loads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from estimator.errors import DataError

__all__ = [
    "Wireframe",
    "build_wireframe",
    "check_closed",
    "fill_holes",
    "mesh_volume",
    "points_inside",
    "split_bodies",
]

# A body with |volume| below this times (surface area)**1.5 encloses nothing: for comparison, a
# sphere has 0.094 and a square slab whose thickness is 2e-6 of its width has 1e-6.
_FLAT_BODY = 1e-9
#: Vertex coordinates beyond this many data units are export errors: float64 keeps only 1e-4
#: of a unit there, and volumes and areas would overflow.
MAX_COORDINATE = 1e12

# ---------------------------------------------------------------------------------------
# Topology
# ---------------------------------------------------------------------------------------


def _directed_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed edges ``(3 nf, 2)`` (a -> b, b -> c, c -> a) and the face of each."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return edges, np.tile(np.arange(len(faces)), 3)


def _edge_keys(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer keys of the undirected and of the directed edges."""
    lo, hi = np.minimum(edges[:, 0], edges[:, 1]), np.maximum(edges[:, 0], edges[:, 1])
    return lo * n + hi, edges[:, 0] * n + edges[:, 1]


def _as_faces(faces) -> np.ndarray:
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        msg = f"faces must be an (n, 3) integer array, got shape {faces.shape} ({faces.dtype})"
        raise ValueError(msg)
    return faces.astype(np.int64, copy=False)


def split_bodies(faces) -> list[np.ndarray]:
    """Split a triangulation into bodies: groups of triangles connected through shared edges.

    Two triangles are connected when they share an edge that belongs to exactly two
    triangles. An edge shared by more triangles (a non-manifold edge, e.g. two bodies touching
    along an edge, or a double-sided fin hanging off a surface) connects none of them, so each
    closed sheet through it stays a body of its own.

    Parameters
    ----------
    faces : (nf, 3) array_like of int
        Vertex indices of each triangle.

    Returns
    -------
    list of numpy.ndarray
        Face indices (int64, ascending) of each body, ordered by their first face.

    Examples
    --------
    >>> [b.tolist() for b in split_bodies([[0, 1, 2], [3, 4, 5], [2, 1, 6]])]
    [[0, 2], [1]]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    faces = _as_faces(faces)
    nf = len(faces)
    if nf == 0:
        return []
    edges, fid = _directed_edges(faces)
    key, _ = _edge_keys(edges, int(faces.max()) + 1)
    order = np.argsort(key, kind="stable")
    ks, fs = key[order], fid[order]
    # runs of equal keys; connect the two faces of every run of exactly two
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    lengths = np.diff(np.r_[starts, len(ks)])
    pairs = starts[lengths == 2]
    graph = coo_matrix((np.ones(len(pairs)), (fs[pairs], fs[pairs + 1])), shape=(nf, nf))
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)  # components in order of their first face
    by_label = np.argsort(labels, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(labels))]
    return [by_label[bounds[c] : bounds[c + 1]] for c in order]


def _where(vertices, idx) -> str:
    if vertices is None:
        return ""
    x, y, z = np.asarray(vertices, dtype=np.float64)[idx]
    return f" (first at vertex {idx}: {x:.3f}, {y:.3f}, {z:.3f})"


def check_closed(faces, vertices=None) -> tuple[bool, list[str]]:
    """Check that a triangulation is closed with consistent winding.

    Closed means every undirected edge belongs to exactly two triangles, and those two
    traverse it in opposite directions (so all normals point the same way, in or out).

    Parameters
    ----------
    faces : (nf, 3) array_like of int
        Vertex indices of each triangle.
    vertices : (nv, 3) array_like of float, optional
        When given, messages locate the first problem and zero-area triangles are counted.

    Returns
    -------
    closed : bool
        True when the surface is closed and consistently wound.
    problems : list of str
        One sentence per kind of problem. Zero-area triangles are listed but do not make the
        surface open (they enclose nothing and are never hit by the inside test).

    Examples
    --------
    >>> check_closed([[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]])
    (True, [])
    >>> check_closed([[0, 2, 1], [0, 1, 3], [1, 2, 3]])[1]
    ['3 edges belong to one triangle only (holes in the surface)']
    """
    faces = _as_faces(faces)
    problems = []
    if len(faces) == 0:
        return False, ["no triangles"]
    repeated = (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    )
    if repeated.any():
        first = int(faces[repeated][0, 0])
        problems.append(
            f"{repeated.sum()} triangles use the same vertex twice{_where(vertices, first)}"
        )
    edges, _ = _directed_edges(faces)
    undirected, directed = _edge_keys(edges, int(faces.max()) + 1)
    _, inverse, counts = np.unique(undirected, return_inverse=True, return_counts=True)
    for bad, text in (
        (counts == 1, "edges belong to one triangle only (holes in the surface)"),
        (counts > 2, "edges are shared by more than two triangles (non-manifold)"),
    ):
        if bad.any():
            first = int(edges[np.flatnonzero(bad[inverse])[0], 0])
            problems.append(f"{bad.sum()} {text}{_where(vertices, first)}")
    dkeys, dcounts = np.unique(directed, return_counts=True)
    twice = dcounts > 1
    if twice.any():
        first = int(dkeys[twice][0] // (int(faces.max()) + 1))
        problems.append(
            f"{twice.sum()} edges are traversed twice in the same direction "
            f"(inconsistent winding){_where(vertices, first)}"
        )
    closed = not problems
    if vertices is not None:
        v = np.asarray(vertices, dtype=np.float64)
        cross = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
        flat = ~cross.any(axis=1) & ~repeated
        if flat.any():
            problems.append(f"{flat.sum()} triangles have zero area")
    return closed, problems


def fill_holes(faces, max_edges: int = 3) -> tuple[np.ndarray, list[np.ndarray]]:
    """Close small holes: boundary loops of at most ``max_edges`` edges, fan-triangulated.

    A loop of three edges is a missing triangle and has exactly one filling; larger loops are
    filled by a fan from their first vertex, which is only right for convex planar holes, so
    keep ``max_edges`` small. New triangles are wound to match their neighbours.

    Parameters
    ----------
    faces : (nf, 3) array_like of int
        Vertex indices of each triangle.
    max_edges : int, default 3
        Largest loop filled.

    Returns
    -------
    faces : (nf + k, 3) numpy.ndarray
        The input triangles followed by the new ones.
    loops : list of numpy.ndarray
        Vertex indices of each filled loop, in the order the existing triangles traverse it.

    Examples
    --------
    >>> f, loops = fill_holes([[0, 2, 1], [0, 1, 3], [1, 2, 3]])
    >>> f[-1].tolist(), loops[0].tolist()
    ([0, 3, 2], [0, 2, 3])
    """
    faces = _as_faces(faces)
    if len(faces) == 0:
        return faces, []
    edges, _ = _directed_edges(faces)
    undirected, _ = _edge_keys(edges, int(faces.max()) + 1)
    _, inverse, counts = np.unique(undirected, return_inverse=True, return_counts=True)
    border = edges[counts[inverse] == 1]
    starts, n_out = np.unique(border[:, 0], return_counts=True)
    ambiguous = set(starts[n_out > 1].tolist())  # loops touching at a vertex: left alone
    following = {int(a): int(b) for a, b in border if a not in ambiguous}
    seen: set[int] = set()
    new, loops = [], []
    for start in sorted(following):
        if start in seen:
            continue
        loop = [start]
        nxt = following.get(start)
        while nxt is not None and nxt != start and nxt not in seen and len(loop) <= max_edges:
            loop.append(nxt)
            nxt = following.get(nxt)
        seen.update(loop)
        if nxt == start and 3 <= len(loop) <= max_edges:
            loops.append(np.array(loop, dtype=np.int64))
            new += [(loop[0], loop[k + 1], loop[k]) for k in range(1, len(loop) - 1)]
    if not new:
        return faces, []
    return np.vstack([faces, np.array(new, dtype=np.int64)]), loops


# ---------------------------------------------------------------------------------------
# Volume and inside test
# ---------------------------------------------------------------------------------------


def mesh_volume(vertices, faces) -> float:
    """Signed volume enclosed by a closed triangulation (divergence theorem).

    Parameters
    ----------
    vertices : (nv, 3) array_like of float
        Vertex coordinates.
    faces : (nf, 3) array_like of int
        Triangles, wound counter-clockwise seen from outside.

    Returns
    -------
    float
        Volume in cubed data units: positive for outward winding, negative for inward.

    Notes
    -----
    V = sum over triangles of a . (b x c) / 6, with coordinates taken relative to the centre of
    the bounding box so that large (UTM, mine-grid) coordinates lose no precision.

    Examples
    --------
    >>> v = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    >>> round(mesh_volume(v, [[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]]), 12)
    0.166666666667
    """
    faces = _as_faces(faces)
    if len(faces) == 0:
        return 0.0
    v = np.asarray(vertices, dtype=np.float64)
    used = v[np.unique(faces)]
    v = v - 0.5 * (used.min(axis=0) + used.max(axis=0))
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)


def _surface_area(vertices: np.ndarray, faces: np.ndarray) -> float:
    v = vertices
    cross = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    return float(0.5 * np.linalg.norm(cross, axis=1).sum())


def _prepare(vertices, faces):
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        msg = f"vertices must be an (n, 3) array, got shape {v.shape}"
        raise ValueError(msg)
    faces = np.ascontiguousarray(_as_faces(faces))
    if len(faces) and (faces.min() < 0 or faces.max() >= len(v)):
        msg = f"faces refer to vertices outside 0..{len(v) - 1}"
        raise ValueError(msg)
    return tuple(np.ascontiguousarray(v[:, k]) for k in range(3)), faces


def points_inside(vertices, faces, points, *, parallel: bool = True) -> np.ndarray:
    """Whether each point lies inside a closed triangulated surface.

    A point is inside when a ray from it along +z crosses the surface an odd number of
    times. The test is exact for points on vertical lines through vertices and edges (a
    consistent symbolic tie-break counts each crossing once; see ``geometry/_kernels.py``);
    points exactly on the surface may go either way. Triangles are binned on an xy grid, so
    the cost per point is the handful of triangles above and below it.

    Parameters
    ----------
    vertices : (nv, 3) array_like of float
        Vertex coordinates.
    faces : (nf, 3) array_like of int
        Triangles of one or more closed bodies (winding does not matter).
    points : (n, 3) array_like of float
        Points to test; a point with a NaN coordinate is outside.
    parallel : bool, default True
        Use numba threads; pass False inside an already parallel (dask threads) workflow.

    Returns
    -------
    (n,) numpy.ndarray of bool

    Examples
    --------
    >>> v = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    >>> f = [[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]]
    >>> points_inside(v, f, [[0.1, 0.1, 0.1], [1, 1, 1], [0, 0, 0.5]]).tolist()
    [True, False, True]
    """
    from estimator.geometry import _kernels

    (vx, vy, vz), faces = _prepare(vertices, faces)
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.zeros(len(p), dtype=bool)
    if len(faces) == 0 or len(p) == 0:
        return out
    bounds, h, nx, ny, start, items = _kernels.xy_index(vx, vy, faces)
    kernel = _kernels.inside_parallel if parallel else _kernels.inside_serial
    px, py, pz = (np.ascontiguousarray(p[:, k]) for k in range(3))
    kernel(vx, vy, vz, faces, px, py, pz, bounds, h, nx, ny, start, items, out)
    return out


# ---------------------------------------------------------------------------------------
# A checked wireframe
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wireframe:
    """The closed bodies of one wireframe, wound outward (voids inward).

    Attributes
    ----------
    vertices : (nv, 3) numpy.ndarray of float64
        Vertices used by ``faces`` (unused ones removed).
    faces : (nf, 3) numpy.ndarray of int64
        Triangles of the closed bodies kept.
    volume : float
        Enclosed volume in cubed data units (voids subtracted).
    bounds : (2, 3) numpy.ndarray
        Bounding box: ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]``.
    n_bodies : int
        Closed bodies kept.
    source : str
        Where it came from (file name), for messages.
    """

    vertices: np.ndarray
    faces: np.ndarray
    volume: float
    bounds: np.ndarray
    n_bodies: int
    source: str = ""


def _centre(v: np.ndarray, f: np.ndarray) -> str:
    used = v[np.unique(f)]
    return _point(0.5 * (used.min(axis=0) + used.max(axis=0)))


def _point(xyz) -> str:
    return "(" + ", ".join(f"{c:.1f}" for c in xyz) + ")"


def build_wireframe(vertices, faces, source: str = "", report=None, max_hole_edges: int = 3):
    """Check a triangulation body by body and keep the closed ones, wound outward.

    Steps: triangles that use a vertex twice, and repeats of a triangle wound the same way,
    are dropped; the rest is split into bodies (:func:`split_bodies`); a body that is not
    closed has its holes of up to ``max_hole_edges`` edges filled (:func:`fill_holes`) and is
    left out if still open; a closed body that encloses no volume (e.g. a double-sided fin of
    two coincident triangles) is left out, and so is a copy of another body. Bodies whose
    surfaces cross are reported (the parity inside test leaves the part inside both out of
    the domain). A body inside an odd number of others is a void; a nested body wound the same
    way as the body around it is reported (a deliberate void is wound the other way). Each
    body's winding is then reversed where needed so that outer bodies have positive and voids
    negative volume. Every change is one row in ``report``.

    Parameters
    ----------
    vertices : (nv, 3) array_like of float
        Vertex coordinates.
    faces : (nf, 3) array_like of int
        Triangles.
    source : str, optional
        File name for the report and messages.
    report : estimator.datareport.DataReport, optional
        Receives one ``wireframe_open_body`` row per body left out (open, or enclosing no
        volume: the row says which), rows ``wireframe_hole_filled``,
        ``wireframe_flipped_body``, ``wireframe_degenerate_triangle`` and
        ``wireframe_repeated_triangle`` for repairs, and ``wireframe_overlapping_bodies`` for
        bodies that intersect, are nested but wound alike (not a deliberate void), or repeat
        another body (the copy is left out).
    max_hole_edges : int, default 3
        Largest hole closed automatically (0 closes none).

    Returns
    -------
    Wireframe

    Raises
    ------
    DataError
        When no closed body remains.
    """
    v = np.asarray(vertices, dtype=np.float64)
    (_, _, _), f = _prepare(v, faces)
    with np.errstate(invalid="ignore"):
        wrong = ~np.isfinite(v).all(axis=1) | (np.abs(v) > MAX_COORDINATE).any(axis=1)
    if wrong.any():
        k = int(np.flatnonzero(wrong)[0])
        msg = (
            f"{source}: vertex {k + 1} is ({', '.join(f'{c:g}' for c in v[k])}): coordinates "
            f"must be finite numbers within ±{MAX_COORDINATE:g} data units"
        )
        raise DataError(msg)

    def add(code, what, action):
        if report is not None:
            report.add(source, None, "", code, what, action)

    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
    if repeated.any():
        add(
            "wireframe_degenerate_triangle",
            f"{repeated.sum()} triangles use the same vertex twice",
            "triangles left out",
        )
        f = f[~repeated]
    if len(f) == 0:
        msg = f"{source}: no closed body in the wireframe (every triangle uses a vertex twice)"
        raise DataError(msg)
    # The same triangle twice, wound the same way (a body written twice, as one STL solid):
    # each edge would belong to four triangles and nothing would be closed.
    turn = np.argmin(f, axis=1)
    canon = np.take_along_axis(f, (turn[:, None] + np.arange(3)) % 3, axis=1)
    _, first = np.unique(canon, axis=0, return_index=True)
    if len(first) < len(f):
        keep = np.zeros(len(f), dtype=bool)
        keep[first] = True
        add(
            "wireframe_repeated_triangle",
            f"{len(f) - len(first)} triangles repeat earlier ones (the same corners, wound the "
            "same way)",
            "repeats left out",
        )
        f = f[keep]
    kept, reasons = [], []
    for n, idx in enumerate(split_bodies(f), start=1):
        body = f[idx]
        label = f"body {n} ({len(body)} triangles, centre {_centre(v, body)})"
        closed, problems = check_closed(body, v)
        if not closed and max_hole_edges >= 3:
            filled, loops = fill_holes(body, max_hole_edges)
            if loops and check_closed(filled)[0]:
                first = len(body)
                for loop in loops:
                    area = _surface_area(v, filled[first : first + len(loop) - 2])
                    first += len(loop) - 2
                    x, y, z = v[loop].mean(axis=0)
                    add(
                        "wireframe_hole_filled",
                        f"{label} has a hole bounded by {len(loop)} edges at "
                        f"({x:.1f}, {y:.1f}, {z:.1f}), area {area:.4g}",
                        f"hole closed with {len(loop) - 2} new triangle(s)",
                    )
                body, closed = filled, True
        if not closed:
            why = "; ".join(p for p in problems if "zero area" not in p)
            reasons.append(f"{label}: {why}")
            add("wireframe_open_body", f"{label} is not closed: {why}", "body left out")
            continue
        vol = mesh_volume(v, body)
        if abs(vol) <= _FLAT_BODY * _surface_area(v, body) ** 1.5:
            what = f"{label} encloses no volume (a flat sheet, a single triangle or a double-sided fin)"
            reasons.append(what)
            add("wireframe_open_body", what, "body left out")
            continue
        kept.append([label, body, vol])
    if not kept:
        detail = "; ".join(reasons[:3])
        if len(reasons) > 3:
            detail += f"; and {len(reasons) - 3} more bodies like these"
        msg = f"{source}: no closed body in the wireframe ({detail})"
        raise DataError(msg)
    kept = _drop_copies(v, kept, add)
    crossing = _crossing_pairs(v, kept)
    for (i, j), where in crossing.items():
        (li, _, vi), (lj, _, vj) = kept[i], kept[j]
        add(
            "wireframe_overlapping_bodies",
            f"{li}, volume {abs(vi):.4g}, and {lj}, volume {abs(vj):.4g}, intersect (their "
            f"surfaces cross near {_point(where)})",
            "both kept; the inside test counts surface crossings, so the part inside both "
            "bodies is outside the domain: merge them into one body if it is all domain",
        )
    _orient(v, kept, add, crossing)
    all_faces = np.vstack([b for _, b, _ in kept])
    used, inverse = np.unique(all_faces, return_inverse=True)
    verts = v[used]
    return Wireframe(
        vertices=verts,
        faces=inverse.reshape(-1, 3).astype(np.int64),
        volume=float(sum(vol for _, _, vol in kept)),
        bounds=np.array([verts.min(axis=0), verts.max(axis=0)]),
        n_bodies=len(kept),
        source=source,
    )


def _box(v: np.ndarray, body: np.ndarray) -> np.ndarray:
    used = v[np.unique(body)]
    return np.array([used.min(axis=0), used.max(axis=0)])


def _candidate_pairs(boxes: list[np.ndarray]) -> list[tuple[int, int]]:
    """Pairs ``i < j`` of bodies whose bounding boxes meet."""
    if len(boxes) < 2:
        return []
    lo = np.array([b[0] for b in boxes])
    hi = np.array([b[1] for b in boxes])
    order = np.argsort(lo[:, 0], kind="stable")  # sweep along x: no n x n table
    lo_x = lo[order, 0]
    pairs = []
    for rank, i in enumerate(order):
        stop = np.searchsorted(lo_x, hi[i, 0], side="right")
        js = order[rank + 1 : stop]
        meet = ((lo[js] <= hi[i]) & (lo[i] <= hi[js])).all(axis=1)
        pairs += [(min(int(i), j), max(int(i), j)) for j in js[meet].tolist()]
    return sorted(pairs)


def _drop_copies(v: np.ndarray, kept: list, add) -> list:
    """Leave out bodies that repeat an earlier body vertex for vertex (a body exported twice).

    Under the parity inside test a copy would cancel its original and empty the domain.
    """
    boxes = [_box(v, body) for _, body, _ in kept]
    copies: set[int] = set()
    for i, j in _candidate_pairs(boxes):
        if i in copies or j in copies or not np.array_equal(boxes[i], boxes[j]):
            continue
        (li, bi, vi), (lj, bj, vj) = kept[i], kept[j]
        if len(bi) != len(bj) or not np.isclose(abs(vi), abs(vj), rtol=1e-9, atol=0):
            continue
        pi = np.unique(v[np.unique(bi)], axis=0)
        pj = np.unique(v[np.unique(bj)], axis=0)
        if pi.shape == pj.shape and np.array_equal(pi, pj):
            copies.add(j)
            add(
                "wireframe_overlapping_bodies",
                f"{lj} is a copy of {li} (the same vertices, volume {abs(vi):.4g})",
                "copy left out (the inside test would cancel the two and leave nothing)",
            )
    return [item for k, item in enumerate(kept) if k not in copies]


def _edges(body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = np.sort(np.concatenate([body[:, [0, 1]], body[:, [1, 2]], body[:, [2, 0]]]), axis=1)
    e = np.unique(e, axis=0)
    return np.ascontiguousarray(e[:, 0]), np.ascontiguousarray(e[:, 1])


# Generic direction (no two components alike, none zero) and size, relative to the pair's
# extent, of the nudges in _crossing_pairs.
_NUDGE = 1e-6 * np.array([0.5257, 0.3191, 0.7887])


def _surfaces_cross(v: np.ndarray, fa: np.ndarray, fb: np.ndarray, centre, shift):
    """A point near where body ``fa`` moved by ``shift`` crosses body ``fb``, or None."""
    from estimator.geometry import _kernels

    ua, ia = np.unique(fa, return_inverse=True)
    ub, ib = np.unique(fb, return_inverse=True)
    verts = np.vstack([v[ua] - centre + shift, v[ub] - centre])  # small numbers: precise
    fa2 = ia.reshape(-1, 3).astype(np.int64)
    fb2 = ib.reshape(-1, 3).astype(np.int64) + len(ua)
    vx, vy, vz = (np.ascontiguousarray(verts[:, k]) for k in range(3))
    for a, b in ((fa2, fb2), (fb2, fa2)):
        s0, s1 = _edges(a)
        faces = np.ascontiguousarray(b)
        k, _ = _kernels.first_crossing(s0, s1, vx, vy, vz, faces, *_kernels.xy_index(vx, vy, faces))
        if k >= 0:
            return 0.5 * (verts[s0[k]] + verts[s1[k]]) + centre
    return None


def _crossing_pairs(v: np.ndarray, kept: list) -> dict[tuple[int, int], np.ndarray]:
    """Pairs of bodies whose surfaces cross, with a point near the crossing.

    Two closed surfaces cross when an edge of one passes through a triangle of the other.
    Exactly aligned meshes (an edge through an edge) and surfaces that merely touch (a shared
    vertex, edge or face) are told apart by testing twice, with one body nudged by a
    millionth of the pair's size one way and then the other: touching surfaces cross under at
    most one of the nudges, crossing ones under both.
    """
    boxes = [_box(v, body) for _, body, _ in kept]
    out: dict[tuple[int, int], np.ndarray] = {}
    for i, j in _candidate_pairs(boxes):
        lo = np.minimum(boxes[i][0], boxes[j][0])
        hi = np.maximum(boxes[i][1], boxes[j][1])
        centre, size = 0.5 * (lo + hi), float(np.linalg.norm(hi - lo))
        where = None
        for sign in (1.0, -1.0):
            where = _surfaces_cross(v, kept[i][1], kept[j][1], centre, sign * size * _NUDGE)
            if where is None:
                break
        if where is not None:
            out[(i, j)] = where
    return out


def _orient(v: np.ndarray, kept: list, add, crossing=()) -> None:
    """Reverse bodies in place so outer bodies have positive and voids negative volume.

    A body inside an odd number of others is a void. A body wholly inside another must be
    wound the other way from the smallest body holding it (a void wound inward inside an
    outward shell, or an island inside a void): wound the same way it is two overlapping
    bodies, reported as ``wireframe_overlapping_bodies``. Pairs in ``crossing`` (surfaces
    that cross) are reported by the caller and do not count as nested.
    """
    probes = []
    for _, body, _ in kept:  # centroid of the body's largest triangle: on it, not on others
        cross = np.cross(v[body[:, 1]] - v[body[:, 0]], v[body[:, 2]] - v[body[:, 0]])
        t = body[np.argmax(np.einsum("ij,ij->i", cross, cross))]
        probes.append(v[t].mean(axis=0))
    n = len(kept)
    holds = np.zeros((n, n), dtype=bool)  # holds[i, j]: body j holds body i's probe
    if n > 1:
        for j, (_, other, _) in enumerate(kept):
            holds[:, j] = points_inside(v, other, np.array(probes), parallel=False)
            holds[j, j] = False
    for i, j in crossing:
        holds[i, j] = holds[j, i] = False
    depth = holds.sum(axis=1)
    as_read = [vol for _, _, vol in kept]
    for i, item in enumerate(kept):
        label, body, vol = item
        void = depth[i] % 2 == 1
        overlap = False
        if depth[i]:
            holders = np.flatnonzero(holds[i])
            j = int(holders[np.argmin(np.abs(np.asarray(as_read)[holders]))])
            if (as_read[i] > 0) == (as_read[j] > 0):
                overlap = True
                treated = (
                    "a void: points inside both are outside the domain"
                    if void
                    else "solid again (it lies in a void)"
                )
                add(
                    "wireframe_overlapping_bodies",
                    f"{label}, volume {abs(as_read[i]):.4g}, lies wholly inside {kept[j][0]}, "
                    f"volume {abs(as_read[j]):.4g}, and is wound the same way: two overlapping "
                    "bodies, not a deliberate void (a void is wound opposite to the body "
                    "around it)",
                    f"kept; the inside test treats it as {treated}. If it is not a void, delete "
                    "it from the file; if it is, reverse its winding",
                )
        if (vol > 0) == (not void):
            continue
        item[1], item[2] = body[:, [0, 2, 1]], -vol
        if overlap:
            continue
        what = (
            f"{label} lies inside another body and is wound outward: treated as a void"
            if void
            else f"{label} is wound inward (normals point into the body)"
        )
        add("wireframe_flipped_body", what, "winding reversed")
