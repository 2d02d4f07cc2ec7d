"""The validation pack of a block model: global bias, swaths, cross-validation, plan and section
views and the distance to the data by resource class (issue 10).

Pure functions of plain objects: a block model ``xarray.Dataset`` (SPEC section 5: dims
``(domain, z, y, x)``, ``fraction``, ``<grade>``, ``<grade>_dist`` and optionally ``class``) and a
composites table (``hole_id, x, y, z, domain, <grade>``). Nothing here reads or writes files.

Conventions
-----------
* **Block weights**: a block counts by ``fraction x block volume`` (cubic data units), times the
  domain's density when ``density`` is given (tonnes). Only blocks with ``fraction > 0`` and a
  finite estimate enter an estimate mean; the nearest-neighbour (NN) mean is taken over exactly
  the same blocks with the same weights, so the two are comparable.
* **Nearest neighbour**: each block takes the grade of the nearest composite of its own domain,
  by the block centre in world coordinates (Euclidean, no anisotropy); ties go to the composite
  that comes first in the table.
* **Declustered mean**: the composite mean weighted by the ``weights`` given (for example cell
  declustering weights); without weights it is the plain mean.
* **Bias** in percent: ``100 x (estimate mean - reference) / reference``; positive means the
  estimate is higher than the reference.
* **Swaths** run along the block model's own axes (the grid frame when it is rotated; the
  composites are turned into that frame). Swath ``k`` along an axis covers
  ``[o + k w, o + (k + 1) w)`` where ``o`` is the grid's minimum edge along that axis and ``w``
  the width; a block belongs to the swath holding its centre.
* **Cross-validation**: each composite is estimated at point support from the other composites
  of its domain: all others (``leave="one"``) or those of other holes (``leave="hole"``, see
  :mod:`estimator.validation`). ``error = estimate - true``; standardised error
  ``error / sqrt(kv)``; slope = regression of the true grade on the estimate.
* **Distance to the data**: ``<grade>_dist`` as the block model stores it (data units along the
  major axis of the pass's search ellipsoid); P90 is over blocks (NumPy's linear quantile), not
  volume-weighted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from estimator.errors import ConfigError, DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ValidationPack",
    "cross_validation",
    "cv_statistics",
    "extrapolation_by_class",
    "global_bias",
    "nearest_neighbour",
    "plan_section",
    "plot_swaths",
    "swaths",
    "validation_pack",
]

DIMS = ("domain", "z", "y", "x")
AXES = ("x", "y", "z")
#: Column order of the global-bias table.
BIAS_COLUMNS = [
    "domain",
    "composites",
    "blocks",
    "blocks_not_estimated",
    "volume",
    "tonnes",
    "composite_mean",
    "declustered_mean",
    "estimate_mean",
    "nn_mean",
    "bias_declustered_pct",
    "bias_nn_pct",
]
#: Column order of the swath table.
SWATH_COLUMNS = [
    "axis",
    "domain",
    "swath",
    "from",
    "to",
    "centre",
    "composites",
    "blocks",
    "volume",
    "tonnes",
    "composite_mean",
    "declustered_mean",
    "estimate_mean",
    "nn_mean",
]
#: Column order of the distance-to-data table.
EXTRAPOLATION_COLUMNS = [
    "domain",
    "class",
    "blocks",
    "volume",
    "dist_mean",
    "dist_p90",
    "dist_max",
]
#: Statistics of :func:`cross_validation`'s summary (overall and per domain).
CV_STATS = [
    "n",
    "n_missing",
    "true_mean",
    "true_sd",
    "estimate_mean",
    "mean_error",
    "mse",
    "rmse",
    "mean_std_error",
    "var_std_error",
    "correlation",
    "slope",
]
#: Class label of blocks without a class, and of the rows over every class.
UNCLASSIFIED = "unclassified"
ALL = "all"


# -- block model geometry --------------------------------------------------------------------
@dataclass(frozen=True)
class _Geometry:
    """Where the blocks are: grid-frame centres, world centres and the block volume."""

    x: np.ndarray  # (nx,) grid-frame centres
    y: np.ndarray  # (ny,)
    z: np.ndarray  # (nz,)
    block_size: tuple[float, float, float]
    world_x: np.ndarray  # (ny, nx)
    world_y: np.ndarray  # (ny, nx)
    grid: Any  # BlockGrid or None (an unrotated model needs none)
    rotated: bool
    length_unit: str

    @property
    def block_volume(self) -> float:
        dx, dy, dz = self.block_size
        return dx * dy * dz

    def edge(self, axis: str) -> float:
        """The grid's minimum edge along ``axis`` (grid frame)."""
        i = AXES.index(axis)
        return float(getattr(self, axis)[0] - 0.5 * self.block_size[i])

    def to_local(self, xyz: np.ndarray) -> np.ndarray:
        """World ``(n, 3)`` points to the grid frame (a copy; identity when not rotated)."""
        out = np.array(xyz, dtype=float, copy=True)
        if self.rotated:
            if self.grid is None:
                msg = (
                    "the block model is rotated but carries no 'origin' and 'rotation' "
                    "attributes: the composites cannot be placed in the grid's own frame"
                )
                raise DataError(msg)
            out[:, 0], out[:, 1] = self.grid.from_world(xyz[:, 0], xyz[:, 1])
        return out


def _check_model(ds: xr.Dataset, grade: str | None = None) -> None:
    if not isinstance(ds, xr.Dataset):
        msg = f"block model: expected an xarray Dataset, got {type(ds).__name__}"
        raise DataError(msg)
    missing = [d for d in DIMS if d not in ds.dims]
    if missing:
        msg = f"block model: no dimension {missing} (expected dims {DIMS}, got {tuple(ds.dims)})"
        raise DataError(msg)
    need = ["fraction"] + ([grade] if grade is not None else [])
    for name in need:
        if name not in ds.data_vars:
            have = ", ".join(sorted(str(v) for v in ds.data_vars)) or "none"
            msg = f"block model: no variable {name!r} (variables: {have})"
            raise DataError(msg)


