"""Block-model exports for mining packages: sparse CSV (with vendor profiles), Parquet, OMF, VTK.

:func:`export_run` reads a run folder (``blockmodel.zarr`` or ``blockmodel.nc``, the density of
each domain from ``run.json``) and calls :func:`export_blockmodel`, which takes any block-model
Dataset of SPEC section 5 and its :class:`~estimator.blockmodel.grid.BlockGrid`.

Rows and columns (CSV and Parquet)
----------------------------------
One row per ``(block, domain)`` with ``fraction > 0``; blocks outside every domain are left out
(the sparse form the packages import). Rows run z slowest, then y, then x, then domain (the
domain's config order). The generic columns (``profile=None``) are::

    i, j, k          block indices along the grid's x, y, z (0-based)
    x, y, z          block centre in WORLD coordinates (a rotated grid's centres are turned)
    dx, dy, dz       block size along the grid's axes
    domain           domain name
    fraction         volume fraction of the block inside the domain (0..1]
    density          the domain's density (tonnes per cubic data unit), when known
    class            resource class label ("" = unclassified), when classified
    <every other variable of the model, in the model's order>  (g, g_kv, g_slope, ...)

Missing values (NaN: not estimated) are empty fields, except in the profiles whose format
declares a default value (``vulcan``, ``geovia``), where they are that value, -99.

Profiles (``profile=``), and the sources used for each
------------------------------------------------------
``datamine``
    Datamine Studio field names, upper case: ``XC, YC, ZC`` (cell centre), ``XINC, YINC,
    ZINC`` (cell size), ``XMORIG, YMORIG, ZMORIG`` (model origin, the corner of the first
    cell, not its centre), ``NX, NY, NZ``, ``IJK``, then ``I, J, K`` and the attributes in upper
    case. Sources: Datamine Studio 3 brochure "Block Modelling - Defining the Model"
    (datamine.co.uk/Products/Geological_Products/Studio/Studio_brochure/BLOCK2.HTM) for the
    fields; Datamine Technical Note 0007 "Understanding the IJK Index" (D. LeBlanc,
    scribd.com/document/529203079) for the index, with 1-based ``I, J, K``::

        IJK = (I-1)*NY*NZ + (J-1)*NZ + (K-1)

    i.e. with our 0-based indices ``IJK = (i*NY + j)*NZ + k``: **z fastest**, x slowest (not
    GSLIB order). ``XC, YC, ZC`` are in the model's own frame, as Datamine stores them ("you
    can align models to a local grid", brochure; ``I = INT((XC-XMORIG)/XINC) + 1``, technote),
    so for a rotated grid they are grid-frame centres and the world centres follow in
    ``XWORLD, YWORLD``. Datamine's own rotation fields (``ANGLE1, ROTAXIS1, X0...``, listed in
    Isatis.neo's "Block Model Import" page) are not written: their sign convention is not
    documented publicly, and a wrong sign would place every block wrongly without a warning.
``vulcan``
    Maptek Vulcan "CSV to Model" / ``bcsvto`` (help.maptek.com/vulcan/2026/topics/Block/
    Transfer/Block_CSVMODEL.htm): line 1 field names in lower case, the first seven being the
    block centre in world coordinates, the block lengths and the volume (``xcentre, ycentre,
    zcentre, xlength, ylength, zlength, volume``); lines 2, 3, 4 the variables' description,
    type (``double``, ``integer``, ``name``) and default value, with the line's label in the
    first field and the seven standard fields empty; the blocks from line 5.
``geovia`` (alias ``surpac``)
    Dassault Systemes GEOVIA "Block Model CSV Files for Import"
    (help-3dexperience... /GEOCrdUserMap/geoearth-r-BlockModelCSV.htm): header line with at
    least ``centroid_x, centroid_y, centroid_z, dim_x, dim_y, dim_z, volume, density``, then a
    line of descriptions, a line of types (``double``, ``integer``, ``name``) and a line of
    default values ("value used to indicate no value recorded", -99 here), then the blocks.
``leapfrog``
    Seequent Leapfrog Geo "Block Models" help (help.seequent.com/Geo/5.1/en-GB/Content/
    block-models/block-models.htm): CSV block models "must be regular, rotated only about the
    Z axis", neither CSV form needs a header, the columns are mapped in the import window and
    the grid definition is entered there. So: one header line ``X, Y, Z`` (world centroid),
    ``I, J, K``, ``dX, dY, dZ`` and the attributes; the grid definition (base point = the
    grid's minimum corner, block size, block counts, azimuth = our rotation, clockwise from
    north) goes in a sidecar ``<file>.grid.txt`` to copy into that window. Leapfrog's own
    exported header formats are not publicly specified and are not imitated.

Parquet takes the same columns (a profile renames them, without the extra header lines) and
keeps the grid geometry (origin, block size, shape, rotation, units, domains) as JSON under the
key ``estimator`` of the file's key-value metadata.

OMF and VTK
-----------
OMF v1 (``omf`` 1.x): one ``VolumeElement`` per domain (``VolumeGridGeometry``: origin = the
grid's minimum corner, ``tensor_u/v/w`` = block sizes, ``axis_u/v`` = the grid's turned x and y
axes), its variables as cell data; composites as a ``PointSetElement``; drillholes as a
``LineSetElement`` (subtype ``borehole``) of from-to segments desurveyed by minimum curvature;
domain wireframes as ``SurfaceElement``. OMF v1 does not document its cell order; OpenGeoVis'
``omfvista`` (``omfvista/volume.py``, ``volume_to_vtk``) reads a volume's cell array as
``reshape((nu, nv, nw))`` in C order, i.e. index ``(i*nv + j)*nw + k`` (blocks sorted by
i, then j, then k: **w fastest**), which is what is written here; the tests check it on an
asymmetric grid read back through ``omf.OMFReader``.

VTK (``pyvista``): the block model as a ``StructuredGrid`` (``.vts``; points turned with the
grid, so any rotation is exact), cell arrays named ``<domain>:<variable>``, cells x fastest
(VTK order); ``class`` as integer codes with the names in the field array ``class_names``.
Drillholes go to ``<stem>_drillholes.vtp`` as lines.

Memory: CSV and Parquet are written slab by slab (whole z levels, ``chunk_blocks`` grid blocks
at a time, rounded down to whole store z chunks where a slab holds one), so memory is bounded
by ``chunk_blocks`` (at least one z level), whatever the model's size.
OMF and VTK hold the whole model (their writers take whole arrays).

Every file is written under a temporary name and renamed into place; an existing file is
never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from estimator.blockmodel.grid import DIMS, BlockGrid, grid_from_attrs
from estimator.errors import DataError, EstimationWarning
from estimator.io.output import atomic_path

__all__ = ["FORMATS", "PROFILES", "export_blockmodel", "export_name", "export_run", "iter_rows"]

#: Export formats and their file extensions.
FORMATS = {"csv": ".csv", "parquet": ".parquet", "omf": ".omf", "vtk": ".vts"}
#: CSV / Parquet profiles (``None`` = generic names); ``surpac`` is an alias of ``geovia``.
PROFILES = ("datamine", "vulcan", "geovia", "surpac", "leapfrog")
#: Default number of grid blocks (all domains counted) read per slab.
CHUNK_BLOCKS = 1_000_000
#: Value written for "no value" in the profiles that declare a default (vulcan, geovia).
NO_VALUE = -99.0
#: The pip extra that installs the optional writers.
EXTRA_HINT = "pip install 'estimator[exports]'"

_GEOMETRY = ("i", "j", "k", "x", "y", "z", "dx", "dy", "dz")


# ---------------------------------------------------------------------------------------
# argument checks and optional imports
# ---------------------------------------------------------------------------------------
def _check_format(fmt: str) -> str:
    key = str(fmt).lower()
    if key not in FORMATS:
        msg = f"export format {fmt!r} is not known: expected one of {', '.join(FORMATS)}"
        raise DataError(msg)
    return key


def _check_profile(profile: str | None, fmt: str) -> str | None:
    if profile is None:
        return None
    key = str(profile).lower()
    if key not in PROFILES:
        msg = (
            f"export profile {profile!r} is not known: expected one of {', '.join(PROFILES)} "
            "(or none for the generic column names)"
        )
        raise DataError(msg)
    if fmt not in ("csv", "parquet"):
        msg = f"export profile {profile!r} applies to csv and parquet only, not to {fmt!r}"
        raise DataError(msg)
    return "geovia" if key == "surpac" else key


def _require(module: str, fmt: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        msg = (
            f"export format {fmt!r} needs the Python package {module.split('.')[0]!r}, which is "
            f"not installed: {EXTRA_HINT} (or pip install {module.split('.')[0]})"
        )
        raise DataError(msg) from None


def _check_target(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        msg = (f"{path} exists: not replaced; choose another output path (--out) or ask for it "
               "to be replaced (--overwrite, overwrite=True)")
        raise DataError(msg)


@contextlib.contextmanager
def _atomic_with_suffix(path: Path) -> Iterator[Path]:
    """A temporary path with ``path``'s suffix (writers that pick the format by extension),
    renamed to ``path`` when the block succeeds."""
    with atomic_path(path) as tmp:
        fd, inner = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(fd)
        inner_path = Path(inner)
        try:
            yield inner_path
            os.replace(inner_path, tmp)
        finally:
            if inner_path.exists():
                inner_path.unlink()


# ---------------------------------------------------------------------------------------
# reading the model slab by slab
# ---------------------------------------------------------------------------------------
def _class_lookup(var: xr.DataArray) -> np.ndarray | None:
    """Labels of stored class codes (``""`` = 0), or None when ``var`` holds labels."""
    if var.dtype.kind not in "iu":
        return None
    names = [str(n) for n in np.ravel(var.attrs.get("class_names", []))]
    return np.array(["", *names], dtype=object)


def _variables(ds: xr.Dataset) -> list[str]:
    """Block variables exported after the fixed columns, in the model's order."""
    skip = {"fraction", "class", "density"}
    return [
        str(n) for n, v in ds.data_vars.items() if tuple(v.dims) == DIMS and str(n) not in skip
    ]


