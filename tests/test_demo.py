"""The seeded demo data set: determinism, closed meshes, seeded errors, tranches, grades."""

from __future__ import annotations

import re

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
import yaml

import estimator.demo as demo_mod
from estimator.demo import FRAME, LENSES, desurvey, make_demo, variogram_angles
from estimator.io.demo import write_demo
from estimator.variography.models import rotation_matrix


@pytest.fixture(scope="module")
def demo():
    return make_demo()


def _frames(d):
    return [d.collars, d.surveys, d.zones, d.truth, *d.assays.values()]


# -- determinism and size -------------------------------------------------------------------
def test_same_seed_gives_identical_data(demo):
    again = make_demo(2011)
    for a, b in zip(_frames(demo), _frames(again), strict=True):
        pd.testing.assert_frame_equal(a, b)
    for name, (v, f) in demo.meshes.items():
        npt.assert_array_equal(v, again.meshes[name][0])
        npt.assert_array_equal(f, again.meshes[name][1])
    assert demo.config == again.config
    assert demo.errors == again.errors


@pytest.mark.slow
def test_other_seed_gives_other_data(demo):
    other = make_demo(7)
    assert not other.truth["pd"].equals(demo.truth["pd"])
    assert {e.code for e in other.errors} == {e.code for e in demo.errors}


def test_size_is_as_documented(demo):
    holes = demo.collars["hole_id"].nunique()
    metres = demo.collars.drop_duplicates("hole_id")["depth"].sum()
    rows = sum(len(a) for a in demo.assays.values())
    assert 95 <= holes <= 140
    assert 20_000 <= metres <= 40_000
    assert 10_000 <= rows <= 25_000
    ug = demo.collars["hole_id"].str.fullmatch(r"11-7\d\d")
    assert ug.sum() >= 80
    assert {"11-055", "11-200", "11-501", "11-502", "11-729", "11-743"} <= set(
        demo.collars["hole_id"]
    )


def test_desurvey_matches_spec_vector():
    # SPEC section 6: dN 27.22, dE 19.45, dTVD 94.01
    p = desurvey(np.zeros(3), [0.0, 100.0], [20.0, 45.0], [-75.0, -65.0], [100.0])[0]
    npt.assert_allclose(p, [19.45, 27.22, -94.01], atol=0.005)


# -- meshes ---------------------------------------------------------------------------------
def _signed_volume(v, f):
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


@pytest.mark.parametrize("lens", LENSES, ids=[lens.name for lens in LENSES])
def test_mesh_is_closed_and_outward(demo, lens):
    v, f = demo.meshes[lens.name]
    assert f.min() == 0 and f.max() == len(v) - 1
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    directed = {tuple(e) for e in edges.tolist()}
    assert len(directed) == len(edges), "a directed edge is used twice (inconsistent winding)"
    assert all((b, a) in directed for a, b in directed), "an edge has no reverse (open mesh)"
    vol = _signed_volume(v, f)
    assert vol > 0, "faces wound inwards"
    # against the analytic volume: thickness integrated over the outline on a 1 m grid
    u, w = np.meshgrid(np.arange(-lens.a, lens.a, 1.0) + 0.5, np.arange(-lens.b, lens.b, 1.0) + 0.5)
    r = lens.radius(u + lens.uc, w + lens.vc)
    analytic = float(lens.thickness(r)[r <= 1].sum())
    assert vol == pytest.approx(analytic, rel=0.02)


def _winding_numbers(points, v, f):
    """Generalised winding number (solid angles / 4 pi): ~1 inside a closed mesh, ~0 outside."""
    out = np.zeros(len(points))
    for i, p in enumerate(points):
        a, b, c = v[f[:, 0]] - p, v[f[:, 1]] - p, v[f[:, 2]] - p
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        det = np.einsum("ij,ij->i", a, np.cross(b, c))
        div = (
            la * lb * lc
            + np.einsum("ij,ij->i", a, b) * lc
            + np.einsum("ij,ij->i", b, c) * la
            + np.einsum("ij,ij->i", c, a) * lb
        )
        out[i] = 2.0 * np.arctan2(det, div).sum() / (4.0 * np.pi)
    return out


def test_meshes_agree_with_the_analytic_zones(demo):
    rng = np.random.default_rng(0)
    t = demo.truth
    pick = np.r_[
        rng.choice(np.flatnonzero(t["zone"] != ""), 150, replace=False),
        rng.choice(np.flatnonzero(t["zone"] == ""), 150, replace=False),
    ]
    pts = t.loc[pick, ["x", "y", "z"]].to_numpy()
    inside = np.column_stack(
        [_winding_numbers(pts, *demo.meshes[lens.name]) > 0.5 for lens in LENSES]
    )
    codes = np.array([lens.code for lens in LENSES])
    from_mesh = np.where(inside.any(axis=1), codes[inside.argmax(axis=1)], "")
    assert inside.sum(axis=1).max() <= 1, "zones overlap"
    assert (from_mesh == t.loc[pick, "zone"].to_numpy()).mean() >= 0.99