def _spacing(coord: np.ndarray, axis: str) -> float | None:
    if coord.size < 2:
        return None
    steps = np.diff(coord)
    step = float(np.median(steps))
    if not (step > 0 and np.allclose(steps, step, rtol=1e-9, atol=1e-9 * abs(step))):
        msg = f"block model: the {axis} block centres are not evenly spaced and increasing"
        raise DataError(msg)
    return step


def _geometry(ds: xr.Dataset) -> _Geometry:
    """Block centres (grid frame and world), block size and rotation of a block model."""
    from estimator.blockmodel.grid import BlockGrid

    coords = {a: np.asarray(ds[a].values, dtype=float) for a in AXES}
    attrs = ds.attrs
    declared = attrs.get("block_size")
    size = []
    for i, a in enumerate(AXES):
        step = _spacing(coords[a], a)
        if declared is not None:
            want = float(np.ravel(declared)[i])
            if step is not None and not np.isclose(step, want, rtol=1e-9):
                msg = (
                    f"block model: the {a} block centres are {step:g} apart but the block_size "
                    f"attribute says {want:g}"
                )
                raise DataError(msg)
            size.append(want)
        elif step is None:
            msg = (
                f"block model: one block along {a} and no block_size attribute: the block "
                "size (and so the block volume) is unknown"
            )
            raise DataError(msg)
        else:
            size.append(step)
    rotation = float(attrs.get("rotation", 0.0) or 0.0)
    has_world = "x_world" in ds.variables and "y_world" in ds.variables
    rotated = rotation % 360.0 != 0.0 or has_world
    grid = None
    if "origin" in attrs and np.size(attrs["origin"]) == 3:
        grid = BlockGrid(
            tuple(np.ravel(attrs["origin"])),
            tuple(size),
            (coords["x"].size, coords["y"].size, coords["z"].size),
            rotation,
        )
    if has_world:
        wx = np.asarray(ds["x_world"].transpose("y", "x").values, dtype=float)
        wy = np.asarray(ds["y_world"].transpose("y", "x").values, dtype=float)
    elif not rotated:
        wx, wy = np.meshgrid(coords["x"], coords["y"])
    elif grid is not None:
        wx, wy = grid.to_world(coords["x"][None, :], coords["y"][:, None])
    else:
        msg = (
            f"block model: rotated by {rotation:g} degrees but it has neither x_world/y_world "
            "coordinates nor an 'origin' attribute; the blocks cannot be placed in the world"
        )
        raise DataError(msg)
    unit = str(attrs.get("units") or ds["x"].attrs.get("units") or "")
    return _Geometry(
        coords["x"], coords["y"], coords["z"], tuple(size), wx, wy, grid, rotated, unit
    )


def _values(ds: xr.Dataset, name: str) -> np.ndarray:
    """A block-model variable as a ``(domain, z, y, x)`` NumPy array."""
    var = ds[name]
    if "domain" not in var.dims:
        var = var.expand_dims(domain=ds["domain"].values)
    return np.asarray(var.transpose(*DIMS).values)


def _domains(ds: xr.Dataset) -> list[str]:
    return [str(d) for d in np.asarray(ds["domain"].values).tolist()]


def _grade_unit(ds: xr.Dataset, grade: str) -> str:
    return str(ds[grade].attrs.get("units") or "")


def _with_unit(words: str, unit: str) -> str:
    return f"{words} ({unit})" if unit else words


# -- composites ------------------------------------------------------------------------------
def _composites(composites: pd.DataFrame, grade: str, ds: xr.Dataset) -> pd.DataFrame:
    """Check the composites table; return it with a text ``domain`` column (row order kept)."""
    if not isinstance(composites, pd.DataFrame):
        msg = f"composites: expected a pandas DataFrame, got {type(composites).__name__}"
        raise DataError(msg)
    cols = {str(c).lower(): c for c in composites.columns}
    need = ["x", "y", "z", grade]
    missing = [c for c in need if c.lower() not in cols]
    if missing:
        msg = (
            f"composites: no column {missing} (columns: {', '.join(map(str, composites.columns))})"
        )
        raise DataError(msg)
    out = pd.DataFrame(
        {c: pd.to_numeric(composites[cols[c.lower()]], errors="coerce") for c in need}
    )
    out.index = composites.index
    if "domain" in cols:
        out["domain"] = composites[cols["domain"]].astype(str).to_numpy()
    else:
        names = _domains(ds)
        if len(names) != 1:
            msg = (
                f"composites: no domain column, and the block model has {len(names)} domains "
                f"({', '.join(names)}): which composite belongs to which domain is unknown"
            )
            raise DataError(msg)
        out["domain"] = names[0]
    if "hole_id" in cols:
        out["hole_id"] = composites[cols["hole_id"]].astype(str).to_numpy()
    else:
        out["hole_id"] = [f"row{i}" for i in range(len(out))]
    return out


def _weights(composites: pd.DataFrame, weights) -> np.ndarray | None:
    """Declustering weights as a float array aligned with the composites' rows (or None)."""
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights not in composites.columns:
            msg = f"declustering weights: no composites column {weights!r}"
            raise DataError(msg)
        w = pd.to_numeric(composites[weights], errors="coerce").to_numpy(float)
    else:
        w = np.asarray(weights, dtype=float).ravel()
    if w.size != len(composites):
        msg = f"declustering weights: {w.size} values for {len(composites)} composites"
        raise DataError(msg)
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        i = int(bad[0])
        hole = (
            f", hole {composites['hole_id'].iloc[i]}" if "hole_id" in composites.columns else ""
        )
        msg = (
            f"declustering weights: {bad.size} of {w.size} missing or negative (first: row {i}"
            f"{hole}, value {float(w[i])!r}); expected a non-negative number per composite"
        )
        raise DataError(msg)
    return w


