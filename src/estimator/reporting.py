"""Grade-tonnage reporting of a block model (SPEC section 5, ``grade_tonnage.csv``).

Tonnes at a cut-off are the sum of ``fraction x block volume x density`` over the blocks whose
estimate is at or above the cut-off (``estimate >= cutoff``); blocks that were not estimated (NaN)
are never counted. The grade is the tonnage-weighted mean estimate of those blocks and the metal
is ``tonnes x grade`` in the grade's unit: troy ounces for g/t (31.1034768 g per oz), tonnes for
``%``, and plain ``tonnes x grade`` otherwise (or ``tonnes x grade x metal_factor`` when a factor
is given).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

#: Grams per troy ounce.
GRAMS_PER_TROY_OUNCE = 31.1034768
#: Column order of the grade-tonnage table.
COLUMNS = ["domain", "class", "cutoff", "tonnes", "grade", "metal"]
#: Domain label of the rows that sum every domain.
TOTAL = "total"


def metal_factor_for(grade_unit: str | None) -> tuple[float, str]:
    """Factor turning ``tonnes x grade`` into metal, and the metal's unit.

    Parameters
    ----------
    grade_unit : str or None
        ``"g/t"`` (also ``"ppm"``), ``"%"``, or anything else (``None`` = unknown).

    Returns
    -------
    factor : float
        Metal = tonnes x grade x factor.
    unit : str
        ``"oz"`` (troy ounces), ``"t"`` or ``"t x grade unit"``.

    Examples
    --------
    >>> metal_factor_for("%")
    (0.01, 't')
    """
    unit = (grade_unit or "").strip().lower().replace(" ", "")
    if unit in ("g/t", "gpt", "ppm"):
        return 1.0 / GRAMS_PER_TROY_OUNCE, "oz"
    if unit in ("%", "pct", "percent"):
        return 0.01, "t"
    return 1.0, "t x grade unit"


def _density_array(ds: xr.Dataset, density: Any, domain: str, shape: tuple) -> np.ndarray | float:
    """Density of one domain's blocks: a per-domain mapping, one value, or a variable name."""
    if isinstance(density, str):
        if density not in ds:
            msg = f"density variable {density!r} is not in the block model"
            raise KeyError(msg)
        var = ds[density]
        if "domain" in var.dims:
            var = var.sel(domain=domain)
        var = var.transpose(*[d for d in ("z", "y", "x") if d in var.dims])
        return np.broadcast_to(np.asarray(var.values, dtype=float), shape)
    if isinstance(density, Mapping):
        if domain not in density:
            msg = f"no density for domain {domain!r} (have {', '.join(map(str, density))})"
            raise KeyError(msg)
        value = density[domain]
        if isinstance(value, tuple):  # (estimated variable, default where not estimated)
            name, default = value
            var = ds[name].sel(domain=domain) if "domain" in ds[name].dims else ds[name]
            var = var.transpose(*[d for d in ("z", "y", "x") if d in var.dims])
            est = np.broadcast_to(np.asarray(var.values, dtype=float), shape)
            return np.where(np.isfinite(est), est, float(default))
        return float(value)
    return float(density)


def density_of(cfg: Any, domains: Sequence[str], warn=None) -> dict[str, Any]:
    """``{domain: density}`` from the config: a number, or ``(grade, default)`` for a density
    estimated like a grade; a domain without one counts 1.0 (``warn`` is told)."""
    out: dict[str, Any] = {}
    for name in domains:
        dom = cfg.domain(name)
        value = dom.density if dom is not None else None
        if value is None:
            if warn is not None:
                warn(f"domain {name} has no density: tonnes are reported as volume x 1.0")
            value = 1.0
        out[name] = (
            (value.grade.lower(), float(value.default)) if hasattr(value, "grade") else float(value)
        )
    return out


def _table_setup(ds, grade, cutoffs, metal_factor, classes, grade_unit):
    """What both grade-tonnage functions check and derive first: the metal factor and unit,
    the cut-offs as floats and the class-code names."""
    if grade not in ds:
        msg = f"grade {grade!r} is not in the block model (variables: {', '.join(map(str, ds.data_vars))})"
        raise KeyError(msg)
    if metal_factor is None:
        metal_factor, metal_unit = metal_factor_for(grade_unit)
    else:
        metal_unit = f"t x grade x {metal_factor:g}"
    names = {}
    if isinstance(classes, Mapping):
        names = {
            str(k) if not isinstance(k, float) else f"{k:g}": str(v) for k, v in classes.items()
        }
    return metal_factor, metal_unit, [float(c) for c in cutoffs], names


