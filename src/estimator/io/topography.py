"""Read a topography surface (``data.topography``): an open triangulated surface, OBJ/STL/PLY."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from estimator.blockmodel.fractions import Surface
from estimator.errors import DataError
from estimator.io.wireframe import read_mesh

__all__ = ["load_topography"]


def load_topography(path, report=None) -> Surface:
    """Read the ground surface; every triangle counts, open or closed.

    Parameters
    ----------
    path : str or pathlib.Path
        OBJ, STL or PLY file (see :func:`estimator.io.wireframe.read_mesh`).
    report : DataReport, optional
        Gets a ``topography_vertical_triangles`` row when triangles seen edge-on from above
        are ignored.

    Returns
    -------
    Surface

    Raises
    ------
    DataError
        Unreadable file, no triangle, or a surface with no horizontal extent.
    """
    path = Path(path)
    vertices, faces = read_mesh(path)
    faces = np.asarray(faces, dtype=np.int64)
    v = np.asarray(vertices, dtype=np.float64)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    area_xy = 0.5 * np.abs(
        (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    )
    vertical = area_xy <= 1e-12 * max(float(np.ptp(v[:, :2])) ** 2, 1e-300)
    if vertical.all():
        msg = (
            f"{path.name}: data.topography has no triangle with a horizontal extent (all are "
            "vertical): is it a section rather than a ground surface?"
        )
        raise DataError(msg)
    if vertical.any() and report is not None:
        report.add(
            path.name, None, "", "topography_vertical_triangles",
            f"{int(vertical.sum())} of {len(faces)} triangles of the topography are vertical",
            "ignored (they cover no area seen from above)",
        )  # fmt: skip
    return Surface(v, faces, source=path.name)