def _density(density, domains: Sequence[str]) -> dict[str, float] | None:
    """Density per domain (tonnes per cubic data unit) or None."""
    if density is None:
        return None
    if isinstance(density, Mapping):
        out = {}
        for d in domains:
            if d not in density:
                msg = f"density: no value for domain {d!r} (given for {sorted(density)})"
                raise ConfigError(msg)
            out[d] = density[d]
    else:
        out = dict.fromkeys(domains, density)
    for d, v in out.items():
        try:
            ok = np.isfinite(float(v)) and float(v) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            msg = f"density of domain {d!r}: {v!r}; expected a positive number (t per unit^3)"
            raise ConfigError(msg)
        out[d] = float(v)
    return out


def _mean(values: np.ndarray, weights: np.ndarray | None = None) -> float:
    if values.size == 0:
        return float("nan")
    if weights is None:
        return float(np.mean(values))
    total = float(np.sum(weights))
    return float(np.sum(weights * values) / total) if total > 0 else float("nan")


def _bias(estimate: float, reference: float) -> float:
    if not (np.isfinite(estimate) and np.isfinite(reference)) or reference == 0:
        return float("nan")
    return 100.0 * (estimate - reference) / reference


# -- nearest neighbour -----------------------------------------------------------------------
def _nearest(points: np.ndarray, targets: np.ndarray, k: int = 8) -> np.ndarray:
    """Index of the nearest point to each target; exact ties go to the lowest index."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    k = min(k, len(points))
    _, idx = tree.query(targets, k=k)
    idx = np.asarray(idx).reshape(len(targets), k)
    d2 = np.sum((points[idx] - targets[:, None, :]) ** 2, axis=2)
    best = d2.min(axis=1, keepdims=True)
    tied = d2 == best
    out = np.where(tied, idx, np.iinfo(np.int64).max).min(axis=1)
    # every candidate tied (a target equidistant from more than k points): look wider
    for t in np.flatnonzero(tied.all(axis=1)) if k < len(points) else ():
        r = float(np.sqrt(best[t, 0]))
        cand = np.asarray(tree.query_ball_point(targets[t], r * (1 + 1e-9) + 1e-12), dtype=int)
        c2 = np.sum((points[cand] - targets[t]) ** 2, axis=1)
        out[t] = int(cand[c2 == c2.min()].min())
    return out


def nearest_neighbour(ds: xr.Dataset, composites: pd.DataFrame, grade: str) -> xr.DataArray:
    """Nearest-neighbour estimate of every block inside a domain (``fraction > 0``).

    Parameters
    ----------
    ds : xarray.Dataset
        Block model (SPEC section 5).
    composites : pandas.DataFrame
        ``x, y, z, domain, <grade>`` (world coordinates); rows with a missing grade are skipped.
    grade : str
        Grade column (and block-model variable).

    Returns
    -------
    xarray.DataArray, dims ``(domain, z, y, x)``
        The grade of the nearest composite of the block's domain (by block centre, Euclidean;
        ties to the first row); NaN outside the domain or where the domain has no composites.
    """
    _check_model(ds)
    comps = _composites(composites, grade, ds)
    geo = _geometry(ds)
    frac = _values(ds, "fraction").astype(float)
    out = np.full(frac.shape, np.nan)
    for i, d in enumerate(_domains(ds)):
        sel = (comps["domain"] == d).to_numpy()
        xyz = comps.loc[sel, ["x", "y", "z"]].to_numpy(float)
        val = comps.loc[sel, grade].to_numpy(float)
        ok = np.isfinite(val) & np.all(np.isfinite(xyz), axis=1)
        xyz, val = xyz[ok], val[ok]
        iz, iy, ix = np.nonzero(frac[i] > 0)
        if val.size == 0 or iz.size == 0:
            continue
        targets = np.stack([geo.world_x[iy, ix], geo.world_y[iy, ix], geo.z[iz]], axis=1)
        out[i, iz, iy, ix] = val[_nearest(xyz, targets)]
    return xr.DataArray(
        out,
        dims=DIMS,
        coords={k: ds[k] for k in DIMS},
        name=f"{grade}_nn",
        attrs={"long_name": f"{grade} nearest-neighbour estimate", "units": _grade_unit(ds, grade)},
    )


def _nn_values(ds, composites, grade, nn) -> np.ndarray:
    if nn is None:
        nn = nearest_neighbour(ds, composites, grade)
    return np.asarray(nn.transpose(*DIMS).values, dtype=float)


def _inputs(ds, composites, grade, weights, density, nn) -> tuple:
    """What :func:`global_bias` and :func:`swaths` both check and read first: the composites,
    their weights, the domains and densities, the geometry, and the fraction, estimate and
    nearest-neighbour arrays."""
    _check_model(ds, grade)
    comps = _composites(composites, grade, ds)
    w_all = _weights(composites, weights)
    domains = _domains(ds)
    dens = _density(density, domains)
    geo = _geometry(ds)
    frac = _values(ds, "fraction").astype(float)
    est = _values(ds, grade).astype(float)
    nnv = _nn_values(ds, composites, grade, nn)
    return comps, w_all, domains, dens, geo, frac, est, nnv


# -- global bias -----------------------------------------------------------------------------
def global_bias(
    ds: xr.Dataset,
    composites: pd.DataFrame,
    grade: str,
    *,
    weights=None,
    density=None,
    nn: xr.DataArray | None = None,
) -> pd.DataFrame:
    """Global bias of the estimate against the declustered composites and a NN model, per domain.

    Parameters
    ----------
    ds : xarray.Dataset
        Block model with ``fraction`` and ``<grade>``.
    composites : pandas.DataFrame
        ``x, y, z, domain, <grade>``.
    grade : str
        Grade to check.
    weights : array_like or str, optional
        Declustering weight per composite row (or the name of a composites column).
    density : float or mapping, optional
        Density (t per cubic data unit), one value or one per domain: fills ``tonnes``.
    nn : xarray.DataArray, optional
        A :func:`nearest_neighbour` result to reuse.

    Returns
    -------
    pandas.DataFrame
        One row per domain: ``composites`` (with a grade), ``blocks`` (estimated, inside),
        ``blocks_not_estimated``, ``volume`` and ``tonnes`` of the estimated blocks, the
        ``composite_mean``, ``declustered_mean``, volume- (or tonnage-) weighted
        ``estimate_mean`` and ``nn_mean`` of the same blocks, and the bias of the estimate
        against each reference in percent (``bias_declustered_pct``, ``bias_nn_pct``).
    """
    comps, w_all, domains, dens, geo, frac, est, nnv = _inputs(
        ds, composites, grade, weights, density, nn
    )
    rows = []
    for i, d in enumerate(domains):
        sel = (comps["domain"] == d).to_numpy() & np.isfinite(comps[grade].to_numpy(float))
        g = comps.loc[sel, grade].to_numpy(float)
        inside = frac[i] > 0
        ok = inside & np.isfinite(est[i])
        vol = frac[i][ok] * geo.block_volume
        wt = vol * dens[d] if dens else vol
        rows.append(
            {
                "domain": d,
                "composites": int(g.size),
                "blocks": int(ok.sum()),
                "blocks_not_estimated": int((inside & ~ok).sum()),
                "volume": float(vol.sum()),
                "tonnes": float(wt.sum()) if dens else float("nan"),
                "composite_mean": _mean(g),
                "declustered_mean": _mean(g, None if w_all is None else w_all[sel]),
                "estimate_mean": _mean(est[i][ok], wt),
                "nn_mean": _mean(nnv[i][ok], wt),
            }
        )
    out = pd.DataFrame(rows, columns=BIAS_COLUMNS[:-2])
    out["bias_declustered_pct"] = [
        _bias(e, r) for e, r in zip(out["estimate_mean"], out["declustered_mean"], strict=True)
    ]
    out["bias_nn_pct"] = [
        _bias(e, r) for e, r in zip(out["estimate_mean"], out["nn_mean"], strict=True)
    ]
    out.attrs.update(grade=grade, grade_unit=_grade_unit(ds, grade), length_unit=geo.length_unit)
    return out[BIAS_COLUMNS]


# -- swaths ----------------------------------------------------------------------------------
def swaths(
    ds: xr.Dataset,
    composites: pd.DataFrame,
    grade: str,
    *,
    axis: str,
    width: float,
    weights=None,
    density=None,
    nn: xr.DataArray | None = None,
) -> pd.DataFrame:
    """Swath table along one axis of the block model, per domain.

    Parameters
    ----------
    ds, composites, grade, weights, density, nn
        As :func:`global_bias`.
    axis : {"x", "y", "z"}
        The block model axis the swaths are cut across (grid frame when rotated).
    width : float
        Swath width in data units.

    Returns
    -------
    pandas.DataFrame
        One row per domain and swath holding composites or estimated blocks: ``axis``,
        ``domain``, ``swath`` (index ``k``), ``from``, ``to``, ``centre`` (grid frame), counts
        of ``composites`` and estimated ``blocks``, their ``volume`` and ``tonnes`` (NaN
        without density), ``composite_mean``, ``declustered_mean``, and the weighted
        ``estimate_mean`` and ``nn_mean`` of the same blocks.
    """
    if axis not in AXES:
        msg = f"swaths: axis {axis!r}; expected one of x, y, z"
        raise ConfigError(msg)
    try:
        width = float(width)
    except (TypeError, ValueError):
        width = float("nan")
    if not (np.isfinite(width) and width > 0):
        msg = f"swaths: width {width!r} along {axis}; expected a positive length in data units"
        raise ConfigError(msg)
    comps, w_all, domains, dens, geo, frac, est, nnv = _inputs(
        ds, composites, grade, weights, density, nn
    )
    o = geo.edge(axis)
    a = AXES.index(axis)
    centres = getattr(geo, axis)
    block_k = np.floor((centres - o) / width).astype(np.int64)
    shape = frac.shape[1:]
    k_blocks = np.broadcast_to(
        block_k.reshape([-1 if dim == axis else 1 for dim in DIMS[1:]]), shape
    )
    local = geo.to_local(comps[["x", "y", "z"]].to_numpy(float))
    with np.errstate(invalid="ignore"):
        comp_k = np.floor((local[:, a] - o) / width)
    rows = []
    for i, d in enumerate(domains):
        sel = (
            (comps["domain"] == d).to_numpy()
            & np.isfinite(comps[grade].to_numpy(float))
            & np.isfinite(comp_k)
        )
        g, ck = comps.loc[sel, grade].to_numpy(float), comp_k[sel].astype(np.int64)
        wc = None if w_all is None else w_all[sel]
        ok = (frac[i] > 0) & np.isfinite(est[i])
        bk = k_blocks[ok]
        vol = frac[i][ok] * geo.block_volume
        wt = vol * dens[d] if dens else vol
        e, n = est[i][ok], nnv[i][ok]
        for k in np.union1d(np.unique(ck), np.unique(bk)):
            c, b = ck == k, bk == k
            rows.append(
                {
                    "axis": axis,
                    "domain": d,
                    "swath": int(k),
                    "from": o + k * width,
                    "to": o + (k + 1) * width,
                    "centre": o + (k + 0.5) * width,
                    "composites": int(c.sum()),
                    "blocks": int(b.sum()),
                    "volume": float(vol[b].sum()),
                    "tonnes": float(wt[b].sum()) if dens else float("nan"),
                    "composite_mean": _mean(g[c]),
                    "declustered_mean": _mean(g[c], None if wc is None else wc[c]),
                    "estimate_mean": _mean(e[b], wt[b]),
                    "nn_mean": _mean(n[b], wt[b]),
                }
            )
    out = pd.DataFrame(rows, columns=SWATH_COLUMNS)
    out.attrs.update(
        grade=grade,
        grade_unit=_grade_unit(ds, grade),
        length_unit=geo.length_unit,
        rotated=geo.rotated,
        declustered=weights is not None,
    )
    return out


def plot_swaths(
    table: pd.DataFrame,
    domain: str | None = None,
    *,
    grade: str | None = None,
    grade_unit: str | None = None,
    length_unit: str | None = None,
    title: str | None = None,
) -> Figure:
    """Swath plot: one panel per axis in ``table``; means as lines, tonnage (or volume) as bars.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`swaths` output, one or several axes (concatenated).
    domain : str, optional
        Domain to draw; default the one with the largest estimated volume.
    grade, grade_unit, length_unit : str, optional
        Labels; default the table's ``attrs`` (as :func:`swaths` sets them).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Made without pyplot (save it with ``fig.savefig``).
    """
    from matplotlib.figure import Figure

    if table.empty:
        msg = "swath plot: the swath table is empty (no composites and no estimated blocks)"
        raise DataError(msg)
    attrs = table.attrs
    grade = grade or attrs.get("grade", "grade")
    gu = grade_unit if grade_unit is not None else attrs.get("grade_unit", "")
    lu = length_unit if length_unit is not None else attrs.get("length_unit", "")
    if domain is None:
        domain = str(table.groupby("domain", sort=False)["volume"].sum().idxmax())
    sub = table[table["domain"] == domain]
    if sub.empty:
        have = ", ".join(map(str, table["domain"].unique()))
        msg = f"swath plot: no swaths for domain {domain!r} (domains: {have})"
        raise DataError(msg)
    axes = [a for a in AXES if (sub["axis"] == a).any()]
    frame = "grid " if attrs.get("rotated") else ""
    fig = Figure(figsize=(7.5, 3.0 * len(axes) + 0.6), layout="constrained")
    panels = fig.subplots(len(axes), 1, squeeze=False)[:, 0]
    for ax, a in zip(panels, axes, strict=True):
        rows = sub[sub["axis"] == a].sort_values("centre")
        width = float((rows["to"] - rows["from"]).iloc[0])
        bars = ax.twinx()
        use_t = bool(np.isfinite(rows["tonnes"]).any())
        amount = rows["tonnes"] if use_t else rows["volume"]
        bars.bar(rows["centre"], amount, width=0.9 * width, color="0.85", zorder=0,
                 label="tonnes" if use_t else "volume")  # fmt: skip
        bars.set_ylabel("tonnes (t)" if use_t else _with_unit("volume", f"{lu}³" if lu else ""))
        ax.set_zorder(bars.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot(rows["centre"], rows["composite_mean"], "o", ms=4, color="C0",
                label="composites (naive)")  # fmt: skip
        if attrs.get("declustered") or not np.allclose(
            rows["declustered_mean"], rows["composite_mean"], equal_nan=True
        ):
            ax.plot(rows["centre"], rows["declustered_mean"], "s", ms=4, mfc="none", color="C2",
                    label="composites (declustered)")  # fmt: skip
        ax.plot(rows["centre"], rows["estimate_mean"], "-", lw=2, color="C3", label="estimate")
        ax.plot(rows["centre"], rows["nn_mean"], "--", lw=1.5, color="C1",
                label="nearest neighbour")  # fmt: skip
        ax.set_xlabel(_with_unit(f"{frame}{a} swath centre", lu))
        ax.set_ylabel(_with_unit(f"mean {grade}", gu))
        ax.grid(alpha=0.3)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = bars.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    fig.suptitle(title or f"Swath plot, {grade}, domain {domain}")
    return fig


# -- cross-validation ------------------------------------------------------------------------
def _model_for(models, domain: str, grade: str, method: str):
    if models is None or not isinstance(models, Mapping):
        if models is None and method in ("ok", "sk"):
            msg = f"cross-validation: method {method!r} needs a variogram model"
            raise ConfigError(msg)
        return models
    if domain not in models or grade not in models[domain]:
        msg = (
            f"cross-validation: no variogram model for domain {domain!r}, grade {grade!r} "
            f"(models given for domains {sorted(models)})"
        )
        raise ConfigError(msg)
    return models[domain][grade]


def _passes_for(passes, domain: str) -> list:
    if isinstance(passes, Mapping):
        if domain not in passes:
            msg = f"cross-validation: no search passes for domain {domain!r}"
            raise ConfigError(msg)
        passes = passes[domain]
    passes = list(passes)
    if not passes:
        msg = "cross-validation: no search passes given"
        raise ConfigError(msg)
    return passes


def cv_statistics(table: pd.DataFrame) -> dict:
    """Error statistics of a cross-validation table (rows with an estimate).

    Returns
    -------
    dict
        ``n``, ``n_missing``, ``true_mean``, ``true_sd`` and ``estimate_mean`` (of the estimated
        rows), ``mean_error``, ``mse``, ``rmse``, ``mean_std_error``, ``var_std_error``,
        ``correlation`` and ``slope`` (regression of true on estimate), as
        :func:`estimator.validation.summary`; NaN where undefined.
    """
    from estimator.validation import summary

    out = summary(table)
    ok = np.isfinite(table["estimate"].to_numpy(float))
    t = table.loc[ok, "true"].to_numpy(float)
    e = table.loc[ok, "estimate"].to_numpy(float)
    nan = float("nan")
    out.update(
        true_mean=float(t.mean()) if t.size else nan,
        true_sd=float(t.std()) if t.size else nan,
        estimate_mean=float(e.mean()) if e.size else nan,
        mse=float(np.mean((e - t) ** 2)) if t.size else nan,
    )
    return {k: out[k] for k in CV_STATS}


def cross_validation(
    composites: pd.DataFrame,
    grade: str,
    models,
    passes,
    *,
    method: str = "ok",
    leave: str = "hole",
    sk_mean: float | Mapping[str, float] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Leave-one-out or leave-one-hole-out cross-validation of the composites, per domain.

    Parameters
    ----------
    composites : pandas.DataFrame
        ``hole_id, x, y, z, <grade>`` and ``domain`` (without it: one domain, ``all``).
    grade : str
        Grade column.
    models : mapping or VariogramModel or None
        ``{domain: {grade: VariogramModel}}`` (as a run's ``models``), or one model for every
        domain (None only for ``idw`` and ``nn``).
    passes : sequence of SearchPass or mapping
        The search passes (absolute ranges), or ``{domain: passes}``.
    method : {"ok", "sk", "idw", "nn"}
        Estimator, as :func:`estimator.kriging.estimate.estimate_blocks`.
    leave : {"one", "hole"}
        Leave each composite out on its own (``one``: the rest of its hole still informs it) or
        with its whole hole (``hole``, the fair test of a block estimate).
    sk_mean : float or mapping, optional
        Simple kriging's mean: one value, or one per domain (``{domain: mean}``).
        Simple kriging mean.

    Returns
    -------
    table : pandas.DataFrame
        ``domain`` plus the :func:`estimator.validation.cross_validate` columns (``fold`` is the
        row number for ``leave="one"``).
    summary : dict
        :func:`cv_statistics` of all rows, plus ``leave``, ``method`` and ``by_domain``
        (``{domain: statistics}``).
    """
    from estimator.validation import COLUMNS, cross_validate

    if leave not in ("one", "hole"):
        msg = f"cross-validation: leave={leave!r}; expected 'one' or 'hole'"
        raise ConfigError(msg)
    if method not in ("ok", "sk", "idw", "nn"):
        msg = f"cross-validation: method {method!r}; expected ok, sk, idw or nn"
        raise ConfigError(msg)
    if not isinstance(composites, pd.DataFrame):
        msg = f"composites: expected a pandas DataFrame, got {type(composites).__name__}"
        raise DataError(msg)
    probe = xr.Dataset(coords={"domain": [ALL]})
    comps = _composites(composites, grade, probe)  # without a domain column: one, "all"
    tables = []
    by_domain = {}
    for d in dict.fromkeys(comps["domain"]):
        if d in ("", "nan", "None"):
            continue  # outside every domain: never estimated
        sel = (comps["domain"] == d).to_numpy()
        xyz = comps.loc[sel, ["x", "y", "z"]].to_numpy(float)
        values = comps.loc[sel, grade].to_numpy(float)
        holes = comps.loc[sel, "hole_id"].to_numpy().astype(str)
        ok = np.isfinite(values) & np.all(np.isfinite(xyz), axis=1)
        if not ok.any():
            continue
        model = _model_for(models, d, grade, method)
        dpasses = _passes_for(passes, d)
        mean = sk_mean.get(d) if isinstance(sk_mean, Mapping) else sk_mean
        t = cross_validate(xyz[ok], values[ok], holes[ok], model, dpasses, method=method,
                           sk_mean=mean, leave=leave)  # fmt: skip
        t.insert(0, "domain", d)
        tables.append(t)
        by_domain[d] = cv_statistics(t)
    table = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=["domain", *COLUMNS])
    )
    summary = {**cv_statistics(table), "leave": leave, "method": method, "by_domain": by_domain}
    return table, summary


