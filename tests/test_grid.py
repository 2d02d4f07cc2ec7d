"""Tests for estimator.blockmodel.grid: coordinates, rotation, discretisation, the Dataset factory."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest

from estimator.blockmodel.grid import (
    BlockGrid,
    dask_chunks,
    grade_variable_names,
    grid_from_attrs,
    make_block_model,
)


def test_centres_unrotated_are_world():
    g = BlockGrid((100.0, 200.0, -50.0), (10.0, 5.0, 2.0), (4, 3, 2))
    x, y, z = g.centres_local()
    npt.assert_allclose(x, [105, 115, 125, 135], rtol=1e-15)
    npt.assert_allclose(y, [202.5, 207.5, 212.5], rtol=1e-15)
    npt.assert_allclose(z, [-49, -47], rtol=1e-15)
    xw, yw = g.to_world(x, y)
    npt.assert_array_equal(xw, x)
    npt.assert_array_equal(yw, y)
    assert g.block_volume == 100.0
    assert g.n_blocks == 24
    npt.assert_allclose(g.half_diagonal, 0.5 * np.sqrt(129.0))


@pytest.mark.parametrize(
    ("rotation", "azimuth_x"), [(0, 90), (30, 120), (90, 180), (-45, 45), (200, 290)]
)
def test_rotation_points_local_x_at_azimuth(rotation, azimuth_x):
    g = BlockGrid((1000.0, 2000.0, 0.0), (1, 1, 1), (1, 1, 1), rotation=rotation)
    x, y = g.to_world(1000.0 + 1.0, 2000.0)  # one unit along the local x-axis
    azimuth = np.rad2deg(np.arctan2(x - 1000.0, y - 2000.0)) % 360
    npt.assert_allclose(azimuth, azimuth_x % 360, atol=1e-9)
    # The local y-axis points at azimuth = rotation.
    x, y = g.to_world(1000.0, 2000.0 + 1.0)
    npt.assert_allclose(
        np.rad2deg(np.arctan2(x - 1000.0, y - 2000.0)) % 360, rotation % 360, atol=1e-9
    )


def test_rotation_formula():
    r = np.deg2rad(30.0)
    g = BlockGrid((10.0, 20.0, 0.0), (1, 1, 1), (1, 1, 1), rotation=30)
    du, dv = 3.0, -2.0
    x, y = g.to_world(10.0 + du, 20.0 + dv)
    npt.assert_allclose(x, 10.0 + du * np.cos(r) + dv * np.sin(r), rtol=1e-14)
    npt.assert_allclose(y, 20.0 - du * np.sin(r) + dv * np.cos(r), rtol=1e-14)


@pytest.mark.parametrize("rotation", [0.0, 17.5, 90.0, -123.0, 360.0])
def test_world_round_trip(rotation):
    rng = np.random.default_rng(0)
    g = BlockGrid((5e5, 6e6, 300.0), (5, 5, 5), (2, 2, 2), rotation=rotation)
    u = rng.uniform(5e5 - 1e3, 5e5 + 1e3, 50)
    v = rng.uniform(6e6 - 1e3, 6e6 + 1e3, 50)
    npt.assert_allclose(g.from_world(*g.to_world(u, v)), (u, v), rtol=0, atol=1e-8)
    npt.assert_allclose(g.to_world(*g.from_world(u, v)), (u, v), rtol=0, atol=1e-8)


def test_rotated_block_centres_keep_spacing():
    g = BlockGrid((0.0, 0.0, 0.0), (10.0, 4.0, 2.0), (5, 4, 3), rotation=35)
    xw, yw = g.centres_world_2d()
    assert xw.shape == (4, 5)
    npt.assert_allclose(np.hypot(np.diff(xw, axis=1), np.diff(yw, axis=1)), 10.0)
    npt.assert_allclose(np.hypot(np.diff(xw, axis=0), np.diff(yw, axis=0)), 4.0)
    iz, iy, ix = np.nonzero(np.ones((3, 4, 5), bool))
    c = g.block_centres(iz, iy, ix)
    npt.assert_array_equal(c[:, 0], xw[iy, ix])
    npt.assert_array_equal(c[:, 1], yw[iy, ix])
    npt.assert_array_equal(c[:, 2], g.centres_local()[2][iz])


@pytest.mark.parametrize("rotation", [0.0, 30.0])
@pytest.mark.parametrize("n", [(3, 3, 3), (4, 2, 1), (1, 1, 1)])
def test_discretisation_offsets(rotation, n):
    g = BlockGrid((0.0, 0.0, 0.0), (12.0, 6.0, 3.0), (1, 1, 1), rotation=rotation)
    off = g.discretisation_offsets(n)
    assert off.shape == (int(np.prod(n)), 3)
    npt.assert_allclose(off.mean(axis=0), 0.0, atol=1e-12)
    # Back in the grid frame, the points are the centres of an n-grid of cells in the block.
    u, v = g.from_world(off[:, 0], off[:, 1])
    for coord, k, size in zip((u, v, off[:, 2]), n, g.block_size, strict=True):
        expected = ((np.arange(k) + 0.5) / k - 0.5) * size
        npt.assert_allclose(np.unique(np.round(coord, 9)), expected, atol=1e-9)
    # x fastest (GSLIB order).
    if n[0] > 1:
        assert u[1] > u[0]
        assert off[1, 2] == off[0, 2]


def test_discretisation_offsets_rejects_bad_n():
    g = BlockGrid((0, 0, 0), (1, 1, 1), (1, 1, 1))
    with pytest.raises(ValueError, match="discretisation must be three positive integers"):
        g.discretisation_offsets((3, 0, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_size": (1, 0, 1)}, "block_size must be three positive"),
        ({"shape": (1, 2)}, "must each have 3 values"),
        ({"shape": (1, 0, 1)}, "shape must be three positive integers"),
        ({"origin": (0, np.nan, 0)}, "origin must be finite"),
    ],
)
def test_grid_validation(kwargs, match):
    args = {"origin": (0, 0, 0), "block_size": (1, 1, 1), "shape": (1, 1, 1)} | kwargs
    with pytest.raises(ValueError, match=match):
        BlockGrid(**args)


def test_make_block_model_layout():
    g = BlockGrid((0.0, 0.0, 100.0), (10.0, 10.0, 5.0), (4, 3, 2))
    ds = make_block_model(g, ["offset", "roby"], ["pd", "pt"])
    assert ds["fraction"].dims == ("domain", "z", "y", "x")
    assert dict(ds.sizes) == {"domain": 2, "z": 2, "y": 3, "x": 4}
    assert list(ds["domain"].values) == ["offset", "roby"]
    npt.assert_array_equal(ds["x"].values, g.centres_local()[0])
    npt.assert_array_equal(ds["z"].values, [102.5, 107.5])
    assert "x_world" not in ds.coords
    assert (ds["fraction"].values == 0).all()
    for grade in ("pd", "pt"):
        names = grade_variable_names(grade)
        assert names == [
            grade,
            *(f"{grade}_{s}" for s in ("kv", "slope", "ke", "n", "holes", "dist", "pass", "flag")),
        ]
        for name in names:
            var = ds[name]
            assert var.dims == ("domain", "z", "y", "x")
            if name.endswith(("_n", "_holes", "_pass")):
                assert var.dtype == np.int32
                assert (var.values == 0).all()
            elif name.endswith("_flag"):
                assert var.dtype == np.uint8
                assert (var.values == 0).all()
            else:
                assert var.dtype == np.float64
                assert np.isnan(var.values).all()
    assert ds.attrs["origin"] == [0.0, 0.0, 100.0]
    assert ds.attrs["block_size"] == [10.0, 10.0, 5.0]
    assert ds.attrs["rotation"] == 0.0
    assert ds.attrs["units"] == "data units"
    assert grid_from_attrs(ds) == g


def test_make_block_model_rotated_has_world_coords():
    g = BlockGrid((0.0, 0.0, 0.0), (10.0, 10.0, 5.0), (4, 3, 2), rotation=30)
    ds = make_block_model(g, ["all"], ["au"])
    assert ds["x_world"].dims == ("y", "x")
    xw, yw = g.centres_world_2d()
    npt.assert_array_equal(ds["x_world"].values, xw)
    npt.assert_array_equal(ds["y_world"].values, yw)
    assert grid_from_attrs(ds) == g


def test_make_block_model_chunked():
    g = BlockGrid((0.0, 0.0, 0.0), (1, 1, 1), (10, 8, 6))
    ds = make_block_model(g, ["a", "b"], ["au"], chunks=(4, 8, 3))
    assert ds["au"].chunks == ((1, 1), (3, 3), (8,), (4, 4, 2))
    assert np.isnan(ds["au"].values).all()
    assert dask_chunks((4, 8, 3)) == {"domain": 1, "z": 3, "y": 8, "x": 4}


def test_make_block_model_errors():
    g = BlockGrid((0, 0, 0), (1, 1, 1), (1, 1, 1))
    with pytest.raises(ValueError, match="at least one domain"):
        make_block_model(g, [], ["au"])
    with pytest.raises(ValueError, match="duplicate grade names"):
        make_block_model(g, ["a"], ["au", "au"])
    with pytest.raises(ValueError, match=r"compute\.chunks must be three positive"):
        make_block_model(g, ["a"], ["au"], chunks=(0, 1, 1))


def test_variable_attrs_are_what_describe_variables_applies():
    from estimator.blockmodel.grid import describe_variables, variable_attrs

    grid = BlockGrid((0, 0, 0), (5, 5, 5), (3, 2, 2), rotation=10.0)
    ds = make_block_model(grid, ["ore"], ["pd"])
    attrs = variable_attrs(["pd"], length_unit="m", grade_unit="g/t", method="sk")
    out = describe_variables(ds, ["pd"], length_unit="m", grade_unit="g/t", method="sk")
    for name in out.variables:
        assert out[name].attrs == {**ds[name].attrs, **attrs[name]}, name
    assert out.attrs["units"] == "m"
    assert attrs["pd"] == {"long_name": "pd estimate (simple kriging)", "units": "g/t"}
    assert attrs["pd_kv"]["units"] == "(g/t)^2"
    assert attrs["pd_pass"]["flag_values"] == [-1, 0]
    unset = variable_attrs(["pd"])
    assert unset["pd"]["units"] == "unknown (data.grade_unit not set)"
    assert unset[""]["units"] == "unknown (data.length_unit not set)"
    assert "density" not in out and "class" not in out  # only variables present get attrs


def test_provenance_variables_and_their_attributes():
    from estimator.blockmodel.grid import PROVENANCE_VARIABLES, variable_attrs

    assert grade_variable_names("pd", provenance=True)[-3:] == [
        "pd_latest_tranche", "pd_newest_n", "pd_newest_weight",
    ]  # fmt: skip
    assert PROVENANCE_VARIABLES["_latest_tranche"] == (np.uint8, 0)
    attrs = variable_attrs(["pd"], tranches=["2011-06-28", "infill 2"])
    latest = attrs["pd_latest_tranche"]
    assert latest["flag_values"] == [0, 1, 2]
    assert latest["flag_meanings"] == "none 2011-06-28 infill_2"
    assert latest["tranche_names"] == ["2011-06-28", "infill 2"]
    assert latest["units"] == "1" and "latest tranche" in latest["long_name"]
    assert attrs["pd_newest_n"]["tranche"] == "infill 2"
    assert "(infill 2)" in attrs["pd_newest_weight"]["long_name"]
    assert variable_attrs(["pd"])["pd_latest_tranche"]["flag_meanings"] == "none"
