"""Tests for domain flagging from logged zones and wireframes."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from estimator.datareport import DataReport
from estimator.domains import flag_domains

CODES = {"OFFSET": "offset", "COWBOY": "cowboy"}


def _assays(rows):
    """rows: (hole, from, to, pd)."""
    df = pd.DataFrame(rows, columns=["hole_id", "from", "to", "pd"])
    df["tranche"] = "2011-06"
    df["_file"] = "assays.csv"
    df["_line"] = np.arange(2, len(df) + 2)
    return df[["hole_id", "from", "to", "tranche", "pd", "_file", "_line"]]


def _zones(rows):
    df = pd.DataFrame(rows, columns=["hole_id", "from", "to", "zone"])
    df["_file"] = "zones.csv"
    df["_line"] = np.arange(2, len(df) + 2)
    return df


def test_no_zones_no_wireframes_gives_empty_domain():
    a = _assays([("A", 0, 1, 1.0), ("A", 1, 2, 2.0)])
    rep = DataReport()
    out = flag_domains(a, None, CODES, None, rep)
    assert out["domain"].tolist() == ["", ""]
    assert len(rep) == 0
    pd.testing.assert_frame_equal(out.drop(columns="domain"), a)


def test_wireframe_only():
    a = _assays([("A", 0, 1, 1.0), ("A", 1, 2, 2.0), ("B", 0, 3, np.nan)])
    out = flag_domains(a, None, CODES, np.array(["offset", "", "cowboy"]), DataReport())
    assert out["domain"].tolist() == ["offset", "", "cowboy"]


def test_logged_zone_then_wireframe_where_not_logged():
    a = _assays([("A", 0, 2, 1.0), ("A", 2, 4, 2.0), ("A", 4, 6, 3.0), ("B", 0, 2, 4.0)])
    z = _zones([("A", 2, 6, "OFFSET")])
    wire = np.array(["cowboy", "", "offset", "cowboy"])
    rep = DataReport()
    out = flag_domains(a, z, CODES, wire, rep)
    assert out["domain"].tolist() == ["cowboy", "offset", "offset", "cowboy"]
    assert len(rep) == 0


def test_disagreement_is_reported_and_logged_zone_wins():
    a = _assays([("A", 0, 2, 1.0), ("A", 2, 4, 2.0), ("A", 4, 6, 3.0)])
    z = _zones([("A", 0, 6, "COWBOY")])
    rep = DataReport()
    out = flag_domains(a, z, CODES, np.array(["offset", "cowboy", "offset"]), rep)
    assert out["domain"].tolist() == ["cowboy"] * 3
    frame = rep.to_frame()
    assert frame["code"].tolist() == ["zone_wireframe_disagree"] * 2
    assert frame["line"].tolist() == [2, 4]
    assert set(frame["action"]) == {"logged zone used"}
    assert frame["file"].tolist() == ["assays.csv"] * 2


def test_unmapped_code_is_no_domain_and_reported_once_per_code():
    a = _assays([("A", 0, 2, 1.0), ("A", 2, 4, 2.0), ("B", 0, 2, 3.0)])
    z = _zones([("A", 0, 2, "WASTE"), ("A", 2, 4, "WASTE"), ("B", 0, 2, "GAB")])
    rep = DataReport()
    out = flag_domains(a, z, CODES, np.array(["offset", "offset", ""]), rep)
    assert out["domain"].tolist() == ["", "", ""]
    frame = rep.to_frame()
    assert frame["code"].tolist() == ["zone_code_unmapped"] * 2
    assert frame["hole"].tolist() == ["A", "B"]
    assert frame["file"].tolist() == ["zones.csv"] * 2
    assert frame["line"].tolist() == [2, 4]
    assert "2 logged" in frame["what"].iloc[0]


def test_straddling_interval_is_split_at_zone_boundaries():
    a = _assays([("A", 0, 3, 1.5), ("A", 3, 7, 2.5), ("A", 7, 9, 3.5)])
    # zone from 2 to 5 cuts the first interval at 2, the second at 5; a second zone 5-8 cuts
    # the third at 8
    z = _zones([("A", 2, 5, "OFFSET"), ("A", 5, 8, "COWBOY")])
    rep = DataReport()
    out = flag_domains(a, z, CODES, None, rep)
    npt.assert_array_equal(out["from"], [0, 2, 3, 5, 7, 8])
    npt.assert_array_equal(out["to"], [2, 3, 5, 7, 8, 9])
    assert out["domain"].tolist() == ["", "offset", "offset", "cowboy", "cowboy", ""]
    npt.assert_array_equal(out["pd"], [1.5, 1.5, 2.5, 2.5, 3.5, 3.5])
    npt.assert_array_equal(out["_line"], [2, 2, 3, 3, 4, 4])
    assert out["tranche"].tolist() == ["2011-06"] * 6
    frame = rep.to_frame()
    assert frame["code"].tolist() == ["split_at_zone_boundary"] * 3
    assert frame["line"].tolist() == [2, 3, 4]
    # total length is unchanged
    assert (out["to"] - out["from"]).sum() == (a["to"] - a["from"]).sum()
    assert out.index.equals(pd.RangeIndex(6))


def test_interval_holding_a_whole_zone_is_split_twice_and_reported_once():
    a = _assays([("A", 0, 10, 2.0)])
    z = _zones([("A", 4, 6, "OFFSET")])
    rep = DataReport()
    out = flag_domains(a, z, CODES, np.array(["cowboy"]), rep)
    npt.assert_array_equal(out[["from", "to"]].to_numpy(), [[0, 4], [4, 6], [6, 10]])
    # uncovered pieces take the wireframe domain of the whole assay
    assert out["domain"].tolist() == ["cowboy", "offset", "cowboy"]
    codes = rep.counts()
    assert codes == {"split_at_zone_boundary": 1, "zone_wireframe_disagree": 1}
    assert "4, 6" in rep.to_frame()["what"].iloc[0]


def test_zones_of_other_holes_do_not_leak():
    a = _assays([("A", 0, 10, 2.0), ("B", 0, 10, 3.0)])
    z = _zones([("B", 4, 6, "OFFSET")])
    out = flag_domains(a, z, CODES, None, DataReport())
    assert out["hole_id"].tolist() == ["A", "B", "B", "B"]
    assert out["domain"].tolist() == ["", "", "offset", ""]


def test_wireframe_domain_length_is_checked():
    a = _assays([("A", 0, 1, 1.0)])
    with pytest.raises(ValueError, match="wireframe_domain has 2 entries for 1 assay rows"):
        flag_domains(a, None, CODES, np.array(["a", "b"]), DataReport())


def test_empty_assays_and_mixed_hole_id_dtypes():
    z = _zones([("A", 0, 1, "OFFSET")])
    empty = _assays([]).astype({"hole_id": str})
    out = flag_domains(empty, z, CODES, None, DataReport())
    assert len(out) == 0
    assert "domain" in out.columns
    a = _assays([("A", 0.5, 2.0, 1.0)]).astype({"hole_id": object})
    out = flag_domains(a, z.astype({"hole_id": "str"}), CODES, None, DataReport())
    assert out["domain"].tolist() == ["offset", ""]
