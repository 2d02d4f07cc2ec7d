"""The estimation stage: block model, wireframe clipping, kriging of every grade, classes.

Pure with respect to disk: takes the typed config, composites, models and loaded wireframes;
returns the block-model Dataset and counts. The pipeline writes it.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from estimator.config import RunConfig
from estimator.errors import DataError, EstimationWarning

log = logging.getLogger(__name__)


def grid_from_config(cfg: RunConfig):
    """The :class:`~estimator.blockmodel.grid.BlockGrid` of ``cfg.block_model``."""
    from estimator.blockmodel.grid import BlockGrid

    bm = cfg.block_model
    return BlockGrid(bm.origin, bm.block_size, bm.shape, bm.rotation)


def search_passes(cfg: RunConfig):
    """``estimation.passes`` as kernel ``SearchPass`` objects (scale applied)."""
    from estimator.kriging.estimate import SearchPass

    return [
        SearchPass(
            ranges=tuple(p["ranges"]),
            angles=tuple(p["angles"]),
            min_samples=p["min_samples"],
            max_samples=p["max_samples"],
            max_per_hole=p["max_per_hole"],
            max_per_octant=p["max_per_octant"],
            min_octants=p["min_octants"],
        )
        for p in cfg.estimation.resolved_passes()
    ]


def fill_fractions(ds: xr.Dataset, cfg: RunConfig, grid, wireframes: dict) -> xr.Dataset:
    """Volume fraction of each block inside each domain's wireframe (1 without a wireframe).

    Where wireframes overlap, a block's volume goes to the first domain in config order, so
    fractions over domains never add up to more than one.
    """
    from estimator.blockmodel.clip import block_fractions

    bm = cfg.block_model
    frac = np.zeros(ds["fraction"].shape)
    taken = np.zeros(frac.shape[1:])
    for i, name in enumerate(str(d) for d in ds["domain"].values):
        wf = wireframes.get(name)
        if wf is None:
            f = np.ones(frac.shape[1:])
        else:
            f = block_fractions(
                wf.vertices,
                wf.faces,
                grid.origin,
                grid.block_size,
                grid.shape,
                grid.rotation,
                bm.subcells,
            )
        f = np.minimum(f, 1.0 - taken)
        taken = taken + f
        frac[i] = f
    return ds.assign(fraction=(ds["fraction"].dims, frac, ds["fraction"].attrs))


def _hole_codes(comps: pd.DataFrame) -> np.ndarray:
    """Integer hole codes, stable for given hole names (sorted unique names).

    Positioned samples without a hole id (``""``) each count as a hole of their own, so
    ``max_per_hole`` never lumps unrelated points together.
    """
    names = comps["hole_id"].astype(str).to_numpy().astype(object)
    blank = names == ""
    names[blank] = [f"\x00row{i}" for i in np.flatnonzero(blank)]
    _, codes = np.unique(names.astype(str), return_inverse=True)
    return codes.astype(np.int64)


def classify(ds: xr.Dataset, cfg: RunConfig) -> xr.Dataset:
    """Resource classes by the first rule a block meets (``class`` variable, "" = unclassified)."""
    rules = cfg.classification
    grade = (rules.grade or cfg.grades[0]).lower()
    est = ds[grade].values
    out = np.full(est.shape, "", dtype=object)
    free = np.isfinite(est)
    for rule in rules.classes:
        ok = free.copy()
        if rule.max_pass is not None:
            ok &= ds[f"{grade}_pass"].values <= rule.max_pass
        if rule.min_slope is not None:
            ok &= ds[f"{grade}_slope"].values >= rule.min_slope
        if rule.min_samples is not None:
            ok &= ds[f"{grade}_n"].values >= rule.min_samples
        if rule.min_holes is not None:
            ok &= ds[f"{grade}_holes"].values >= rule.min_holes
        if rule.max_dist is not None:
            ok &= ds[f"{grade}_dist"].values <= rule.max_dist
        out[ok] = rule.name
        free &= ~ok
    return ds.assign({"class": (ds[grade].dims, out.astype(str))})


def estimate_stage(
    cfg: RunConfig, composites: pd.DataFrame, models: dict, wireframes: dict, *, progress=False
):
    """Build, clip and estimate the block model.

    Returns
    -------
    ds : xarray.Dataset
        SPEC section 5 block model (NumPy-backed).
    counts : dict
        ``blocks``, ``blocks_in_domains`` and per domain and grade the blocks estimated per pass
        and the failures.
    """
    from estimator.blockmodel.grid import make_block_model
    from estimator.kriging.parallel import estimate_block_model

    grid = grid_from_config(cfg)
    domains = cfg.domain_names
    ds = make_block_model(grid, domains, cfg.grades)
    ds = fill_fractions(ds, cfg, grid, wireframes)
    density = [(cfg.domain(d).density if cfg.domain(d) else None) for d in domains]
    if any(v is not None for v in density):
        ds["density"] = ("domain", np.array([np.nan if v is None else v for v in density]))
        ds["density"].attrs["long_name"] = "dry bulk density (t per cubic data unit as configured)"

    codes = _hole_codes(composites)
    xyz_all = composites[["x", "y", "z"]].to_numpy(float)
    by_domain = {}
    for d in domains:
        sel = (composites["domain"] == d).to_numpy()
        if not sel.any():
            log.warning("domain %s has no composites: its blocks stay unestimated", d)
        by_domain[d] = {
            g: (xyz_all[sel], composites.loc[sel, g].to_numpy(float), codes[sel])
            for g in cfg.grades
        }
    missing = [(d, g) for d in domains for g in cfg.grades if g not in models.get(d, {})]
    if missing:
        names = ", ".join(f"{d}.{g}" for d, g in missing)
        msg = (
            f"variography: no variogram model for {names}; give variography.<domain>.<grade>.model"
        )
        raise DataError(msg)
    est = cfg.estimation
    sk_mean = est.sk_mean
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EstimationWarning)
        ds, failures = estimate_block_model(
            ds,
            grid,
            by_domain,
            models,
            search_passes(cfg),
            method=est.method,
            discretisation=est.discretisation,
            scheduler=cfg.compute.scheduler,
            chunks=cfg.compute.chunks,
            progress=progress,
            sk_mean=sk_mean,
            idw_power=est.idw_power,
            num_workers=cfg.compute.workers,
        )
    for w in caught:
        warnings.warn(str(w.message), EstimationWarning, stacklevel=2)
    if cfg.classification is not None:
        ds = classify(ds, cfg)
    n_pass = len(est.passes)
    counts = {
        "blocks": int(grid.n_blocks),
        "blocks_in_domains": {},
        "estimated_by_pass": {},
        "failures": failures,
    }
    for i, d in enumerate(domains):
        inside = ds["fraction"].values[i] > 0
        counts["blocks_in_domains"][d] = int(inside.sum())
        for g in cfg.grades:
            p = ds[f"{g}_pass"].values[i]
            missing = inside & (p == 0)
            counts["estimated_by_pass"].setdefault(d, {})[g] = {
                str(k): int((p == k).sum()) for k in range(1, n_pass + 1)
            } | {
                "not_estimated": int(missing.sum()),
                "not_estimated_volume": float(
                    ds["fraction"].values[i][missing].sum() * grid.block_volume
                ),
            }
    return ds, counts
