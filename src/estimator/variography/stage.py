"""The variography stage: per domain and grade, an explicit model or a fitted one.

Without a ``model`` in the config the stage fits one
(:func:`estimator.variography.fit.variography`), with its experimental variograms and plots,
and estimation uses it. An explicit ``model`` is used as given; only with
``experimental.plot: true`` does the stage also compute the experimental variograms along the
model's own axes (and down the holes) and plot them against it, for comparison.

The experimental and fitting modules (scipy, numba kernels) and matplotlib are imported only
when a model is fitted or plotted: a run of explicit models does not load them.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from estimator.config import RunConfig, VariographyEntry
from estimator.errors import DataError, EstimationWarning

if TYPE_CHECKING:
    from estimator.variography.settings import VariographySettings

log = logging.getLogger(__name__)


def settings_of(entry: VariographyEntry | None) -> VariographySettings:
    """The stage settings of a config entry (defaults when the entry is absent)."""
    from estimator.variography.settings import VariographySettings

    entry = entry or VariographyEntry()
    return VariographySettings.from_dict(
        {"experimental": entry.experimental.model_dump(exclude={"plot"}), "fit": entry.fit.model_dump()}
    )


def hole_codes(hole_ids) -> np.ndarray:
    """Integer hole codes in which a sample without a hole id is its own hole.

    Positioned samples (``data.samples``) carry ``hole_id`` ``""`` when the file has none; taken
    as one hole, they would make a "down-hole" variogram of samples in file order and floor the
    nugget at it. Blank ids (``""``, ``nan``, ``None``) each get a code of their own.

    Examples
    --------
    >>> hole_codes(["", "", "DH1", "DH1", ""]).tolist()
    [1, 2, 0, 0, 3]
    """
    ids = pd.Series(np.asarray(hole_ids, dtype=object)).astype(str).str.strip()
    blank = ids.str.lower().isin(["", "nan", "none"]).to_numpy()
    codes = np.empty(len(ids), dtype=np.int64)
    named = pd.factorize(ids[~blank])[0] if (~blank).any() else np.zeros(0, np.int64)
    codes[~blank] = named
    start = int(named.max()) + 1 if named.size else 0
    codes[blank] = start + np.arange(int(blank.sum()))
    return codes


def _sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def rounded(model):
    """A fitted model rounded the way a geologist writes one: 4 significant digits for the
    nugget, sills and ranges, 0.1 degree for the angles; a structure holding less than 0.01 %
    of the sill (a fit that had no use for it) is left out.

    The rounded model is the one estimation uses and ``variograms.yaml`` shows, so pasting the
    file back into the config reproduces the run exactly.
    """
    from estimator.variography.models import Structure, VariogramModel

    total = model.nugget + sum(s.sill for s in model.structures)
    keep = [s for s in model.structures if s.sill >= 1e-4 * total]
    if not keep:
        keep = [max(model.structures, key=lambda s: s.sill)]
    return VariogramModel(
        _sig(model.nugget),
        tuple(
            Structure(
                s.type,
                _sig(s.sill),
                tuple(_sig(r) for r in s.ranges),
                tuple(round(a, 1) + 0.0 for a in s.angles),
            )
            for s in keep
        ),
    )


def experimental_for_model(
    xyz, values, hole_ids, depths, model, s: VariographySettings
) -> pd.DataFrame:
    """Experimental variograms along an explicit model's axes, plus the down-hole one."""
    from estimator.variography.experimental import downhole_variogram, experimental_variogram
    from estimator.variography.settings import principal_directions

    extent = float(np.linalg.norm(np.ptp(xyz, axis=0))) if len(xyz) else 0.0
    major = max(st.ranges[0] for st in model.structures) if model.structures else extent
    lag = s.lag if s.lag is not None else max(1.2 * major / s.n_lags, 1e-9)
    ranges = model.structures[-1].ranges if model.structures else None
    angles = model.structures[0].angles if model.structures else (0.0, 0.0, 0.0)
    table = experimental_variogram(
        xyz,
        values,
        lag=lag,
        n_lags=s.n_lags,
        directions=principal_directions(s, ranges),
        lag_tol=s.lag_tolerance,
        measure=s.measure,
        frame=angles,
    )
    if hole_ids is not None and depths is not None:
        steps = np.diff(depths)[np.asarray(hole_ids)[1:] == np.asarray(hole_ids)[:-1]]
        step = s.downhole_lag or (float(np.median(steps[steps > 0])) if (steps > 0).any() else 0.0)
        if step > 0:
            dh = downhole_variogram(
                values,
                hole_ids,
                lag=step,
                n_lags=s.downhole_n_lags,
                xyz=xyz,
                depths=depths,
                measure=s.measure,
            )
            table = pd.concat([table, dh], ignore_index=True)
    return table


