"""Tests of estimator.drillholes.dipcheck: which dip convention the holes fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.datareport import DataReport
from estimator.drillholes import dipcheck
from estimator.drillholes.dipcheck import dip_convention_fit
from estimator.geometry.mesh import build_wireframe

DEMO = Path(__file__).parents[1] / "configs" / "demo" / "demo.yaml"

# Collars on a level at z = 0; the ore is a box 40 to 80 below it. Down-holes (file dip -70)
# cross it between depths 42.6 and 85.1 (40 / sin 70, 80 / sin 70); up-holes (file dip +30)
# go away from it.
SIN70 = np.sin(np.radians(70.0))
TOP, BOTTOM = 40.0 / SIN70, 80.0 / SIN70


def box(lo=(-100, -100, -80), hi=(100, 100, -40)):
    v = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    f = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    )  # fmt: skip
    return build_wireframe(v.astype(float), f, "ore.obj")


def holes(n_down=12, n_up=4, seed=0, unsurveyed=0):
    """File tables (dips as in a negative-down file) for n_down + n_up holes."""
    rng = np.random.default_rng(seed)
    n = n_down + n_up + unsurveyed
    ids = [f"H{k:02d}" for k in range(n)]
    collars = pd.DataFrame(
        {
            "hole_id": ids,
            "x": rng.uniform(-40, 40, n),
            "y": rng.uniform(-40, 40, n),
            "z": np.zeros(n),
            "depth": np.full(n, 100.0),
        }
    )
    rows = []
    for k, h in enumerate(ids):
        if k >= n_down + n_up:
            rows.append((h, 0.0, 0.0, -90.0, "", 0))  # assumed vertical: not in the file
            continue
        dip = -70.0 if k < n_down else 30.0
        az = float(rng.uniform(0, 360))
        rows += [(h, 0.0, az, dip, "s.csv", 2 * k + 2), (h, 50.0, az, dip, "s.csv", 2 * k + 3)]
    surveys = pd.DataFrame(rows, columns=["hole_id", "depth", "azimuth", "dip", "_file", "_line"])
    frm = np.arange(0.0, 100.0, 2.0)
    mids = frm + 1.0
    down = [h for k, h in enumerate(ids) if k < n_down or k >= n_down + n_up]
    ore = (mids > TOP) & (mids < BOTTOM)
    assays = pd.concat(
        [
            pd.DataFrame(
                {
                    "hole_id": h,
                    "from": frm,
                    "to": frm + 2.0,
                    "pd": np.where(ore & (h in down), 5.0, 0.1),
                }
            )
            for h in ids
        ],
        ignore_index=True,
    )
    zones = pd.DataFrame(
        {"hole_id": down[:n_down], "from": TOP + 1.0, "to": BOTTOM - 1.0, "zone": "ORE"}
    )
    return collars, surveys, assays, zones


def read_as(surveys, dip):
    """The surveys as the reader hands them on: negative down under the configured ``dip``."""
    return surveys if dip == "negative_down" else surveys.assign(dip=-surveys["dip"])


WF = {"ore": box()}
CODES = {"ORE": "ore"}


def test_right_convention_is_quiet():
    collars, surveys, assays, zones = holes()
    assert dip_convention_fit(collars, surveys, assays, zones, CODES, WF, "negative_down") is None


def test_wrong_convention_on_mixed_signs_is_named():
    # A negative-down file read as positive_down: every hole mirrored, the down-holes miss
    # the ore entirely (0 of 12 logged intervals inside instead of 12 of 12).
    collars, surveys, assays, zones = holes()
    got = dip_convention_fit(
        collars, read_as(surveys, "positive_down"), assays, zones, CODES, WF, "positive_down"
    )
    assert got == (
        "s.csv: the dips have both signs (8 of 32 positive), so they do not tell the dip "
        "convention; with data.dip: positive_down 0.0 % of the logged zone intervals (12) lie "
        "inside their domain's wireframe, with negative_down 100.0 %. The holes fit the "
        "wireframes better with negative_down: check the survey file and set data.dip: "
        "negative_down"
    )


def test_positive_down_file_read_as_negative_down():
    collars, surveys, assays, zones = holes()
    file = surveys.assign(dip=-surveys["dip"])  # the same holes in a positive-down file
    assert dip_convention_fit(
        collars, read_as(file, "positive_down"), assays, zones, CODES, WF, "positive_down"
    ) is None
    got = dip_convention_fit(collars, file, assays, zones, CODES, WF, "negative_down")
    assert got is not None
    assert "(24 of 32 positive)" in got
    assert got.endswith("set data.dip: positive_down")


def test_without_zones_the_metal_decides():
    collars, surveys, assays, _ = holes()
    wrong = read_as(surveys, "positive_down")
    got = dip_convention_fit(collars, wrong, assays, None, {}, WF, "positive_down")
    # An assay is inside the box when its mid-point depth d has -80 < -d sin(dip) < -40.
    # Right: the down-holes' 5 g/t assays (dip 70: 22 of 50 per hole). Mirrored: only the
    # up-holes, now dipping 30 down, past depth 80 (10 of 50 per hole, 0.1 g/t).
    mids = 0.5 * (assays["from"] + assays["to"]).to_numpy()
    grade = assays["pd"].to_numpy()
    up = assays["hole_id"].isin([f"H{k:02d}" for k in range(12, 16)]).to_numpy()
    right = (mids > TOP) & (mids < BOTTOM) & ~up
    mirrored = (mids > 80.0) & up
    assert right.sum() == 22 * 12 and mirrored.sum() == 10 * 4
    share = {k: grade[m].sum() / grade.sum() for k, m in (("right", right), ("wrong", mirrored))}
    assert got == (
        "s.csv: the dips have both signs (8 of 32 positive), so they do not tell the dip "
        f"convention; with data.dip: positive_down {100 * share['wrong']:.1f} % of the metal "
        "(grade x length) of the assays (800) lie inside the wireframes, with negative_down "
        f"{100 * share['right']:.1f} %. The holes fit the wireframes better with negative_down: "
        "check the survey file and set data.dip: negative_down"
    )
    assert dip_convention_fit(collars, surveys, assays, None, {}, WF, "negative_down") is None


def test_one_sign_only_is_left_to_the_sign_check():
    collars, surveys, assays, zones = holes(n_up=0)
    wrong = read_as(surveys, "positive_down")
    assert dip_convention_fit(collars, wrong, assays, zones, CODES, WF, "positive_down") is None


def test_few_logged_intervals_fall_back_on_the_metal():
    collars, surveys, assays, zones = holes(n_down=3)
    wrong = read_as(surveys, "positive_down")
    got = dip_convention_fit(collars, wrong, assays, zones, CODES, WF, "positive_down")
    assert "% of the metal (grade x length) of the assays (350)" in got


def test_too_few_intervals_or_nothing_to_fit_decide_nothing():
    collars, surveys, assays, zones = holes(n_down=3)
    wrong = read_as(surveys, "positive_down")
    few = assays.iloc[20:29]  # 9 assays, 8 of them in the ore
    assert dip_convention_fit(collars, wrong, few, zones, CODES, WF, "positive_down") is None
    assert dip_convention_fit(collars, wrong, few.iloc[:0], None, {}, WF, "positive_down") is None
    collars, surveys, assays, zones = holes()
    wrong = read_as(surveys, "positive_down")
    assert dip_convention_fit(collars, wrong, assays, zones, CODES, {}, "positive_down") is None


def test_a_small_difference_is_not_enough():
    # Loose wireframe: a box so big that mirrored holes (going up to +80) are inside too.
    collars, surveys, assays, zones = holes()
    wf = {"ore": box(lo=(-200, -200, -100), hi=(200, 200, 100))}
    wrong = read_as(surveys, "positive_down")
    assert dip_convention_fit(collars, wrong, assays, zones, CODES, wf, "positive_down") is None


def test_assumed_vertical_rows_are_not_mirrored():
    _, surveys, _, _ = holes(n_down=2, n_up=1, unsurveyed=2)
    mirrored = dipcheck._mirrored(surveys)
    file_rows = surveys["_line"].to_numpy() > 0
    npt.assert_array_equal(mirrored["dip"][file_rows], -surveys["dip"][file_rows])
    npt.assert_array_equal(mirrored["dip"][~file_rows], [-90.0, -90.0])


def test_demo_fits_its_own_convention_only():
    from estimator.config import load_config
    from estimator.io.drillholes import read_drillholes
    from estimator.io.wireframe import load_wireframe

    cfg = load_config(DEMO)
    wfs = {d.name: load_wireframe(d.wireframe) for d in cfg.domains}
    codes = {c: d.name for d in cfg.domains for c in d.zone_codes}
    found = {}
    for dip in ("negative_down", "positive_down"):
        data = cfg.data.model_copy(update={"dip": dip})
        dh = read_drillholes(data, cfg.grades, DataReport())
        found[dip] = dip_convention_fit(
            dh.collars, dh.surveys, dh.assays, dh.zones, codes, wfs, dip
        )
    assert found["negative_down"] is None  # as configured: 99.5 % of 214 intervals inside
    assert found["positive_down"] is not None
    assert "with data.dip: positive_down 27.6 % of the logged zone intervals (214)" in found[
        "positive_down"
    ]
    assert found["positive_down"].endswith("set data.dip: negative_down")


@pytest.mark.parametrize("dip", ["negative_down", "positive_down"])
def test_empty_surveys(dip):
    collars, surveys, assays, zones = holes()
    assert dip_convention_fit(collars, surveys.iloc[:0], assays, zones, CODES, WF, dip) is None
