"""Read and write triangulated surfaces: OBJ, STL (ASCII and binary) and PLY (ASCII and binary).

``read_mesh`` returns plain arrays; ``load_wireframe`` also checks the surface body by body
(``estimator.geometry.mesh.build_wireframe``) and reports what it left out or repaired.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from estimator.errors import DataError
from estimator.geometry.mesh import MAX_COORDINATE, Wireframe, build_wireframe

__all__ = ["load_wireframe", "read_mesh", "write_obj"]

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def read_mesh(path) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangulated surface from an OBJ, STL or PLY file.

    Polygons are fan-triangulated from their first vertex. STL stores every triangle's
    corners separately, so corners with identical coordinates are merged into one vertex
    (exact match) to make the topology checkable.

    Parameters
    ----------
    path : str or pathlib.Path
        File whose extension (``.obj``, ``.stl``, ``.ply``, any case) names the format.
        Binary STL is recognised by its size (84 + 50 bytes per triangle) even when it
        starts with ``solid``.

    Returns
    -------
    vertices : (nv, 3) numpy.ndarray of float64
    faces : (nf, 3) numpy.ndarray of int64
        0-based vertex indices.

    Raises
    ------
    DataError
        Missing or unreadable file (or a folder), unknown format, content that is not what the
        format expects (the message names the file, the line for text formats, and what was
        expected), no triangle, or a vertex coordinate that is not finite or beyond
        ``MAX_COORDINATE`` (1e12 data units).
    """
    path = Path(path)
    if path.is_dir():
        msg = (
            f"{path}: is a folder, not a wireframe file: give the .obj, .stl or .ply file "
            "inside it"
        )
        raise DataError(msg)
    readers = {".obj": _read_obj, ".stl": _read_stl, ".ply": _read_ply}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        msg = f"{path}: unknown wireframe format {path.suffix!r}; expected .obj, .stl or .ply"
        raise DataError(msg)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        msg = f"{path}: cannot read the wireframe ({exc.strerror or exc})"
        raise DataError(msg) from exc
    vertices, faces = reader(raw, path)
    if len(faces) == 0:
        msg = f"{path}: no triangles in the file"
        raise DataError(msg)
    if not np.isfinite(vertices).all():
        bad = int(np.flatnonzero(~np.isfinite(vertices).all(axis=1))[0])
        msg = f"{path}: vertex {bad + 1} has a coordinate that is not a finite number"
        raise DataError(msg)
    far = (np.abs(vertices) > MAX_COORDINATE).any(axis=1)
    if far.any():
        bad = int(np.flatnonzero(far)[0])
        msg = (
            f"{path}: vertex {bad + 1} is ({', '.join(f'{c:g}' for c in vertices[bad])}), beyond "
            f"±{MAX_COORDINATE:g} data units: not a plausible coordinate"
        )
        raise DataError(msg)
    return vertices, faces


def load_wireframe(path, report=None, max_hole_edges: int = 3) -> Wireframe:
    """Read a wireframe and keep its closed bodies, wound outward.

    Parameters
    ----------
    path : str or pathlib.Path
        OBJ, STL or PLY file (see :func:`read_mesh`).
    report : estimator.datareport.DataReport, optional
        Gets one ``wireframe_open_body`` row per body left out (open, or enclosing no volume),
        one row per repair (``wireframe_hole_filled``, ``wireframe_flipped_body``,
        ``wireframe_degenerate_triangle``, ``wireframe_repeated_triangle``) and
        ``wireframe_overlapping_bodies`` rows for bodies that intersect, are nested but wound
        alike, or repeat another body (see :func:`estimator.geometry.mesh.build_wireframe`).
    max_hole_edges : int, default 3
        Holes bounded by at most this many edges are closed (a 3-edge hole is one missing
        triangle); 0 closes none.

    Returns
    -------
    estimator.geometry.mesh.Wireframe

    Raises
    ------
    DataError
        Unreadable file, or no closed body in it.
    """
    vertices, faces = read_mesh(path)
    return build_wireframe(vertices, faces, str(path), report, max_hole_edges)


def write_obj(path, vertices, faces) -> None:
    """Write a triangulated surface as OBJ, atomically (temporary file, then rename).

    Coordinates are written with 17 significant digits, so reading the file back gives the
    same float64 values.

    Parameters
    ----------
    path : str or pathlib.Path
        Destination file.
    vertices : (nv, 3) array_like of float
    faces : (nf, 3) array_like of int
        0-based vertex indices (written 1-based, as OBJ requires).
    """
    path = Path(path)
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3) + 1
    lines = ["# written by estimator"]
    lines += [f"v {x!r} {y!r} {z!r}" for x, y, z in v.tolist()]
    lines += [f"f {a} {b} {c}" for a, b, c in f.tolist()]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------
