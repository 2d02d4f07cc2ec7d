"""Tests for estimator.reporting: grade-tonnage against hand computations."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.blockmodel.grid import BlockGrid, make_block_model
from estimator.reporting import (
    COLUMNS,
    GRAMS_PER_TROY_OUNCE,
    chunk_windows,
    grade_tonnage,
    grade_tonnage_chunked,
    metal_factor_for,
    plot_grade_tonnage,
    report_stage,
)

GRID = BlockGrid((0.0, 0.0, 0.0), (10.0, 10.0, 10.0), (2, 2, 1))  # block volume 1000


@pytest.fixture
def tiny():
    """Two domains of four blocks each (x fastest): fractions, grades and classes by hand."""
    ds = make_block_model(GRID, ["a", "b"], ["au"])
    ds["fraction"].values[0, 0] = [[1.0, 0.5], [0.25, 0.0]]
    ds["au"].values[0, 0] = [
        [1.0, 2.0],
        [np.nan, 5.0],
    ]  # NaN not estimated; 5.0 outside (fraction 0)
    ds["fraction"].values[1, 0] = [[1.0, 1.0], [1.0, 1.0]]
    ds["au"].values[1, 0] = [[0.5, 3.0], [4.0, 1.5]]
    return ds


def _row(table, domain, cutoff, klass="all"):
    sel = (table["domain"] == domain) & (table["cutoff"] == cutoff) & (table["class"] == klass)
    assert sel.sum() == 1
    return table[sel].iloc[0]


def test_grade_tonnage_by_hand(tiny):
    table = grade_tonnage(tiny, "au", [0.0, 1.5, 10.0], {"a": 2.5, "b": 3.0}, GRID.block_volume)
    assert list(table.columns) == COLUMNS
    assert len(table) == 6
    assert set(table["class"]) == {"all"}
    # Domain a: block 0 (1000 x 1 x 2.5 = 2500 t at 1.0), block 1 (1250 t at 2.0).
    r = _row(table, "a", 0.0)
    npt.assert_allclose(r["tonnes"], 3750.0, rtol=1e-12)
    npt.assert_allclose(r["grade"], 5000.0 / 3750.0, rtol=1e-12)
    npt.assert_allclose(r["metal"], 5000.0 / GRAMS_PER_TROY_OUNCE, rtol=1e-12)
    r = _row(table, "a", 1.5)
    npt.assert_allclose([r["tonnes"], r["grade"]], [1250.0, 2.0], rtol=1e-12)
    r = _row(table, "a", 10.0)
    assert r["tonnes"] == 0.0
    assert np.isnan(r["grade"])
    assert r["metal"] == 0.0
    # Domain b: four whole blocks at 3000 t each.
    r = _row(table, "b", 0.0)
    npt.assert_allclose([r["tonnes"], r["grade"]], [12000.0, 9.0 / 4], rtol=1e-12)
    r = _row(table, "b", 1.5)  # 3.0, 4.0 and 1.5 (at the cut-off counts)
    npt.assert_allclose([r["tonnes"], r["grade"]], [9000.0, 8.5 / 3], rtol=1e-12)


def test_cutoff_is_inclusive(tiny):
    table = grade_tonnage(tiny, "au", [2.0], 1.0, 1000.0)
    npt.assert_allclose(_row(table, "a", 2.0)["tonnes"], 500.0)


def test_density_forms_agree(tiny):
    ds = tiny.copy(deep=True)
    ds["density"] = (("domain", "z", "y", "x"), np.full(ds["fraction"].shape, 2.7))
    by_value = grade_tonnage(ds, "au", [0, 1], 2.7, 1000.0)
    by_dict = grade_tonnage(ds, "au", [0, 1], {"a": 2.7, "b": 2.7}, 1000.0)
    by_var = grade_tonnage(ds, "au", [0, 1], "density", 1000.0)
    pd.testing.assert_frame_equal(by_value, by_dict)
    pd.testing.assert_frame_equal(by_value, by_var)


def test_density_variable_varies_by_block(tiny):
    ds = tiny.copy(deep=True)
    ds["density"] = (("z", "y", "x"), np.array([[[2.0, 4.0], [1.0, 1.0]]]))
    r = _row(grade_tonnage(ds, "au", [0.0], "density", 1000.0), "a", 0.0)
    # 1000 x 1.0 x 2.0 = 2000 t at 1.0; 1000 x 0.5 x 4.0 = 2000 t at 2.0.
    npt.assert_allclose([r["tonnes"], r["grade"]], [4000.0, 1.5], rtol=1e-12)


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("g/t", 1 / GRAMS_PER_TROY_OUNCE),
        ("ppm", 1 / GRAMS_PER_TROY_OUNCE),
        ("%", 0.01),
        ("lb/t", 1.0),
        (None, 1.0),
    ],
)
def test_metal_units(tiny, unit, factor):
    assert metal_factor_for(unit)[0] == factor
    r = _row(grade_tonnage(tiny, "au", [0.0], 1.0, 1000.0, grade_unit=unit), "b", 0.0)
    npt.assert_allclose(r["metal"], 4000.0 * 9.0 / 4 * factor, rtol=1e-12)


def test_metal_factor_overrides_unit(tiny):
    r = _row(
        grade_tonnage(tiny, "au", [0.0], 1.0, 1000.0, metal_factor=2.0, grade_unit="g/t"), "b", 0.0
    )
    npt.assert_allclose(r["metal"], 2.0 * 9000.0, rtol=1e-12)


def test_classes(tiny):
    ds = tiny.copy(deep=True)
    labels = np.array(
        [
            [[["measured", "indicated"], ["", "inferred"]]],
            [[["indicated", "indicated"], ["inferred", ""]]],
        ]
    )
    ds["class"] = (("domain", "z", "y", "x"), labels.astype(object))
    table = grade_tonnage(ds, "au", [0.0, 2.0], 1.0, 1000.0)
    assert list(table["class"].unique()) == ["all", "indicated", "inferred", "measured"]
    npt.assert_allclose(_row(table, "a", 0.0, "measured")["tonnes"], 1000.0)
    npt.assert_allclose(_row(table, "a", 0.0, "indicated")["tonnes"], 500.0)
    assert _row(table, "a", 0.0, "inferred")["tonnes"] == 0.0  # its only block has fraction 0
    r = _row(table, "b", 0.0, "indicated")
    npt.assert_allclose([r["tonnes"], r["grade"]], [2000.0, 1.75], rtol=1e-12)
    r = _row(table, "b", 2.0, "inferred")
    npt.assert_allclose([r["tonnes"], r["grade"]], [1000.0, 4.0], rtol=1e-12)
    # Classes sum to "all" where every estimated block is classified.
    per_class = table[
        (table["domain"] == "b") & (table["class"] != "all") & (table["cutoff"] == 0.0)
    ]
    npt.assert_allclose(
        per_class["tonnes"].sum(), 3000.0
    )  # the unclassified block (1.5) is only in all
    # Explicit order, including a class with no blocks; numeric codes through a mapping.
    ordered = grade_tonnage(
        ds, "au", [0.0], 1.0, 1000.0, classes=["measured", "indicated", "inferred", "x"]
    )
    assert list(ordered["class"].unique()) == ["all", "measured", "indicated", "inferred", "x"]
    codes = np.where(labels == "indicated", 2.0, np.where(labels == "inferred", 3.0, np.nan))
    ds["class"] = (("domain", "z", "y", "x"), codes)
    coded = grade_tonnage(ds, "au", [0.0], 1.0, 1000.0, classes={2: "indicated", 3: "inferred"})
    npt.assert_allclose(_row(coded, "b", 0.0, "indicated")["tonnes"], 2000.0)


def test_unknown_grade_is_an_error(tiny):
    with pytest.raises(KeyError, match="grade 'pd' is not in the block model"):
        grade_tonnage(tiny, "pd", [0.0], 1.0, 1000.0)
    with pytest.raises(KeyError, match="no density for domain 'b'"):
        grade_tonnage(tiny, "au", [0.0], {"a": 1.0}, 1000.0)


def test_plot_grade_tonnage(tiny):
    table = grade_tonnage(tiny, "au", [0.0, 1.0, 2.0, 3.0], {"a": 2.5, "b": 3.0}, 1000.0)
    fig = plot_grade_tonnage(table)
    axes = fig.get_axes()
    assert len(axes) == 2  # tonnes and grade on twin axes
    assert len(axes[0].get_lines()) == 2
    assert len(axes[1].get_lines()) == 2
    npt.assert_allclose(axes[0].get_lines()[0].get_ydata(), table[table["domain"] == "a"]["tonnes"])


def test_report_stage(tiny):
    cfg = SimpleNamespace(
        name="demo",
        grades=["au"],
        report=SimpleNamespace(cutoffs=[0.0, 1.5], grade=None),
        data=SimpleNamespace(grade_unit="g/t"),
        classification=None,
        domain=lambda name: SimpleNamespace(density={"a": 2.5, "b": 3.0}[name]),
    )
    table, fig = report_stage(cfg, tiny)
    expected = grade_tonnage(tiny, "au", [0.0, 1.5], {"a": 2.5, "b": 3.0}, 1000.0, grade_unit="g/t")
    body = table[table["domain"] != "total"].reset_index(drop=True)
    pd.testing.assert_frame_equal(body[COLUMNS], expected)
    assert fig is not None
    # units on every row; a total row per cut-off sums the domains
    assert set(table["tonnes_unit"]) == {"t"}
    assert set(table["grade_unit"]) == {"g/t"}
    assert set(table["metal_unit"]) == {"oz"}
    total = table[table["domain"] == "total"].set_index("cutoff")
    for cutoff, rows in expected.groupby("cutoff"):
        npt.assert_allclose(total.loc[cutoff, "tonnes"], rows["tonnes"].sum(), rtol=1e-12)
        npt.assert_allclose(total.loc[cutoff, "metal"], rows["metal"].sum(), rtol=1e-12)
        grade = (rows["tonnes"] * rows["grade"].fillna(0)).sum() / rows["tonnes"].sum()
        npt.assert_allclose(total.loc[cutoff, "grade"], grade, rtol=1e-12)


def test_report_stage_sorts_cutoffs(tiny):
    cfg = SimpleNamespace(
        name="demo",
        grades=["au"],
        report=SimpleNamespace(cutoffs=[1.5, 0.0, 1.5], grade=None),
        data=SimpleNamespace(grade_unit="%"),
        classification=None,
        domain=lambda name: SimpleNamespace(density=2.0),
    )
    table, _ = report_stage(cfg, tiny)
    for _, rows in table.groupby("domain"):
        assert rows["cutoff"].tolist() == [0.0, 1.5]
    assert set(table["metal_unit"]) == {"t"}


def _random_model(seed=0, shape=(9, 7, 5)):
    """Three domains of random fractions, grades (some NaN), classes and a density model."""
    rng = np.random.default_rng(seed)
    grid = BlockGrid((0.0, 0.0, 0.0), (5.0, 5.0, 2.5), shape)
    ds = make_block_model(grid, ["a", "b", "c"], ["au"])
    full = ds["fraction"].shape
    frac = rng.uniform(0, 1, full) * (rng.uniform(size=full) < 0.7)
    au = rng.lognormal(0, 1, full)
    au[rng.uniform(size=full) < 0.1] = np.nan
    ds["fraction"].values[:] = frac
    ds["au"].values[:] = au
    labels = np.array(["", "measured", "indicated", "inferred"], dtype=object)
    ds["class"] = (ds["au"].dims, labels[rng.integers(0, 4, full)])
    ds["rho"] = (("z", "y", "x"), rng.uniform(2.5, 3.1, full[1:]))
    return ds


def _assert_tables_close(a, b):
    assert a.attrs == b.attrs
    pd.testing.assert_frame_equal(a[["domain", "class", "cutoff"]], b[["domain", "class", "cutoff"]])
    for col in ("tonnes", "grade", "metal"):
        npt.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-12, atol=0, err_msg=col)


@pytest.mark.parametrize(
    "chunks", [{"z": 1, "y": 2, "x": 4}, {"z": 2, "y": 3, "x": 5}, {"z": 5, "y": 7, "x": 9}], ids=str
)
@pytest.mark.parametrize("density", [{"a": 2.5, "b": 2.8, "c": 3.0}, "rho"], ids=["map", "var"])
def test_streaming_grade_tonnage_equals_in_memory(chunks, density):
    ds = _random_model()
    cutoffs = [0.0, 0.5, 1.0, 2.0, 5.0, 50.0]
    expected = grade_tonnage(ds, "au", cutoffs, density, 62.5)
    lazy = ds.chunk({"domain": 1, **chunks})
    assert len(chunk_windows(lazy)) == int(
        np.prod([-(-n // chunks[d]) for d, n in zip("zyx", (5, 7, 9), strict=True)])
    )
    _assert_tables_close(grade_tonnage_chunked(lazy, "au", cutoffs, density, 62.5), expected)
    # a NumPy-backed model with explicit windows gives the same table
    _assert_tables_close(
        grade_tonnage_chunked(ds, "au", cutoffs, density, 62.5, chunks=chunks), expected
    )
    ordered = {"classes": ["inferred", "measured", "none"]}
    _assert_tables_close(
        grade_tonnage_chunked(lazy, "au", cutoffs, density, 62.5, **ordered),
        grade_tonnage(ds, "au", cutoffs, density, 62.5, **ordered),
    )
    assert (expected["tonnes"] > 0).any() and expected["grade"].isna().any()


def test_streaming_reads_class_codes_of_the_store(tmp_path):
    """On a chunked store: the stream reads the codes one chunk at a time and gives the
    table of the loaded, decoded model."""
    from estimator.io.blockstore import decode_classes, open_block_model
    from test_chunked import case_wireframes, make_plan, run_store

    store, _ = run_store(make_plan(case_wireframes(), (5, 4, 3)), tmp_path / "bm.zarr")
    lazy = open_block_model(store.path)
    assert lazy["class"].dtype.kind == "u"
    dens = {"main": 2.9, "west": 2.7, "far": 2.6}
    cutoffs = [0.0, 0.8, 1.2, 2.0]
    expected = grade_tonnage(decode_classes(lazy.compute()), "pd", cutoffs, dens, 500.0)
    got = grade_tonnage_chunked(lazy, "pd", cutoffs, dens, 500.0)
    _assert_tables_close(got, expected)
    assert set(got["class"]) == {"all", "measured", "indicated", "inferred"}
    # report_stage streams a lazily opened model
    cfg = SimpleNamespace(
        name="demo", grades=["pd"], report=SimpleNamespace(cutoffs=cutoffs, grade=None),
        data=SimpleNamespace(grade_unit="g/t"),
        classification=SimpleNamespace(
            classes=[SimpleNamespace(name=n) for n in ("measured", "indicated", "inferred")]
        ),
        domain=lambda name: SimpleNamespace(density=dens[name]),
    )  # fmt: skip
    streamed, _ = report_stage(cfg, lazy)
    loaded, _ = report_stage(cfg, decode_classes(lazy.compute()))
    _assert_tables_close(streamed, loaded)


def test_density_estimated_like_a_grade_with_its_default():
    import xarray as xr

    from estimator.config import ConfigError, parse_config
    from estimator.reporting import density_of, grade_tonnage, grade_tonnage_chunked

    rng = np.random.default_rng(8)
    shape = (2, 3, 4, 5)
    dims = ("domain", "z", "y", "x")
    frac = rng.uniform(0, 1, shape) * (rng.uniform(size=shape) > 0.2)
    pd_ = rng.lognormal(0, 1, shape)
    sg = rng.uniform(2.6, 3.2, shape)
    sg[rng.uniform(size=shape) < 0.3] = np.nan  # not estimated: the default
    ds = xr.Dataset({"fraction": (dims, frac), "pd": (dims, pd_), "sg": (dims, sg)},
                    coords={"domain": ["a", "b"]})  # fmt: skip
    raw = {
        "name": "t", "data": {"samples": "s.csv"}, "grades": ["pd", "sg"],
        "domains": [{"name": "a", "wireframe": "a.obj", "density": {"grade": "SG",
                                                                    "default": 2.5}},
                    {"name": "b", "wireframe": "b.obj", "density": 2.9}],
        "block_model": {"origin": [0, 0, 0], "block_size": [2, 2, 2], "shape": [5, 4, 3]},
    }  # fmt: skip
    cfg = parse_config(raw, check_files=False)
    density = density_of(cfg, ["a", "b"])
    assert density == {"a": ("sg", 2.5), "b": 2.9}
    table = grade_tonnage(ds, "pd", [0.0, 1.0], density, 8.0)
    chunked = grade_tonnage_chunked(ds.chunk({"z": 1}), "pd", [0.0, 1.0], density, 8.0)
    dens = np.stack([np.where(np.isfinite(sg[0]), sg[0], 2.5), np.full(shape[1:], 2.9)])
    for cut in (0.0, 1.0):
        for i, dom in enumerate(["a", "b"]):
            keep = (frac[i] > 0) & (pd_[i] >= cut)
            tonnes = (frac[i] * 8.0 * dens[i])[keep].sum()
            for t in (table, chunked):
                row = t[(t["domain"] == dom) & (t["cutoff"] == cut)].iloc[0]
                assert row["tonnes"] == pytest.approx(tonnes, rel=1e-12)
    raw["domains"][0]["density"] = {"grade": "cu", "default": 2.5}
    with pytest.raises(ConfigError, match=r"domains\[0\]\.density\.grade: 'cu' is not one of"):
        parse_config(raw, check_files=False)
