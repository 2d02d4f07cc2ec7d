"""Block-model exports (io/exports.py): sparse CSV with vendor profiles, Parquet, OMF, VTK.

Every format is read back with an independent reader (pandas, pyarrow, omf.OMFReader,
pyvista.read) and compared with the block model's values at the right blocks, on a rotated,
asymmetric grid (nx != ny != nz) with sub-unit fractions and distinct values per block.
"""

from __future__ import annotations

import builtins
import json
import re

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.blockmodel.grid import BlockGrid, make_block_model
from estimator.errors import DataError
from estimator.io import exports
from estimator.io.blockstore import StoreLayout, create_store, open_block_model
from estimator.io.exports import export_blockmodel, export_run
from estimator.io.output import write_json, write_netcdf

GRID = BlockGrid((1000.0, 2000.0, 300.0), (2.0, 3.0, 4.0), (5, 4, 3), rotation=30.0)
DOMAINS = ("ore", "halo")
CLASSES = ("measured", "indicated")
DENSITY = {"ore": 2.8, "halo": 2.65}


def _model(seed: int = 0, grid: BlockGrid = GRID, codes: bool = False):
    """A block model with fractions in (0, 1], zeros, NaN estimates and classes."""
    rng = np.random.default_rng(seed)
    ds = make_block_model(grid, DOMAINS, ["au"])
    shape = ds["fraction"].shape
    frac = rng.uniform(0.05, 1.0, shape)
    frac[rng.uniform(size=shape) < 0.35] = 0.0
    ds["fraction"][:] = frac
    au = rng.lognormal(0.0, 1.0, shape)
    au[rng.uniform(size=shape) < 0.2] = np.nan  # inside, not estimated
    ds["au"][:] = np.where(frac > 0, au, np.nan)
    ds["au_kv"][:] = np.where(frac > 0, rng.uniform(0, 2, shape), np.nan)
    ds["au_n"][:] = np.where(frac > 0, rng.integers(1, 20, shape), 0).astype(np.int32)
    ds["au_pass"][:] = np.where(frac > 0, rng.integers(0, 4, shape), -1).astype(np.int32)
    code = np.where(frac > 0, rng.integers(0, 3, shape), 0).astype(np.uint8)
    if codes:
        ds["class"] = (ds["fraction"].dims, code, {"class_names": list(CLASSES)})
    else:
        ds["class"] = (ds["fraction"].dims, np.array(["", *CLASSES])[code])
    ds.attrs["units"] = "m"
    return ds


def _expected(ds, grid=GRID) -> pd.DataFrame:
    """The sparse rows computed independently with pandas (loop over blocks)."""
    rows = []
    frac = ds["fraction"].values
    labels = ds["class"].values
    if labels.dtype.kind in "iu":
        labels = np.array(["", *CLASSES], dtype=object)[labels]
    for k in range(grid.shape[2]):
        for j in range(grid.shape[1]):
            for i in range(grid.shape[0]):
                for d, name in enumerate(DOMAINS):
                    if frac[d, k, j, i] <= 0:
                        continue
                    x, y, z = grid.block_centres([k], [j], [i])[0]
                    rows.append({
                        "i": i, "j": j, "k": k, "x": x, "y": y, "z": z, "domain": name,
                        "fraction": frac[d, k, j, i], "density": DENSITY[name],
                        "class": labels[d, k, j, i], "au": ds["au"].values[d, k, j, i],
                        "au_kv": ds["au_kv"].values[d, k, j, i],
                        "au_n": ds["au_n"].values[d, k, j, i],
                        "au_pass": ds["au_pass"].values[d, k, j, i],
                    })  # fmt: skip
    return pd.DataFrame(rows)


def _read_csv(path, skiprows=None, na=None) -> pd.DataFrame:
    frame = pd.read_csv(
        path, skiprows=skiprows, keep_default_na=False, na_values=na or [""],
        dtype={"class": str, "CLASS": str},
    )  # fmt: skip
    for c in ("class", "CLASS"):
        if c in frame:
            frame[c] = frame[c].fillna("")  # unclassified: an empty label
    return frame


