"""Plan and section of the change between two runs, with the new holes drawn (``estimator diff``).

The holes drawn are those with new or changed composites (new holes and extended ones).

Both plots show the change of one grade, ``after - before``, as the tonnage-weighted mean (B's
tonnes) over the blocks estimated in both runs: over the vertical and every domain per column
of blocks (plan), over the domains per block (section). Blocks estimated in one run only have
no change to show; columns and blocks without any block in a domain are left blank. The colour
map is diverging and centred on 0. The plots are built from values gathered window by window,
so no more than a window of the block model is ever in memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PlanAccumulator", "SectionGatherer", "SectionLine", "hole_traces", "mean_azimuth",
           "section_line", "write_plots"]  # fmt: skip

#: Colour map of the change (red = grade gained, blue = grade lost).
CMAP = "RdBu_r"


def hole_traces(
    composites: pd.DataFrame, holes: list[str], collars: pd.DataFrame | None = None
) -> dict[str, np.ndarray]:
    """``{hole: (n, 3) points}``: the collar (when known) then the composites down the hole."""
    out: dict[str, np.ndarray] = {}
    if not holes or composites.empty:
        return out
    ids = composites["hole_id"].astype(str).str.strip()
    wanted = set(holes)
    collar_at: dict[str, np.ndarray] = {}
    if collars is not None and len(collars):
        for row in collars[collars["hole_id"].astype(str).isin(wanted)].itertuples(index=False):
            collar_at[str(row.hole_id)] = np.array([row.x, row.y, row.z], dtype=float)
    for hole, rows in composites[ids.isin(wanted)].groupby(ids[ids.isin(wanted)], sort=True):
        rows = rows.sort_values("from", kind="stable") if "from" in rows else rows
        pts = rows[["x", "y", "z"]].to_numpy(float)
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        if hole in collar_at:
            pts = np.vstack([collar_at[hole][None], pts])
        if len(pts):
            out[str(hole)] = pts
    return out


def mean_azimuth(traces: Mapping[str, np.ndarray]) -> float | None:
    """Mean azimuth (degrees clockwise from north) of the holes' traces, or None when every
    hole is vertical. Azimuths are axial (a section along 30 is one along 210); the one
    returned points east (45 to 135) or north (315 to 45), so sections read west to east or
    south to north."""
    sx = sy = 0.0
    for pts in traces.values():
        d = pts[-1] - pts[0]
        horizontal = math.hypot(d[0], d[1])
        if len(pts) < 2 or horizontal <= 1e-3 * max(float(np.linalg.norm(d)), 1e-12):
            continue
        az = math.atan2(d[0], d[1])
        sx, sy = sx + horizontal * math.cos(2 * az), sy + horizontal * math.sin(2 * az)
    if sx == 0 and sy == 0:
        return None
    az = math.degrees(0.5 * math.atan2(sy, sx)) % 180.0
    # read west to east, or south to north for lines closer to north-south
    return (az + 180.0) % 360.0 if az >= 135.0 else az


@dataclass(frozen=True)
class SectionLine:
    """A vertical section: through ``centre`` along ``azimuth``; ``s`` (distance along it from
    the centre) at the points sampled every ``step``, which fall in block columns ``(i, j)``."""

    centre: np.ndarray
    azimuth: float
    direction: np.ndarray  # unit (east, north)
    s: np.ndarray
    i: np.ndarray
    j: np.ndarray
    step: float


def section_line(grid, centre, azimuth: float | None) -> SectionLine:
    """The section through ``centre`` along ``azimuth`` (None: along the grid's x axis)."""
    if azimuth is None:
        x0, y0, _ = grid.origin
        ex, ey = grid.to_world(x0 + 1.0, y0)
        direction = np.array([float(ex) - x0, float(ey) - y0])
        azimuth = math.degrees(math.atan2(direction[0], direction[1])) % 360.0
    else:
        a = math.radians(azimuth)
        direction = np.array([math.sin(a), math.cos(a)])
    direction = direction / np.linalg.norm(direction)
    dx, dy, _ = grid.block_size
    nx, ny, _ = grid.shape
    step = 0.5 * min(dx, dy)
    corners = np.array([[0, 0], [nx * dx, 0], [0, ny * dy], [nx * dx, ny * dy]], float)
    cw = np.column_stack(grid.to_world(corners[:, 0] + grid.origin[0],
                                       corners[:, 1] + grid.origin[1]))  # fmt: skip
    reach = float(np.max(np.linalg.norm(cw - np.asarray(centre[:2], float), axis=1)))
    s = np.arange(-math.ceil(reach / step), math.ceil(reach / step) + 1) * step
    px, py = centre[0] + s * direction[0], centre[1] + s * direction[1]
    u, v = grid.from_world(px, py)
    i = np.floor((u - grid.origin[0]) / dx).astype(np.int64)
    j = np.floor((v - grid.origin[1]) / dy).astype(np.int64)
    ok = (i >= 0) & (i < nx) & (j >= 0) & (j < ny)
    return SectionLine(np.asarray(centre, float), float(azimuth), direction, s[ok], i[ok], j[ok],
                       step)  # fmt: skip


def _weighted_change(tonnes, change, inside, axis):
    ok = inside & np.isfinite(change)
    num = np.where(ok, tonnes * np.where(ok, change, 0.0), 0.0).sum(axis=axis)
    den = np.where(ok, tonnes, 0.0).sum(axis=axis)
    return num, den


def _limits(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    return top if top > 0 else 1.0


def _labels(units) -> tuple[str, str]:
    grade_unit, length_unit = units
    return grade_unit or "grade units", length_unit or "data units"


class PlanAccumulator:
    """The change per column of blocks (plan view), summed window by window."""

    def __init__(self, grid):
        self.grid = grid
        nx, ny, _ = grid.shape
        self.num = np.zeros((ny, nx))
        self.den = np.zeros((ny, nx))
        self.line: SectionLine | None = None

    def add(self, window: Mapping[str, slice], tonnes, change, inside) -> None:
        """Add a window's ``(domain, z, y, x)`` tonnes, change and inside mask."""
        num, den = _weighted_change(tonnes, change, inside, axis=(0, 1))
        self.num[window["y"], window["x"]] += num
        self.den[window["y"], window["x"]] += den

    def values(self) -> np.ndarray:
        """The mean change per column (NaN where no block was estimated in both runs)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.den > 0, self.num / np.where(self.den > 0, self.den, 1.0), np.nan)

    def figure(self, grade: str, units, traces: Mapping[str, np.ndarray], line=None) -> Any:
        """The plan: world coordinates, the new holes' traces and collars, the section line."""
        from matplotlib.figure import Figure

        gu, lu = _labels(units)
        g = self.grid
        nx, ny, _ = g.shape
        dx, dy, _ = g.block_size
        u = g.origin[0] + np.arange(nx + 1) * dx
        v = g.origin[1] + np.arange(ny + 1) * dy
        xw, yw = g.to_world(u[None, :], v[:, None])
        values = self.values()
        lim = _limits(values)
        fig = Figure(figsize=(7.5, 6.5), layout="constrained")
        ax = fig.add_subplot()
        mesh = ax.pcolormesh(xw, yw, values, cmap=CMAP, vmin=-lim, vmax=lim, shading="flat")
        fig.colorbar(mesh, ax=ax, label=f"change of {grade} ({gu}), tonnage-weighted mean over "
                     "the vertical")  # fmt: skip
        # the block model's extent (and a margin): holes beyond it are named, not drawn
        lo = np.array([xw.min(), yw.min()])
        hi = np.array([xw.max(), yw.max()])
        pad = 0.05 * float(np.max(hi - lo))
        lo, hi = lo - pad, hi + pad
        away = []
        for hole, pts in traces.items():
            if not np.any(np.all((pts[:, :2] >= lo) & (pts[:, :2] <= hi), axis=1)):
                away.append(hole)
                continue
            ax.plot(pts[:, 0], pts[:, 1], color="k", lw=1.2)
            ax.plot(pts[0, 0], pts[0, 1], "o", color="k", ms=4)
            ax.annotate(hole, (pts[0, 0], pts[0, 1]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        if away:
            shown = ", ".join(away[:8]) + (f" and {len(away) - 8} more" if len(away) > 8 else "")
            ax.text(0.01, 0.01, f"beyond the block model: {shown}", transform=ax.transAxes,
                    fontsize=7, va="bottom")  # fmt: skip
        if line is not None and line.s.size:
            ends = line.centre[:2][None] + np.array([line.s[0], line.s[-1]])[:, None] * (
                line.direction[None])  # fmt: skip
            ax.plot(ends[:, 0], ends[:, 1], ls="--", color="0.3", lw=1, label="section")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_aspect("equal")
        ax.set_xlabel(f"east ({lu})")
        ax.set_ylabel(f"north ({lu})")
        if not np.any(np.nan_to_num(values) != 0):
            ax.set_title(f"Change of {grade}: no block changed")
        else:
            ax.set_title(f"Change of {grade} (after - before), plan; new and changed holes")
        return fig


class SectionGatherer:
    """The change on a vertical section, gathered from the windows it crosses."""

    def __init__(self, grid, line: SectionLine):
        self.grid = grid
        self.line = line
        nz = grid.shape[2]
        self.num = np.zeros((nz, line.s.size))
        self.den = np.zeros((nz, line.s.size))

    def _points(self, window) -> np.ndarray:
        ys, xs = window["y"], window["x"]
        return np.flatnonzero((self.line.j >= ys.start) & (self.line.j < ys.stop)
                              & (self.line.i >= xs.start) & (self.line.i < xs.stop))  # fmt: skip

    def windows(self, windows: list[dict]) -> list[dict]:
        """The windows the section crosses."""
        return [w for w in windows if self._points(w).size]

    def add(self, window: Mapping[str, slice], tonnes, change, inside) -> None:
        """Add the section's blocks of a window's ``(domain, z, y, x)`` arrays."""
        p = self._points(window)
        if not p.size:
            return
        jj = self.line.j[p] - window["y"].start
        ii = self.line.i[p] - window["x"].start
        num, den = _weighted_change(tonnes[:, :, jj, ii], change[:, :, jj, ii],
                                    inside[:, :, jj, ii], axis=0)  # fmt: skip
        self.num[window["z"], p] += num
        self.den[window["z"], p] += den

    def values(self) -> np.ndarray:
        """The mean change per block of the section (NaN where none is estimated in both)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.den > 0, self.num / np.where(self.den > 0, self.den, 1.0), np.nan)

    def figure(self, grade: str, units, traces: Mapping[str, np.ndarray]) -> Any:
        """The section, with the holes that pass within two blocks of it projected on it."""
        from matplotlib.figure import Figure

        gu, lu = _labels(units)
        line, g = self.line, self.grid
        dz = g.block_size[2]
        z_edges = g.origin[2] + np.arange(g.shape[2] + 1) * dz
        values = self.values()
        lim = _limits(values)
        fig = Figure(figsize=(8, 5), layout="constrained")
        ax = fig.add_subplot()
        if line.s.size:
            s_edges = np.concatenate([line.s - line.step / 2, [line.s[-1] + line.step / 2]])
            mesh = ax.pcolormesh(s_edges, z_edges, values, cmap=CMAP, vmin=-lim, vmax=lim,
                                 shading="flat")  # fmt: skip
            fig.colorbar(mesh, ax=ax, label=f"change of {grade} ({gu}), tonnage-weighted mean "
                         "over the domains")  # fmt: skip
        band = 2.0 * max(g.block_size[0], g.block_size[1])
        normal = np.array([-line.direction[1], line.direction[0]])
        for hole, pts in traces.items():
            rel = pts[:, :2] - line.centre[None, :2]
            along, off = rel @ line.direction, rel @ normal
            if np.min(np.abs(off)) > band:
                continue
            ax.plot(along, pts[:, 2], color="k", lw=1.2)
            ax.plot(along[0], pts[0, 2], "v", color="k", ms=5)
            ax.annotate(hole, (along[0], pts[0, 2]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
        c = line.centre
        ax.set_xlabel(f"distance along the section ({lu}), azimuth {line.azimuth:.0f} degrees, "
                      f"through ({c[0]:,.0f}, {c[1]:,.0f})")  # fmt: skip
        ax.set_ylabel(f"elevation ({lu})")
        ax.set_title(f"Change of {grade} (after - before), section; holes within {band:g} {lu}")
        return fig


def write_plots(out, grid, plan: PlanAccumulator, centre, windows, read, grade, units,
                traces) -> dict:  # fmt: skip
    """Write ``plots/diff_plan.png`` and ``plots/diff_section.png`` under ``out``.

    ``centre``: sums of ``|metal change| x (x, y, z)`` and of the weights (the section goes
    through their ratio, or the grid's centre when nothing changed); ``read(window)`` gives
    ``(tonnes, change, inside)`` of a window for the section. Returns the section's centre and
    azimuth.
    """
    from estimator.io.output import save_figure

    if centre[3] > 0:
        at = np.asarray(centre[:3]) / centre[3]
    else:
        o, s, n = (np.array(v, float) for v in (grid.origin, grid.block_size, grid.shape))
        u, v, z = o + s * n / 2
        at = np.array([*(float(c) for c in grid.to_world(u, v)), z])
    line = section_line(grid, at, mean_azimuth(traces))
    image = SectionGatherer(grid, line)
    for window in image.windows(windows):
        image.add(window, *read(window))
    save_figure(out / "plots/diff_plan.png", plan.figure(grade, units, traces, line))
    save_figure(out / "plots/diff_section.png", image.figure(grade, units, traces))
    return {"centre": [float(v) for v in line.centre], "azimuth": line.azimuth}
