"""Regular (optionally rotated) block grids and the one factory that builds the block model.

Conventions (SPEC sections 3 and 5)
-----------------------------------
* ``origin`` is the **minimum corner** of the grid, not the first block's centre.
* ``block_size`` and ``shape`` are given in (x, y, z) order: ``(dx, dy, dz)``, ``(nx, ny, nz)``.
* ``rotation`` turns the grid about the vertical axis through ``origin``, in degrees
  **clockwise** seen from above. The grid's own x-axis then points at azimuth ``90 + rotation``
  and its y-axis at azimuth ``rotation``.
* Grid-frame ("local") coordinates keep the world origin: an offset ``(du, dv)`` from the origin
  along the grid's axes maps to the world offset::

      dx = du cos(r) + dv sin(r)
      dy = -du sin(r) + dv cos(r)

  so an unrotated grid's local coordinates *are* world coordinates, and block ``(i, j, k)`` has
  its centre at ``x0 + (i + 0.5) dx`` etc. in the grid frame. Elevation is never rotated.
* The block model Dataset has dims ``("domain", "z", "y", "x")``. **This is a deliberate
  exception to the (x, y, z) order used everywhere else**: with ``z`` slowest and ``x`` fastest a
  C-order ravel of one domain is GSLIB grid order (x fastest, then y, then z).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

#: Per-grade variables of the block model, suffix -> (dtype, fill value). SPEC section 5.
GRADE_VARIABLES: dict[str, tuple[type, float | int]] = {
    "": (np.float64, np.nan),
    "_kv": (np.float64, np.nan),
    "_slope": (np.float64, np.nan),
    "_ke": (np.float64, np.nan),
    "_n": (np.int32, 0),
    "_holes": (np.int32, 0),
    "_dist": (np.float64, np.nan),
    "_pass": (np.int32, 0),
    "_flag": (np.uint8, 0),
}

#: Per-grade provenance variables, suffix -> (dtype, fill value): the latest tranche among the
#: samples a block used (code: 0 none, k the k-th tranche of ``data.assays``), how many of them
#: come from the newest tranche and the sum of their weights (SPEC section 5, "after tranche
#: updates"). Written by the chunked engine (:mod:`estimator.kriging.chunked`) after
#: :data:`GRADE_VARIABLES` in the store; not part of :func:`make_block_model`.
PROVENANCE_VARIABLES: dict[str, tuple[type, float | int]] = {
    "_latest_tranche": (np.uint8, 0),
    "_newest_n": (np.int32, 0),
    "_newest_weight": (np.float64, np.nan),
}
#: Most tranches a ``_latest_tranche`` code can name.
MAX_TRANCHES = 255

#: Dimension order of every block-model variable.
DIMS = ("domain", "z", "y", "x")


@dataclass(frozen=True)
class BlockGrid:
    """A regular grid of blocks, optionally rotated about z around its minimum corner.

    Parameters
    ----------
    origin : sequence of 3 floats
        World coordinates ``(x0, y0, z0)`` of the grid's minimum corner (data units).
    block_size : sequence of 3 floats
        Block dimensions ``(dx, dy, dz)`` along the grid's own axes (data units).
    shape : sequence of 3 ints
        Number of blocks ``(nx, ny, nz)``.
    rotation : float, optional
        Rotation of the grid about z through ``origin``, degrees clockwise (default 0).

    Examples
    --------
    >>> g = BlockGrid((0, 0, 0), (10, 10, 5), (3, 2, 1))
    >>> g.centres_local()[0]
    array([ 5., 15., 25.])
    >>> g.n_blocks, g.block_volume
    (6, 500.0)
    """

    origin: tuple[float, float, float]
    block_size: tuple[float, float, float]
    shape: tuple[int, int, int]
    rotation: float = 0.0

    def __post_init__(self):
        origin = tuple(float(v) for v in self.origin)
        size = tuple(float(v) for v in self.block_size)
        shape = tuple(int(v) for v in self.shape)
        if len(origin) != 3 or len(size) != 3 or len(shape) != 3:
            msg = (
                "origin, block_size and shape must each have 3 values (x, y, z), got "
                f"{self.origin!r}, {self.block_size!r}, {self.shape!r}"
            )
            raise ValueError(msg)
        if not all(np.isfinite(origin)):
            msg = f"origin must be finite, got {self.origin!r}"
            raise ValueError(msg)
        if not all(np.isfinite(s) and s > 0 for s in size):
            msg = f"block_size must be three positive numbers, got {self.block_size!r}"
            raise ValueError(msg)
        if not all(n > 0 for n in shape):
            msg = f"shape must be three positive integers (nx, ny, nz), got {self.shape!r}"
            raise ValueError(msg)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "block_size", size)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "rotation", float(self.rotation))

    # -- sizes ---------------------------------------------------------------------------
    @property
    def block_volume(self) -> float:
        """Volume of one block, ``dx * dy * dz`` (cubic data units)."""
        dx, dy, dz = self.block_size
        return dx * dy * dz

    @property
    def n_blocks(self) -> int:
        """Total number of blocks, ``nx * ny * nz``."""
        nx, ny, nz = self.shape
        return nx * ny * nz

    @property
    def half_diagonal(self) -> float:
        """Half the block's space diagonal: the farthest a block point is from its centre."""
        return 0.5 * float(np.sqrt(sum(s * s for s in self.block_size)))

    @property
    def is_rotated(self) -> bool:
        """True when the grid is rotated (its local frame differs from the world frame)."""
        return self.rotation % 360.0 != 0.0

    # -- coordinates ---------------------------------------------------------------------
    def centres_local(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block-centre coordinates along each grid axis, in the grid's own frame.

        Returns
        -------
        x, y, z : numpy.ndarray
            1-D arrays of lengths ``nx``, ``ny``, ``nz``: ``x0 + (i + 0.5) dx`` and so on. For an
            unrotated grid these are world coordinates.
        """
        return tuple(
            o + (np.arange(n, dtype=np.float64) + 0.5) * s
            for o, s, n in zip(self.origin, self.block_size, self.shape, strict=True)
        )

    def _cos_sin(self) -> tuple[float, float]:
        r = np.deg2rad(self.rotation)
        return float(np.cos(r)), float(np.sin(r))

    def to_world(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """Grid-frame ``(u, v)`` (origin included, as :meth:`centres_local`) to world ``(x, y)``.

        Parameters
        ----------
        u, v : array_like
            Grid-frame coordinates, broadcastable against each other.

        Returns
        -------
        x, y : numpy.ndarray
            World coordinates. Identity when the grid is not rotated.

        Examples
        --------
        >>> g = BlockGrid((100, 200, 0), (1, 1, 1), (1, 1, 1), rotation=90)
        >>> [round(float(c), 9) for c in g.to_world(101, 200)]  # local x-axis points south
        [100.0, 199.0]
        """
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        if not self.is_rotated:
            return np.array(u, copy=True), np.array(v, copy=True)
        c, s = self._cos_sin()
        x0, y0, _ = self.origin
        du, dv = u - x0, v - y0
        return x0 + (du * c + dv * s), y0 + (-du * s + dv * c)

    def from_world(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """World ``(x, y)`` to grid-frame ``(u, v)``: the inverse of :meth:`to_world`.

        Parameters
        ----------
        x, y : array_like
            World coordinates, broadcastable against each other.

        Returns
        -------
        u, v : numpy.ndarray
            Grid-frame coordinates (origin included).
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if not self.is_rotated:
            return np.array(x, copy=True), np.array(y, copy=True)
        c, s = self._cos_sin()
        x0, y0, _ = self.origin
        dx, dy = x - x0, y - y0
        return x0 + (dx * c - dy * s), y0 + (dx * s + dy * c)

    def centres_world_2d(self) -> tuple[np.ndarray, np.ndarray]:
        """World block-centre coordinates on the horizontal grid, shape ``(ny, nx)`` each."""
        xc, yc, _ = self.centres_local()
        return self.to_world(xc[None, :], yc[:, None])

    def block_centres(self, iz, iy, ix) -> np.ndarray:
        """World centres of the blocks with the given integer indices.

        Every caller (eager or chunked) uses this one function, so a block's target coordinates
        are the same bits whichever chunk it falls in.

        Parameters
        ----------
        iz, iy, ix : array_like of int
            Block indices along z, y and x (same length).

        Returns
        -------
        numpy.ndarray, shape (n, 3)
            World ``(x, y, z)`` of each block centre.
        """
        xc, yc, zc = self.centres_local()
        ix = np.asarray(ix, dtype=np.int64)
        iy = np.asarray(iy, dtype=np.int64)
        iz = np.asarray(iz, dtype=np.int64)
        out = np.empty((ix.size, 3), dtype=np.float64)
        out[:, 0], out[:, 1] = self.to_world(xc[ix], yc[iy])
        out[:, 2] = zc[iz]
        return out

    def discretisation_offsets(self, n: Sequence[int] = (3, 3, 3)) -> np.ndarray:
        """World-frame offsets from a block's centre to its discretisation points.

        Parameters
        ----------
        n : sequence of 3 ints, optional
            Points along the grid's x, y and z axes (default ``(3, 3, 3)``). ``(1, 1, 1)`` gives
            point support (one zero offset).

        Returns
        -------
        numpy.ndarray, shape (nx * ny * nz, 3)
            Offsets of the centres of an ``n``-grid of equal cells inside the block, x fastest
            (GSLIB order), turned with the grid. They average to zero.

        Examples
        --------
        >>> BlockGrid((0, 0, 0), (6, 6, 6), (1, 1, 1)).discretisation_offsets((3, 1, 1))
        array([[-2.,  0.,  0.],
               [ 0.,  0.,  0.],
               [ 2.,  0.,  0.]])
        """
        n = tuple(int(k) for k in n)
        if len(n) != 3 or any(k < 1 for k in n):
            msg = f"discretisation must be three positive integers (x, y, z), got {n!r}"
            raise ValueError(msg)
        axes = [
            ((np.arange(k) + 0.5) / k - 0.5) * s for k, s in zip(n, self.block_size, strict=True)
        ]
        oz, oy, ox = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
        du, dv, dw = ox.ravel(), oy.ravel(), oz.ravel()
        out = np.empty((du.size, 3), dtype=np.float64)
        if self.is_rotated:
            c, s = self._cos_sin()
            out[:, 0] = du * c + dv * s
            out[:, 1] = -du * s + dv * c
        else:
            out[:, 0], out[:, 1] = du, dv
        out[:, 2] = dw
        # Exact zeros for symmetric grids (avoid -0.0 and 1e-17 noise from the rotation).
        out[np.abs(out) < 1e-12 * max(self.block_size)] = 0.0
        return out


def grade_variable_names(grade: str, *, provenance: bool = False) -> list[str]:
    """Names of the block-model variables of one grade, in SPEC order (``g``, ``g_kv``, ...).

    With ``provenance`` the tranche variables (:data:`PROVENANCE_VARIABLES`) follow.
    """
    suffixes = [*GRADE_VARIABLES, *(PROVENANCE_VARIABLES if provenance else ())]
    return [f"{grade}{suffix}" for suffix in suffixes]


def flag_token(name: str) -> str:
    """A name as one CF ``flag_meanings`` word (blanks joined by ``_``)."""
    return "_".join(str(name).split()) or "_"


def make_block_model(
    grid: BlockGrid,
    domains: Sequence[str],
    grades: Sequence[str],
    chunks: Sequence[int] | None = None,
) -> xr.Dataset:
    """Build an empty block model: the one place the block-model Dataset is made.

    Parameters
    ----------
    grid : BlockGrid
        Grid geometry.
    domains : sequence of str
        Domain names (``["all"]`` when no domain is configured).
    grades : sequence of str
        Grade names; each gets the eight variables of SPEC section 5.
    chunks : sequence of 3 ints, optional
        ``compute.chunks`` as ``(cx, cy, cz)`` blocks along x, y, z. When given the variables
        are dask arrays chunked that way (one domain per chunk); otherwise NumPy.

    Returns
    -------
    xarray.Dataset
        Dims ``("domain", "z", "y", "x")``; coords ``x, y, z`` (block centres in the grid
        frame), ``domain``, and ``x_world, y_world`` (``(y, x)``) when the grid is rotated.
        ``fraction`` is 0 everywhere; grade estimates, ``_kv``, ``_slope``, ``_ke`` and
        ``_dist`` are NaN (not estimated); ``_n``, ``_holes`` and ``_pass`` are int32 zeros.
        Attrs ``origin``, ``block_size``, ``shape``, ``rotation`` and ``units``.

    Examples
    --------
    >>> ds = make_block_model(BlockGrid((0, 0, 0), (5, 5, 5), (4, 3, 2)), ["ore"], ["pd"])
    >>> dict(ds.sizes)
    {'domain': 1, 'z': 2, 'y': 3, 'x': 4}
    >>> sorted(ds.data_vars)[:3]
    ['fraction', 'pd', 'pd_dist']
    """
    domains = [str(d) for d in domains]
    grades = [str(g) for g in grades]
    if not domains:
        msg = "make_block_model needs at least one domain (use ['all'] when none is configured)"
        raise ValueError(msg)
    for kind, names in (("domain", domains), ("grade", grades)):
        if len(set(names)) != len(names):
            msg = f"duplicate {kind} names: {names!r}"
            raise ValueError(msg)
    nx, ny, nz = grid.shape
    full = (len(domains), nz, ny, nx)
    xc, yc, zc = grid.centres_local()
    coords = {"domain": domains, "z": zc, "y": yc, "x": xc}
    if grid.is_rotated:
        xw, yw = grid.centres_world_2d()
        coords["x_world"] = (("y", "x"), xw)
        coords["y_world"] = (("y", "x"), yw)
    data_vars = {"fraction": (DIMS, np.zeros(full, dtype=np.float64))}
    for grade in grades:
        for suffix, (dtype, fill) in GRADE_VARIABLES.items():
            data_vars[f"{grade}{suffix}"] = (DIMS, np.full(full, fill, dtype=dtype))
    attrs = {
        "origin": list(grid.origin),
        "block_size": list(grid.block_size),
        "shape": list(grid.shape),
        "rotation": grid.rotation,
        "units": "data units",
    }
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    ds["x"].attrs["long_name"] = "block centre x (grid frame)"
    ds["y"].attrs["long_name"] = "block centre y (grid frame)"
    ds["z"].attrs["long_name"] = "block centre elevation"
    ds["fraction"].attrs["long_name"] = "volume fraction of the block inside the domain"
    if chunks is not None:
        ds = ds.chunk(dask_chunks(chunks))
    return ds


def variable_attrs(
    grades: Sequence[str],
    *,
    length_unit: str | None = None,
    grade_unit: str | None = None,
    method: str = "ok",
    tranches: Sequence[str] | None = None,
) -> dict[str, dict]:
    """``long_name`` and ``units`` (CF style) of every block-model variable and coordinate.

    The one source of the block model's attributes: :func:`describe_variables` applies them to
    a Dataset, the chunked store (:mod:`estimator.io.blockstore`) writes them into its arrays.
    Units are never assumed: where ``data.length_unit`` or ``data.grade_unit`` is not
    configured the attribute says so. Flag and pass variables carry CF ``flag_*`` attributes.

    ``tranches`` are the tranche names in ``data.assays`` order (the codes 1, 2, ... of
    ``<g>_latest_tranche``, whose ``tranche_names`` attribute lists them exactly); the last is
    the newest, which ``<g>_newest_n`` and ``<g>_newest_weight`` count.

    Returns
    -------
    dict
        ``{name: attrs}`` for ``x, y, z, x_world, y_world, domain, fraction, density, class``,
        the grade and provenance variables of every grade; the key ``""`` holds the global
        ``units``.
    """
    from estimator.kriging.parallel import FLAG_BITS

    lu = length_unit or "unknown (data.length_unit not set)"
    gu = grade_unit or "unknown (data.grade_unit not set)"
    squared = f"({grade_unit})^2" if grade_unit else "grade unit squared (data.grade_unit not set)"
    method_words = {
        "ok": "ordinary kriging",
        "sk": "simple kriging",
        "idw": "inverse distance weighting",
        "nn": "nearest neighbour",
    }.get(method, method)
    out: dict[str, dict] = {"": {"units": lu}}
    for name, words in (
        ("x", "block centre x (grid frame)"),
        ("y", "block centre y (grid frame)"),
        ("z", "block centre elevation"),
        ("x_world", "block centre x (world)"),
        ("y_world", "block centre y (world)"),
    ):
        out[name] = {"long_name": words, "units": lu}
    out["domain"] = {"long_name": "estimation domain"}
    out["fraction"] = {
        "long_name": "volume fraction of the block inside the domain (below the topography)",
        "units": "1",
    }
    passes = "; ".join(["-1 outside the domain", "0 inside but not estimated", "k: pass k"])
    meanings = " ".join(FLAG_BITS)
    for g in grades:
        out.update({
            g: {"long_name": f"{g} estimate ({method_words})", "units": gu},
            f"{g}_kv": {"long_name": f"{g} kriging variance", "units": squared},
            f"{g}_slope": {
                "long_name": f"{g} slope of regression of the true block grade on the estimate",
                "units": "1",
            },
            f"{g}_ke": {"long_name": f"{g} kriging efficiency, (BV - KV) / BV", "units": "1"},
            f"{g}_n": {"long_name": f"{g} number of samples used", "units": "1"},
            f"{g}_holes": {"long_name": f"{g} number of drillholes used", "units": "1"},
            f"{g}_dist": {
                "long_name": (
                    f"{g} mean anisotropic distance to the samples used, as a distance along "
                    "the major axis of the search ellipsoid"
                ),
                "units": lu,
            },
            f"{g}_pass": {"long_name": f"{g} search pass ({passes})", "units": "1",
                          "flag_values": [-1, 0], "flag_meanings": "outside_domain not_estimated"},
            f"{g}_flag": {
                "long_name": f"{g} estimate flags (bits, see flag_meanings)",
                "units": "1",
                "flag_masks": list(FLAG_BITS.values()),
                "flag_meanings": meanings,
            },
        })  # fmt: skip
        out.update(_provenance_attrs(g, tranches or ()))
    out["density"] = {
        "long_name": "dry bulk density",
        "units": f"t per cubic {length_unit}" if length_unit
        else "t per cubic data unit (data.length_unit not set)",
    }  # fmt: skip
    out["class"] = {"long_name": "resource class ('' = unclassified)"}
    return out


def _provenance_attrs(g: str, tranches: Sequence[str]) -> dict[str, dict]:
    names = [str(t) for t in tranches]
    newest = names[-1] if names else "none"
    return {
        f"{g}_latest_tranche": {
            "long_name": (
                f"{g} latest tranche among the samples used (code: 0 = no sample, k = the k-th "
                "tranche of data.assays; see flag_meanings and tranche_names)"
            ),
            "units": "1",
            "flag_values": list(range(len(names) + 1)),
            "flag_meanings": " ".join(["none", *(flag_token(n) for n in names)]),
            "tranche_names": names,
        },
        f"{g}_newest_n": {
            "long_name": f"{g} number of samples used from the newest tranche ({newest})",
            "units": "1",
            "tranche": newest,
        },
        f"{g}_newest_weight": {
            "long_name": (
                f"{g} sum of the weights of the samples used from the newest tranche ({newest}); "
                "NaN where not estimated"
            ),
            "units": "1",
            "tranche": newest,
        },
    }


def describe_variables(
    ds: xr.Dataset,
    grades: Sequence[str],
    *,
    length_unit: str | None = None,
    grade_unit: str | None = None,
    method: str = "ok",
    tranches: Sequence[str] | None = None,
) -> xr.Dataset:
    """Give every variable and coordinate its ``long_name`` and ``units`` (CF style).

    The attributes are those of :func:`variable_attrs`; variables absent from ``ds`` are
    skipped.
    """
    attrs = variable_attrs(
        grades, length_unit=length_unit, grade_unit=grade_unit, method=method, tranches=tranches
    )
    ds = ds.copy()
    for name, a in attrs.items():
        if name and name in ds.variables:
            ds[name].attrs.update(a)
    ds.attrs["units"] = attrs[""]["units"]
    return ds


def dask_chunks(chunks: Sequence[int]) -> dict[str, int]:
    """``compute.chunks`` ``(cx, cy, cz)`` as an xarray chunk mapping over the block-model dims."""
    c = tuple(int(v) for v in chunks)
    if len(c) != 3 or any(v < 1 for v in c):
        msg = f"compute.chunks must be three positive integers (x, y, z), got {chunks!r}"
        raise ValueError(msg)
    return {"domain": 1, "z": c[2], "y": c[1], "x": c[0]}


def grid_from_attrs(ds: xr.Dataset) -> BlockGrid:
    """Rebuild the :class:`BlockGrid` of a block model from its attributes."""
    shape = ds.attrs.get("shape", (ds.sizes["x"], ds.sizes["y"], ds.sizes["z"]))
    return BlockGrid(
        tuple(np.ravel(ds.attrs["origin"])),
        tuple(np.ravel(ds.attrs["block_size"])),
        tuple(np.ravel(shape)),
        float(ds.attrs.get("rotation", 0.0)),
    )