def _class_labels(values: np.ndarray, attrs: Mapping | None = None) -> np.ndarray:
    """Class labels as strings; NaN/None/empty become "" (unclassified).

    Integer codes (the chunked store's ``class``: 0 = unclassified, k = the k-th class) are
    turned into their names by the ``class_names`` attribute or, without it, by CF
    ``flag_values``/``flag_meanings``; a code neither names is a DataError.
    """
    from estimator.errors import DataError

    attrs = attrs or {}
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        names = attrs.get("class_names")
        if names is None and "flag_meanings" in attrs:
            meanings = str(attrs["flag_meanings"]).split()
            codes = np.ravel(attrs.get("flag_values", range(len(meanings)))).astype(int)
            lookup = dict(zip(codes.tolist(), meanings, strict=False))
            lookup[0] = ""
            uniq = np.unique(values)
            unknown = [int(c) for c in uniq if int(c) not in lookup]
            if unknown:
                msg = f"block model: class codes {unknown} are not in flag_values {codes.tolist()}"
                raise DataError(msg)
            out = np.empty(values.shape, dtype=object)
            for c in uniq:
                out[values == c] = lookup[int(c)]
            return out
        if names is not None:
            names = [str(n) for n in np.ravel(names)]
            if values.size and int(values.max()) > len(names):
                msg = (
                    f"block model: class code {int(values.max())} but only {len(names)} class "
                    f"names ({names}) in the class_names attribute"
                )
                raise DataError(msg)
            return np.array(["", *names], dtype=object)[values]
    if values.dtype.kind in "fc":
        out = np.full(values.shape, "", dtype=object)
        ok = np.isfinite(values)
        out[ok] = [f"{v:g}" for v in values[ok]]
        return out
    out = values.astype(object)
    out[pd.isna(out)] = ""
    return out.astype(str).astype(object)


def _rows(domain, label, grade, weight, cutoffs, factor) -> list[dict]:
    """Tonnes, grade and metal at each cut-off for one set of blocks."""
    rows = []
    for cutoff in cutoffs:
        sel = grade >= cutoff
        tonnes = float(np.sum(weight[sel]))
        mean = float(np.sum(weight[sel] * grade[sel]) / tonnes) if tonnes > 0 else np.nan
        metal = tonnes * mean * factor if tonnes > 0 else 0.0
        rows.append(
            {
                "domain": domain,
                "class": label,
                "cutoff": float(cutoff),
                "tonnes": tonnes,
                "grade": mean,
                "metal": metal,
            }
        )
    return rows


