"""Tests for minimum-curvature desurvey (SPEC section 6)."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.drillholes.desurvey import (
    desurvey,
    desurvey_stations,
    direction_vectors,
    dogleg,
    ratio_factor,
)


def _tables(holes: dict[str, tuple[tuple[float, float, float], list[tuple[float, float, float]]]]):
    """holes: id -> ((x, y, z), [(depth, azimuth, dip), ...])."""
    collars = pd.DataFrame(
        [{"hole_id": h, "x": c[0], "y": c[1], "z": c[2]} for h, (c, _) in holes.items()]
    )
    surveys = pd.DataFrame(
        [
            {"hole_id": h, "depth": d, "azimuth": a, "dip": p}
            for h, (_, st) in holes.items()
            for d, a, p in st
        ]
    )
    return collars, surveys


def _tangent_to_az_dip(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = t / np.linalg.norm(t, axis=1)[:, None]
    az = np.degrees(np.arctan2(t[:, 0], t[:, 1])) % 360.0
    dip = np.degrees(np.arcsin(t[:, 2]))
    return az, dip


# --- SPEC test vector ---------------------------------------------------------------------------


def test_spec_vector_dogleg_and_ratio_factor():
    b = dogleg(20.0, -75.0, 45.0, -65.0)
    assert round(float(b), 3) == 12.952
    assert round(float(ratio_factor(b)), 5) == 1.00428
    # independent: spherical law of cosines on inclinations 15, 25 and azimuth change 25
    i1, i2, da = np.radians([15.0, 25.0, 25.0])
    cos_b = np.cos(i2 - i1) - np.sin(i1) * np.sin(i2) * (1 - np.cos(da))
    npt.assert_allclose(np.radians(b), np.arccos(cos_b), rtol=1e-12)


def test_spec_vector_offsets():
    dx, dy, dz = desurvey_stations([0.0, 100.0], [20.0, 45.0], [-75.0, -65.0])
    assert (round(dy[1], 2), round(dx[1], 2), round(-dz[1], 2)) == (27.22, 19.45, 94.01)
    # textbook minimum-curvature formulas in (N, E, TVD)
    i1, i2, a1, a2 = np.radians([15.0, 25.0, 20.0, 45.0])
    rf = ratio_factor(dogleg(20.0, -75.0, 45.0, -65.0))
    dn = 50 * (np.sin(i1) * np.cos(a1) + np.sin(i2) * np.cos(a2)) * rf
    de = 50 * (np.sin(i1) * np.sin(a1) + np.sin(i2) * np.sin(a2)) * rf
    dtvd = 50 * (np.cos(i1) + np.cos(i2)) * rf
    npt.assert_allclose([dx[1], dy[1], -dz[1]], [de, dn, dtvd], rtol=1e-12)
    assert dx[0] == dy[0] == dz[0] == 0.0


def test_ratio_factor_straight_and_scalar():
    assert ratio_factor(0.0) == 1.0
    npt.assert_allclose(ratio_factor(np.array([0.0, 90.0])), [1.0, 4 / np.pi], rtol=1e-14)


def test_direction_vectors_conventions():
    t = direction_vectors([0.0, 90.0, 180.0], [-90.0, 0.0, -45.0])
    s = np.sqrt(0.5)
    npt.assert_allclose(t, [[0, 0, -1], [1, 0, 0], [0, -s, -s]], atol=1e-15)


# --- straight holes -------------------------------------------------------------------------------


def test_vertical_hole():
    collars, surveys = _tables({"V": ((10.0, 20.0, 300.0), [(0, 123.0, -90.0), (200, 123.0, -90)])})
    depths = np.array([0.0, 1.5, 100.0, 250.0])
    xyz = desurvey(collars, surveys, ["V"] * 4, depths)
    expected = np.column_stack((np.full(4, 10.0), np.full(4, 20.0), 300.0 - depths))
    npt.assert_allclose(xyz, expected, rtol=0, atol=1e-12)


def test_inclined_hole_by_hand():
    # azimuth 45, dip -60: horizontal 0.5 per unit depth, split equally east and north
    collars, surveys = _tables(
        {"I": ((0.0, 0.0, 0.0), [(0, 45, -60), (50, 45, -60), (90, 45, -60)])}
    )
    d = np.array([10.0, 70.0, 120.0])
    xyz = desurvey(collars, surveys, ["I"] * 3, d)
    h = d * 0.5 * np.sqrt(0.5)
    npt.assert_allclose(xyz, np.column_stack((h, h, -d * np.sqrt(3) / 2)), atol=1e-12)


def test_single_station_hole_is_straight():
    collars, surveys = _tables({"S": ((1.0, 2.0, 3.0), [(30.0, 270.0, -30.0)])})
    d = np.array([0.0, 30.0, 100.0])
    xyz = desurvey(collars, surveys, ["S"] * 3, d)
    expected = np.column_stack((1.0 - d * np.sqrt(3) / 2, np.full(3, 2.0), 3.0 - d / 2))
    npt.assert_allclose(xyz, expected, atol=1e-12)


def test_collar_extension_uses_first_station_direction():
    # first survey at 50 m: the hole is straight from the collar with that direction
    st = [(50.0, 90.0, -45.0), (150.0, 100.0, -50.0)]
    collars, surveys = _tables({"C": ((0.0, 0.0, 0.0), st)})
    d = np.array([0.0, 20.0, 50.0])
    xyz = desurvey(collars, surveys, ["C"] * 3, d)
    s = np.sqrt(0.5)
    npt.assert_allclose(xyz, np.column_stack((d * s, np.zeros(3), -d * s)), atol=1e-12)
    dx, dy, dz = desurvey_stations(*zip(*st, strict=True))
    npt.assert_allclose([dx[0], dy[0], dz[0]], [50 * s, 0.0, -50 * s], atol=1e-12)
    npt.assert_allclose(desurvey(collars, surveys, ["C"], [150.0])[0], [dx[1], dy[1], dz[1]])


def test_beyond_last_station_is_straight():
    st = [(0.0, 10.0, -80.0), (100.0, 30.0, -70.0)]
    collars, surveys = _tables({"B": ((0.0, 0.0, 0.0), st)})
    p100, p160 = desurvey(collars, surveys, ["B", "B"], [100.0, 160.0])
    npt.assert_allclose(p160 - p100, 60.0 * direction_vectors(30.0, -70.0)[0], atol=1e-12)


# --- curved holes lie on the arc ------------------------------------------------------------------


def test_points_inside_segment_lie_on_the_circular_arc():
    st = [(0.0, 20.0, -75.0), (100.0, 45.0, -65.0)]
    collars, surveys = _tables({"A": ((500.0, 800.0, 1000.0), st)})
    d = np.linspace(0.0, 100.0, 41)
    xyz = desurvey(collars, surveys, ["A"] * d.size, d)
    t1, t2 = direction_vectors([20.0, 45.0], [-75.0, -65.0])
    beta = np.radians(dogleg(20.0, -75.0, 45.0, -65.0))
    radius = 100.0 / beta
    normal = t2 - np.dot(t1, t2) * t1
    centre = xyz[0] + radius * normal / np.linalg.norm(normal)
    npt.assert_allclose(np.linalg.norm(xyz - centre, axis=1), radius, rtol=1e-12)
    chord = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
    arc = 2 * radius * np.arcsin(chord / (2 * radius))
    npt.assert_allclose(arc, np.diff(d), rtol=1e-9)
    # the end point agrees with the station offsets
    dx, dy, dz = desurvey_stations([0.0, 100.0], [20.0, 45.0], [-75.0, -65.0])
    npt.assert_allclose(xyz[-1] - xyz[0], [dx[1], dy[1], dz[1]], atol=1e-10)


@pytest.mark.parametrize("first_depth", [0.0, 7.5], ids=["station-at-collar", "first-deeper"])
def test_constant_curvature_hole_matches_analytic_circle(first_depth):
    # a circle of radius R in a tilted plane; the hole is drilled along it from s = 0
    rng = np.random.default_rng(0)
    radius = 400.0
    u = np.array([0.3, -0.2, 0.9])
    u /= np.linalg.norm(u)
    v = np.cross(u, rng.normal(size=3))
    v /= np.linalg.norm(v)
    v = v if v[2] < 0 else -v  # start going down
    centre = np.array([1000.0, 2000.0, 500.0])

    def point(s):
        a = np.asarray(s)[:, None] / radius
        return centre + radius * (np.cos(a) * (-u) + np.sin(a) * v)

    def tangent(s):
        a = np.asarray(s)[:, None] / radius
        return np.sin(a) * u + np.cos(a) * v

    collar = point([0.0])[0]
    # before the first station the hole is straight (collar extension), so build the circle
    # from the first station on and shift the collar back along the first tangent
    stations = np.arange(0.0, 301.0, 30.0)
    az, dip = _tangent_to_az_dip(tangent(stations))
    collar = collar - first_depth * tangent([0.0])[0]
    collars = pd.DataFrame({"hole_id": ["K"], "x": [collar[0]], "y": [collar[1]], "z": [collar[2]]})
    surveys = pd.DataFrame(
        {"hole_id": "K", "depth": stations + first_depth, "azimuth": az, "dip": dip}
    )
    s = np.sort(rng.uniform(0.0, 300.0, 200))
    xyz = desurvey(collars, surveys, ["K"] * s.size, s + first_depth)
    npt.assert_allclose(xyz, point(s), rtol=0, atol=1e-9)


# --- many holes -----------------------------------------------------------------------------------


def test_many_holes_vectorised_matches_per_hole_and_ignores_row_order():
    rng = np.random.default_rng(1)
    holes = {}
    for k in range(25):
        n = int(rng.integers(1, 6))
        depth = np.sort(rng.choice(np.arange(0.0, 300.0, 10.0), n, replace=False))
        holes[f"H{k:02d}"] = (
            tuple(rng.uniform(-1e3, 1e3, 3)),
            list(zip(depth, rng.uniform(0, 360, n), rng.uniform(-89, -30, n), strict=True)),
        )
    collars, surveys = _tables(holes)
    surveys = surveys.sample(frac=1.0, random_state=3)  # shuffled rows
    qh, qd, expected = [], [], []
    for h, (c, st) in holes.items():
        d, a, p = (np.array(x) for x in zip(*st, strict=True))
        dx, dy, dz = desurvey_stations(d, a, p)
        qh += [h] * d.size
        qd += list(d)
        expected.append(np.column_stack((dx, dy, dz)) + np.array(c))
    order = rng.permutation(len(qh))
    xyz = desurvey(collars, surveys, np.array(qh)[order], np.array(qd)[order])
    npt.assert_allclose(xyz, np.vstack(expected)[order], atol=1e-9)


def test_missing_survey_or_collar_names_the_hole():
    collars, surveys = _tables({"A": ((0.0, 0.0, 0.0), [(0.0, 0.0, -90.0)])})
    collars = pd.concat(
        [collars, pd.DataFrame({"hole_id": ["NOSURV"], "x": [1.0], "y": [1.0], "z": [1.0]})]
    )
    with pytest.raises(ValueError, match="no survey station for hole\\(s\\) NOSURV"):
        desurvey(collars, surveys, ["A", "NOSURV"], [1.0, 2.0])
    with pytest.raises(ValueError, match="no collar for hole\\(s\\) GHOST"):
        desurvey(collars, surveys, ["GHOST"], [1.0])


def test_desurvey_stations_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one survey station"):
        desurvey_stations([], [], [])
    with pytest.raises(ValueError, match="increasing"):
        desurvey_stations([10.0, 5.0], [0.0, 0.0], [-90.0, -90.0])


def test_empty_query():
    collars, surveys = _tables({"A": ((0.0, 0.0, 0.0), [(0.0, 0.0, -90.0)])})
    assert desurvey(collars, surveys, [], []).shape == (0, 3)