def test_variogram_angles_follow_the_lenses():
    rot = rotation_matrix(variogram_angles())
    npt.assert_allclose(rot[0], -FRAME[1], atol=1e-12)  # major: down dip
    npt.assert_allclose(np.abs(rot[1] @ FRAME[0]), 1.0, atol=1e-12)  # semi-major: strike
    npt.assert_allclose(np.abs(rot[2] @ FRAME[2]), 1.0, atol=1e-12)  # minor: lens normal


# -- seeded errors --------------------------------------------------------------------------
def _table(demo, file):
    return {"collars.csv": demo.collars, "surveys.csv": demo.surveys}.get(
        file, demo.assays.get(file)
    )


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_every_seeded_error_is_where_it_says(demo):
    collared = set(demo.collars["hole_id"])
    eoh = demo.collars.drop_duplicates("hole_id").set_index("hole_id")["depth"]
    for e in demo.errors:
        df = _table(demo, e.file)
        row = df.iloc[e.line - 2]
        assert row["hole_id"] == e.hole, e
        if e.code == "duplicate_collar":
            assert df.iloc[e.line - 3].equals(row)
        elif e.code == "no_collar":
            assert e.hole not in collared
        elif e.code == "overlapping_interval":
            prev = df.iloc[e.line - 3]
            assert prev["hole_id"] == e.hole and row["from"] < prev["to"]
        elif e.code == "from_not_less_than_to":
            assert row["from"] >= row["to"]
        elif e.code == "below_detection_half":
            assert row["pd"] == "<0.01"
        elif e.code == "not_sampled":
            assert row["pd"] in ("NS", "-99")
        elif e.code == "negative_grade":
            assert float(row["pd"]) < 0
        elif e.code == "survey_past_end_of_hole":
            assert row["depth"] > eoh[e.hole]
        elif e.code == "azimuth_out_of_range":
            assert not 0 <= row["azimuth"] <= 360
        elif e.code == "dip_out_of_range":
            assert not -90 <= row["dip"] <= 90
        else:
            pytest.fail(f"unexpected code {e.code}")


def test_all_kinds_of_error_are_seeded_and_documented(demo):
    codes = {e.code for e in demo.errors}
    assert codes == {
        "duplicate_collar", "no_collar", "overlapping_interval", "from_not_less_than_to",
        "below_detection_half", "not_sampled", "negative_grade", "survey_past_end_of_hole",
        "azimuth_out_of_range", "dip_out_of_range",
    }  # fmt: skip
    listed = set()
    for m in re.finditer(r"\* (\S+\.csv) lines? (\d+)(?:-(\d+))?, (\S+):", demo_mod.__doc__):
        first, last = int(m[2]), int(m[3] or m[2])
        listed |= {(m[1], n, m[4]) for n in range(first, last + 1)}
    assert listed == {(e.file, e.line, e.hole) for e in demo.errors}


def test_no_other_errors_than_the_seeded_ones(demo):
    seeded = {(e.file, e.line) for e in demo.errors}
    for file, df in demo.assays.items():
        lines = np.arange(len(df)) + 2
        pdv = df["pd"]
        odd = ~pdv.map(_is_number) | (pd.to_numeric(pdv, errors="coerce") < 0)
        odd |= df["from"] >= df["to"]
        same = df["hole_id"].eq(df["hole_id"].shift())
        odd |= same & (df["from"] < df["to"].shift())
        assert {(file, int(n)) for n in lines[odd.to_numpy()]} <= seeded
    for g in ("pt", "au"):  # Pt and Au: numbers, empty, "<0.01" or the seeded NS only
        for df in demo.assays.values():
            v = df[g]
            ok = v.map(_is_number) | v.isin(["", "<0.01", "NS"])
            assert ok.all()


# -- tranches and zones ---------------------------------------------------------------------
def test_two_tranches_without_repeated_intervals(demo):
    assert list(demo.tranches.values()) == ["2011-06-28", "2011-09-14"]
    first, second = demo.assays.values()
    assert "11-501" in set(first["hole_id"]) and "11-501" in set(second["hole_id"])
    a = first.loc[first["hole_id"] == "11-501"]
    b = second.loc[second["hole_id"] == "11-501"]
    assert a["to"].max() <= b["from"].min()
    assert not set(first["hole_id"]) - {"11-501"} & set(second["hole_id"])
    cfg = [{"path": f, "tranche": t} for f, t in demo.tranches.items()]
    assert demo.config["data"]["assays"] == cfg