# OBJ
# ---------------------------------------------------------------------------------------


def _fan(poly: list[int]) -> list[tuple[int, int, int]]:
    return [(poly[0], poly[k], poly[k + 1]) for k in range(1, len(poly) - 1)]


def _read_obj(raw: bytes, path: Path):
    verts: list[tuple[float, float, float]] = []
    tris: list[tuple[int, int, int]] = []
    text = raw.decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if parts[0] == "v":
            try:
                x, y, z = (float(t) for t in parts[1:4])
            except ValueError:
                msg = f"{path}, line {number}: expected 'v x y z' with 3 numbers, got {line.strip()!r}"
                raise DataError(msg) from None
            verts.append((x, y, z))
        elif parts[0] == "f":
            poly = []
            for token in parts[1:]:
                try:
                    k = int(token.split("/", 1)[0])
                except ValueError:
                    k = 0
                if k == 0 or not -len(verts) <= k <= len(verts):
                    msg = (
                        f"{path}, line {number}: face vertex {token!r} is not an index "
                        f"between 1 and {len(verts)} (or -1 to -{len(verts)}) of the vertices "
                        f"read so far"
                    )
                    raise DataError(msg)
                poly.append(k - 1 if k > 0 else len(verts) + k)
            if len(poly) < 3:
                msg = (
                    f"{path}, line {number}: a face needs at least 3 vertices, got {line.strip()!r}"
                )
                raise DataError(msg)
            tris += _fan(poly)
    return np.array(verts, dtype=np.float64).reshape(-1, 3), np.array(tris, np.int64).reshape(-1, 3)


# ---------------------------------------------------------------------------------------
# STL
# ---------------------------------------------------------------------------------------


