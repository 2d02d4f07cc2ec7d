"""Cell declustering, as GSLIB's ``declus`` computes it.

Clustered drilling (infill in the high-grade part of a deposit) makes the naive sample mean a
biased estimate of the domain's mean grade. Cell declustering lays a grid of cells over the
samples, gives every sample the weight ``1 / (samples in its cell)`` and averages these weights
over several shifts of the grid origin. The cell size is chosen where the declustered mean is
lowest (samples clustered in high grades, the usual case) or highest (clustered in low grades).

This module follows ``declus.for`` of GSLIB 2.905 (C. V. Deutsch, 1989-1999; Deutsch and
Journel, 1998, *GSLIB*, 2nd ed., section VI.2.2), read in the ``exepulveda/gslib2.0`` mirror,
``src/original/declus/declus.for``:

* the data's bounding box gives the lower origin ``xmin - 0.01`` (and likewise in y and z);
* a cell is ``size`` in x, ``size * yanis`` in y and ``size * zanis`` in z;
* offset ``k`` (k = 0 .. noff-1) moves the origin to ``origin - k * fac`` on every axis at once,
  with ``fac = min(cell / noff, 0.5 * data extent)`` per axis;
* a sample's cell is ``int((x - origin) / cell)`` (a floor: ``x - origin > 0``);
* for each offset the weights ``1 / (samples in the cell)`` are normalised to sum to one and
  added up over the offsets; the declustered mean is the weighted mean;
* the search starts from the naive mean at cell size 0 (the first row of ``declus.sum``) and
  keeps a size only when its mean is strictly lower (``minimise``) or strictly higher than the
  best so far, so the first of equal means wins and, when no size beats the naive mean, the
  weights stay equal (``best_size = 0``). With a single cell size, that size is taken whatever
  its mean (``ncell = 1`` in declus);
* the chosen weights are scaled to average 1 (they sum to the number of samples), as declus
  writes them.

Differences from the Fortran, none of which changes a printed digit on GSLIB's ``cluster.dat``:
arithmetic is in double precision (declus uses single), cell sizes are computed as
``cmin + k * inc`` rather than by repeated addition, and samples without a value (NaN) are left
out and given a NaN weight (declus trims them by ``tmin, tmax`` and writes -999).

Examples
--------
>>> xyz = np.array([[0.5, 0.5], [1.5, 0.5], [0.5, 1.5], [1.5, 1.5]])
>>> res = cell_declustering(xyz, [1.0, 2.0, 3.0, 4.0], cell_sizes=[1.0])
>>> res.best_size, res.best_mean, res.weights.tolist()
(1.0, 2.5, [1.0, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from estimator.errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Declustering", "cell_declustering", "declustering_sweep", "plot_declustering"]

# Above this many cells in one grid the samples' cells are counted with np.unique instead of a
# dense np.bincount array (small cells over a large 3-D extent).
_DENSE_CELL_LIMIT = 4_000_000


@dataclass(frozen=True)
class Declustering:
    """Result of :func:`cell_declustering`.

    Attributes
    ----------
    sizes : numpy.ndarray
        Cell sizes in x (data units), starting with 0: the naive mean's row, as in ``declus.sum``.
    means : numpy.ndarray
        Declustered mean for each size (``means[0]`` is the naive mean).
    best_size : float
        The chosen cell size in x (0 when no size beats the naive mean).
    best_mean : float
        The declustered mean at ``best_size``.
    weights : numpy.ndarray
        Weights at ``best_size`` for every input sample, averaging 1 over the samples with a value
        (they sum to ``n``); NaN for samples without a value.
    naive_mean : float
        Mean of the samples with a value.
    n : int
        Samples with a value (used).
    n_missing : int
        Samples left out because their value is missing (NaN).
    minimise : bool
        True when the lowest mean was sought.
    """

    sizes: np.ndarray
    means: np.ndarray
    best_size: float
    best_mean: float
    weights: np.ndarray
    naive_mean: float
    n: int
    n_missing: int
    minimise: bool = True


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _check_inputs(xyz, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates as (n, 3) floats (z = 0 for 2-D), values, and the mask of samples used."""
    try:
        xyz = np.asarray(xyz, dtype=float)
        values = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        msg = f"declustering: coordinates and grades must be numbers ({exc})"
        raise DataError(msg) from None
    if xyz.ndim != 2 or xyz.shape[1] not in (2, 3):
        msg = (
            f"declustering: coordinates must be a table of x, y (and z) columns, one row per "
            f"sample; got an array of shape {xyz.shape}"
        )
        raise DataError(msg)
    if values.ndim != 1 or values.shape[0] != xyz.shape[0]:
        msg = (
            f"declustering: {values.size} grade values for {xyz.shape[0]} sample locations; "
            f"expected one grade per sample"
        )
        raise DataError(msg)
    if xyz.shape[1] == 2:
        xyz = np.column_stack([xyz, np.zeros(len(xyz))])
    used = ~np.isnan(values)
    if np.isinf(values[used]).any():
        i = int(np.flatnonzero(np.isinf(values))[0])
        msg = f"declustering: sample {i} has an infinite grade ({values[i]}); expected a number"
        raise DataError(msg)
    bad = used & ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = (
            f"declustering: sample {i} (and {int(bad.sum()) - 1} more) has no usable location "
            f"(x, y, z = {xyz[i].tolist()}); expected finite coordinates"
        )
        raise DataError(msg)
    n = int(used.sum())
    if n < 2:
        msg = (
            f"declustering needs at least 2 samples with a grade; got {n} "
            f"(of {values.size}, {values.size - n} missing)"
        )
        raise DataError(msg)
    return xyz, values, used