def _compare(got: pd.DataFrame, want: pd.DataFrame, names: dict[str, str]) -> None:
    assert len(got) == len(want)
    for ours, theirs in names.items():
        a, b = got[theirs].to_numpy(), want[ours].to_numpy()
        if b.dtype.kind in "fiu":
            npt.assert_allclose(a.astype(float), b.astype(float), rtol=1e-12, atol=1e-9)
        else:
            assert [str(v) for v in a] == [str(v) for v in b], ours


GENERIC = {c: c for c in ("i", "j", "k", "x", "y", "z", "domain", "fraction", "density",
                          "class", "au", "au_kv", "au_n", "au_pass")}  # fmt: skip


# ---------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("codes", [False, True], ids=["labels", "codes"])
def test_generic_csv_rows_are_the_blocks_inside_a_domain(tmp_path, codes):
    ds = _model(codes=codes)
    out = export_blockmodel(ds, GRID, "csv", tmp_path / "bm.csv", density=DENSITY)
    assert out == [tmp_path / "bm.csv"]
    got = _read_csv(out[0])
    want = _expected(ds)
    assert 0 < len(want) < 2 * GRID.n_blocks  # some blocks are outside both domains
    assert (got["fraction"] < 1).any() and (got["fraction"] > 0).all()
    _compare(got, want, GENERIC)
    npt.assert_array_equal(got[["dx", "dy", "dz"]].to_numpy()[0], GRID.block_size)
    assert got["au"].isna().sum() == np.isnan(want["au"]).sum() > 0  # NaN -> empty field


def test_streaming_slabs_give_the_same_file(tmp_path):
    ds = _model(1)
    one = export_blockmodel(ds, GRID, "csv", tmp_path / "a.csv", density=DENSITY,
                            chunk_blocks=1)[0]  # fmt: skip
    whole = export_blockmodel(ds, GRID, "csv", tmp_path / "b.csv", density=DENSITY,
                              chunk_blocks=10**9)[0]  # fmt: skip
    assert one.read_bytes() == whole.read_bytes()


def test_pandas_writer_without_pyarrow_gives_the_same_values(tmp_path, monkeypatch):
    ds = _model(2)
    real_import = builtins.__import__

    def no_arrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_arrow)
    path = export_blockmodel(ds, GRID, "csv", tmp_path / "p.csv", density=DENSITY)[0]
    monkeypatch.undo()
    _compare(_read_csv(path), _expected(ds), GENERIC)