def grade_tonnage(
    ds: xr.Dataset,
    grade: str,
    cutoffs: Sequence[float],
    density: Mapping[str, float] | float | str,
    block_volume: float,
    metal_factor: float | None = None,
    classes: Sequence[str] | Mapping[Any, str] | None = None,
    grade_unit: str | None = "g/t",
) -> pd.DataFrame:
    """Tonnes, grade and metal above each cut-off, per domain and resource class.

    Parameters
    ----------
    ds : xarray.Dataset
        Block model with dims ``(domain, z, y, x)``, ``fraction`` and the estimate ``grade``;
        optionally a ``class`` variable (labels or codes, ``(domain, z, y, x)`` or ``(z, y, x)``).
    grade : str
        Name of the estimate variable.
    cutoffs : sequence of float
        Cut-off grades; a block counts at a cut-off when ``estimate >= cutoff``.
    density : mapping, float or str
        ``{domain: density}``, one density for every block, or the name of a density variable
        in ``ds`` (tonnes per cubic data unit, e.g. t/m3).
    block_volume : float
        Volume of one whole block (cubic data units).
    metal_factor : float, optional
        Metal = tonnes x grade x ``metal_factor``; overrides ``grade_unit``.
    classes : sequence of str or mapping, optional
        Classes to report, in order (a class with no blocks gets zero-tonne rows). A mapping
        ``{code: name}`` translates numeric class codes. Default: every label present, sorted.
    grade_unit : str, optional
        ``"g/t"`` -> metal in troy ounces; ``"%"`` -> metal in tonnes; other -> tonnes x grade.

    Returns
    -------
    pandas.DataFrame
        Columns ``domain, class, cutoff, tonnes, grade, metal``: for each domain the ``all``
        rows (every block) at each cut-off, then one set of rows per class when ``ds`` has a
        ``class`` variable. ``grade`` is NaN where no tonnes pass the cut-off.
        ``table.attrs["metal_unit"]`` names the metal's unit (``"oz"``, ``"t"``, ...).

    Examples
    --------
    >>> from estimator.blockmodel.grid import BlockGrid, make_block_model
    >>> ds = make_block_model(BlockGrid((0, 0, 0), (10, 10, 10), (2, 1, 1)), ["ore"], ["au"])
    >>> ds["fraction"][:] = 1.0
    >>> ds["au"][0, 0, 0, :] = [1.0, 3.0]
    >>> grade_tonnage(ds, "au", [0, 2], 2.5, 1000.0, metal_factor=1.0)[["cutoff", "tonnes", "grade"]]
       cutoff  tonnes  grade
    0     0.0  5000.0    2.0
    1     2.0  2500.0    3.0
    """
    metal_factor, metal_unit, cutoffs, names = _table_setup(
        ds, grade, cutoffs, metal_factor, classes, grade_unit
    )
    has_class = "class" in ds
    if not has_class:
        wanted: list[str] = []
    elif classes is None:
        every = _class_labels(np.asarray(ds["class"].values).ravel(), ds["class"].attrs)
        wanted = sorted({names.get(lab, lab) for lab in every if lab != ""})
    elif isinstance(classes, Mapping):
        wanted = list(dict.fromkeys(names.values()))
    else:
        wanted = [str(c) for c in classes]
    rows: list[dict] = []
    for domain in (str(d) for d in ds["domain"].values):
        frac = np.asarray(
            ds["fraction"].sel(domain=domain).transpose("z", "y", "x").values, dtype=float
        )
        est = np.asarray(ds[grade].sel(domain=domain).transpose("z", "y", "x").values, dtype=float)
        dens = _density_array(ds, density, domain, frac.shape)
        weight = frac * float(block_volume) * dens
        ok = np.isfinite(est) & np.isfinite(weight) & (frac > 0)
        g, w = est[ok], np.broadcast_to(weight, frac.shape)[ok]
        rows += _rows(domain, "all", g, w, cutoffs, metal_factor)
        if not has_class:
            continue
        var = ds["class"].sel(domain=domain) if "domain" in ds["class"].dims else ds["class"]
        labels = _class_labels(np.asarray(var.transpose("z", "y", "x").values), var.attrs)[ok]
        labels = (
            np.array([names.get(lab, lab) for lab in labels], dtype=object) if names else labels
        )
        for label in wanted:
            sel = labels == label
            rows += _rows(domain, label, g[sel], w[sel], cutoffs, metal_factor)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["metal_unit"] = metal_unit
    return table


def chunk_windows(ds: xr.Dataset, chunks: Mapping[str, int] | None = None) -> list[dict]:
    """Index windows ``{"z": slice, "y": slice, "x": slice}`` covering a block model.

    ``chunks`` gives the window size per dimension; by default the Dataset's own dask chunks
    (a lazily opened store: one window per stored chunk), or one window for a NumPy-backed
    model. Fixed order: z slowest, x fastest.
    """
    if chunks is None:
        var = ds["fraction"].variable
        chunks = {d: max(c) for d, c in zip(var.dims, var.chunks or (), strict=False)}
    starts = {}
    for dim in ("z", "y", "x"):
        n = ds.sizes[dim]
        step = max(1, int(chunks.get(dim, n)))
        starts[dim] = [slice(a, min(a + step, n)) for a in range(0, n, step)]
    return [
        {"z": zs, "y": ys, "x": xs} for zs in starts["z"] for ys in starts["y"] for xs in starts["x"]
    ]