def _check_positive(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        msg = f"declustering: {name} must be a number; got {value!r}"
        raise DataError(msg) from None
    if not np.isfinite(value) or value <= 0:
        msg = f"declustering: {name} must be a positive number (data units); got {value!r}"
        raise DataError(msg)
    return value


# ---------------------------------------------------------------------------------------------
# Kernel
# ---------------------------------------------------------------------------------------------


def _cell_counts(cells: np.ndarray) -> np.ndarray:
    """For (n, 3) non-negative integer cell indices, the number of samples in each sample's cell."""
    extent = cells.max(axis=0) + 1
    total = float(extent[0]) * float(extent[1]) * float(extent[2])
    if total <= max(_DENSE_CELL_LIMIT, 4 * len(cells)):
        key = cells[:, 0] + extent[0] * (cells[:, 1] + extent[1] * cells[:, 2])
        return np.bincount(key, minlength=int(total))[key]
    _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.ravel()]


def _weights_for_size(
    xyz: np.ndarray, size: float, anis: np.ndarray, n_offsets: int
) -> np.ndarray:
    """declus weights for one cell size, summed over the origin offsets (sum = n_offsets)."""
    lo = xyz.min(axis=0)
    hi = xyz.max(axis=0)
    cell = size * anis
    origin = lo - 0.01
    fac = np.minimum(cell / n_offsets, 0.5 * (hi - lo))
    rel = xyz - origin
    wt = np.zeros(len(xyz))
    for k in range(n_offsets):
        cells = np.floor((rel + k * fac) / cell).astype(np.int64)
        inv = 1.0 / _cell_counts(cells)
        wt += inv / inv.sum()
    return wt


def _decluster(xyz, values, sizes, anis, n_offsets, minimise, force_single):
    naive = float(values.mean())
    means = [naive]
    best_size, best_mean = 0.0, naive
    best_wt = np.ones(len(values))
    for size in sizes:
        wt = _weights_for_size(xyz, size, anis, n_offsets)
        mean = float(np.sum(wt * values) / np.sum(wt))
        means.append(mean)
        better = mean < best_mean if minimise else mean > best_mean
        if better or force_single:
            best_size, best_mean, best_wt = float(size), mean, wt
    best_wt = best_wt * (len(values) / best_wt.sum())
    return np.array(means), best_size, best_mean, best_wt, naive


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def cell_declustering(
    xyz,
    values,
    *,
    cell_sizes: Sequence[float],
    anisotropy: tuple[float, float] = (1.0, 1.0),
    n_offsets: int = 8,
    minimise: bool = True,
) -> Declustering:
    """Cell declustering weights and declustered means over a set of cell sizes (GSLIB declus).

    Parameters
    ----------
    xyz : array_like, shape (n, 2) or (n, 3)
        Sample coordinates (x, y[, z]) in data units (metres or feet); 2-D data have z = 0.
    values : array_like, shape (n,)
        Grades. NaN means not sampled: such samples are left out and get a NaN weight.
    cell_sizes : sequence of float
        Cell sizes in x, in data units (> 0), evaluated in the order given.
    anisotropy : (float, float)
        declus's ``yanis, zanis``: a cell is ``size * yanis`` in y and ``size * zanis`` in z.
    n_offsets : int
        Number of origin offsets (declus ``noff``, >= 1).
    minimise : bool
        True (declus ``iminmax = 0``): take the size with the lowest declustered mean, the usual
        choice when the data are clustered in high grades; False: the highest.

    Returns
    -------
    Declustering

    Raises
    ------
    DataError
        Fewer than two samples with a grade, coordinates that are not finite, mismatched
        lengths, or a size, anisotropy or number of offsets that is not positive.
    """
    xyz, values, used = _check_inputs(xyz, values)
    sizes = np.atleast_1d(np.asarray(cell_sizes, dtype=object)).ravel()
    if sizes.size == 0:
        msg = "declustering: no cell sizes given; expected at least one positive size"
        raise DataError(msg)
    sizes = np.array([_check_positive(f"cell size {s!r}", s) for s in sizes])
    try:
        yanis, zanis = anisotropy
    except (TypeError, ValueError):
        msg = f"declustering: anisotropy must be two numbers (yanis, zanis); got {anisotropy!r}"
        raise DataError(msg) from None
    yanis = _check_positive("y cell anisotropy", yanis)
    anis = np.array([1.0, yanis, _check_positive("z cell anisotropy", zanis)])
    if isinstance(n_offsets, bool) or not isinstance(n_offsets, (int, np.integer)) or n_offsets < 1:
        msg = (
            f"declustering: number of origin offsets must be a whole number >= 1; "
            f"got {n_offsets!r}"
        )
        raise DataError(msg)
    means, best_size, best_mean, best_wt, naive = _decluster(
        xyz[used], values[used], sizes, anis, int(n_offsets), bool(minimise), sizes.size == 1
    )
    weights = np.full(values.shape, np.nan)
    weights[used] = best_wt
    return Declustering(
        sizes=np.concatenate([[0.0], sizes]),
        means=means,
        best_size=best_size,
        best_mean=best_mean,
        weights=weights,
        naive_mean=naive,
        n=int(used.sum()),
        n_missing=int((~used).sum()),
        minimise=bool(minimise),
    )


