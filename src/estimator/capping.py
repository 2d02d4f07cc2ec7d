"""Top-cutting (capping) of composite grades."""

from __future__ import annotations

import numpy as np


def cap_value(values: np.ndarray, rule: float | str) -> float:
    """The cap a rule gives on ``values``: a number as is, ``"pXX"`` the XX-th percentile.

    Percentiles use linear interpolation between order statistics of the non-missing values
    (``numpy.nanpercentile``'s default), so they are reproducible by hand.

    Examples
    --------
    >>> cap_value(np.array([1.0, 2.0, 3.0, 4.0, np.nan]), "p50")
    2.5
    >>> cap_value(np.array([1.0]), 30.0)
    30.0
    """
    if isinstance(rule, str):
        q = float(rule.lstrip("p"))
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return float("inf")
        return float(np.percentile(finite, q))
    return float(rule)


def cap_values(values: np.ndarray, rule: float | str) -> tuple[np.ndarray, float]:
    """Cap ``values`` at the rule's value; NaN (not sampled) stays NaN.

    Returns
    -------
    capped : numpy.ndarray
    cap : float
    """
    values = np.asarray(values, dtype=float)
    cap = cap_value(values, rule)
    capped = np.where(values > cap, cap, values)
    return capped, cap


def apply_caps(comps, capping: dict, report):
    """Top-cut grades per domain (``capping = {domain: {grade: value or "pXX"}}``).

    Every capped composite is one report line; missing grades (NaN) are never capped.
    """
    comps = comps.copy()
    for dom, per_grade in capping.items():
        sel = (comps["domain"] == dom).to_numpy()
        for grade, rule in per_grade.items():
            values = comps.loc[sel, grade].to_numpy(float)
            capped, cap = cap_values(values, rule)
            changed = np.flatnonzero(values > cap)  # NaN compares False: never "capped"
            sub = comps.loc[sel].iloc[changed]
            for (_, row), old in zip(sub.iterrows(), values[changed], strict=True):
                report.add(
                    "composites.csv",
                    None,
                    row["hole_id"],
                    "capped",
                    f"{grade} {old:g} in domain {dom} at {row['from']:g}-{row['to']:g} is above the cap {cap:g} ({rule})",
                    f"set to {cap:g}",
                )
            comps.loc[sel, grade] = capped
    return comps