def grade_tonnage_chunked(
    ds: xr.Dataset,
    grade: str,
    cutoffs: Sequence[float],
    density: Mapping[str, float] | float | str,
    block_volume: float,
    metal_factor: float | None = None,
    classes: Sequence[str] | Mapping[Any, str] | None = None,
    grade_unit: str | None = "g/t",
    chunks: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """:func:`grade_tonnage` computed one chunk at a time: memory bounded by a chunk.

    Same parameters, same table (equal to :func:`grade_tonnage` on the loaded model to
    rounding: tonnes and metal are sums over the chunks, in the fixed chunk order of
    :func:`chunk_windows`, so the result does not depend on anything but the chunking).
    ``ds`` is normally a lazily opened chunked store
    (:func:`estimator.io.blockstore.open_block_model`); only the variables the table needs
    are read, window by window (``chunks``: window sizes, default the store's chunks).
    """
    metal_factor, metal_unit, cutoffs, names = _table_setup(
        ds, grade, cutoffs, metal_factor, classes, grade_unit
    )
    has_class = "class" in ds
    wanted_vars = ["fraction", grade] + (["class"] if has_class else [])
    if isinstance(density, str):
        if density not in ds:
            msg = f"density variable {density!r} is not in the block model"
            raise KeyError(msg)
        wanted_vars.append(density)
    if isinstance(density, Mapping):
        wanted_vars += sorted({v[0] for v in density.values() if isinstance(v, tuple)}
                              - set(wanted_vars))  # fmt: skip
    domains = [str(d) for d in ds["domain"].values]
    zero = [(0.0, 0.0)] * len(cutoffs)
    sums: dict[tuple[str, str], list[tuple[float, float]]] = {}
    present: set[str] = set()

    def add(domain, label, g, w):
        acc = sums.setdefault((domain, label), list(zero))
        for k, cutoff in enumerate(cutoffs):
            sel = g >= cutoff
            ws = w[sel]
            acc[k] = (acc[k][0] + float(np.sum(ws)), acc[k][1] + float(np.sum(ws * g[sel])))

    stored = ds.encoding.get("iter_chunks") if chunks is None else None
    if stored is not None:
        pieces = stored(variables=wanted_vars)  # only the chunks written, in the fixed order
    else:
        sub_all = ds[wanted_vars]
        pieces = (sub_all.isel(window).compute() for window in chunk_windows(ds, chunks))
    for sub in pieces:
        cls = None
        if has_class:
            var = sub["class"]
            cls = _class_labels(np.asarray(var.transpose("domain", "z", "y", "x").values),
                                var.attrs)  # fmt: skip
            if names:
                cls = np.array([names.get(lab, lab) for lab in cls.ravel()], dtype=object)
                cls = cls.reshape(var.shape)
            present.update(lab for lab in np.unique(cls.astype(str)) if lab != "")
        frac_all = np.asarray(sub["fraction"].transpose("domain", "z", "y", "x").values, float)
        est_all = np.asarray(sub[grade].transpose("domain", "z", "y", "x").values, float)
        for i, domain in enumerate(domains):
            frac, est = frac_all[i], est_all[i]
            weight = frac * float(block_volume) * _density_array(sub, density, domain, frac.shape)
            ok = np.isfinite(est) & np.isfinite(weight) & (frac > 0)
            if not ok.any():
                continue
            g, w = est[ok], np.broadcast_to(weight, frac.shape)[ok]
            add(domain, "all", g, w)
            if cls is None:
                continue
            labels = cls[i][ok]
            for label in np.unique(labels.astype(str)):
                sel = labels == label
                add(domain, label, g[sel], w[sel])
    if not has_class:
        wanted: list[str] = []
    elif classes is None:
        wanted = sorted(present)
    elif isinstance(classes, Mapping):
        wanted = list(dict.fromkeys(names.values()))
    else:
        wanted = [str(c) for c in classes]
    rows = []
    for domain in domains:
        for label in ["all", *wanted]:
            for cutoff, (tonnes, wg) in zip(cutoffs, sums.get((domain, label), zero), strict=True):
                mean = wg / tonnes if tonnes > 0 else np.nan
                rows.append(
                    {"domain": domain, "class": label, "cutoff": cutoff, "tonnes": tonnes,
                     "grade": mean, "metal": tonnes * mean * metal_factor if tonnes > 0 else 0.0}
                )  # fmt: skip
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.attrs["metal_unit"] = metal_unit
    return table


def plot_grade_tonnage(
    table: pd.DataFrame,
    class_: str = "all",
    title: str | None = None,
    grade_unit: str | None = None,
) -> Figure:
    """Grade-tonnage curves: tonnes (left axis) and grade (right axis) against cut-off.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`grade_tonnage`.
    class_ : str
        Which class's rows to plot (default the ``all`` rows).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One colour per domain: solid tonnes, dashed grade. Made without pyplot, so it works
        on any backend (save it with ``fig.savefig``).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax2 = ax.twinx()
    sub = table[(table["class"] == class_) & (table["domain"] != TOTAL)]
    colours = [f"C{i % 10}" for i in range(sub["domain"].nunique())]
    for colour, (domain, rows) in zip(colours, sub.groupby("domain", sort=False), strict=True):
        rows = rows.sort_values("cutoff")
        ax.plot(
            rows["cutoff"], rows["tonnes"], color=colour, marker="o", ms=3, label=f"{domain} tonnes"
        )
        ax2.plot(
            rows["cutoff"],
            rows["grade"],
            color=colour,
            ls="--",
            marker="s",
            ms=3,
            label=f"{domain} grade",
        )
    gu = f" ({grade_unit})" if grade_unit else " (grade unit not set)"
    ax.set_xlabel(f"cut-off grade{gu}")
    ax.set_ylabel("tonnes (t)")
    ax2.set_ylabel(f"grade above cut-off{gu}")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()
    handles2 = ax2.get_legend_handles_labels()
    if handles[0]:
        ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], fontsize=8, loc="upper right")
    ax.set_title(title or f"Grade-tonnage ({class_})")
    return fig


def add_totals(table: pd.DataFrame) -> pd.DataFrame:
    """Append ``total`` rows: every domain summed, per class and cut-off (tonnage-weighted grade)."""
    if table.empty or table["domain"].nunique() < 2:
        return table
    rows = []
    for (klass, cutoff), g in table.groupby(["class", "cutoff"], sort=False):
        tonnes = float(g["tonnes"].sum())
        metal = float(g["metal"].sum())
        with np.errstate(invalid="ignore"):
            grade = float(np.nansum(g["tonnes"] * g["grade"]) / tonnes) if tonnes > 0 else np.nan
        rows.append(
            {"domain": TOTAL, "class": klass, "cutoff": cutoff, "tonnes": tonnes,
             "grade": grade, "metal": metal}
        )  # fmt: skip
    out = pd.concat([table, pd.DataFrame(rows, columns=table.columns)], ignore_index=True)
    out.attrs = dict(table.attrs)
    return out


def with_units(table: pd.DataFrame, grade_unit: str | None) -> pd.DataFrame:
    """The table with its units as columns: ``tonnes_unit``, ``grade_unit``, ``metal_unit``."""
    out = table.copy()
    out["tonnes_unit"] = "t"
    out["grade_unit"] = grade_unit or "not set (data.grade_unit)"
    out["metal_unit"] = table.attrs.get("metal_unit", "")
    out.attrs = dict(table.attrs)
    return out


def format_resource(table: pd.DataFrame, grade_unit: str | None, class_: str = "all") -> str:
    """The grade-tonnage rows of one class as a text table with units in the header."""
    sub = table[table["class"] == class_]
    if sub.empty:
        return "(no blocks estimated)"
    gu = grade_unit or "grade"
    mu = table.attrs.get("metal_unit", "")
    head = f"{'domain':<12}{'cut-off':>10}{'tonnes':>16}{'grade':>10}{'metal':>16}"
    units = f"{'':<12}{gu:>10}{'t':>16}{gu:>10}{mu:>16}"
    lines = [head, units]
    for r in sub.itertuples(index=False):
        grade = f"{r.grade:.3g}" if np.isfinite(r.grade) else "-"
        lines.append(
            f"{r.domain:<12}{r.cutoff:>10g}{r.tonnes:>16,.0f}{grade:>10}{r.metal:>16,.0f}"
        )
    return "\n".join(lines)


def report_stage(cfg: Any, ds: xr.Dataset) -> tuple[pd.DataFrame, Figure | None]:
    """The pipeline's ``report`` stage: grade-tonnage table and plot from the run config.

    Parameters
    ----------
    cfg : RunConfig
        Uses ``report.cutoffs``, ``report.grade`` (default: first grade), per-domain densities
        (or a block-by-block ``density`` variable in ``ds``; a domain without density counts
        1.0, with a logged warning), ``data.grade_unit`` and the classification's class order.
    ds : xarray.Dataset
        The estimated block model: in memory, or lazily opened from a chunked store
        (dask-backed; then read one chunk at a time by :func:`grade_tonnage_chunked`).

    Returns
    -------
    table : pandas.DataFrame
        :func:`grade_tonnage` output.
    fig : matplotlib.figure.Figure or None
        :func:`plot_grade_tonnage` of the ``all`` rows (None when the table is empty).
    """
    grade = cfg.report.grade or cfg.grades[0]
    if "density" in ds and {"x", "y", "z"} & set(ds["density"].dims):
        density: Any = "density"  # a block-by-block density model
    else:
        density = density_of(cfg, [str(d) for d in ds["domain"].values], log.warning)
    dx, dy, dz = (float(v) for v in np.ravel(ds.attrs["block_size"]))
    classes = None
    if cfg.classification is not None and "class" in ds:
        classes = [c.name for c in cfg.classification.classes]
    # a lazily opened chunked store is read one chunk at a time, never whole
    tonnage = grade_tonnage_chunked if ds["fraction"].chunks is not None else grade_tonnage
    table = tonnage(
        ds,
        grade,
        sorted(set(cfg.report.cutoffs)),
        density,
        dx * dy * dz,
        classes=classes,
        grade_unit=cfg.data.grade_unit,
    )
    table = add_totals(table)
    fig = (
        plot_grade_tonnage(table, title=f"{cfg.name}: {grade}", grade_unit=cfg.data.grade_unit)
        if len(table)
        else None
    )
    return with_units(table, cfg.data.grade_unit), fig
