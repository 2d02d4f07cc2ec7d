"""Small builders shared by several test modules."""

import numpy as np


def box_mesh(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """A closed, outward-wound box: ``(vertices (8, 3), faces (12, 3))``."""
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    v = np.array(
        [[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0],
         [x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]], dtype=float
    )  # fmt: skip
    f = np.array(
        [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
         [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]]
    )  # fmt: skip
    return v, f
