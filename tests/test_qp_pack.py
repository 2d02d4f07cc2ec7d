"""What a Qualified Person signs, end to end on the demo: the grade-tonnage table equals a direct
computation from the block model per domain and class, the resource statement is that table
rounded as declared, and every run writes the capping, declustering and validation files and a
self-contained report page that its run.json lists."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from estimator.analysis import significant
from estimator.cli import main
from estimator.config import load_config
from estimator.pipeline import verify_run_folder
from helpers import coarse_demo

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo's first tranche on 10 m blocks (a quick run with every section)."""
    folder = tmp_path_factory.mktemp("qp")
    cfg, raw = coarse_demo(folder, "qp.yaml")
    assert main(["run", str(cfg), "--quiet"]) == 0
    return folder / "run", raw


def _direct(run: Path, raw: dict) -> pd.DataFrame:
    """Tonnes, grade and metal per domain, class and cut-off straight from blockmodel.nc."""
    ds = xr.open_dataset(run / "blockmodel.nc")
    dx, dy, dz = raw["block_model"]["block_size"]
    density = {d["name"]: d["density"] for d in raw["domains"]}
    rows = []
    for dom in (str(d) for d in ds["domain"].values):
        frac = ds["fraction"].sel(domain=dom).values.astype(float)
        est = ds["pd"].sel(domain=dom).values.astype(float)
        cls = ds["class"].sel(domain=dom).values
        tonnes_block = frac * dx * dy * dz * density[dom]
        for label in ["all", *(c["name"] for c in raw["classification"]["classes"])]:
            keep = (frac > 0) & np.isfinite(est)
            if label != "all":
                keep &= cls == label  # NetCDF: class labels as text
            for cut in raw["report"]["cutoffs"]:
                sel = keep & (est >= cut)
                t = tonnes_block[sel].sum()
                tg = (tonnes_block[sel] * est[sel]).sum()
                rows.append((dom, label, float(cut), t, tg / t if t > 0 else np.nan))
    ds.close()
    return pd.DataFrame(rows, columns=["domain", "class", "cutoff", "tonnes", "grade"])


def test_grade_tonnage_equals_the_block_model_per_domain_and_class(demo_run):
    run, raw = demo_run
    table = pd.read_csv(run / "grade_tonnage.csv")
    direct = _direct(run, raw)
    merged = direct.merge(table, on=["domain", "class", "cutoff"], suffixes=("", "_csv"))
    assert len(merged) == len(direct)
    np.testing.assert_allclose(merged["tonnes_csv"], merged["tonnes"], rtol=1e-12)
    np.testing.assert_allclose(merged["grade_csv"], merged["grade"], rtol=1e-12)
    # metal = tonnes x grade / 31.1034768 g per troy ounce
    metal = merged["tonnes"] * merged["grade"].fillna(0) / 31.1034768
    np.testing.assert_allclose(merged["metal"], metal, rtol=1e-12)
    # the curves are monotone in cut-off
    for _, part in table.groupby(["domain", "class"]):
        part = part.sort_values("cutoff")
        assert (np.diff(part["tonnes"].to_numpy()) <= 0).all()
        assert (np.diff(part["metal"].to_numpy()) <= 1e-9).all()
    # the classes add up to the classified part of "all"
    classes = [c["name"] for c in raw["classification"]["classes"]]
    for _, part in table.groupby(["domain", "cutoff"]):
        total = part.loc[part["class"].isin(classes), "tonnes"].sum()
        assert total <= part.loc[part["class"] == "all", "tonnes"].iloc[0] * (1 + 1e-12)


def test_resource_statement_is_the_table_rounded_as_declared(demo_run):
    run, raw = demo_run
    st = raw["report"]["statement"]
    table = pd.read_csv(run / "grade_tonnage.csv")
    statement = pd.read_csv(run / "resource_statement.csv")
    assert (statement["cutoff"] == st["cutoff"]).all()
    rows = table[table["cutoff"] == st["cutoff"]]
    for r in statement.itertuples(index=False):
        if r[1] == "all classes":
            part = rows[(rows["domain"] == r.domain) & (rows["class"] != "all")]
            t, m = part["tonnes"].sum(), part["metal"].sum()
            g = (part["tonnes"] * part["grade"].fillna(0)).sum() / t
        else:
            src = rows[(rows["domain"] == r.domain) & (rows["class"] == r[1])].iloc[0]
            t, g, m = src["tonnes"], src["grade"], src["metal"]
        assert r.tonnes == round(t / st["tonnes_round"]) * st["tonnes_round"]
        assert r.grade == significant(g, st["grade_figures"])
        assert r.metal == round(m / st["metal_round"]) * st["metal_round"]
    text = (run / "resource_statement.md").read_text()
    for placeholder in ("[QP: effective date", "[QP: metal price", "[QP: the constraint"):
        assert placeholder in text