def _merge_corners(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge identical corner coordinates (``+ 0.0`` makes -0.0 and 0.0 the same)."""
    corners = corners.reshape(-1, 3).astype(np.float64) + 0.0
    vertices, inverse = np.unique(corners, axis=0, return_inverse=True)
    return vertices, inverse.reshape(-1, 3).astype(np.int64)


def _read_stl(raw: bytes, path: Path):
    if len(raw) >= 84:
        n = int(np.frombuffer(raw, "<u4", count=1, offset=80)[0])
        size_ok = len(raw) == 84 + 50 * n
        if size_ok or (raw.lstrip()[:5].lower() != b"solid" and len(raw) > 84 + 50 * n):
            record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
            data = np.frombuffer(raw, record, count=n, offset=84)
            return _merge_corners(data["corners"])
    if raw.lstrip()[:5].lower() != b"solid":
        expected = ""
        if len(raw) >= 84:
            n = int(np.frombuffer(raw, "<u4", count=1, offset=80)[0])
            expected = f" or binary with 84 + 50 x {n} = {84 + 50 * n} bytes"
        msg = (
            f"{path}: not an STL file: expected ASCII STL starting with 'solid'{expected}, "
            f"got {len(raw)} bytes"
        )
        raise DataError(msg)
    return _merge_corners(_read_stl_ascii(raw, path))


def _read_stl_ascii(raw: bytes, path: Path) -> np.ndarray:
    corners: list[tuple[float, float, float]] = []
    facet: list[tuple[float, float, float]] | None = None
    facet_line = 0
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        word = parts[0].lower()
        if word == "facet":
            facet, facet_line = [], number
        elif word == "vertex":
            if facet is None:
                msg = f"{path}, line {number}: 'vertex' outside a 'facet ... endfacet' block"
                raise DataError(msg)
            try:
                x, y, z = (float(t) for t in parts[1:4])
            except ValueError:
                msg = f"{path}, line {number}: expected 'vertex x y z' with 3 numbers, got {line.strip()!r}"
                raise DataError(msg) from None
            facet.append((x, y, z))
        elif word == "endfacet":
            if facet is None or len(facet) < 3:
                got = 0 if facet is None else len(facet)
                msg = f"{path}, line {number}: facet starting at line {facet_line} has {got} vertices, expected 3"
                raise DataError(msg)
            for tri in _fan(list(range(len(facet)))):
                corners += [facet[k] for k in tri]
            facet = None
    if facet is not None:
        msg = (
            f"{path}, line {facet_line}: facet not closed by 'endfacet' before the end of the file"
        )
        raise DataError(msg)
    return np.array(corners, dtype=np.float64).reshape(-1, 3, 3)


# ---------------------------------------------------------------------------------------
# PLY
# ---------------------------------------------------------------------------------------


def _ply_header(raw: bytes, path: Path):
    """Parse the header: format, elements [(name, count, [(prop, type, count_type|None)])]."""
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        msg = f"{path}: not a PLY file: expected 'ply' on line 1 and an 'end_header' line"
        raise DataError(msg)
    body = raw.index(b"\n", end) + 1 if b"\n" in raw[end:] else len(raw)
    lines = raw[:end].decode("ascii", errors="replace").splitlines()
    fmt, elements = None, []
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or parts[0] in ("ply", "comment", "obj_info"):
            continue
        bad = f"{path}, line {number}: unexpected PLY header line {line.strip()!r}"
        if parts[0] == "format" and len(parts) >= 2:
            fmt = parts[1]
            if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
                msg = f"{path}, line {number}: PLY format {fmt!r} is not ascii, binary_little_endian or binary_big_endian"
                raise DataError(msg)
        elif parts[0] == "element" and len(parts) == 3 and parts[2].isdigit():
            elements.append((parts[1], int(parts[2]), []))
        elif parts[0] == "property" and elements and len(parts) >= 3:
            if parts[1] == "list" and len(parts) == 5:
                types = (parts[2], parts[3])
                prop = (parts[4], _PLY_TYPES.get(parts[3]), _PLY_TYPES.get(parts[2]))
                if _PLY_TYPES.get(parts[2], "i")[0] == "f":
                    msg = (
                        f"{path}, line {number}: a PLY list count must be an integer type, "
                        f"got {parts[2]!r}"
                    )
                    raise DataError(msg)
            elif len(parts) == 3:
                types = (parts[1],)
                prop = (parts[2], _PLY_TYPES.get(parts[1]), None)
            else:
                raise DataError(bad)
            unknown = [t for t in types if t not in _PLY_TYPES]
            if unknown:
                msg = f"{path}, line {number}: unknown PLY property type {unknown[0]!r}"
                raise DataError(msg)
            elements[-1][2].append(prop)
        else:
            raise DataError(bad)
    if fmt is None:
        msg = f"{path}: PLY header has no 'format' line"
        raise DataError(msg)
    names = [e[0] for e in elements]
    for needed in ("vertex", "face"):
        if needed not in names:
            msg = f"{path}: PLY header declares no '{needed}' element"
            raise DataError(msg)
    vprops = [p[0] for p in elements[names.index("vertex")][2]]
    if not {"x", "y", "z"} <= set(vprops):
        msg = f"{path}: PLY vertex element needs properties x, y, z, got {vprops}"
        raise DataError(msg)
    fprops = elements[names.index("face")][2]
    if not any(p[2] is not None and p[0] in ("vertex_indices", "vertex_index") for p in fprops):
        msg = f"{path}: PLY face element needs a list property 'vertex_indices'"
        raise DataError(msg)
    return fmt, elements, body, len(lines) + 1


def _read_ply(raw: bytes, path: Path):
    fmt, elements, offset, header_lines = _ply_header(raw, path)
    if fmt == "ascii":
        return _read_ply_ascii(raw[offset:], elements, path, header_lines)
    order = "<" if fmt == "binary_little_endian" else ">"
    found = {}
    for name, count, props in elements:
        data, offset = _ply_binary_element(raw, offset, count, props, order, path, name)
        found.setdefault(name, data)
        if "vertex" in found and "face" in found:
            break
    vertices = np.column_stack([found["vertex"][k] for k in ("x", "y", "z")]).astype(np.float64)
    return vertices, _ply_polygons(found["face"], path, len(vertices))


def _ply_binary_element(raw, offset, count, props, order, path, name):
    """Read one binary element; list properties come back as lists of arrays or a 2-D array."""
    if all(p[2] is None for p in props):
        dtype = np.dtype([(p[0], order + p[1]) for p in props])
        return _frombuffer(raw, dtype, count, offset, path, name)
    # fast path: every list has the length of the first one (triangles, typically)
    first_len, at = 0, offset
    for _prop, typ, ctype in props:
        if ctype is not None:
            first_len = int(_frombuffer(raw, np.dtype(order + ctype), 1, at, path, name)[0][0])
            break
        at += np.dtype(typ).itemsize
    if first_len < 0:
        msg = f"{path}: PLY '{name}' record 1 has a list of {first_len} items"
        raise DataError(msg)
    fields = []
    for prop, typ, ctype in props:
        if ctype is None:
            fields.append((prop, order + typ))
        else:
            fields += [(f"_n_{prop}", order + ctype), (prop, order + typ, (first_len,))]
    dtype = np.dtype(fields)
    if offset + dtype.itemsize * count <= len(raw):
        data, end = _frombuffer(raw, dtype, count, offset, path, name)
        lists = [p[0] for p in props if p[2] is not None]
        if all((data[f"_n_{p}"] == first_len).all() for p in lists):
            return data, end
    # general path: element by element
    out = {p[0]: [] for p in props}
    for k in range(count):
        for prop, typ, ctype in props:
            if ctype is None:
                value, offset = _frombuffer(
                    raw, np.dtype(order + typ), 1, offset, path, name, count
                )
                out[prop].append(value[0])
            else:
                n, offset = _frombuffer(raw, np.dtype(order + ctype), 1, offset, path, name, count)
                if int(n[0]) < 0:
                    msg = f"{path}: PLY '{name}' record {k + 1} has a list of {int(n[0])} items"
                    raise DataError(msg)
                value, offset = _frombuffer(
                    raw, np.dtype(order + typ), int(n[0]), offset, path, name, count
                )
                out[prop].append(value)
    return out, offset


def _frombuffer(raw, dtype, count, offset, path, name, records=None):
    if offset + dtype.itemsize * count > len(raw):
        msg = (
            f"{path}: PLY file ends inside the '{name}' element (expected "
            f"{count if records is None else records} records)"
        )
        raise DataError(msg)
    return np.frombuffer(raw, dtype, count=count, offset=offset), offset + dtype.itemsize * count


def _ply_polygons(data, path, nv, lines=None):
    """Triangles from the face element's vertex list (2-D array or list of arrays)."""
    key = "vertex_indices" if "vertex_indices" in _names(data) else "vertex_index"
    polys = data[key]
    if isinstance(polys, np.ndarray) and polys.ndim == 2 and polys.shape[1] == 3:
        tris, owner = polys.astype(np.int64), np.arange(len(polys))
    else:
        tris, owner = [], []
        for k, poly in enumerate(polys):
            if len(poly) < 3:
                where = f"line {lines[k]}" if lines is not None else f"face {k + 1}"
                msg = f"{path}, {where}: a face needs at least 3 vertices, got {len(poly)}"
                raise DataError(msg)
            fan = _fan([int(i) for i in poly])
            tris += fan
            owner += [k] * len(fan)
        tris, owner = np.array(tris, np.int64).reshape(-1, 3), np.array(owner)
    if isinstance(polys, np.ndarray) and polys.dtype.kind == "f":
        fractional = (polys != np.floor(polys)).reshape(len(polys), -1).any(axis=1)
    elif isinstance(polys, np.ndarray):
        fractional = np.zeros(len(polys), dtype=bool)
    else:
        fractional = np.array([np.any(np.asarray(p) != np.floor(p)) for p in polys], dtype=bool)
    if fractional.any():
        k = int(np.flatnonzero(fractional)[0])
        where = f"line {lines[k]}" if lines is not None else f"face {k + 1}"
        msg = f"{path}, {where}: vertex indices must be whole numbers"
        raise DataError(msg)
    bad = ((tris < 0) | (tris >= nv)).any(axis=1)
    if bad.any():
        k = int(owner[np.flatnonzero(bad)[0]])
        where = f"line {lines[k]}" if lines is not None else f"face {k + 1}"
        msg = f"{path}, {where}: vertex index outside 0..{nv - 1}"
        raise DataError(msg)
    return tris


def _names(data) -> list[str]:
    return list(data.dtype.names) if isinstance(data, np.ndarray) else list(data)


def _read_ply_ascii(body: bytes, elements, path, header_lines):
    lines = body.decode("utf-8", errors="replace").splitlines()
    number = 0  # index into lines
    found = {}
    for name, count, props in elements:
        rows, linenos = [], []
        while len(rows) < count:
            if number >= len(lines):
                msg = f"{path}: PLY file ends inside the '{name}' element (expected {count} lines)"
                raise DataError(msg)
            tokens = lines[number].split()
            number += 1
            if tokens:
                rows.append(tokens)
                linenos.append(header_lines + number)
        data = {p[0]: [] for p in props}
        for tokens, lineno in zip(rows, linenos, strict=True):
            at = 0
            try:
                for prop, _typ, ctype in props:
                    if ctype is None:
                        data[prop].append(float(tokens[at]))
                        at += 1
                    else:
                        n = int(tokens[at])
                        data[prop].append([int(t) for t in tokens[at + 1 : at + 1 + n]])
                        if len(data[prop][-1]) != n:
                            raise IndexError
                        at += 1 + n
            except (ValueError, IndexError):
                expected = ", ".join(p[0] if p[2] is None else f"list {p[0]}" for p in props)
                msg = f"{path}, line {lineno}: expected a '{name}' record ({expected}), got {' '.join(tokens)!r}"
                raise DataError(msg) from None
        found.setdefault(name, (data, linenos))
        if "vertex" in found and "face" in found:
            break
    data = found["vertex"][0]
    vertices = np.column_stack([data[k] for k in ("x", "y", "z")]).astype(np.float64)
    return vertices, _ply_polygons(*found["face"][:1], path, len(vertices), found["face"][1])