def test_zone_log_follows_the_lenses_except_the_documented_changes(demo):
    z = demo.zones
    changed = {(n.hole, n.line) for n in demo.zone_notes}
    assert len(changed) == 2
    t = demo.truth
    logged_holes = set(z["hole_id"])
    assert {"11-502", "11-711", "11-745", "11-203"}.isdisjoint(logged_holes)
    for n, r in enumerate(z.itertuples(index=False), start=2):
        if (r.hole_id, n) in changed:
            continue
        inside = t.loc[(t["hole_id"] == r.hole_id) & (t["from"] >= r[1]) & (t["to"] <= r[2])]
        assert (inside["zone"] == r.zone).all(), r
    zoned = t.loc[(t["zone"] != "") & t["hole_id"].isin(logged_holes)]
    assert len(zoned) > 3000


# -- grades ---------------------------------------------------------------------------------
def _runs(frm, to, g, cutoff=1.0, max_dilution=3.0, min_length=3.0):
    """Simple independent intercepts: samples >= cutoff joined across <= max_dilution m."""
    out, start, last = [], None, None
    for i in np.flatnonzero(g >= cutoff):
        if start is not None and frm[i] - to[last] > max_dilution:
            out.append((start, last))
            start = None
        start = i if start is None else start
        last = i
    if start is not None:
        out.append((start, last))
    res = []
    for a, b in out:
        length = to[b] - frm[a]
        sel = slice(a, b + 1)
        metal = np.nansum(g[sel] * (to[sel] - frm[sel]))
        if length >= min_length and metal / length >= cutoff:
            res.append((frm[a], to[b], length, metal / length))
    return res


def test_offset_zone_intercepts_read_like_the_release(demo):
    t = demo.truth
    lengths, grades, rich = [], [], 0
    for _, h in t.groupby("hole_id"):
        off = h.loc[h["zone"] == "OFFSET"]
        if off["to"].sum() == 0 or (off["to"] - off["from"]).sum() < 10:
            continue
        frm, to, g = (h[c].to_numpy() for c in ("from", "to", "pd"))
        runs = _runs(frm, to, g)
        best = max(runs, key=lambda r: min(r[1], off["to"].max()) - max(r[0], off["from"].min()))
        lengths.append(best[2])
        grades.append(best[3])
        hi = _runs(frm, to, g, cutoff=8.0, max_dilution=0.0)
        rich += any(r[2] >= 3.0 for r in hi)
    assert len(lengths) >= 70
    assert 25 <= np.median(lengths) <= 70  # "tens of metres"
    assert 4.0 <= np.median(grades) <= 6.0  # "at 4-6 g/t Pd"
    assert rich >= 0.3 * len(lengths)  # "including" runs of 8-10 g/t over several metres


@pytest.mark.parametrize("zone", ["COWBOY", "OUTLAW"])
def test_narrow_zones_are_narrower_and_lower_grade(demo, zone):
    t = demo.truth.assign(length=demo.truth["to"] - demo.truth["from"])
    z = t.loc[t["zone"] == zone].groupby("hole_id")
    length = z["length"].sum()
    grade = (z.apply(lambda g: (g["pd"] * g["length"]).sum(), include_groups=False)) / length
    assert 4 <= length.median() <= 20
    assert 2.5 <= grade.median() <= 6.0
    waste = t.loc[t["zone"] == "", "pd"]
    assert waste.median() < 0.5


# -- files ----------------------------------------------------------------------------------
def test_write_demo_writes_every_file(tmp_path, monkeypatch, demo):
    monkeypatch.setattr("estimator.io.demo.make_demo", lambda seed: demo)
    path = write_demo(tmp_path / "demo")
    assert path.name == "demo.yaml"
    folder = path.parent
    names = {p.name for p in folder.iterdir()}
    expected = {"collars.csv", "surveys.csv", "zones.csv", "demo.yaml", "demo-2011-06-28.yaml",
                *demo.assays}  # fmt: skip
    expected |= {f"{lens.name}.obj" for lens in LENSES}
    assert names == expected  # no temporary files left behind
    raw = yaml.safe_load(path.read_text())
    assert raw == demo.config
    assay = pd.read_csv(folder / "assays_2011-09-14.csv", dtype=str, keep_default_na=False)
    assert list(assay.columns) == ["hole_id", "from", "to", "pd", "pt", "au"]
    assert len(assay) == len(demo.assays["assays_2011-09-14.csv"])
    obj = (folder / "offset.obj").read_text().splitlines()
    v, f = demo.meshes["offset"]
    assert sum(s.startswith("v ") for s in obj) == len(v)
    faces = np.array([s.split()[1:] for s in obj if s.startswith("f ")], dtype=int)
    npt.assert_array_equal(faces - 1, f)


def test_demo_config_is_valid(tmp_path, monkeypatch, demo):
    from estimator.config import load_config

    monkeypatch.setattr("estimator.io.demo.make_demo", lambda seed: demo)
    cfg = load_config(write_demo(tmp_path))
    assert cfg.name == "lac-des-iles-demo"
    assert [d.name for d in cfg.domains] == ["offset", "cowboy", "outlaw", "sheriff", "roby"]
    n_blocks = int(np.prod(cfg.block_model.shape))
    assert 200_000 <= n_blocks <= 600_000