def declustering_sweep(
    xyz,
    values,
    *,
    min_size: float,
    max_size: float,
    n_sizes: int,
    anisotropy: tuple[float, float] = (1.0, 1.0),
    n_offsets: int = 8,
    minimise: bool = True,
) -> Declustering:
    """Cell declustering over declus's ``ncell, cmin, cmax`` sweep of cell sizes.

    As in declus, ``n_sizes`` is the number of *steps*: the sizes are
    ``min_size + k * (max_size - min_size) / n_sizes`` for k = 0 .. n_sizes, so ``n_sizes + 1``
    sizes are evaluated (declus.par's ``24 1.0 25.0`` gives 1, 2, ..., 25). With ``n_sizes = 1``
    declus evaluates ``min_size`` only and takes it whatever its mean; so does this function.
    Other parameters as :func:`cell_declustering`.
    """
    lo = _check_positive("smallest cell size", min_size)
    if isinstance(n_sizes, bool) or not isinstance(n_sizes, (int, np.integer)) or n_sizes < 1:
        msg = f"declustering: number of cell sizes must be a whole number >= 1; got {n_sizes!r}"
        raise DataError(msg)
    if n_sizes == 1:
        sizes = np.array([lo])
    else:
        hi = _check_positive("largest cell size", max_size)
        if hi < lo:
            msg = (
                f"declustering: largest cell size {hi:g} is smaller than the smallest {lo:g}; "
                f"expected min_size <= max_size"
            )
            raise DataError(msg)
        sizes = lo + np.arange(n_sizes + 1) * ((hi - lo) / n_sizes)
    return cell_declustering(
        xyz,
        values,
        cell_sizes=sizes,
        anisotropy=anisotropy,
        n_offsets=n_offsets,
        minimise=minimise,
    )


def plot_declustering(result: Declustering, unit: str = "", *, length_unit: str = "") -> Figure:
    """Declustered mean against cell size, the chosen size marked, the naive mean drawn.

    Parameters
    ----------
    result : Declustering
    unit : str
        Grade unit for the y axis label (e.g. ``g/t``).
    length_unit : str
        Unit of the cell size (e.g. ``m``).

    Returns
    -------
    matplotlib.figure.Figure
        Made without pyplot, so it works on any backend (save it with ``fig.savefig``).
    """
    from matplotlib.figure import Figure

    gu = f" ({unit})" if unit else ""
    lu = f" ({length_unit})" if length_unit else ""
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(result.sizes[1:], result.means[1:], marker="o", ms=3, color="C0",
            label="declustered mean")  # fmt: skip
    ax.axhline(result.naive_mean, color="0.4", ls="--", lw=1,
               label=f"naive mean {result.naive_mean:.4g}")  # fmt: skip
    if result.best_size > 0:
        label = f"chosen: size {result.best_size:g}, mean {result.best_mean:.4g}"
        ax.plot([result.best_size], [result.best_mean], marker="*", ms=14, color="C3", ls="none",
                label=label)  # fmt: skip
        ax.axvline(result.best_size, color="C3", lw=0.8, alpha=0.6)
    else:
        ax.text(0.02, 0.02, "no cell size beats the naive mean: equal weights",
                transform=ax.transAxes, fontsize=8)  # fmt: skip
    ax.set_xlabel(f"cell size{lu}")
    ax.set_ylabel(f"declustered mean{gu}")
    rule = "minimum" if result.minimise else "maximum"
    ax.set_title(f"Cell declustering ({result.n} samples, {rule} mean sought)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