def _slab_size(ds: xr.Dataset, chunk_blocks: int) -> int:
    nd, nz, ny, nx = (int(ds.sizes[d]) for d in DIMS)
    per_level = max(1, nd * ny * nx)
    size = max(1, int(chunk_blocks) // per_level)
    zchunks = ds["fraction"].chunks
    if zchunks:  # dask-backed (a Zarr store): whole store chunks along z where they fit
        cz = int(zchunks[1][0])
        if size >= cz:
            size = (size // cz) * cz
    return min(size, nz)


def iter_rows(
    ds: xr.Dataset,
    grid: BlockGrid,
    *,
    density: Mapping[str, float] | None = None,
    chunk_blocks: int = CHUNK_BLOCKS,
) -> Iterator[dict[str, np.ndarray]]:
    """The sparse rows of a block model, one slab of z levels at a time (generic names).

    Parameters
    ----------
    ds : xarray.Dataset
        Block model, dims ``(domain, z, y, x)``; NumPy- or dask-backed (only one slab is read
        at a time).
    grid : BlockGrid
    density : mapping, optional
        Density per domain name (a ``density`` variable of ``ds`` takes precedence).
    chunk_blocks : int
        Grid blocks (all domains counted) per slab.

    Yields
    ------
    dict
        Column name -> 1-D array, the columns of the module docstring, in order.
    """
    nz = int(ds.sizes["z"])
    domains = np.array([str(d) for d in np.asarray(ds["domain"].values).tolist()], dtype=object)
    names = _variables(ds)
    has_class = "class" in ds.data_vars
    lookup = _class_lookup(ds["class"]) if has_class else None
    has_density = "density" in ds.data_vars or density is not None
    dens = None
    if density is not None and "density" not in ds.data_vars:
        dens = np.array([float(density.get(d, np.nan)) for d in domains], dtype=np.float64)
    xc, yc, zc = grid.centres_local()
    dx, dy, dz = grid.block_size
    step = _slab_size(ds, chunk_blocks)
    for k0 in range(0, nz, step):
        k1 = min(nz, k0 + step)
        slab = ds.isel(z=slice(k0, k1))
        frac = np.asarray(slab["fraction"].transpose(*DIMS).values)
        # (z, y, x, domain) order: rows z slowest, domain fastest
        kk, jj, ii, dd = np.nonzero(np.moveaxis(frac, 0, -1) > 0)
        cols: dict[str, np.ndarray] = {"i": ii.astype(np.int64), "j": jj.astype(np.int64)}
        cols["k"] = (kk + k0).astype(np.int64)
        wx, wy = grid.to_world(xc[ii], yc[jj])
        cols["x"], cols["y"], cols["z"] = wx, wy, zc[kk + k0]
        n = ii.size
        cols["dx"], cols["dy"], cols["dz"] = (np.full(n, s) for s in (dx, dy, dz))
        cols["domain"] = domains[dd]
        cols["fraction"] = frac[dd, kk, jj, ii]
        if "density" in ds.data_vars:
            cols["density"] = np.asarray(slab["density"].transpose(*DIMS).values)[dd, kk, jj, ii]
        elif has_density:
            cols["density"] = dens[dd]
        if has_class:
            raw = np.asarray(slab["class"].transpose(*DIMS).values)[dd, kk, jj, ii]
            cols["class"] = lookup[raw] if lookup is not None else raw.astype(str).astype(object)
        for name in names:
            cols[name] = np.asarray(slab[name].transpose(*DIMS).values)[dd, kk, jj, ii]
        yield cols


# ---------------------------------------------------------------------------------------
# profiles
# ---------------------------------------------------------------------------------------
def _datamine_columns(cols: dict, grid: BlockGrid) -> dict:
    _, ny, nz = grid.shape
    xc, yc, _ = grid.centres_local()
    i, j, k = cols["i"], cols["j"], cols["k"]
    out = {
        "XC": xc[i] if grid.is_rotated else cols["x"],
        "YC": yc[j] if grid.is_rotated else cols["y"],
        "ZC": cols["z"],
        "XINC": cols["dx"],
        "YINC": cols["dy"],
        "ZINC": cols["dz"],
    }
    n = i.size
    for key, value in zip(("XMORIG", "YMORIG", "ZMORIG"), grid.origin, strict=True):
        out[key] = np.full(n, value)
    for key, value in zip(("NX", "NY", "NZ"), grid.shape, strict=True):
        out[key] = np.full(n, value, dtype=np.int64)
    out["IJK"] = (i * ny + j) * nz + k
    out["I"], out["J"], out["K"] = i, j, k
    if grid.is_rotated:
        out["XWORLD"], out["YWORLD"] = cols["x"], cols["y"]
    for name, values in cols.items():
        if name not in _GEOMETRY:
            out[name.upper()] = values
    return out


def _standard_columns(cols: dict, names: Sequence[str], grid: BlockGrid) -> dict:
    """Centre, size and volume under ``names`` (7), then everything else, lower case."""
    out = dict(zip(names[:6], (cols[c] for c in ("x", "y", "z", "dx", "dy", "dz")), strict=True))
    out[names[6]] = np.full(cols["i"].size, grid.block_volume)
    for name in ("i", "j", "k"):
        out[name] = cols[name]
    for name, values in cols.items():
        if name not in _GEOMETRY:
            out[name.lower()] = values
    return out


def _profile_columns(cols: dict, profile: str | None, grid: BlockGrid) -> dict:
    if profile is None:
        return cols
    if profile == "datamine":
        return _datamine_columns(cols, grid)
    if profile == "vulcan":
        names = ("xcentre", "ycentre", "zcentre", "xlength", "ylength", "zlength", "volume")
        return _standard_columns(cols, names, grid)
    if profile == "geovia":
        names = ("centroid_x", "centroid_y", "centroid_z", "dim_x", "dim_y", "dim_z", "volume")
        out = _standard_columns(cols, names, grid)
        if "density" in out:  # required right after volume
            out = {**dict(list(out.items())[:7]), "density": out.pop("density"), **out}
        return out
    # leapfrog
    out = {"X": cols["x"], "Y": cols["y"], "Z": cols["z"]}
    out["I"], out["J"], out["K"] = cols["i"], cols["j"], cols["k"]
    out["dX"], out["dY"], out["dZ"] = cols["dx"], cols["dy"], cols["dz"]
    out.update({n: v for n, v in cols.items() if n not in _GEOMETRY})
    return out


def _type_word(values: np.ndarray) -> str:
    kind = np.asarray(values).dtype.kind
    return {"f": "double", "i": "integer", "u": "integer", "b": "integer"}.get(kind, "name")


def _describe(name: str, attrs: Mapping[str, dict]) -> str:
    a = attrs.get(name.lower()) or attrs.get(name) or {}
    words = str(a.get("long_name", name))
    units = a.get("units")
    text = f"{words} ({units})" if units and units != "1" else words
    return text.replace(",", ";").replace("\n", " ")


def _header_lines(profile: str, columns: dict, attrs: Mapping[str, dict]) -> list[list[str]]:
    """Lines 2-4 (description, type, default) of the vulcan and geovia formats."""
    names = list(columns)
    if profile == "vulcan":
        fixed = 7
        labels = ("Variable descriptions:", "Variable types:", "Variable defaults:")
        lines = [[label, *[""] * (fixed - 1)] for label in labels]
        rest = names[fixed:]
    else:
        lines = [[], [], []]
        rest = names
    for name in rest:
        values = columns[name]
        word = _type_word(values)
        lines[0].append(_describe(name, attrs))
        lines[1].append(word)
        lines[2].append("" if word == "name" else f"{NO_VALUE:g}")
    return lines


# ---------------------------------------------------------------------------------------
# CSV and Parquet writers (streaming)
# ---------------------------------------------------------------------------------------
def _fill_missing(columns: dict, profile: str | None) -> dict:
    if profile not in ("vulcan", "geovia"):
        return columns
    return {
        n: np.where(np.isnan(v), NO_VALUE, v) if np.asarray(v).dtype.kind == "f" else v
        for n, v in columns.items()
    }


def _arrow_table(columns: dict):
    import pyarrow as pa

    arrays = []
    for values in columns.values():
        v = np.asarray(values)
        if v.dtype.kind == "O" or v.dtype.kind == "U":
            arrays.append(pa.array(v.astype(object), type=pa.string()))
        elif v.dtype.kind == "f":
            arrays.append(pa.array(v, mask=np.isnan(v)))  # NaN -> null (an empty CSV field)
        else:
            arrays.append(pa.array(v))
    return pa.Table.from_arrays(arrays, names=list(columns))


def _csv_line(fields: Sequence[str]) -> str:
    out = []
    for f in fields:
        s = str(f)
        if any(c in s for c in ',"\n'):
            s = '"' + s.replace('"', '""') + '"'
        out.append(s)
    return ",".join(out) + "\n"


def _write_csv(path, rows, profile, grid, attrs) -> None:
    try:
        import pyarrow.csv as pacsv
    except ImportError:  # pandas writes it too, more slowly
        pacsv = None
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        first = True
        for cols in rows:
            columns = _fill_missing(_profile_columns(cols, profile, grid), profile)
            if first:
                lines = [list(columns)]
                if profile in ("vulcan", "geovia"):
                    lines += _header_lines(profile, columns, attrs)
                f.write("".join(_csv_line(line) for line in lines).encode("utf-8"))
                first = False
            if not next(iter(columns.values())).size:
                continue
            if pacsv is not None:
                opts = pacsv.WriteOptions(include_header=False, quoting_style="needed")
                pacsv.write_csv(_arrow_table(columns), f, write_options=opts)
            else:
                pd.DataFrame(columns).to_csv(f, header=False, index=False, lineterminator="\n")


def _geometry_metadata(grid: BlockGrid, ds: xr.Dataset, profile: str | None) -> dict:
    return {
        "origin": list(grid.origin),
        "block_size": list(grid.block_size),
        "shape": list(grid.shape),
        "rotation": grid.rotation,
        "rotation_convention": "degrees clockwise about z through origin (minimum corner)",
        "units": str(ds.attrs.get("units", "data units")),
        "domains": [str(d) for d in np.asarray(ds["domain"].values).tolist()],
        "profile": profile,
        "source": str(ds.attrs.get("title", "")),
    }


def _write_parquet(path, rows, profile, grid, ds) -> None:
    pa = _require("pyarrow", "parquet")
    pq = _require("pyarrow.parquet", "parquet")
    meta = {b"estimator": json.dumps(_geometry_metadata(grid, ds, profile)).encode()}
    with atomic_path(path) as tmp:
        writer = None
        try:
            for cols in rows:
                table = _arrow_table(_profile_columns(cols, profile, grid))
                if writer is None:
                    schema = table.schema.with_metadata(meta)
                    writer = pq.ParquetWriter(tmp, schema, compression="zstd")
                writer.write_table(pa.Table.from_arrays(table.columns, schema=schema))
        finally:
            if writer is not None:
                writer.close()


# ---------------------------------------------------------------------------------------
# OMF and VTK (whole model)
# ---------------------------------------------------------------------------------------
def _axes(grid: BlockGrid) -> tuple[np.ndarray, np.ndarray]:
    """World directions of the grid's x and y axes (see BlockGrid.to_world)."""
    r = math.radians(grid.rotation)
    c, s = math.cos(r), math.sin(r)
    if not grid.is_rotated:
        c, s = 1.0, 0.0
    return np.array([c, -s, 0.0]), np.array([s, c, 0.0])


def _domain_arrays(ds: xr.Dataset, domain: str) -> dict[str, np.ndarray]:
    """Every block variable of one domain as a (z, y, x) array; class as labels."""
    one = ds.sel(domain=domain)
    out = {}
    for name in ["fraction", *(["density"] if "density" in ds else []), *_variables(ds)]:
        out[name] = np.asarray(one[name].transpose("z", "y", "x").values)
    if "class" in ds.data_vars:
        raw = np.asarray(one["class"].transpose("z", "y", "x").values)
        lookup = _class_lookup(ds["class"])
        out["class"] = lookup[raw] if lookup is not None else raw.astype(str).astype(object)
    return out


def _write_omf(path, ds, grid, density, composites, drillholes, wireframes) -> None:
    omf = _require("omf", "omf")
    elements = []
    u, v = _axes(grid)
    nx, ny, nz = grid.shape
    for domain in (str(d) for d in np.asarray(ds["domain"].values).tolist()):
        data = []
        arrays = _domain_arrays(ds, domain)
        if density is not None and "density" not in arrays:
            arrays["density"] = np.full((nz, ny, nx), float(density.get(domain, np.nan)))
        for name, values in arrays.items():
            # OMF v1 cell order (omfvista): C order over (u, v, w) = (x, y, z), w fastest
            flat = np.transpose(values, (2, 1, 0)).ravel()
            if flat.dtype.kind == "O":
                data.append(omf.StringData(name=name, location="cells", array=list(flat)))
            else:
                data.append(omf.ScalarData(name=name, location="cells", array=flat))
        geometry = omf.VolumeGridGeometry(
            origin=list(grid.origin),
            tensor_u=np.full(nx, grid.block_size[0]),
            tensor_v=np.full(ny, grid.block_size[1]),
            tensor_w=np.full(nz, grid.block_size[2]),
            axis_u=u,
            axis_v=v,
            axis_w=[0.0, 0.0, 1.0],
        )
        elements.append(
            omf.VolumeElement(name=f"block model {domain}", geometry=geometry, data=data)
        )
    if composites is not None and len(composites):
        pts = composites[["x", "y", "z"]].to_numpy(dtype=np.float64)
        data = [
            omf.ScalarData(name=c, location="vertices", array=composites[c].to_numpy(float))
            for c in composites.columns
            if c not in ("x", "y", "z", "from", "to") and composites[c].dtype.kind in "fiu"
        ]
        elements.append(
            omf.PointSetElement(
                name="composites", geometry=omf.PointSetGeometry(vertices=pts), data=data
            )
        )
    if drillholes is not None and len(drillholes):
        n = len(drillholes)
        starts = drillholes[["x_from", "y_from", "z_from"]].to_numpy(dtype=np.float64)
        ends = drillholes[["x_to", "y_to", "z_to"]].to_numpy(dtype=np.float64)
        vertices = np.empty((2 * n, 3))
        vertices[0::2], vertices[1::2] = starts, ends
        segments = np.arange(2 * n).reshape(n, 2)
        data = [
            omf.ScalarData(name=c, location="segments", array=drillholes[c].to_numpy(float))
            for c in _segment_values(drillholes)
        ]
        data.append(
            omf.StringData(name="hole_id", location="segments", array=list(drillholes.hole_id))
        )
        elements.append(
            omf.LineSetElement(
                name="drillholes",
                subtype="borehole",
                geometry=omf.LineSetGeometry(vertices=vertices, segments=segments),
                data=data,
            )
        )
    for name, wf in (wireframes or {}).items():
        elements.append(
            omf.SurfaceElement(
                name=f"wireframe {name}",
                geometry=omf.SurfaceGeometry(
                    vertices=np.asarray(wf.vertices, dtype=np.float64),
                    triangles=np.asarray(wf.faces, dtype=np.int64),
                ),
            )
        )
    project = omf.Project(name=str(ds.attrs.get("title", "estimator block model")))
    project.elements = elements
    project.validate()
    with _atomic_with_suffix(path) as tmp:
        omf.OMFWriter(project, str(tmp))


def _segment_values(drillholes: pd.DataFrame) -> list[str]:
    skip = {"x_from", "y_from", "z_from", "x_to", "y_to", "z_to", "_line"}
    return [c for c in drillholes.columns if c not in skip and drillholes[c].dtype.kind in "fiu"]


def _write_vtk(path, ds, grid, density, drillholes) -> list[Path]:
    pv = _require("pyvista", "vtk")
    nx, ny, nz = grid.shape
    x0, y0, z0 = grid.origin
    u = x0 + np.arange(nx + 1) * grid.block_size[0]
    v = y0 + np.arange(ny + 1) * grid.block_size[1]
    w = z0 + np.arange(nz + 1) * grid.block_size[2]
    uu, vv, ww = np.meshgrid(u, v, w, indexing="ij")
    xx, yy = grid.to_world(uu, vv)
    sgrid = pv.StructuredGrid(xx, yy, ww)  # (nx+1, ny+1, nz+1) nodes, x fastest
    names = []
    for domain in (str(d) for d in np.asarray(ds["domain"].values).tolist()):
        arrays = _domain_arrays(ds, domain)
        if density is not None and "density" not in arrays:
            arrays["density"] = np.full((nz, ny, nx), float(density.get(domain, np.nan)))
        if "class" in arrays:
            labels = arrays.pop("class")
            names = names or sorted({str(s) for s in np.unique(labels)} - {""})
            codes = np.zeros(labels.shape, dtype=np.int32)
            for c, label in enumerate(names, start=1):
                codes[labels == label] = c
            arrays["class"] = codes
        for name, values in arrays.items():
            # (z, y, x) C order ravel = x fastest, the VTK cell order
            sgrid.cell_data[f"{domain}:{name}"] = np.ascontiguousarray(values).ravel()
    if names:
        sgrid.field_data["class_names"] = np.array(names, dtype=str)
    sgrid.field_data["estimator_grid"] = np.array([json.dumps(_geometry_metadata(grid, ds, None))])
    written = [path]
    with _atomic_with_suffix(path) as tmp:
        sgrid.save(str(tmp))
    if drillholes is not None and len(drillholes):
        n = len(drillholes)
        pts = np.empty((2 * n, 3))
        pts[0::2] = drillholes[["x_from", "y_from", "z_from"]].to_numpy(dtype=np.float64)
        pts[1::2] = drillholes[["x_to", "y_to", "z_to"]].to_numpy(dtype=np.float64)
        lines = np.column_stack([np.full(n, 2), np.arange(0, 2 * n, 2), np.arange(1, 2 * n, 2)])
        poly = pv.PolyData(pts, lines=lines.ravel())
        for c in _segment_values(drillholes):
            poly.cell_data[c] = drillholes[c].to_numpy(dtype=np.float64)
        poly.cell_data["hole_id"] = drillholes["hole_id"].astype(str).to_numpy()
        holes = path.with_name(f"{path.stem}_drillholes.vtp")
        with _atomic_with_suffix(holes) as tmp:
            poly.save(str(tmp))
        written.append(holes)
    return written


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def _leapfrog_grid_text(grid: BlockGrid, units: str) -> str:
    nx, ny, nz = grid.shape
    return "\n".join([
        "Leapfrog block model import: grid definition (enter in the Grid Definition window)",
        f"units: {units}",
        "base point (minimum corner) X, Y, Z: " + ", ".join(f"{v:.17g}" for v in grid.origin),
        "block size X, Y, Z: " + ", ".join(f"{v:.17g}" for v in grid.block_size),
        f"block count X, Y, Z: {nx}, {ny}, {nz}",
        f"azimuth (degrees clockwise from north, rotation about Z): {grid.rotation:.17g}",
        "centroid columns: X, Y, Z (world); indices I, J, K (0-based)",
        "",
    ])  # fmt: skip


def export_blockmodel(
    ds: xr.Dataset,
    grid: BlockGrid | None,
    fmt: str,
    path: str | Path,
    *,
    profile: str | None = None,
    density: Mapping[str, float] | None = None,
    chunk_blocks: int = CHUNK_BLOCKS,
    overwrite: bool = False,
    composites: pd.DataFrame | None = None,
    drillholes: pd.DataFrame | None = None,
    wireframes: Mapping | None = None,
) -> list[Path]:
    """Write a block model as ``csv``, ``parquet``, ``omf`` or ``vtk`` (see the module notes).

    Parameters
    ----------
    ds : xarray.Dataset
        Block model with dims ``(domain, z, y, x)`` (SPEC section 5); may be lazy.
    grid : BlockGrid or None
        Its geometry; None = from ``ds``'s attributes.
    fmt : {"csv", "parquet", "omf", "vtk"}
    path : path
        Output file.
    profile : {"datamine", "vulcan", "geovia", "surpac", "leapfrog"}, optional
        Vendor column names (csv and parquet).
    density : mapping, optional
        Density per domain (tonnes per cubic data unit).
    chunk_blocks : int
        Grid blocks read per slab (csv, parquet).
    overwrite : bool
        Replace an existing output file.
    composites, drillholes : pandas.DataFrame, optional
        OMF only (drillholes also VTK): composites ``x, y, z, <grades>``; drillhole segments
        ``hole_id, from, to, x_from, y_from, z_from, x_to, y_to, z_to, <grades>``.
    wireframes : mapping, optional
        OMF only: ``{domain: Wireframe}``.

    Returns
    -------
    list of pathlib.Path
        The files written (the main file first).

    Raises
    ------
    DataError
        Unknown format or profile, an output file that exists, a model without the expected
        dims, or a writer that is not installed.
    """
    fmt = _check_format(fmt)
    profile = _check_profile(profile, fmt)
    if tuple(d for d in DIMS if d in ds.dims) != DIMS or "fraction" not in ds.data_vars:
        msg = f"{path}: the block model needs dims {DIMS} and a fraction variable"
        raise DataError(msg)
    if int(chunk_blocks) < 1:
        msg = f"chunk_blocks must be a positive number of blocks, got {chunk_blocks!r}"
        raise DataError(msg)
    grid = grid_from_attrs(ds) if grid is None else grid
    path = Path(path)
    extra = [path.with_name(path.name + ".grid.txt")] if profile == "leapfrog" else []
    if fmt == "vtk" and drillholes is not None and len(drillholes):
        extra.append(path.with_name(f"{path.stem}_drillholes.vtp"))
    for target in (path, *extra):
        _check_target(target, overwrite)
    attrs = {str(n): dict(v.attrs) for n, v in ds.variables.items()}
    if fmt == "csv":
        rows = iter_rows(ds, grid, density=density, chunk_blocks=chunk_blocks)
        _write_csv(path, rows, profile, grid, attrs)
    elif fmt == "parquet":
        _require("pyarrow", fmt)
        rows = iter_rows(ds, grid, density=density, chunk_blocks=chunk_blocks)
        _write_parquet(path, rows, profile, grid, ds)
    elif fmt == "omf":
        _write_omf(path, ds, grid, density, composites, drillholes, wireframes)
    else:
        return _write_vtk(path, ds, grid, density, drillholes)
    if profile == "leapfrog":
        from estimator.io.output import write_text

        write_text(extra[0], _leapfrog_grid_text(grid, str(ds.attrs.get("units", "data units"))))
    return [path, *extra]


def _open_run_model(run: Path, stack: contextlib.ExitStack) -> xr.Dataset:
    from estimator.io.blockstore import STORE_NAME, open_block_model

    if (run / STORE_NAME).is_dir():
        return open_block_model(run / STORE_NAME)
    nc = run / "blockmodel.nc"
    if not nc.is_file():
        msg = f"{run}: no block model in this run folder (neither {STORE_NAME} nor blockmodel.nc)"
        raise DataError(msg)
    try:
        ds = xr.open_dataset(nc, engine="h5netcdf")  # lazy: slabs are read one at a time
    except Exception as err:
        msg = f"{nc}: cannot be read as a block model ({type(err).__name__}: {err})"
        raise DataError(msg) from None
    stack.callback(ds.close)
    return ds


def _run_density(config: Mapping, domains: Sequence[str], where: Path) -> dict[str, float]:
    configured = {
        str(d.get("name")): d.get("density") for d in (config.get("domains") or []) if d
    }
    out = {}
    missing = []
    for name in domains:
        value = configured.get(name)
        if value is None:
            missing.append(name)
            value = 1.0
        out[name] = float(value)
    if missing:
        warnings.warn(
            f"{where}: no density for domain(s) {', '.join(missing)}; exported at 1.0 t per "
            "cubic data unit, as the report counts them",
            EstimationWarning,
            stacklevel=3,
        )
    return out


def _run_drillholes(run: Path, grades: Sequence[str]) -> pd.DataFrame | None:
    from estimator.drillholes.desurvey import desurvey
    from estimator.io.artefacts import load_table

    art = run / "artefacts"
    files = [art / n for n in ("intervals.csv", "collars.csv", "surveys.csv")]
    if not all(f.is_file() for f in files):
        return None
    sidecars = [f.with_name(f.name.replace(".csv", ".csv.dtypes.json")) for f in files]
    intervals, collars, surveys = (
        load_table(f, s if s.is_file() else None) for f, s in zip(files, sidecars, strict=True)
    )
    intervals = intervals[intervals["to"] > intervals["from"]].reset_index(drop=True)
    holes = intervals["hole_id"].astype(str).to_numpy()
    try:
        a = desurvey(collars, surveys, holes, intervals["from"].to_numpy(float))
        b = desurvey(collars, surveys, holes, intervals["to"].to_numpy(float))
    except ValueError as err:
        msg = f"{art}: drillholes cannot be desurveyed for the export ({err})"
        raise DataError(msg) from None
    out = intervals[["hole_id", "from", "to"]].copy()
    out["hole_id"] = out["hole_id"].astype(str)
    for c, col in enumerate("xyz"):
        out[f"{col}_from"], out[f"{col}_to"] = a[:, c], b[:, c]
    for g in grades:
        if g in intervals:
            out[g] = intervals[g].to_numpy(dtype=np.float64)
    return out


def export_name(fmt: str, profile: str | None = None) -> str:
    """The file name an export takes by default: ``blockmodel[_<profile>].<ext>``."""
    fmt = _check_format(fmt)
    key = _check_profile(profile, fmt)
    return f"blockmodel{'_' + key if key else ''}{FORMATS[fmt]}"


def export_run(
    run_dir: str | Path,
    fmt: str,
    *,
    profile: str | None = None,
    out: str | Path | None = None,
    chunk_blocks: int = CHUNK_BLOCKS,
    overwrite: bool = False,
    fallback: str | Path | None = None,
) -> list[Path]:
    """Export the block model of a run folder (see :func:`export_blockmodel`).

    Parameters
    ----------
    run_dir : path
        A run folder (``run.json`` and ``blockmodel.zarr`` or ``blockmodel.nc``).
    fmt : {"csv", "parquet", "omf", "vtk"}
    profile : str, optional
        Vendor profile for csv / parquet.
    out : path, optional
        Output file, or an existing folder to write the default name into. Default:
        ``<run_dir>/exports/blockmodel[_<profile>].<ext>`` (never a run's own file).
    chunk_blocks : int
        Grid blocks per slab (bounded memory for csv and parquet).
    overwrite : bool
        Replace existing output files.
    fallback : path, optional
        Where the run's files that ``run_dir`` lacks are (a run being written reads the block
        model, composites and artefacts it reused from its run folder).

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    from estimator.io.output import read_json

    fmt = _check_format(fmt)
    key = _check_profile(profile, fmt)
    name = export_name(fmt, key)
    run = Path(run_dir)
    if not run.is_dir():
        msg = f"run_dir {run}: no such run folder"
        raise DataError(msg)
    if not (run / "run.json").is_file():
        msg = f"run_dir {run}: not a run folder (run.json missing)"
        raise DataError(msg)
    record = read_json(run / "run.json", what="run record")
    config = record.get("config") or {}
    if out is None:
        target = run / "exports" / name
    else:
        target = Path(out)
        if target.is_dir():
            target = target / name
    _check_target(target, overwrite)  # before any reading (and any warning)
    def where(*rels: str) -> Path:
        """``run``, or ``fallback`` when only it holds one of ``rels``."""
        if fallback is None or any((run / r).exists() for r in rels):
            return run
        return Path(fallback) if any((Path(fallback) / r).exists() for r in rels) else run

    with contextlib.ExitStack() as stack:
        ds = _open_run_model(where("blockmodel.zarr", "blockmodel.nc"), stack)
        domains = [str(d) for d in np.asarray(ds["domain"].values).tolist()]
        density = _run_density(config, domains, run / "run.json")
        composites = drillholes = None
        wireframes = {}
        if fmt in ("omf", "vtk"):
            grades = [str(g) for g in config.get("grades") or []]
            drillholes = _run_drillholes(where("artefacts/intervals.csv"), grades)
        if fmt == "omf":
            rel = (record.get("files") or {}).get("composites", "composites.csv")
            comp = where(rel) / rel
            if comp.is_file():
                composites = pd.read_csv(comp)
            from estimator.io.wireframe import load_wireframe

            for d in config.get("domains") or []:
                if d and d.get("wireframe"):
                    wireframes[str(d["name"])] = load_wireframe(d["wireframe"])
        return export_blockmodel(
            ds,
            grid_from_attrs(ds),
            fmt,
            target,
            profile=key,
            density=density,
            chunk_blocks=chunk_blocks,
            overwrite=overwrite,
            composites=composites,
            drillholes=drillholes,
            wireframes=wireframes,
        )
