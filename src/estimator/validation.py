"""Cross-validation of a variogram model and search: leave-one-hole-out at point support.

Every composite is estimated from the composites of other holes only (its own hole left out,
so the down-hole neighbours that would make the estimate look better than any block estimate
are not used). Holes are grouped in folds: with ``folds=None`` each hole is its own fold (exact
leave-one-hole-out); with ``folds=k`` the holes, sorted by id, are dealt round-robin into ``k``
folds and each fold is estimated from the other ``k - 1``, which costs ``k`` kriging runs
instead of one per hole and leaves out a little more data (``1 / k`` of the holes).

Conventions: ``error = estimate - true``; the standardised error is ``error / sqrt(kv)`` with
the point kriging variance (nugget included); its variance is near 1 when the model's sill and
nugget describe the data's variability at the scale of the search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from estimator.kriging.estimate import SearchPass, estimate_blocks
from estimator.variography.models import VariogramModel

COLUMNS = [
    "hole_id",
    "x",
    "y",
    "z",
    "fold",
    "true",
    "estimate",
    "error",
    "kv",
    "std_error",
    "n",
    "pass",
]


def hole_folds(hole_ids, folds: int | None = None) -> np.ndarray:
    """Fold of each composite: holes sorted by id (as text), dealt round-robin into ``folds``.

    Parameters
    ----------
    hole_ids : array_like, shape (n,)
        Hole of each composite (any type; compared as text).
    folds : int, optional
        Number of folds; None gives one fold per hole.

    Returns
    -------
    numpy.ndarray of int, shape (n,)
        Fold index in ``[0, folds)`` (or ``[0, n_holes)``); it depends only on the set of hole
        ids, not on the order of the rows.

    Examples
    --------
    >>> hole_folds(["b", "a", "c", "a"], folds=2).tolist()
    [1, 0, 0, 0]
    """
    text = np.asarray(hole_ids).astype(str)
    uniq, inv = np.unique(text, return_inverse=True)
    if folds is None:
        return inv.astype(np.int64)
    if int(folds) < 2:
        msg = f"folds must be at least 2 (or None for one per hole); got {folds!r}"
        raise ValueError(msg)
    return (inv % min(int(folds), uniq.size)).astype(np.int64)


def cross_validate(
    xyz,
    values,
    hole_ids,
    model: VariogramModel | None,
    passes: Sequence[SearchPass],
    *,
    folds: int | None = None,
    method: str = "ok",
    sk_mean: float | None = None,
    leave: str = "hole",
) -> pd.DataFrame:
    """Estimate every composite at point support from the other holes' composites (or, with
    ``leave="one"``, from every other composite, its own hole's included).

    Parameters
    ----------
    xyz : array_like, shape (n, 3)
        Composite positions.
    values : array_like, shape (n,)
        Grades; rows with NaN are neither estimated nor used.
    hole_ids : array_like, shape (n,)
        Hole of each composite; a composite never sees its own hole.
    model : VariogramModel or None
        Variogram model (None only for ``idw`` and ``nn``).
    passes : sequence of SearchPass
        Search passes with absolute ranges, e.g. :func:`estimator.estimation.search_passes`.
    folds : int, optional
        Holes per run are grouped into this many folds (see the module notes); None: one fold
        per hole.
    method : {"ok", "sk", "idw", "nn"}
        As :func:`estimator.kriging.estimate.estimate_blocks`.
    sk_mean : float, optional
        Declared mean for simple kriging.
    leave : {"hole", "one"}
        Leave out the composite's hole (or fold of holes), or only the composite itself (each
        its own fold; ``folds`` is then ignored; the holes still count for ``max_per_hole``).

    Returns
    -------
    pandas.DataFrame
        One row per composite with a value: ``hole_id, x, y, z, fold, true, estimate, error,
        kv, std_error, n, pass`` (``estimate`` NaN where no pass found enough samples).
    """
    xyz = np.asarray(xyz, dtype=float)
    values = np.asarray(values, dtype=float).ravel()
    holes = np.asarray(hole_ids)
    if xyz.shape != (values.size, 3) or holes.shape[0] != values.size:
        msg = f"xyz (n, 3), values (n,) and hole_ids (n,) must agree; got {xyz.shape}, {values.shape}, {holes.shape}"
        raise ValueError(msg)
    keep = np.isfinite(values) & np.all(np.isfinite(xyz), axis=1)
    xyz, values, holes = xyz[keep], values[keep], holes[keep]
    if leave not in ("hole", "one"):
        msg = f"cross-validation: leave={leave!r}; expected 'hole' or 'one'"
        raise ValueError(msg)
    if leave == "one":
        fold = np.arange(values.size, dtype=np.int64)
    else:
        fold = hole_folds(holes, folds) if values.size else np.zeros(0, np.int64)
    codes = pd.factorize(pd.Series(holes.astype(str)))[0].astype(np.int64)
    n = values.size
    est, kv = np.full(n, np.nan), np.full(n, np.nan)
    used, pas = np.zeros(n, np.int64), np.zeros(n, np.int64)
    offsets = np.zeros((1, 3))
    for f in np.unique(fold):
        tgt, src = fold == f, fold != f
        if not src.any():
            continue
        out = estimate_blocks(
            xyz[tgt],
            offsets,
            xyz[src],
            values[src],
            codes[src],
            model,
            passes,
            method,
            sk_mean=sk_mean,
        )
        est[tgt], kv[tgt] = out["estimate"], out["kv"]
        used[tgt], pas[tgt] = out["n"], out["pass"]
    err = est - values
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.where(kv > 0, err / np.sqrt(kv), np.nan)
    return pd.DataFrame(
        {
            "hole_id": holes,
            "x": xyz[:, 0],
            "y": xyz[:, 1],
            "z": xyz[:, 2],
            "fold": fold,
            "true": values,
            "estimate": est,
            "error": err,
            "kv": kv,
            "std_error": std,
            "n": used,
            "pass": pas,
        }
    )[COLUMNS]


def summary(df: pd.DataFrame) -> dict:
    """Summary statistics of a :func:`cross_validate` table (estimated rows only).

    Returns
    -------
    dict
        ``n`` (estimated), ``n_missing`` (not estimated), ``mean_error``, ``rmse``,
        ``correlation`` (true vs estimate), ``slope`` (regression of true on estimate:
        ``cov(true, est) / var(est)``; 1 = no conditional bias, < 1 = estimates too variable),
        ``mean_std_error`` and ``var_std_error`` (of ``error / sqrt(kv)``; near 0 and 1 for a
        model that describes the data), NaN where undefined.
    """
    ok = np.isfinite(df["estimate"].to_numpy(float))
    t = df.loc[ok, "true"].to_numpy(float)
    e = df.loc[ok, "estimate"].to_numpy(float)
    s = df.loc[ok, "std_error"].to_numpy(float)
    s = s[np.isfinite(s)]
    out = {"n": int(ok.sum()), "n_missing": int((~ok).sum())}
    nan = float("nan")
    if t.size == 0:
        return {
            **out,
            **dict.fromkeys(
                (
                    "mean_error",
                    "rmse",
                    "correlation",
                    "slope",
                    "mean_std_error",
                    "var_std_error",
                ),
                nan,
            ),
        }
    err = e - t
    ve = float(np.var(e))
    cov = float(np.mean((t - t.mean()) * (e - e.mean())))
    sd = float(np.std(t)) * np.sqrt(ve)
    out.update(
        mean_error=float(err.mean()),
        rmse=float(np.sqrt(np.mean(err**2))),
        correlation=float(cov / sd) if sd > 0 else nan,
        slope=cov / ve if ve > 0 else nan,
        mean_std_error=float(s.mean()) if s.size else nan,
        var_std_error=float(s.var()) if s.size else nan,
    )
    return out
