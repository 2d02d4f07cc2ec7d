"""The chunked block-model store (io/blockstore.py): layout, fill values, hashes, records,
reading it back with xarray, NetCDF conversion."""

from __future__ import annotations

import json

import numpy as np
import numpy.testing as npt
import pytest
import xarray as xr

from estimator.blockmodel.grid import GRADE_VARIABLES, PROVENANCE_VARIABLES, BlockGrid
from estimator.errors import DataError
from estimator.io.blockstore import (
    PLAN_ATTR,
    RECORDS,
    BlockStore,
    StoreLayout,
    chunk_sha256,
    create_store,
    decode_classes,
    iter_chunks,
    model_arrays,
    open_block_model,
    open_store,
    store_digest,
    to_netcdf,
    verify_store,
)
from estimator.reporting import grade_tonnage
from test_chunked import case_wireframes, make_plan, read_model, reference, run_store

GRID = BlockGrid((100.0, 200.0, 0.0), (5.0, 4.0, 2.0), (7, 5, 3), rotation=30.0)
LAYOUT = StoreLayout(
    GRID, ("ore", "waste"), ("au",), (3, 2, 2), classes=("measured", "indicated"),
    length_unit="m", grade_unit="g/t", tranches=("2011-06-28", "phase 2"),
)  # fmt: skip


def _chunk(layout, index, rng):
    """Random arrays of a chunk with the layout's names, dtypes and shape."""
    shape = layout.chunk_shape(index)
    out = {}
    for name, dtype, _ in layout.variables():
        if dtype.kind == "f":
            a = rng.uniform(0, 3, shape)
            a[rng.uniform(size=shape) < 0.2] = np.nan
            out[name] = a
        else:
            out[name] = rng.integers(-1, 3, shape).astype(dtype)
    out["fraction"] = np.where(np.isnan(out["fraction"]), 0.0, out["fraction"] / 3)
    return out


def test_layout_chunks_cover_the_grid_once():
    assert LAYOUT.n_chunks == (2, 3, 3)
    covered = np.zeros((3, 5, 7), int)
    for index in LAYOUT.indices():
        covered[LAYOUT.window(index)] += 1
    assert (covered == 1).all()
    assert LAYOUT.indices()[:2] == [(0, 0, 0), (0, 0, 1)]  # z slowest, x fastest
    assert LAYOUT.chunk_shape((1, 2, 2)) == (2, 1, 1, 1)
    with pytest.raises(IndexError, match="outside the grid"):
        LAYOUT.window((2, 0, 0))
    assert StoreLayout.from_json(LAYOUT.to_json()) == LAYOUT
    names = [v[0] for v in LAYOUT.variables()]
    assert names == [
        "fraction", *[f"au{s}" for s in GRADE_VARIABLES],
        "au_latest_tranche", "au_newest_n", "au_newest_weight", "class",
    ]  # fmt: skip
    assert list(PROVENANCE_VARIABLES) == ["_latest_tranche", "_newest_n", "_newest_weight"]
    assert LAYOUT.to_json()["tranches"] == ["2011-06-28", "phase 2"]
    with pytest.raises(ValueError, match=r"300 tranches; the block model records at most 255"):
        StoreLayout(GRID, ("ore",), ("au",), (3, 2, 2), tranches=[f"t{k}" for k in range(300)])


def test_hash_ignores_nan_payloads_and_sees_every_change():
    rng = np.random.default_rng(0)
    arrays = _chunk(LAYOUT, (0, 0, 0), rng)
    names = [v[0] for v in LAYOUT.variables()]
    sha = chunk_sha256(arrays, names)
    other_nan = {k: v.copy() for k, v in arrays.items()}
    bits = other_nan["au"].view(np.uint64)
    bits[np.isnan(other_nan["au"])] |= np.uint64(1 << 63)  # negative NaNs
    assert chunk_sha256(other_nan, names) == sha
    changed = {k: v.copy() for k, v in arrays.items()}
    changed["au_n"].flat[5] += 1
    assert chunk_sha256(changed, names) != sha
    assert chunk_sha256(arrays, names[::-1]) != sha


