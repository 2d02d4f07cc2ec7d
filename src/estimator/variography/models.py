"""Nested anisotropic variogram models (nugget + any number of structures).

Each structure has its own ranges and GSLIB angles, which GSTools' single-anisotropy
``CovModel`` cannot hold; this is the model type every stage uses.

Conventions (SPEC section 6)
----------------------------
* Coordinates are (x, y, z) = (east, north, elevation), in the data's own unit.
* ``angles = [ang1, ang2, ang3]`` as GSLIB ``setrot``: ang1 = azimuth of the major axis, degrees
  clockwise from north; ang2 = dip of the major axis, negative down; ang3 = rotation about the
  major axis.
* ``ranges = [major, semi-major, minor]``. Exponential and gaussian ranges are *practical*:
  ``C = c exp(-3 h / a)`` and ``C = c exp(-3 (h / a)^2)``.
* The nugget applies at zero distance only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STRUCTURE_TYPES = ("spherical", "exponential", "gaussian")
#: Integer codes used by the compiled kernels, in the order of ``STRUCTURE_TYPES``.
TYPE_CODES = {name: i for i, name in enumerate(STRUCTURE_TYPES)}
#: Two points closer than this (squared Euclidean distance, data units) count as coincident,
#: so the nugget applies between them.
ZERO_DISTANCE_SQ = 1e-20


def rotation_matrix(angles) -> np.ndarray:
    """Rows are the unit major, semi-major and minor axes in (x, y, z), as GSLIB ``setrot``.

    Parameters
    ----------
    angles : sequence of 3 floats
        GSLIB ``[ang1, ang2, ang3]`` in degrees.

    Returns
    -------
    numpy.ndarray, shape (3, 3)
        ``R @ d`` gives the components of a world vector ``d`` along the three axes.

    Examples
    --------
    >>> np.round(rotation_matrix([30, -20, 0])[0], 4)
    array([ 0.4698,  0.8138, -0.342 ])
    """
    ang1, ang2, ang3 = (float(a) for a in angles)
    if 0.0 <= ang1 < 270.0:
        alpha = np.deg2rad(90.0 - ang1)
    else:
        alpha = np.deg2rad(450.0 - ang1)
    beta = np.deg2rad(-ang2)
    theta = np.deg2rad(ang3)
    sina, cosa = np.sin(alpha), np.cos(alpha)
    sinb, cosb = np.sin(beta), np.cos(beta)
    sint, cost = np.sin(theta), np.cos(theta)
    return np.array(
        [
            [cosb * cosa, cosb * sina, -sinb],
            [-cost * sina + sint * sinb * cosa, cost * cosa + sint * sinb * sina, sint * cosb],
            [sint * sina + cost * sinb * cosa, -sint * cosa + cost * sinb * sina, cost * cosb],
        ]
    )


def anisotropy_matrix(ranges, angles) -> np.ndarray:
    """Matrix ``A`` such that ``|A @ d|`` is the distance in units of range (1 = at the range)."""
    r = np.asarray(ranges, dtype=float)
    if r.shape != (3,) or np.any(r <= 0):
        msg = f"ranges must be three positive numbers [major, semi-major, minor], got {ranges!r}"
        raise ValueError(msg)
    return rotation_matrix(angles) / r[:, None]


def correlation(kind: str, h: np.ndarray) -> np.ndarray:
    """Correlation of a unit-sill structure at scaled distance ``h`` (``h = 1`` at the range)."""
    h = np.asarray(h, dtype=float)
    if kind == "spherical":
        hc = np.minimum(h, 1.0)
        return np.where(h < 1.0, 1.0 - hc * (1.5 - 0.5 * hc * hc), 0.0)
    if kind == "exponential":
        return np.exp(-3.0 * h)
    if kind == "gaussian":
        return np.exp(-3.0 * h * h)
    msg = f"unknown structure type {kind!r}; expected one of {', '.join(STRUCTURE_TYPES)}"
    raise ValueError(msg)


@dataclass(frozen=True)
class Structure:
    """One nested structure: ``type``, ``sill`` (its contribution), ``ranges``, ``angles``."""

    type: str
    sill: float
    ranges: tuple[float, float, float]
    angles: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self):
        if self.type not in STRUCTURE_TYPES:
            msg = f"unknown structure type {self.type!r}; expected one of {', '.join(STRUCTURE_TYPES)}"
            raise ValueError(msg)
        object.__setattr__(self, "ranges", tuple(float(v) for v in self.ranges))
        object.__setattr__(self, "angles", tuple(float(v) for v in self.angles))
        object.__setattr__(self, "sill", float(self.sill))

    @property
    def matrix(self) -> np.ndarray:
        """Anisotropy matrix of this structure (see :func:`anisotropy_matrix`)."""
        return anisotropy_matrix(self.ranges, self.angles)

    def covariance(self, d: np.ndarray) -> np.ndarray:
        """Covariance for difference vectors ``d`` (shape ``(..., 3)``)."""
        h = np.sqrt(np.sum((np.asarray(d, float) @ self.matrix.T) ** 2, axis=-1))
        return self.sill * correlation(self.type, h)


@dataclass(frozen=True)
class VariogramModel:
    """Nugget plus nested structures; covariance ``C(h) = sill - gamma(h)``.

    Examples
    --------
    >>> m = VariogramModel(0.2, (Structure("spherical", 0.8, (100, 50, 10)),))
    >>> float(m.sill)
    1.0
    >>> float(m.covariance(np.zeros(3)))
    1.0
    >>> float(m.variogram(np.array([200.0, 0, 0])))
    1.0
    """

    nugget: float
    structures: tuple[Structure, ...] = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "nugget", float(self.nugget))
        object.__setattr__(self, "structures", tuple(self.structures))

    @property
    def sill(self) -> float:
        """Total sill: nugget plus every structure's sill."""
        return self.nugget + sum(s.sill for s in self.structures)

    def covariance(self, d: np.ndarray) -> np.ndarray:
        """Covariance for world difference vectors ``d`` (shape ``(..., 3)``), nugget at zero only."""
        d = np.asarray(d, dtype=float)
        c = np.zeros(d.shape[:-1])
        for s in self.structures:
            c = c + s.covariance(d)
        zero = np.sum(d * d, axis=-1) <= ZERO_DISTANCE_SQ
        return c + np.where(zero, self.nugget, 0.0)

    def variogram(self, d: np.ndarray) -> np.ndarray:
        """Semivariogram ``gamma(d) = sill - C(d)`` (zero at zero distance)."""
        return self.sill - self.covariance(d)

    # -- conversion ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The config's own format (SPEC section 3), ready for YAML."""
        return {
            "nugget": self.nugget,
            "structures": [
                {"type": s.type, "sill": s.sill, "ranges": list(s.ranges), "angles": list(s.angles)}
                for s in self.structures
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> VariogramModel:
        """Inverse of :meth:`to_dict`."""
        return cls(
            nugget=d.get("nugget", 0.0),
            structures=tuple(
                Structure(
                    s["type"], s["sill"], tuple(s["ranges"]), tuple(s.get("angles", (0, 0, 0)))
                )
                for s in d.get("structures", ())
            ),
        )

    def packed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arrays for compiled kernels: type codes ``(ns,)``, sills ``(ns,)``, matrices ``(ns, 3, 3)``."""
        ns = len(self.structures)
        codes = np.array([TYPE_CODES[s.type] for s in self.structures], dtype=np.int64)
        sills = np.array([s.sill for s in self.structures], dtype=float)
        mats = np.array([s.matrix for s in self.structures], dtype=float).reshape(ns, 3, 3)
        return codes, sills, mats
