"""Variogram plots: experimental points sized by pair count, fitted model curves, nugget and sill.

The figure is built with the Agg backend and returned; saving it is the io layer's job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from estimator.variography.experimental import direction_vector
from estimator.variography.models import VariogramModel

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_ORDER = ("major", "semi-major", "minor", "downhole", "omni")
_COLOURS = {"major": "C0", "semi-major": "C1", "minor": "C2", "downhole": "C3", "omni": "0.5"}


def plot_variograms(
    table: pd.DataFrame,
    model: VariogramModel | None = None,
    *,
    title: str = "",
    units: str = "data units",
    sill: float | None = None,
) -> Figure:
    """One panel per direction of ``table`` with its experimental points and the model along it.

    Parameters
    ----------
    table : pandas.DataFrame
        Experimental variograms (``direction, azimuth, dip, distance, gamma, n_pairs``), e.g. the
        table returned by :func:`estimator.variography.fit.variography`.
    model : VariogramModel, optional
        Model drawn along each direction (world ``azimuth`` and ``dip``; the down-hole panel uses
        the mean hole direction). Must be in the same units as ``gamma``.
    title : str
        Figure title (e.g. ``"offset / pd"``).
    units : str
        Distance unit shown on the x axes.
    sill : float, optional
        Horizontal sill line; default ``model.sill``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib loads slowly
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(table["direction"]))
    names = [n for n in _ORDER if n in names] + [n for n in names if n not in _ORDER]
    fig = Figure(figsize=(4.0 * max(len(names), 1), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    sill = model.sill if (sill is None and model is not None) else sill
    nmax = max(float(table["n_pairs"].max()) if len(table) else 1.0, 1.0)
    for ax, name in zip(axes, names, strict=False):
        t = table[(table["direction"] == name) & (table["n_pairs"] > 0)]
        colour = _COLOURS.get(name, "C4")
        ax.scatter(
            t["distance"],
            t["gamma"],
            s=8 + 80 * np.sqrt(t["n_pairs"] / nmax),
            color=colour,
            alpha=0.8,
            label="experimental",
        )
        az, dp = (t["azimuth"].iloc[0], t["dip"].iloc[0]) if len(t) else (np.nan, np.nan)
        hmax = float(np.nanmax(t["distance"])) if len(t) else 1.0
        if model is not None and np.isfinite(az) and np.isfinite(dp):
            h = np.linspace(0.0, hmax * 1.05, 200)[1:]
            g = model.variogram(h[:, None] * direction_vector(az, dp))
            ax.plot(np.r_[0.0, h], np.r_[0.0, g], color="k", lw=1.2, label="model")
            ax.axhline(model.nugget, color="0.4", ls=":", lw=1, label="nugget")
        if sill is not None:
            ax.axhline(sill, color="0.4", ls="--", lw=1, label="sill")
        where = f" (az {az:.0f}, dip {dp:.0f})" if np.isfinite(az) and np.isfinite(dp) else ""
        ax.set_title(f"{name}{where}", fontsize=9)
        ax.set_xlabel(f"distance ({units})")
        ax.set_xlim(left=0.0)
        ax.set_ylim(bottom=0.0)
    axes[0].set_ylabel("gamma")
    axes[0].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    return fig