def test_write_read_and_fill_values(tmp_path):
    rng = np.random.default_rng(1)
    store = create_store(tmp_path / "bm.zarr", LAYOUT, "p1")
    arrays = _chunk(LAYOUT, (1, 1, 2), rng)
    sha = store.write_chunk((1, 1, 2), arrays)
    back = store.read_chunk((1, 1, 2))
    for name, a in arrays.items():
        npt.assert_array_equal(back[name], a, strict=True)
    assert store.chunk_hash((1, 1, 2)) == sha
    # a chunk never written reads as outside every domain
    empty = store.read_chunk((0, 0, 0))
    expected = LAYOUT.empty_chunk((0, 0, 0))
    for name, a in expected.items():
        npt.assert_array_equal(empty[name], a, strict=True)
    assert (empty["au_pass"] == -1).all() and (empty["fraction"] == 0).all()
    assert np.isnan(empty["au"]).all() and (empty["class"] == 0).all()
    # and takes no disk space; writing fill values removes what was there
    assert not list((tmp_path / "bm.zarr" / "au" / "c").rglob("0/0/0/0"))
    store.write_chunk((1, 1, 2), LAYOUT.empty_chunk((1, 1, 2)))
    assert not [p for p in (tmp_path / "bm.zarr" / "au").rglob("*") if p.is_file()
                and p.name != "zarr.json"]  # fmt: skip
    with pytest.raises(ValueError, match="expected shape"):
        store.write_chunk((0, 0, 0), arrays)


def test_opens_with_xarray_as_the_spec_dataset(tmp_path):
    rng = np.random.default_rng(2)
    store = create_store(tmp_path / "bm.zarr", LAYOUT, "p1", attrs={"run_name": "t"})
    for index in LAYOUT.indices()[:3]:
        store.write_chunk(index, _chunk(LAYOUT, index, rng))
    ds = xr.open_zarr(tmp_path / "bm.zarr")
    assert dict(ds.sizes) == {"domain": 2, "z": 3, "y": 5, "x": 7}
    assert ds["au"].dims == ("domain", "z", "y", "x")
    assert {"x_world", "y_world"} <= set(ds.coords)
    npt.assert_array_equal(ds["x"].values, GRID.centres_local()[0])
    npt.assert_array_equal(ds["x_world"].values, GRID.centres_world_2d()[0])
    assert ds.attrs["origin"] == [100.0, 200.0, 0.0] and ds.attrs["rotation"] == 30.0
    assert ds.attrs["units"] == "m" and ds.attrs["run_name"] == "t"
    assert ds["au"].attrs["units"] == "g/t"
    assert ds["au_pass"].dtype == np.int32  # integers are not masked into floats
    assert ds["au"].chunks == ((1, 1), (2, 1), (2, 2, 1), (3, 3, 1))
    model = open_block_model(tmp_path / "bm.zarr")
    assert model["domain"].values.tolist() == ["ore", "waste"]
    assert "estimator_store" not in model.attrs
    assert model.chunks["y"] == (2, 2, 1)  # coordinates chunked like the variables


def test_store_refuses_a_foreign_folder_and_replaces_another_plan(tmp_path):
    foreign = tmp_path / "bm.zarr"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not an estimator block-model store"):
        create_store(foreign, LAYOUT, "p1")
    assert (foreign / "notes.txt").exists()
    path = tmp_path / "other.zarr"
    first = create_store(path, LAYOUT, "p1")
    first.write_chunk((0, 0, 0), _chunk(LAYOUT, (0, 0, 0), np.random.default_rng(3)))
    first.record_chunk((0, 0, 0), first.chunk_hash((0, 0, 0)), {"n": 1})
    again, reused = open_store(path, LAYOUT, "p1")
    assert reused and again.verified_record((0, 0, 0))["summary"] == {"n": 1}
    fresh, reused = open_store(path, LAYOUT, "p2")
    assert not reused and fresh.recorded() == []
    assert np.isnan(fresh.read_chunk((0, 0, 0))["au"]).all()
    coarser = StoreLayout(GRID, ("ore", "waste"), ("au",), (7, 5, 3))
    _, reused = open_store(path, coarser, "p2")
    assert not reused  # same plan id, other layout: never mixed