# -- plan and section ------------------------------------------------------------------------
def _combined(ds: xr.Dataset, grade: str, domain: str | None) -> np.ndarray:
    """Per block ``(z, y, x)``: fraction-weighted mean estimate over the domains inside it."""
    frac = _values(ds, "fraction").astype(float)
    est = _values(ds, grade).astype(float)
    if domain is not None:
        names = _domains(ds)
        if domain not in names:
            msg = f"plan/section: no domain {domain!r} in the block model ({', '.join(names)})"
            raise DataError(msg)
        i = names.index(domain)
        frac, est = frac[i : i + 1], est[i : i + 1]
    ok = (frac > 0) & np.isfinite(est)
    w = np.where(ok, frac, 0.0)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 0, np.sum(w * np.where(ok, est, 0.0), axis=0) / total, np.nan)
    return out


def _level(coord: np.ndarray, size: float, value: float | None, name: str, busy) -> int:
    """Index of the block layer holding ``value`` (default the busiest layer)."""
    if value is None:
        return int(np.argmax(busy))
    lo, hi = coord[0] - 0.5 * size, coord[-1] + 0.5 * size
    if not (lo <= float(value) <= hi):
        msg = f"plan/section: {name} = {value:g} is outside the block model ({lo:g} to {hi:g})"
        raise DataError(msg)
    return int(np.argmin(np.abs(coord - float(value))))


