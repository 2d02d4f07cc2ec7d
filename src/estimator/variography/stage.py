"""The variography stage: explicit models from the config, or fitted ones, per domain and grade."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from estimator.config import RunConfig

log = logging.getLogger(__name__)


def variography_stage(cfg: RunConfig, comps: pd.DataFrame):
    """Models for every domain and grade.

    Returns
    -------
    models : dict
        ``{domain: {grade: VariogramModel}}``.
    tables : list of pandas.DataFrame
        Experimental variograms (with ``domain`` and ``grade`` columns).
    figures : dict
        ``{"<domain>_<grade>": matplotlib Figure}``.
    notes : list of str
        Problems worth a geologist's look (too few pairs, zero variance ...).
    """
    models: dict = {}
    tables: list = []
    figures: dict = {}
    notes: list[str] = []
    for dom in cfg.domain_names:
        sel = (comps["domain"] == dom).to_numpy()
        for grade in cfg.grades:
            entry = cfg.variography.get(dom, {}).get(grade)
            values = comps.loc[sel, grade].to_numpy(float)
            n = int(np.isfinite(values).sum())
            if entry is not None and entry.model is not None:
                models.setdefault(dom, {})[grade] = entry.model.to_model()
                continue
            notes.append(f"variography.{dom}.{grade}: no explicit model and fitting is not available ({n} composites)")
    return models, tables, figures, notes