def test_records_detect_changed_missing_and_foreign_chunks(tmp_path):
    rng = np.random.default_rng(4)
    store = create_store(tmp_path / "bm.zarr", LAYOUT, "p1")
    for index in LAYOUT.indices()[:4]:
        store.record_chunk(index, store.write_chunk(index, _chunk(LAYOUT, index, rng)), {})
    assert store.recorded() == LAYOUT.indices()[:4]
    assert verify_store(tmp_path / "bm.zarr") == []
    digest = store_digest(tmp_path / "bm.zarr")
    store.set_attrs({"run_name": "x"})
    assert store_digest(tmp_path / "bm.zarr") != digest  # metadata count
    digest = store_digest(tmp_path / "bm.zarr")
    # bytes changed in one Zarr chunk file
    victim = tmp_path / "bm.zarr" / "au_kv" / "c" / "1" / "0" / "0" / "1"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    # a chunk file removed
    (tmp_path / "bm.zarr" / "fraction" / "c" / "0" / "0" / "0" / "2").unlink()
    # a record of another plan
    rec = tmp_path / "bm.zarr" / RECORDS / "z0_y1_x0.json"
    data = json.loads(rec.read_text())
    rec.write_text(json.dumps(data | {"plan_id": "elsewhere"}))
    assert store_digest(tmp_path / "bm.zarr") != digest  # records count; chunk bytes do not
    assert verify_store(tmp_path / "bm.zarr") == [(0, 0, 1), (0, 0, 2), (0, 1, 0)]
    assert store.verified_record((0, 0, 0)) is not None
    assert store.verified_record((0, 0, 1)) is None
    store.clear_record((0, 0, 1))
    assert (0, 0, 1) not in store.recorded()


def test_iter_chunks_reads_one_chunk_at_a_time(tmp_path):
    rng = np.random.default_rng(5)
    store = create_store(tmp_path / "bm.zarr", LAYOUT, "p1")
    written = {}
    for index in (LAYOUT.indices()[4], LAYOUT.indices()[1]):
        written[index] = _chunk(LAYOUT, index, rng)
        store.record_chunk(index, store.write_chunk(index, written[index]), {})
    chunks = list(iter_chunks(tmp_path / "bm.zarr", ["fraction", "au", "class"]))
    assert len(chunks) == 2
    first = chunks[0]  # fixed chunk order: index 1 before index 4
    npt.assert_array_equal(first["au"].values, written[LAYOUT.indices()[1]]["au"])
    xs = LAYOUT.window(LAYOUT.indices()[1])[2]
    npt.assert_array_equal(first["x"].values, GRID.centres_local()[0][xs])
    assert first["class"].attrs["class_names"] == ["measured", "indicated"]


@pytest.fixture(scope="module")
def estimated(tmp_path_factory):
    case = case_wireframes()
    ref, _ = reference(case)
    path = tmp_path_factory.mktemp("store") / "blockmodel.zarr"
    run_store(make_plan(case), path)
    return case, ref, path


def test_class_codes_decode_to_the_in_memory_labels(estimated):
    _, ref, path = estimated
    lazy = open_block_model(path)
    codes = lazy["class"]
    assert codes.dtype == np.uint8
    assert codes.attrs["flag_values"] == [0, 1, 2, 3]
    assert codes.attrs["flag_meanings"] == "unclassified measured indicated inferred"
    decoded = decode_classes(lazy.compute())
    npt.assert_array_equal(decoded["class"].values, ref["class"].values)
    assert decoded["class"].attrs == ref["class"].attrs
    # the grade-tonnage table reads the codes as it reads the labels
    dens = {"main": 2.9, "west": 2.7, "far": 2.5}
    a = grade_tonnage(lazy.compute(), "pd", [0, 1, 2], dens, 500.0)
    b = grade_tonnage(ref, "pd", [0, 1, 2], dens, 500.0)
    assert a.equals(b)
    assert set(a["class"]) == {"all", "measured", "indicated", "inferred"}