def _edges(c: np.ndarray, size: float) -> np.ndarray:
    return np.concatenate([c - 0.5 * size, [c[-1] + 0.5 * size]])


def plan_section(
    ds: xr.Dataset,
    composites: pd.DataFrame,
    grade: str,
    *,
    z: float | None = None,
    y: float | None = None,
    domain: str | None = None,
) -> Figure:
    """A plan at an elevation and a section at a northing through the block estimate.

    Parameters
    ----------
    ds : xarray.Dataset
        Block model.
    composites : pandas.DataFrame
        ``x, y, z, <grade>`` (world coordinates; ``domain`` used when ``domain`` is given).
    grade : str
        Grade to draw.
    z, y : float, optional
        Elevation of the plan and northing (grid-frame y when rotated) of the section; each
        snaps to the block layer holding it. Default: the layer with the most estimated blocks.
    domain : str, optional
        Draw one domain only; default every domain (a block shared by domains shows the
        fraction-weighted mean of their estimates).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels sharing one colour scale (2nd to 98th percentile of the estimates); the
        composites within half a block of each plane are drawn as points on that scale.
    """
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    _check_model(ds, grade)
    comps = _composites(composites, grade, ds)
    if domain is not None:
        comps = comps[comps["domain"] == domain]
    geo = _geometry(ds)
    grid = _combined(ds, grade, domain)  # (z, y, x)
    has = np.isfinite(grid)
    kz = _level(geo.z, geo.block_size[2], z, "z", has.sum(axis=(1, 2)))
    ky = _level(geo.y, geo.block_size[1], y, "y", has.sum(axis=(0, 2)))
    finite = grid[has]
    if finite.size:
        vmin, vmax = np.percentile(finite, [2, 98])
    else:
        vmin, vmax = 0.0, 1.0
    norm = Normalize(vmin=float(vmin), vmax=float(max(vmax, vmin + 1e-12)))
    local = geo.to_local(comps[["x", "y", "z"]].to_numpy(float))
    value = comps[grade].to_numpy(float)
    good = np.isfinite(value) & np.all(np.isfinite(local), axis=1)
    lu, gu = geo.length_unit, _grade_unit(ds, grade)
    frame = "grid " if geo.rotated else ""
    fig = Figure(figsize=(12, 5.2), layout="constrained")
    ax_plan, ax_sec = fig.subplots(1, 2)
    xe = _edges(geo.x, geo.block_size[0])
    ye = _edges(geo.y, geo.block_size[1])
    ze = _edges(geo.z, geo.block_size[2])
    cmap = "viridis"
    mesh = ax_plan.pcolormesh(xe, ye, np.ma.masked_invalid(grid[kz]), cmap=cmap, norm=norm)
    near = good & (np.abs(local[:, 2] - geo.z[kz]) <= 0.5 * geo.block_size[2])
    ax_plan.scatter(local[near, 0], local[near, 1], c=value[near], cmap=cmap, norm=norm, s=14,
                    edgecolors="k", linewidths=0.4, label="composites within half a block")  # fmt: skip
    ax_plan.set_title(f"Plan at z = {geo.z[kz]:g}{' ' + lu if lu else ''}")
    ax_plan.set_xlabel(_with_unit(f"{frame}x (east)", lu))
    ax_plan.set_ylabel(_with_unit(f"{frame}y (north)", lu))
    ax_plan.set_aspect("equal")
    ax_sec.pcolormesh(xe, ze, np.ma.masked_invalid(grid[:, ky, :]), cmap=cmap, norm=norm)
    near = good & (np.abs(local[:, 1] - geo.y[ky]) <= 0.5 * geo.block_size[1])
    ax_sec.scatter(local[near, 0], local[near, 2], c=value[near], cmap=cmap, norm=norm, s=14,
                   edgecolors="k", linewidths=0.4, label="composites within half a block")  # fmt: skip
    ax_sec.set_title(f"Section at {frame}y = {geo.y[ky]:g}{' ' + lu if lu else ''}")
    ax_sec.set_xlabel(_with_unit(f"{frame}x (east)", lu))
    ax_sec.set_ylabel(_with_unit("z (elevation)", lu))
    ax_sec.set_aspect("equal")
    for ax in (ax_plan, ax_sec):
        if ax.collections[-1].get_offsets().shape[0]:
            ax.legend(fontsize=7, loc="upper right")
    fig.colorbar(mesh, ax=[ax_plan, ax_sec], label=_with_unit(f"{grade} estimate", gu),
                 extend="both", shrink=0.8)  # fmt: skip
    fig.suptitle(f"{grade} estimate{', domain ' + domain if domain else ''}")
    return fig