def test_datamine_profile_ijk_follows_the_technote(tmp_path):
    ds = _model(3)
    got = _read_csv(export_blockmodel(ds, GRID, "csv", tmp_path / "dm.csv", profile="datamine",
                                      density=DENSITY)[0])  # fmt: skip
    want = _expected(ds)
    _, ny, nz = GRID.shape
    # Technote 0007, 1-based: I = INT(IJK/(NY*NZ)) + 1, J = INT((IJK-(I-1)*NY*NZ)/NZ) + 1, ...
    ijk = got["IJK"].to_numpy()
    i1 = ijk // (ny * nz) + 1
    j1 = (ijk - (i1 - 1) * ny * nz) // nz + 1
    k1 = ijk - (i1 - 1) * ny * nz - (j1 - 1) * nz + 1
    npt.assert_array_equal(i1 - 1, want["i"])
    npt.assert_array_equal(j1 - 1, want["j"])
    npt.assert_array_equal(k1 - 1, want["k"])
    # XC in the model's own frame: I = INT((XC - XMORIG)/XINC) + 1
    npt.assert_array_equal(((got["XC"] - got["XMORIG"]) // got["XINC"]).astype(int), want["i"])
    npt.assert_array_equal(((got["YC"] - got["YMORIG"]) // got["YINC"]).astype(int), want["j"])
    npt.assert_array_equal(((got["ZC"] - got["ZMORIG"]) // got["ZINC"]).astype(int), want["k"])
    assert (got[["NX", "NY", "NZ"]].to_numpy() == GRID.shape).all()
    names = {c: c.upper() for c in GENERIC if c not in ("x", "y", "z")}
    _compare(got, want, {**names, "x": "XWORLD", "y": "YWORLD", "z": "ZC"})


def test_datamine_unrotated_xc_is_the_world_centre(tmp_path):
    grid = BlockGrid((0.0, 0.0, 0.0), (10.0, 10.0, 10.0), (4, 3, 3))  # the technote's grid
    ds = _model(4, grid)
    got = _read_csv(export_blockmodel(ds, grid, "csv", tmp_path / "dm.csv", profile="datamine",
                                      density=DENSITY)[0])  # fmt: skip
    want = _expected(ds, grid)
    npt.assert_array_equal(got["XC"], want["x"])
    npt.assert_array_equal(got["IJK"], want["i"] * 9 + want["j"] * 3 + want["k"])
    assert "XWORLD" not in got


@pytest.mark.parametrize(
    ("profile", "first"),
    [
        ("vulcan", ["xcentre", "ycentre", "zcentre", "xlength", "ylength", "zlength", "volume"]),
        ("geovia", ["centroid_x", "centroid_y", "centroid_z", "dim_x", "dim_y", "dim_z",
                    "volume", "density"]),
        ("surpac", ["centroid_x", "centroid_y", "centroid_z", "dim_x", "dim_y", "dim_z",
                    "volume", "density"]),
    ],
    ids=["vulcan", "geovia", "surpac"],
)  # fmt: skip
def test_four_line_header_profiles(tmp_path, profile, first):
    ds = _model(5)
    path = export_blockmodel(ds, GRID, "csv", tmp_path / "v.csv", profile=profile,
                             density=DENSITY)[0]  # fmt: skip
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[: len(first)] == first
    assert header == [h.lower() for h in header]  # Vulcan aborts on upper case
    types = dict(zip(header, lines[2].split(","), strict=True))
    defaults = dict(zip(header, lines[3].split(","), strict=True))
    assert (types["au"], types["au_n"], types["domain"]) == ("double", "integer", "name")
    assert defaults["au"] == "-99"
    got = _read_csv(path, skiprows=[1, 2, 3], na=["-99"])
    want = _expected(ds)
    names = {**GENERIC}
    names.update({"x": first[0], "y": first[1], "z": first[2]})
    _compare(got, want, names)
    npt.assert_allclose(got["volume"], GRID.block_volume)
    assert "-99" in path.read_text()  # missing estimates written as the declared default


def test_leapfrog_profile_and_grid_sidecar(tmp_path):
    ds = _model(6)
    out = export_blockmodel(ds, GRID, "csv", tmp_path / "lf.csv", profile="leapfrog",
                            density=DENSITY)  # fmt: skip
    assert out[1] == tmp_path / "lf.csv.grid.txt"
    got = _read_csv(out[0])
    names = {**GENERIC, "x": "X", "y": "Y", "z": "Z", "i": "I", "j": "J", "k": "K"}
    _compare(got, _expected(ds), names)
    text = out[1].read_text()
    assert "azimuth (degrees clockwise from north, rotation about Z): 30" in text
    assert "block count X, Y, Z: 5, 4, 3" in text


# ---------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------
def test_parquet_values_and_geometry_metadata(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    ds = _model(7, codes=True)
    path = export_blockmodel(ds, GRID, "parquet", tmp_path / "bm.parquet", density=DENSITY,
                             chunk_blocks=40)[0]  # fmt: skip
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"estimator"])
    assert meta["origin"] == list(GRID.origin)
    assert meta["block_size"] == list(GRID.block_size)
    assert meta["shape"] == list(GRID.shape)
    assert meta["rotation"] == 30.0
    assert meta["units"] == "m"
    assert meta["domains"] == list(DOMAINS)
    got = table.to_pandas()
    got["class"] = got["class"].astype(str)
    _compare(got, _expected(ds), GENERIC)
    assert got["au"].isna().sum() > 0


# ---------------------------------------------------------------------------------------
# the chunked store as a source
# ---------------------------------------------------------------------------------------
def test_store_export_equals_in_memory_export(tmp_path):
    ds = _model(8, codes=True)
    layout = StoreLayout(GRID, DOMAINS, ("au",), (2, 3, 1), classes=CLASSES)
    store = create_store(tmp_path / "bm.zarr", layout, "p")
    full = {}
    for name, dtype, fill in layout.variables():
        full[name] = (
            ds[name].values.astype(dtype) if name in ds
            else np.full(ds["fraction"].shape, fill, dtype=dtype)
        )  # fmt: skip
    for index in layout.indices():
        zs, ys, xs = layout.window(index)
        arrays = {n: a[:, zs, ys, xs] for n, a in full.items()}
        store.record_chunk(index, store.write_chunk(index, arrays), {})
    lazy = open_block_model(tmp_path / "bm.zarr")
    a = export_blockmodel(lazy, None, "csv", tmp_path / "a.csv", density=DENSITY,
                          chunk_blocks=25)[0]  # fmt: skip
    got = _read_csv(a)
    _compare(got, _expected(ds), GENERIC)


# ---------------------------------------------------------------------------------------
# OMF and VTK
# ---------------------------------------------------------------------------------------
ASYM = BlockGrid((10.0, 20.0, 30.0), (1.0, 2.0, 3.0), (4, 3, 2), rotation=0.0)


def test_omf_cell_order_on_an_asymmetric_grid(tmp_path):
    omf = pytest.importorskip("omf")
    ds = _model(9, ASYM)
    nx, ny, nz = ASYM.shape
    # a distinct value per block: its own i + 10 j + 100 k
    kk, jj, ii = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    ds["au_kv"][:] = (ii + 10 * jj + 100 * kk)[None].astype(float)
    path = export_blockmodel(ds, ASYM, "omf", tmp_path / "bm.omf", density=DENSITY)[0]
    project = omf.OMFReader(str(path)).get_project()
    elements = {e.name: e for e in project.elements}
    ore = elements["block model ore"]
    geom = ore.geometry
    npt.assert_array_equal(geom.origin, ASYM.origin)
    assert (len(geom.tensor_u), len(geom.tensor_v), len(geom.tensor_w)) == (nx, ny, nz)
    data = {d.name: np.asarray(d.array.array) for d in ore.data}
    # OMF v1 order (omfvista): reshape (nu, nv, nw) in C order
    code = data["au_kv"].reshape(nx, ny, nz)
    for i, j, k in [(0, 0, 0), (3, 0, 0), (0, 2, 0), (0, 0, 1), (3, 2, 1), (1, 2, 0)]:
        assert code[i, j, k] == i + 10 * j + 100 * k
    npt.assert_array_equal(
        data["fraction"].reshape(nx, ny, nz), ds["fraction"].sel(domain="ore").values.T
    )
    npt.assert_allclose(data["density"], DENSITY["ore"])
    halo = {d.name: d for d in elements["block model halo"].data}
    labels = np.array(halo["class"].array.array, dtype=object).reshape(nx, ny, nz)
    npt.assert_array_equal(labels, ds["class"].sel(domain="halo").values.T)


def test_omf_axes_follow_the_rotation(tmp_path):
    omf = pytest.importorskip("omf")
    ds = _model(10)
    path = export_blockmodel(ds, GRID, "omf", tmp_path / "r.omf")[0]
    geom = next(iter(omf.OMFReader(str(path)).get_project().elements)).geometry
    # the centre of block (i, j, k) = origin + (i+.5) du axis_u + (j+.5) dv axis_v + ...
    i, j, k = 4, 1, 2
    centre = (
        np.asarray(geom.origin)
        + (i + 0.5) * GRID.block_size[0] * np.asarray(geom.axis_u)
        + (j + 0.5) * GRID.block_size[1] * np.asarray(geom.axis_v)
        + (k + 0.5) * GRID.block_size[2] * np.asarray(geom.axis_w)
    )
    npt.assert_allclose(centre, GRID.block_centres([k], [j], [i])[0], rtol=1e-12)


def test_vtk_cells_and_rotated_points(tmp_path):
    pv = pytest.importorskip("pyvista")
    ds = _model(11)
    path = export_blockmodel(ds, GRID, "vtk", tmp_path / "bm.vts", density=DENSITY)[0]
    mesh = pv.read(path)
    nx, ny, nz = GRID.shape
    assert mesh.n_cells == nx * ny * nz
    npt.assert_array_equal(mesh.cell_data["ore:fraction"], ds["fraction"][0].values.ravel())
    npt.assert_array_equal(mesh.cell_data["halo:au_n"], ds["au_n"][1].values.ravel())
    npt.assert_allclose(mesh.cell_data["ore:density"], DENSITY["ore"])
    names = list(mesh.field_data["class_names"])
    codes = mesh.cell_data["halo:class"]
    labels = np.array(["", *names], dtype=object)[codes]
    npt.assert_array_equal(labels, ds["class"][1].values.ravel())
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in (nz, ny, nx)), indexing="ij")
    want = GRID.block_centres(kk.ravel(), jj.ravel(), ii.ravel())
    npt.assert_allclose(mesh.cell_centers().points, want, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# run folders and errors
# ---------------------------------------------------------------------------------------
def _run_folder(tmp_path):
    """A small hand-made run folder: run.json, blockmodel.nc, composites, drillholes, wireframe."""
    from estimator.io.artefacts import save_table
    from estimator.io.wireframe import write_obj

    run = tmp_path / "run"
    (run / "artefacts").mkdir(parents=True)
    ds = _model(12)
    write_netcdf(run / "blockmodel.nc", ds)
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float) * 10 + 1000
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    write_obj(run / "ore.obj", v, f)
    config = {
        "grades": ["au"],
        "domains": [
            {"name": "ore", "density": 2.8, "wireframe": str(run / "ore.obj")},
            {"name": "halo", "density": None, "wireframe": None},
        ],
    }
    write_json(run / "run.json", {"config": config, "files": {"composites": "composites.csv"}})
    pd.DataFrame({"hole_id": ["h1", "h1"], "from": [0.0, 2.0], "to": [2.0, 4.0],
                  "x": [1.0, 1.0], "y": [2.0, 2.0], "z": [99.0, 97.0], "domain": ["ore", "ore"],
                  "au": [1.5, 2.5]}).to_csv(run / "composites.csv", index=False)  # fmt: skip
    save_table(run / "artefacts" / "collars.csv",
               pd.DataFrame({"hole_id": ["h1"], "x": [1.0], "y": [2.0], "z": [100.0]}),
               run / "artefacts" / "collars.csv.dtypes.json")  # fmt: skip
    save_table(run / "artefacts" / "surveys.csv",
               pd.DataFrame({"hole_id": ["h1"], "depth": [0.0], "azimuth": [0.0],
                             "dip": [-90.0]}),
               run / "artefacts" / "surveys.csv.dtypes.json")  # fmt: skip
    save_table(run / "artefacts" / "intervals.csv",
               pd.DataFrame({"hole_id": ["h1", "h1"], "from": [0.0, 3.0], "to": [3.0, 5.0],
                             "au": [1.0, np.nan], "x": [1.0, 1.0], "y": [2.0, 2.0],
                             "z": [98.5, 96.0]}),
               run / "artefacts" / "intervals.csv.dtypes.json")  # fmt: skip
    return run, ds


def test_export_run_csv_and_density_warning(tmp_path):
    run, _ = _run_folder(tmp_path)
    with pytest.warns(UserWarning, match=r"no density for domain\(s\) halo"):
        out = export_run(run, "csv", profile="datamine")
    assert out == [run / "exports" / "blockmodel_datamine.csv"]
    got = _read_csv(out[0])
    assert set(got.loc[got["DOMAIN"] == "halo", "DENSITY"]) == {1.0}
    assert set(got.loc[got["DOMAIN"] == "ore", "DENSITY"]) == {2.8}
    with pytest.raises(DataError, match=r"exists: not replaced; choose another output path"):
        export_run(run, "csv", profile="datamine")
    with pytest.warns(UserWarning, match="no density"):
        again = export_run(run, "csv", profile="datamine", overwrite=True)
    assert again == out


def test_export_run_omf_holds_composites_drillholes_wireframes(tmp_path):
    omf = pytest.importorskip("omf")
    run, _ = _run_folder(tmp_path)
    target = tmp_path / "out.omf"
    with pytest.warns(UserWarning, match="no density"):
        out = export_run(run, "omf", out=target)
    elements = {e.name: e for e in omf.OMFReader(str(out[0])).get_project().elements}
    assert set(elements) >= {"block model ore", "composites", "drillholes", "wireframe ore"}
    holes = elements["drillholes"]
    v = np.asarray(holes.geometry.vertices.array)
    seg = np.asarray(holes.geometry.segments.array)
    # vertical hole from (1, 2, 100): interval 3-5 m runs from z 97 to 95
    npt.assert_allclose(v[seg[1]], [[1, 2, 97], [1, 2, 95]], atol=1e-9)
    au = next(d for d in holes.data if d.name == "au")
    npt.assert_array_equal(np.asarray(au.array.array), [1.0, np.nan])
    comp = elements["composites"]
    npt.assert_array_equal(np.asarray(comp.geometry.vertices.array)[:, 2], [99, 97])
    assert len(elements["wireframe ore"].geometry.triangles.array) == 4


def test_export_run_vtk_writes_drillhole_lines(tmp_path):
    pv = pytest.importorskip("pyvista")
    run, _ = _run_folder(tmp_path)
    with pytest.warns(UserWarning, match="no density"):
        out = export_run(run, "vtk", out=tmp_path)
    assert [p.name for p in out] == ["blockmodel.vts", "blockmodel_drillholes.vtp"]
    lines = pv.read(out[1])
    assert lines.n_cells == 2
    npt.assert_allclose(lines.points[:2], [[1, 2, 100], [1, 2, 97]], atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "xlsx"}, "export format 'xlsx' is not known: expected one of csv, parquet"),
        ({"fmt": "csv", "profile": "micromine"}, "export profile 'micromine' is not known"),
        ({"fmt": "omf", "profile": "vulcan"}, "applies to csv and parquet only, not to 'omf'"),
    ],
    ids=["format", "profile", "profile-format"],
)
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=re.escape(message)):
        export_blockmodel(_model(), GRID, path=tmp_path / "x", **kwargs)
    assert not list(tmp_path.iterdir())


def test_missing_run_folder_and_block_model(tmp_path):
    with pytest.raises(DataError, match="no such run folder"):
        export_run(tmp_path / "nope", "csv")
    write_json(tmp_path / "run.json", {"config": {}})
    with pytest.raises(DataError, match="no block model in this run folder"):
        export_run(tmp_path, "csv")


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    import importlib

    original = importlib.import_module

    def fake(name, *args, **kwargs):
        if name == "omf":
            raise ImportError(name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(DataError, match=re.escape("pip install 'estimator[exports]'")):
        export_blockmodel(_model(), GRID, "omf", tmp_path / "x.omf")
    assert not (tmp_path / "x.omf").exists()


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    ds = _model(13)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(exports, "_profile_columns", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        export_blockmodel(ds, GRID, "csv", tmp_path / "bm.csv")
    assert list(tmp_path.iterdir()) == []