def variography_stage(
    cfg: RunConfig, comps: pd.DataFrame, *, plots: bool = True, progress: bool = False
):
    """Models for every domain and grade, with experimental tables and plots.

    A fitted model always comes with its experimental variograms (and a plot when ``plots``);
    an explicit model only when its entry says ``experimental.plot: true``.

    Each domain and grade is logged as it starts (INFO); ``progress`` also shows a bar on
    stderr (the CLI turns it on for terminals).

    Returns
    -------
    models : dict
        ``{domain: {grade: VariogramModel}}`` (explicit or fitted).
    tables : list of pandas.DataFrame
        Experimental variograms with ``domain``, ``grade`` and ``source`` columns.
    figures : dict
        ``{"<domain>_<grade>": matplotlib Figure}`` when ``plots``.
    notes : list of str
        Problems worth a geologist's look (too few pairs, zero variance, no composites ...).
    """
    models: dict = {}
    tables: list = []
    figures: dict = {}
    notes: list[str] = []
    units = cfg.data.length_unit or "data units"
    pairs = [(dom, grade) for dom in cfg.domain_names for grade in cfg.grades]
    bar = None
    if progress:
        import sys

        from tqdm.auto import tqdm

        bar = tqdm(total=len(pairs), desc="variography", unit="model", file=sys.stderr)
    for k, (dom, grade) in enumerate(pairs, start=1):
        entry = cfg.variography.get(dom, {}).get(grade)
        explicit = entry is not None and entry.model is not None
        if explicit and not entry.experimental.plot:
            # the model as given: no experimental variograms (nobody asked for them)
            log.info("  %s %s (%d of %d): model from the config", dom, grade, k, len(pairs))
            models.setdefault(dom, {})[grade] = entry.model.to_model()
            if bar is not None:
                bar.update(1)
            continue
        sub = comps.loc[(comps["domain"] == dom).to_numpy()]
        s = settings_of(entry)
        ok = np.isfinite(sub[grade].to_numpy(float))
        what = "experimental variograms along the given model's axes" if explicit else "fitting a model"
        log.info("  %s %s (%d of %d): %s, %d composites", dom, grade, k, len(pairs), what,
                 int(ok.sum()))  # fmt: skip
        if bar is not None:
            bar.set_postfix_str(f"{dom} {grade}")
        xyz = sub.loc[ok, ["x", "y", "z"]].to_numpy(float)
        values = sub.loc[ok, grade].to_numpy(float)
        holes = hole_codes(sub.loc[ok, "hole_id"]) if "hole_id" in sub else None
        depths = (
            0.5 * (sub.loc[ok, "from"].to_numpy(float) + sub.loc[ok, "to"].to_numpy(float))
            if "from" in sub
            else None
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EstimationWarning)
            if explicit:
                model = entry.model.to_model()
                table = (
                    experimental_for_model(xyz, values, holes, depths, model, s)
                    if len(values) >= 2
                    else pd.DataFrame()
                )
                source = "config"
            else:
                from estimator.variography.fit import variography

                if len(values) < 2:
                    msg = (
                        f"variography.{dom}.{grade}: {len(values)} composite(s) with a {grade} value; "
                        f"too few to fit a model: give variography.{dom}.{grade}.model explicitly"
                    )
                    raise DataError(msg)
                model, table, _diag = variography(xyz, values, holes, s, depths=depths)
                model = rounded(model)
                source = "fitted"
        for w in caught:
            notes.append(f"variography.{dom}.{grade}: {w.message}")
        models.setdefault(dom, {})[grade] = model
        if len(table):
            tables.append(table.assign(domain=dom, grade=grade, source=source))
            if plots:
                from estimator.variography.plot import plot_variograms

                figures[f"{dom}_{grade}"] = plot_variograms(
                    table,
                    model if not s.normal_score or explicit else None,
                    title=f"{dom} / {grade} ({source} model, {len(values)} composites)",
                    units=units,
                )
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return models, tables, figures, notes
