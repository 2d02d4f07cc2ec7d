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


def _hole_codes(comps: pd.DataFrame) -> np.ndarray:
    """Integer hole codes, stable for given hole names (sorted unique names).

    Positioned samples without a hole id (``""``, ``nan``, ``None``: the blanks of
    :func:`estimator.variography.stage.hole_codes`) each count as a hole of their own, so
    ``max_per_hole`` never lumps unrelated points together.
    """
    names = comps["hole_id"].astype(str).str.strip().to_numpy().astype(object)
    blank = np.isin(np.char.lower(names.astype(str)), ["", "nan", "none"])
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
        if rule.max_search_dist is not None:
            from estimator.kriging.chunked import search_units

            units = search_units(ds[f"{grade}_dist"].values, ds[f"{grade}_pass"].values,
                                 search_passes(cfg))  # fmt: skip
            ok &= units <= rule.max_search_dist
        out[ok] = rule.name
        free &= ~ok
    if rules.smoothing is not None and out.ndim == 4:
        from estimator.blockmodel.classes import smooth_classes

        names = ["", *(r.name for r in rules.classes)]
        codes = np.zeros(out.shape, dtype=np.int64)
        for k, name in enumerate(names[1:], start=1):
            codes[out == name] = k
        codes, _ = smooth_classes(codes, rules.smoothing.min_blocks)
        out = np.asarray(names, dtype=object)[codes]
    return ds.assign({"class": (ds[grade].dims, out.astype(str))})


def estimate_stage(
    cfg: RunConfig,
    composites: pd.DataFrame,
    models: dict,
    wireframes: dict,
    *,
    topography=None,
    domain_points: tuple[np.ndarray, np.ndarray] | None = None,
    scheduler=None,
    progress=False,
):
    """Build, clip and estimate the block model.

    Parameters
    ----------
    cfg : RunConfig
    composites : pandas.DataFrame
        ``x, y, z, hole_id, domain, <grades>``.
    models : dict
        ``{domain: {grade: VariogramModel}}``.
    wireframes : dict
        ``{domain: Wireframe}`` for the domains that have one.
    topography : Surface, optional
        Block volume above it is removed.
    domain_points : (xyz, labels), optional
        Positions and domains of every sample (including those outside every domain), for
        domains with a ``nearest_sample`` block rule.
    scheduler : str or distributed.Client, optional
        Overrides ``compute.scheduler`` (the pipeline passes the client it connected).
    progress : bool
        Progress bar on stderr.

    Returns
    -------
    ds : xarray.Dataset
        SPEC section 5 block model (NumPy-backed), variables described (units, long names).
    counts : dict
        ``blocks``, ``blocks_in_domains``, ``volume_by_domain``, per domain and grade the blocks
        estimated per pass, ``failures`` and ``flags`` (counts of each flag bit), plus
        ``above_topography`` and ``topography_uncovered_area``.
    """
    from estimator.blockmodel.fractions import domain_fractions
    from estimator.blockmodel.grid import describe_variables, make_block_model
    from estimator.kriging.parallel import FLAG_BITS, estimate_block_model

    grid = grid_from_config(cfg)
    domains = cfg.domain_names
    ds = make_block_model(grid, domains, cfg.grades)
    points, labels = domain_points if domain_points is not None else (None, None)
    volumes = domain_fractions(
        grid,
        cfg.block_model.subcells,
        cfg.domains,
        wireframes,
        points=points,
        labels=labels,
        topography=topography,
    )
    ds["fraction"] = (ds["fraction"].dims, volumes.fractions)

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
            scheduler=scheduler if scheduler is not None else cfg.compute.scheduler,
            chunks=cfg.compute.chunks,
            progress=progress,
            sk_mean=est.sk_mean,
            idw_power=est.idw_power,
            num_workers=cfg.compute.workers,
        )
    for w in caught:
        warnings.warn(str(w.message), EstimationWarning, stacklevel=2)
    from estimator.kriging.chunked import pass_majors

    frac = ds["fraction"].values
    majors = pass_majors(search_passes(cfg))
    for g in cfg.grades:
        # pass -1: outside the domain (fraction 0); 0: inside but not estimated
        passes = np.array(ds[f"{g}_pass"].values)
        passes[frac <= 0] = -1
        ds[f"{g}_pass"] = (ds[f"{g}_pass"].dims, passes, ds[f"{g}_pass"].attrs)
        # the kernel's mean distance is in search-ellipsoid units (1 = the ellipsoid of the
        # pass); the block model gives it in data units, along the pass's major axis
        dist = ds[f"{g}_dist"].values * majors[np.clip(passes, 0, len(majors) - 1)]
        ds[f"{g}_dist"] = (ds[f"{g}_dist"].dims, dist, ds[f"{g}_dist"].attrs)
    if cfg.classification is not None:
        ds = classify(ds, cfg)
    ds = describe_variables(
        ds,
        cfg.grades,
        length_unit=cfg.data.length_unit,
        grade_unit=cfg.data.grade_unit,
        method=est.method,
    )
    n_pass = len(est.passes)
    counts = {
        "blocks": int(grid.n_blocks),
        "blocks_in_domains": {},
        "volume_by_domain": {},
        "estimated_by_pass": {},
        "failures": failures,
        "flags": {},
        "composite_range": {},
        "above_topography": volumes.above_topography,
        "topography_uncovered_area": volumes.uncovered_area,
    }
    for i, d in enumerate(domains):
        inside = frac[i] > 0
        counts["blocks_in_domains"][d] = int(inside.sum())
        counts["volume_by_domain"][d] = float(frac[i].sum() * grid.block_volume)
        for g in cfg.grades:
            p = ds[f"{g}_pass"].values[i]
            missing = inside & (p == 0)
            counts["estimated_by_pass"].setdefault(d, {})[g] = {
                str(k): int((p == k).sum()) for k in range(1, n_pass + 1)
            } | {
                "not_estimated": int(missing.sum()),
                "not_estimated_volume": float(frac[i][missing].sum() * grid.block_volume),
            }
            flag = ds[f"{g}_flag"].values[i][inside]
            estimate = ds[g].values[i][inside]
            counts["flags"].setdefault(d, {})[g] = {
                name: int(np.count_nonzero(flag & bit)) for name, bit in FLAG_BITS.items()
            } | {
                "lowest_estimate": float(np.nanmin(estimate)) if np.isfinite(estimate).any()
                else None,
                "highest_estimate": float(np.nanmax(estimate)) if np.isfinite(estimate).any()
                else None,
            }  # fmt: skip
            values = by_domain[d][g][1]
            values = values[np.isfinite(values)]
            counts["composite_range"].setdefault(d, {})[g] = (
                [float(values.min()), float(values.max())] if values.size else None
            )
    return ds, counts
