"""Config loading: every problem named by key path, value and expectation."""

import re
from pathlib import Path

import pytest
import yaml

from estimator.config import load_config, parse_config
from estimator.errors import ConfigError


@pytest.fixture
def folder(tmp_path):
    for name in ("collars.csv", "surveys.csv", "a1.csv", "a2.csv", "offset.obj"):
        (tmp_path / name).write_text("x\n")
    return tmp_path


def minimal(**extra):
    raw = {
        "name": "t",
        "data": {"collars": "collars.csv", "surveys": "surveys.csv", "assays": "a1.csv"},
        "grades": ["Pd"],
    }
    raw.update(extra)
    return raw


def write(folder: Path, raw) -> Path:
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_minimal_config_resolves_paths_against_its_folder(folder):
    cfg = load_config(write(folder, minimal()))
    assert cfg.data.collars == folder / "collars.csv"
    assert cfg.data.assays[0].path == folder / "a1.csv"
    assert cfg.data.assays[0].tranche is None
    assert cfg.grades == ["pd"]
    assert cfg.output.path == folder / "runs" / "t"
    assert cfg.output.format == "auto"
    assert cfg.domain_names == ["all"]
    assert cfg.data.dip == "negative_down"
    assert cfg.data.below_detection == "half"


def test_tranches_as_list(folder):
    raw = minimal()
    raw["data"]["assays"] = [
        {"path": "a1.csv", "tranche": "2011-06-28"},
        {"path": "a2.csv", "tranche": "2011-09-14"},
    ]
    cfg = load_config(write(folder, raw))
    assert [a.tranche for a in cfg.data.assays] == ["2011-06-28", "2011-09-14"]


def test_every_problem_is_one_line_with_key_value_and_expectation(folder):
    raw = minimal(
        composites={"length": 2.0, "min_length": 3.0},
        compute={"scheduler": "cloud"},
        estimation={"passes": [{"ranges": [10, 10, 5], "min_samples": 30, "max_samples": 24}]},
        block_model={"origin": [0, 0, 0], "block_size": [5, 5, 5], "shape": [10, 10, 10]},
    )
    raw["data"]["dip"] = "sideways"
    raw["data"]["colars"] = "x.csv"
    with pytest.raises(ConfigError) as info:
        load_config(write(folder, raw))
    text = str(info.value)
    assert text.startswith("run.yaml: 5 problem(s)")
    lines = text.splitlines()[1:]
    assert any(
        re.search(r"data\.dip: .*'negative_down' or 'positive_down'.*\(got 'sideways'\)", ln)
        for ln in lines
    )
    assert any(ln.strip().startswith("data.colars: unknown key") for ln in lines)
    assert any("composites: min_length (3.0) must not exceed length (2.0)" in ln for ln in lines)
    assert any("compute.scheduler:" in ln and "'cloud'" in ln for ln in lines)
    assert any(
        "estimation.passes[0]: min_samples (30) must not exceed max_samples (24)" in ln
        for ln in lines
    )


def test_missing_input_file_names_the_path(folder):
    raw = minimal()
    raw["data"]["zones"] = "nowhere.csv"
    with pytest.raises(
        ConfigError, match=re.escape(f"data.zones: file not found: {folder / 'nowhere.csv'}")
    ):
        load_config(write(folder, raw))


def test_cross_section_checks(folder):
    raw = minimal(
        domains=[{"name": "offset", "wireframe": "offset.obj", "zone_code": "OFFSET"}],
        capping={"cowboy": {"pd": 30}, "offset": {"cu": "p99"}},
        report={"cutoffs": [0, 1], "grade": "au"},
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(folder, raw))
    text = str(info.value)
    assert "capping.cowboy: no such domain (domains are offset)" in text
    assert "capping.offset.cu: no such grade (grades are pd)" in text
    assert "report.grade: 'au' is not one of grades (pd)" in text


def test_cap_rules(folder):
    cfg = load_config(write(folder, minimal(capping={"all": {"pd": "P99.5"}})))
    assert cfg.capping["all"]["pd"] == "p99.5"
    with pytest.raises(
        ConfigError,
        match=r"capping\.all\.pd: a cap is a grade value or a percentile rule like 'p99.5', got 'top'",
    ):
        load_config(write(folder, minimal(capping={"all": {"pd": "top"}})))


def test_passes_resolve_scale_and_inherit_angles():
    raw = minimal(
        block_model={"origin": [0, 0, 0], "block_size": [5, 5, 5], "shape": [4, 4, 4]},
        estimation={
            "passes": [
                {
                    "ranges": [60, 40, 15],
                    "angles": [30, -65, 0],
                    "min_samples": 8,
                    "max_per_hole": 4,
                    "octants": {"max_per_octant": 6, "min_octants": 2},
                },
                {"scale": 2.0, "min_samples": 4},
            ]
        },
    )
    cfg = parse_config(raw, check_files=False)
    p1, p2 = cfg.estimation.resolved_passes()
    assert p1["ranges"] == (60, 40, 15) and p1["max_per_octant"] == 6 and p1["min_octants"] == 2
    assert p2["ranges"] == (120, 80, 30) and p2["angles"] == (30, -65, 0)
    assert p2["max_per_octant"] == 0 and p2["min_samples"] == 4


def test_first_pass_needs_ranges_and_sk_needs_mean():
    raw = minimal(
        block_model={"origin": [0, 0, 0], "block_size": [5, 5, 5], "shape": [4, 4, 4]},
        estimation={"method": "sk", "passes": [{"scale": 2.0}]},
    )
    with pytest.raises(ConfigError) as info:
        parse_config(raw, check_files=False)
    assert "passes[0] needs ranges" in str(info.value)


def test_variogram_model_section_builds_the_model(folder):
    model = {
        "nugget": 0.2,
        "structures": [
            {"type": "spherical", "sill": 0.5, "ranges": [120, 80, 15], "angles": [30, -65, 0]},
            {"type": "exponential", "sill": 0.3, "ranges": [300, 200, 40], "angles": [30, -65, 0]},
        ],
    }
    cfg = load_config(write(folder, minimal(variography={"all": {"pd": {"model": model}}})))
    vm = cfg.variography["all"]["pd"].model.to_model()
    assert vm.to_dict() == model
    bad = {"nugget": -1, "structures": [{"type": "cubic", "sill": 1, "ranges": [1, 1, 0]}]}
    with pytest.raises(ConfigError) as info:
        load_config(write(folder, minimal(variography={"all": {"pd": {"model": bad}}})))
    text = str(info.value)
    assert (
        "variography.all.pd.model.nugget: Input should be greater than or equal to 0 (got -1)"
        in text
    )
    assert "variography.all.pd.model.structures[0].type:" in text
    assert (
        "variography.all.pd.model.structures[0].ranges[2]: Input should be greater than 0 (got 0)"
        in text
    )


def test_needs_drillholes_or_samples():
    with pytest.raises(ConfigError, match="no collars and no assays given"):
        parse_config({"name": "t", "data": {}, "grades": ["pd"]}, check_files=False)


def test_yaml_syntax_error_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: t\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+, column \d+ is not valid YAML"):
        load_config(p)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