def test_every_run_writes_the_analysis_and_validation_files(demo_run):
    run, raw = demo_run
    capping = pd.read_csv(run / "analysis" / "capping.csv")
    assert {"domain", "grade", "rule"} <= set(capping.columns)
    configured = capping[(capping["domain"] == "offset") & (capping["rule"] == "configured")]
    assert configured["cap"].iloc[0] == raw["capping"]["offset"]["pd"]
    sweep = pd.read_csv(run / "analysis" / "declustering.csv")
    assert sweep.groupby("domain")["chosen"].sum().eq(1).all()
    weights = pd.read_csv(run / "analysis" / "declustering_weights.csv")
    comps = pd.read_csv(run / "composites.csv")
    assert len(weights) == len(comps)
    for dom, part in weights.groupby("domain"):  # mean 1 within each domain
        assert part["weight"].mean() == pytest.approx(1.0, rel=1e-9), dom
    bias = pd.read_csv(run / "validation" / "validation_bias_pd.csv")
    assert set(bias["domain"]) == {d["name"] for d in raw["domains"]}
    cv = pd.read_csv(run / "validation" / "cross_validation_summary.csv")
    assert cv["leave"].iloc[0] == "hole"
    # the summary is the per-composite table's: slope of true on estimate, mean error
    rows = pd.read_csv(run / "validation" / "validation_cross_pd.csv").dropna(subset=["estimate"])
    slope = np.polyfit(rows["estimate"], rows["true"], 1)[0]
    assert cv["slope"].iloc[0] == pytest.approx(slope, rel=1e-9)
    assert cv["mean_error"].iloc[0] == pytest.approx((rows["estimate"] - rows["true"]).mean(),
                                                     rel=1e-9, abs=1e-12)  # fmt: skip
    assert cv["n"].iloc[0] == len(rows)
    for name in ("plan_section_pd.png", "swath_offset_pd.png", "capping_offset_pd.png",
                 "declustering_offset_pd.png"):  # fmt: skip
        assert (run / "plots" / name).stat().st_size > 1000, name
    meta = json.loads((run / "run.json").read_text())
    assert "report.html" in meta["outputs"] and meta["files"]["report"] == "report.html"
    assert "declustering" in meta["counts"] and "class_smoothing" in meta["counts"]
    verify_run_folder(run)  # every file listed is the one written
    html = (run / "report.html").read_text()
    assert "Resource statement" in html and "data:image/png;base64," in html


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        ("report.statement.cutoff", 2.5, "statement.cutoff 2.5 is not one of report.cutoffs"),
        ("classification.smoothing.min_blocks", 1, "min_blocks"),
        ("classification.classes.0.max_search_dist", -1, "max_search_dist"),
        ("validation.cross_validation", "sometimes", "cross_validation"),
        ("declustering.n_sizes", 0, "n_sizes"),
        ("declustering.grade", "au", "declustering.grade: 'au' is not one of grades"),
        ("domains.0.density", {"grade": "sg", "default": 2.9}, "density.grade: 'sg'"),
        ("capping_analysis.percentiles", [101], "percentiles"),
        ("capping_analysis.cv_target", 0, "capping_analysis.cv_target"),
        ("capping_analysis.plots", "sometimes", "capping_analysis.plots"),
        ("declustering.min_size", -1, "declustering.min_size"),
        ("declustering.anisotropy", [1, 0], "declustering.anisotropy"),
        ("declustering.offsets", 0, "declustering.offsets"),
        ("validation.enabled", "sometimes", "validation.enabled"),
        ("validation.swath_width", -5, "validation.swath_width"),
        ("validation.max_blocks", 0, "validation.max_blocks"),
        ("report.statement.tonnes_round", 0, "report.statement.tonnes_round"),
        ("report.statement.grade_figures", 9, "report.statement.grade_figures"),
        ("report.statement.metal_round", -1, "report.statement.metal_round"),
        ("domains.0.density", {"grade": "pd", "default": 0}, "domains[0].density"),
        ("output", {"path": "run", "exports": [{"format": "csv", "profile": "minesight"}]},
         "output.exports[0].profile"),
    ],
)
def test_a_wrong_value_in_each_new_key_is_refused(tmp_path, capsys, path, value, words):
    raw = yaml.safe_load((DEMO / "demo.yaml").read_text())
    node = raw
    *head, last = path.split(".")
    for key in head:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    node[last] = value
    for f in DEMO.iterdir():
        if f.is_file() and f.suffix != ".yaml":
            shutil.copy(f, tmp_path / f.name)
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["check", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_simple_kriging_cross_validates_with_each_domains_mean(tmp_path):
    from estimator.estimation import search_passes
    from estimator.io.artefacts import load_models
    from estimator.validation import cross_validate
    from test_update_random import _world

    first, _ = _world(tmp_path, "extension", 7)
    raw = yaml.safe_load(first.read_text())
    raw["estimation"]["method"] = "sk"
    raw["estimation"]["sk_mean"] = {"ore": 1.1, "cap": {"au": 0.9}}
    raw["validation"] = {"enabled": True}
    first.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["run", str(first), "--quiet"]) == 0
    run = tmp_path / "run"
    table = pd.read_csv(run / "validation" / "validation_cross_au.csv")
    comps = pd.read_csv(run / "composites.csv")
    models = load_models(run / "variograms.yaml")
    cfg = load_config(first)
    for dom, mean in (("ore", 1.1), ("cap", 0.9)):
        c = comps[comps["domain"] == dom]
        direct = cross_validate(c[["x", "y", "z"]].to_numpy(), c["au"].to_numpy(),
                                c["hole_id"].to_numpy(), models[dom]["au"], search_passes(cfg),
                                method="sk", sk_mean=mean)  # fmt: skip
        got = table[table["domain"] == dom]
        np.testing.assert_allclose(got["estimate"].to_numpy(), direct["estimate"].to_numpy(),
                                   rtol=1e-12, equal_nan=True)  # fmt: skip


def test_a_rereport_at_other_cutoffs_leaves_the_statement_to_the_run(demo_run, tmp_path):
    run, raw = demo_run
    assert raw["report"]["statement"]["cutoff"] == 2
    out = tmp_path / "rereport"
    assert main(["report", str(run), "--cutoffs", "0", "3.5", "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "grade_tonnage.csv")
    assert sorted(table["cutoff"].unique()) == [0.0, 3.5]
    assert not (out / "resource_statement.csv").exists()
    verify_run_folder(run)  # the run's own statement untouched
