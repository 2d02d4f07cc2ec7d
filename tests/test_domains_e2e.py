"""Where the blocks are: domains defined by logged zones only take their blocks by a declared
rule, block volume above the topography is removed, and a run without either says what volume
it estimates. End to end on the demo and on the real porphyry-cu drillholes."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from scipy.spatial import Delaunay

from estimator.cli import main
from estimator.io.wireframe import write_obj

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo"
PORPHYRY = ROOT / "tests" / "data" / "porphyry-cu"


def _demo_copy(tmp_path: Path) -> dict:
    for p in DEMO.iterdir():
        if p.is_file():
            shutil.copy(p, tmp_path / p.name)
    raw = yaml.safe_load((DEMO / "demo.yaml").read_text())
    raw["output"] = "run"
    return raw


@pytest.mark.slow
def test_zone_domains_without_wireframes_take_blocks_by_nearest_sample(tmp_path, capsys):
    raw = _demo_copy(tmp_path)
    for d in raw["domains"]:
        del d["wireframe"]
        d["blocks"] = {"rule": "nearest_sample", "max_distance": 6.0}
    raw["domains"] = raw["domains"][:3]  # offset, cowboy, outlaw
    raw["capping"] = {k: v for k, v in raw["capping"].items() if k in ("offset", "cowboy", "outlaw")}
    raw["variography"] = {k: raw["variography"][k] for k in ("offset", "cowboy", "outlaw")}
    cfg = tmp_path / "zones.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["run", str(cfg)]) == 0
    err = capsys.readouterr().err
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    vol = meta["counts"]["volume_by_domain"]
    assert set(vol) == {"offset", "cowboy", "outlaw"}
    assert all(v > 0 for v in vol.values())
    assert vol["offset"] > vol["cowboy"] > 0  # not "the first domain takes every block"
    for dom, v in vol.items():
        assert f"domain {dom}" in err and f"{v:,.0f} cubic m" in err
    with xr.open_dataset(tmp_path / "run" / "blockmodel.nc", engine="h5netcdf") as ds:
        frac = ds["fraction"].values
    assert frac.sum(axis=0).max() <= 1.0 + 1e-12
    # far fewer blocks than the grid: blocks need a sample of the zone within 6 m
    assert (frac.sum(axis=0) > 0).mean() < 0.2


def _porphyry_config(tmp_path: Path, topography: str | None) -> Path:
    raw = {
        "name": "porphyry",
        "data": {
            "collars": str(PORPHYRY / "collar.csv"),
            "surveys": str(PORPHYRY / "survey.csv"),
            "assays": str(PORPHYRY / "assay.csv"),
            "dip": "positive_down",
            "length_unit": "m",
            "grade_unit": "%",
        },
        "grades": ["cu"],
        "composites": {"length": 5.0},
        "variography": {"all": {"cu": {"model": {"nugget": 0.05, "structures": [
            {"type": "spherical", "sill": 0.2, "ranges": [200, 200, 100]}]}}}},
        "block_model": {"origin": [7700, 243150, 400], "block_size": [25, 25, 25],
                        "shape": [38, 30, 20]},
        "estimation": {"passes": [{"ranges": [150, 150, 80], "min_samples": 4,
                                   "max_samples": 16}]},
        "compute": {"scheduler": "synchronous"},
        "output": str(tmp_path / ("topo" if topography else "none")),
    }  # fmt: skip
    if topography:
        raw["data"]["topography"] = topography
    path = tmp_path / ("topo.yaml" if topography else "none.yaml")
    path.write_text(yaml.safe_dump(raw))
    return path


def _collar_surface(path: Path) -> Delaunay:
    """A ground surface through the collars (they were drilled from it), padded to the grid."""
    c = pd.read_csv(PORPHYRY / "collar.csv")
    xy = c[["X", "Y"]].to_numpy()
    z = c["Z"].to_numpy()
    # the grid's corners, at the elevation of the nearest collar
    corners = np.array([[7600, 243000], [8800, 243000], [7600, 244000], [8800, 244000]], float)
    near = np.argmin(((corners[:, None, :] - xy[None]) ** 2).sum(-1), axis=1)
    pts = np.vstack([xy, corners])
    elev = np.concatenate([z, z[near]])
    tri = Delaunay(pts)
    write_obj(path, np.column_stack([pts, elev]), tri.simplices)
    return tri, elev


@pytest.mark.slow
def test_porphyry_topography_removes_blocks_in_the_air(tmp_path, capsys):
    assert main(["run", str(_porphyry_config(tmp_path, None)), "--until", "estimate"]) == 0
    err = capsys.readouterr().err
    assert "no wireframe, block rule or topography: the whole grid is estimated" in err
    tri, elev = _collar_surface(tmp_path / "topo.obj")
    cfg = _porphyry_config(tmp_path, str(tmp_path / "topo.obj"))
    assert main(["run", str(cfg), "--until", "estimate", "--quiet"]) == 0
    with xr.open_dataset(tmp_path / "none" / "blockmodel.nc", engine="h5netcdf") as ds:
        est_none = ds["cu"].values[0]
    with xr.open_dataset(tmp_path / "topo" / "blockmodel.nc", engine="h5netcdf") as ds:
        frac = ds["fraction"].values[0]
        est = ds["cu"].values[0]
        zc = ds["z"].values
        xc, yc = np.meshgrid(ds["x"].values, ds["y"].values)
    # the surface's elevation (linear on its triangles) over the 4 x 4 sub-cell columns of
    # every block: a block wholly above the highest of them holds nothing, one wholly below
    # the lowest holds all its volume
    sub = (np.arange(4) + 0.5) * 25 / 4 - 12.5
    qx = (xc[:, :, None, None] + sub[None, None, None, :]).repeat(4, axis=2)
    qy = (yc[:, :, None, None] + sub[None, None, :, None]).repeat(4, axis=3)
    q = np.column_stack([qx.ravel(), qy.ravel()])
    simplex = tri.find_simplex(q)
    assert (simplex >= 0).all()
    t = tri.transform[simplex]
    b = np.einsum("nij,nj->ni", t[:, :2], q - t[:, 2])
    w = np.column_stack([b, 1 - b.sum(axis=1)])
    ground = (w * elev[tri.simplices[simplex]]).sum(axis=1).reshape(qx.shape)
    high = ground.max(axis=(2, 3))[None]
    low = ground.min(axis=(2, 3))[None]
    bottom = zc[:, None, None] - 12.5
    top = zc[:, None, None] + 12.5
    assert (frac[bottom >= high + 1e-9] == 0).all()  # wholly above: no volume
    assert (frac[top <= low - 1e-9] == 1).all()  # wholly below: all of it
    assert ((frac > 0) & (frac < 1)).any()
    in_air = np.isfinite(est_none) & (bottom >= high)
    assert in_air.sum() > 1000  # the run without topography estimated blocks in the air
    assert not (np.isfinite(est) & (bottom >= high)).any()
    meta = json.loads((tmp_path / "topo" / "run.json").read_text())
    assert meta["counts"]["above_topography"] > 0
    assert meta["counts"]["topography_uncovered_area"] == 0


def test_wrong_dip_convention_on_mixed_signs_is_flagged(tmp_path, capsys):
    """The demo's fans dip both ways; read as positive-down every hole is mirrored, and the
    samples no longer fall in the wireframes of their logged zones."""
    raw = _demo_copy(tmp_path)
    raw["data"]["dip"] = "positive_down"
    cfg = tmp_path / "mirrored.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["check", str(cfg), "--out", str(tmp_path / "check")]) == 0
    err = capsys.readouterr().err
    assert "set data.dip: negative_down" in err
    report = pd.read_csv(tmp_path / "check" / "data_report.csv")
    assert (report["code"] == "dip_convention_suspect").sum() == 1
    # the configured (right) convention gives no such row
    raw["data"]["dip"] = "negative_down"
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["check", str(cfg), "--out", str(tmp_path / "check2"), "--quiet"]) == 0
    report = pd.read_csv(tmp_path / "check2" / "data_report.csv")
    assert (report["code"] == "dip_convention_suspect").sum() == 0


def test_wireframe_nowhere_near_the_data_is_reported(tmp_path, capsys):
    raw = _demo_copy(tmp_path)
    # a copy of the roby wireframe shifted 10 km east: another coordinate system
    text = (tmp_path / "roby.obj").read_text().splitlines()
    shifted = []
    for line in text:
        if line.startswith("v "):
            _, x, y, z = line.split()[:4]
            line = f"v {float(x) + 10000} {y} {z}"
        shifted.append(line)
    (tmp_path / "far.obj").write_text("\n".join(shifted) + "\n")
    raw["domains"][4]["wireframe"] = "far.obj"
    cfg = tmp_path / "far.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert main(["check", str(cfg), "--out", str(tmp_path / "check")]) == 0
    err = capsys.readouterr().err
    assert "domain roby: no sample lies inside its wireframe far.obj" in err
    report = pd.read_csv(tmp_path / "check" / "data_report.csv")
    assert (report["code"] == "wireframe_without_samples").sum() == 1