# -- distance to the data by class -----------------------------------------------------------
def _class_labels(ds: xr.Dataset) -> np.ndarray:
    """Class label of every block ``(domain, z, y, x)``; "" = unclassified."""
    from estimator.reporting import _class_labels as labels

    return labels(_values(ds, "class"), ds["class"].attrs)


def _class_order(ds: xr.Dataset, labels: np.ndarray) -> list[str]:
    present = set(np.unique(labels).tolist())
    attrs = ds["class"].attrs
    if "class_names" in attrs:
        names = [str(n) for n in np.ravel(attrs["class_names"])]
    else:  # CF flag meanings, in code order ("unclassified" first)
        names = str(attrs.get("flag_meanings", "")).split()[1:]
    order = [n for n in names if n in present]
    order += sorted(present - set(order) - {""})
    return order + ([""] if "" in present else [])


def extrapolation_by_class(ds: xr.Dataset, grade: str) -> pd.DataFrame:
    """How far the estimated blocks are from their data, per domain and resource class.

    Parameters
    ----------
    ds : xarray.Dataset
        Block model with ``fraction``, ``<grade>_dist`` and optionally ``class``.
    grade : str
        Grade whose ``<grade>_dist`` is summarised.

    Returns
    -------
    pandas.DataFrame
        ``domain, class, blocks, volume, dist_mean, dist_p90, dist_max``: estimated blocks
        (inside the domain, finite distance), their volume and the mean, 90th percentile and
        maximum of ``<grade>_dist`` in data units. ``class`` is ``unclassified`` for blocks
        without one; per domain a row ``all`` covers every class (the only row when the model
        has no ``class``). Domains without estimated blocks give a row with ``blocks = 0``.
    """
    _check_model(ds, f"{grade}_dist")
    geo = _geometry(ds)
    frac = _values(ds, "fraction").astype(float)
    dist = _values(ds, f"{grade}_dist").astype(float)
    labels = _class_labels(ds) if "class" in ds.variables else None
    order = _class_order(ds, labels) if labels is not None else []
    rows = []

    def row(d, cls, sel, i):
        v = dist[i][sel]
        nan = float("nan")
        rows.append(
            {
                "domain": d,
                "class": cls,
                "blocks": int(v.size),
                "volume": float(frac[i][sel].sum() * geo.block_volume),
                "dist_mean": float(v.mean()) if v.size else nan,
                "dist_p90": float(np.quantile(v, 0.9)) if v.size else nan,
                "dist_max": float(v.max()) if v.size else nan,
            }
        )

    for i, d in enumerate(_domains(ds)):
        ok = (frac[i] > 0) & np.isfinite(dist[i])
        if labels is not None:
            for cls in order:
                sel = ok & (labels[i] == cls)
                if sel.any():
                    row(d, cls or UNCLASSIFIED, sel, i)
        row(d, ALL, ok, i)
    out = pd.DataFrame(rows, columns=EXTRAPOLATION_COLUMNS)
    out.attrs.update(grade=grade, length_unit=geo.length_unit)
    return out