def test_netcdf_conversion_round_trips(estimated, tmp_path):
    _, ref, path = estimated
    written = to_netcdf(path, tmp_path / "blockmodel.nc")
    with xr.open_dataset(tmp_path / "blockmodel.nc", engine="h5netcdf") as back:
        back = back.load()
    for name in written.variables:  # the Dataset returned is the one in the file
        npt.assert_array_equal(written[name].values, back[name].values, err_msg=name)
    stored = read_model(path)
    provenance = {f"{g}{s}" for g in ("pd", "pt") for s in PROVENANCE_VARIABLES}
    assert set(back.variables) == set(ref.variables) | provenance
    for name in ref.variables:
        npt.assert_array_equal(back[name].values, ref[name].values, err_msg=name)
        npt.assert_array_equal(back[name].values, stored[name].values, err_msg=name)
        assert _plain(back[name].attrs) == _plain(ref[name].attrs), name
    for name in provenance:  # the provenance variables are carried, codes and attributes
        npt.assert_array_equal(back[name].values, stored[name].values, err_msg=name, strict=True)
        # (NetCDF gives a one-element list attribute back as a scalar)
        assert _plain(back[name].attrs, 1) == _plain(stored[name].attrs, 1), name
    assert np.atleast_1d(back["pd_latest_tranche"].attrs["tranche_names"]).tolist() == ["s"]
    assert back["pd_latest_tranche"].attrs["flag_meanings"] == "none s"
    assert (back["pd_newest_n"].values == back["pd_n"].values * (back["pd_pass"] > 0)).all()
    assert _plain({k: v for k, v in back.attrs.items() if k != PLAN_ATTR}) == _plain(ref.attrs)
    assert back.attrs[PLAN_ATTR] == stored.attrs[PLAN_ATTR]


def test_model_arrays_read_a_netcdf_back_as_stored(estimated, tmp_path):
    case, _, path = estimated
    layout = make_plan(case).layout()
    store = BlockStore(path, layout, "")
    to_netcdf(path, tmp_path / "blockmodel.nc")
    with xr.open_dataset(tmp_path / "blockmodel.nc", engine="h5netcdf") as back:
        back = back.load()
    arrays = model_arrays(back, layout)
    window = (slice(0, 6), slice(0, 12), slice(0, 16))
    for name, values in store.read_window(window).items():
        npt.assert_array_equal(arrays[name], values, err_msg=name, strict=True)
    with pytest.raises(DataError, match=r"blockmodel\.nc: no variable pd_newest_n"):
        model_arrays(back.drop_vars("pd_newest_n"), layout, "blockmodel.nc")
    relabelled = back.assign({"class": back["class"].where(back["class"] != "measured", "M")})
    with pytest.raises(DataError, match=r"class labels \['M'\] are not classes of this run"):
        model_arrays(relabelled, layout)
    with pytest.raises(DataError, match=r"domains \['main', 'far', 'west'\], expected"):
        model_arrays(back.isel(domain=[0, 2, 1]), layout)


def _plain(attrs, ndmin=0):
    """NetCDF gives list attributes back as arrays."""
    return {k: np.array(v, ndmin=ndmin).tolist() for k, v in attrs.items()}


def test_copy_chunk_copies_files_between_stores_of_one_format(tmp_path):
    rng = np.random.default_rng(6)
    source = create_store(tmp_path / "a.zarr", LAYOUT, "p1")
    arrays = _chunk(LAYOUT, (1, 1, 1), rng)
    sha = source.write_chunk((1, 1, 1), arrays)
    other = LAYOUT.__class__(**{**LAYOUT.__dict__, "grade_unit": "ppm"})  # attributes only
    target = create_store(tmp_path / "b.zarr", other, "p2")
    target.write_chunk((1, 1, 1), _chunk(LAYOUT, (1, 1, 1), rng))  # other numbers there
    arrays["au"][:] = np.nan  # a variable whose chunk is all fill in the source ...
    sha = source.write_chunk((1, 1, 1), arrays)
    assert target.copy_chunk(source, (1, 1, 1))
    assert target.chunk_hash((1, 1, 1)) == sha  # ... is removed from the target
    for name, a in target.read_chunk((1, 1, 1)).items():
        npt.assert_array_equal(a, arrays[name], err_msg=name, strict=True)
    # then only the variables named are written; the hash covers all
    arrays["au_newest_n"][:] = 7
    assert target.write_chunk((1, 1, 1), arrays, names=["au_newest_n"]) == chunk_sha256(
        arrays, [v[0] for v in LAYOUT.variables()])  # fmt: skip
    assert target.chunk_hash((1, 1, 1)) == target.write_chunk((1, 1, 1), arrays)
    coarser = create_store(tmp_path / "c.zarr", StoreLayout(
        GRID, ("ore", "waste"), ("au",), (7, 5, 3), classes=("measured", "indicated"),
        tranches=LAYOUT.tranches), "p3")  # fmt: skip
    assert not coarser.copy_chunk(source, (0, 0, 0))  # other chunks: nothing copied