# -- the pack --------------------------------------------------------------------------------
@dataclass
class ValidationPack:
    """The validation tables and figures of one grade of a block model.

    Attributes
    ----------
    global_bias, swaths, extrapolation : pandas.DataFrame
        :func:`global_bias`, :func:`swaths` (every axis, concatenated) and
        :func:`extrapolation_by_class`.
    cross_validation : pandas.DataFrame
        :func:`cross_validation` table (empty when skipped).
    cross_validation_summary : dict
        Its summary.
    figures : dict of str to matplotlib.figure.Figure
        ``swaths_<domain>`` per domain with swaths, and ``plan_section``.
    """

    grade: str
    global_bias: pd.DataFrame
    swaths: pd.DataFrame
    cross_validation: pd.DataFrame
    cross_validation_summary: dict
    extrapolation: pd.DataFrame
    figures: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables by file stem (``validation_<name>_<grade>``), ready to write."""
        return {
            f"validation_bias_{self.grade}": self.global_bias,
            f"validation_swaths_{self.grade}": self.swaths,
            f"validation_cross_{self.grade}": self.cross_validation,
            f"validation_distance_{self.grade}": self.extrapolation,
        }


def _swath_widths(swath_widths, geo: _Geometry) -> dict[str, float]:
    """Width per axis: given (one value or per axis), or about 20 swaths across the model."""
    if swath_widths is None:
        out = {}
        for i, a in enumerate(AXES):
            n = getattr(geo, a).size
            out[a] = geo.block_size[i] * max(1, round(n / 20))
        return out
    if isinstance(swath_widths, Mapping):
        unknown = sorted(set(map(str, swath_widths)) - set(AXES))
        if unknown:
            msg = f"swath_widths: unknown axes {unknown}; expected x, y and/or z"
            raise ConfigError(msg)
        return {a: swath_widths[a] for a in AXES if a in swath_widths}
    return dict.fromkeys(AXES, swath_widths)


def validation_pack(
    ds: xr.Dataset,
    composites: pd.DataFrame,
    grade: str,
    models,
    passes,
    *,
    weights=None,
    density=None,
    swath_widths=None,
    method: str = "ok",
    leave: str = "hole",
    sk_mean: float | Mapping[str, float] | None = None,
    cross_validate: bool = True,
    plots: bool = True,
) -> ValidationPack:
    """Every validation check of one grade: tables and figures.

    Parameters
    ----------
    ds, composites, grade, weights, density
        As :func:`global_bias`.
    models, passes, method, leave, sk_mean
        As :func:`cross_validation`.
    swath_widths : float or mapping, optional
        Swath width (data units), one for every axis or ``{axis: width}`` (only those axes);
        default about 20 swaths along each axis, in whole blocks.
    cross_validate : bool
        Run the cross-validation (the slowest part: one kriging system per composite).
    plots : bool
        Make the figures.

    Returns
    -------
    ValidationPack
    """
    _check_model(ds, grade)
    geo = _geometry(ds)
    nn = nearest_neighbour(ds, composites, grade)
    bias = global_bias(ds, composites, grade, weights=weights, density=density, nn=nn)
    widths = _swath_widths(swath_widths, geo)
    parts = [
        swaths(ds, composites, grade, axis=a, width=w, weights=weights, density=density, nn=nn)
        for a, w in widths.items()
    ]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SWATH_COLUMNS)
    if parts:
        table.attrs.update(parts[0].attrs)
    if cross_validate:
        cv, cv_summary = cross_validation(
            composites, grade, models, passes, method=method, leave=leave, sk_mean=sk_mean
        )
    else:
        cv, cv_summary = pd.DataFrame(), {}
    dist = (
        extrapolation_by_class(ds, grade)
        if f"{grade}_dist" in ds.data_vars
        else pd.DataFrame(columns=EXTRAPOLATION_COLUMNS)
    )
    figures: dict[str, Figure] = {}
    if plots:
        for d in table["domain"].unique() if not table.empty else ():
            if table.loc[table["domain"] == d, "blocks"].sum() > 0:
                figures[f"swaths_{d}"] = plot_swaths(table, str(d))
        if np.isfinite(_values(ds, grade).astype(float)).any():
            figures["plan_section"] = plan_section(ds, composites, grade)
    return ValidationPack(grade, bias, table, cv, cv_summary, dist, figures)
