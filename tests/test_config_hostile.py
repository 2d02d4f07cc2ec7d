"""Config loading under hostile or unusual input: each problem is a ConfigError naming the key
(or file and line), never a traceback, and YAML's surprises (dates, duplicate keys, aliases)
are handled explicitly."""

import logging
import time

import pytest

from estimator.config import load_config
from estimator.errors import ConfigError

BASE = """\
name: t
data:
  collars: collars.csv
  surveys: surveys.csv
  assays: {assays}
grades: [pd]
"""

GRID = """\
block_model: {{origin: [0, 0, 0], block_size: [{bs}], shape: [{shape}], rotation: {rot}}}
estimation:
  passes:
    - {{ranges: [50, 50, 10], max_samples: 12}}
"""


@pytest.fixture
def folder(tmp_path):
    for name in ("collars.csv", "surveys.csv", "a1.csv", "a2.csv", "ore.obj"):
        (tmp_path / name).write_text("x\n")
    return tmp_path


def write(folder, text, name="run.yaml"):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(folder, text):
    return load_config(write(folder, text))


def test_unquoted_dates_and_numbers_are_tranche_names_as_written(folder):
    text = BASE.format(
        assays="[{path: a1.csv, tranche: 2011-06-28}, {path: a2.csv, tranche: 1.50}]"
    )
    cfg = load_text(folder, text)
    assert [a.tranche for a in cfg.data.assays] == ["2011-06-28", "1.50"]


def test_dates_elsewhere_stay_text(folder):
    cfg = load_text(folder, BASE.format(assays="a1.csv").replace("name: t", "name: 2011-09-14"))
    assert cfg.name == "2011-09-14"


def test_duplicate_key_is_refused_with_both_lines(folder):
    text = BASE.format(assays="a1.csv") + "grades: [pt]\n"
    with pytest.raises(ConfigError, match=r"'grades' is given twice \(lines 6 and 7\)"):
        load_text(folder, text)


def test_latin1_byte_names_the_line(folder):
    path = folder / "run.yaml"
    path.write_bytes(BASE.format(assays="a1.csv").encode() + b"# Mat\xe9riel\n")
    with pytest.raises(ConfigError, match=r"run.yaml: line 7 is not UTF-8"):
        load_config(path)


def test_deeply_nested_yaml_is_refused(folder):
    text = BASE.format(assays="a1.csv") + "junk: " + "[" * 10_000 + "]" * 10_000 + "\n"
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_text(folder, text)


def test_alias_bomb_is_refused_quickly(folder):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    text = BASE.format(assays="a1.csv") + "bomb:\n" + "\n".join("  " + ln for ln in lines) + "\n"
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="alias bomb") as info:
        load_text(folder, text)
    assert time.perf_counter() - t0 < 5  # not a timing assertion on speed: a hang guard
    assert len(str(info.value)) < 500


def test_unknown_key_with_big_value_prints_a_short_message(folder):
    text = BASE.format(assays="a1.csv") + "extra: [" + ", ".join(["123456"] * 5000) + "]\n"
    with pytest.raises(ConfigError) as info:
        load_text(folder, text)
    assert "extra: unknown key" in str(info.value)
    assert len(str(info.value)) < 1000


@pytest.mark.parametrize(
    ("bs", "shape", "rot", "key"),
    [
        ("5, .inf, 5", "2, 2, 2", "0", "block_model.block_size[1]"),
        ("5, 5, 5", "2, 2, 2", ".nan", "block_model.rotation"),
        ("5, 5, 5", "2, 2, 2", "-.inf", "block_model.rotation"),
    ],
    ids=["block_size", "rotation-nan", "rotation-inf"],
)
def test_non_finite_numbers_are_refused_at_load(folder, bs, shape, rot, key):
    text = BASE.format(assays="a1.csv") + GRID.format(bs=bs, shape=shape, rot=rot)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_text(folder, text)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("composites: {length: .inf}", "composites.length"),
        ("domains: [{name: ore, wireframe: ore.obj, density: .nan}]", "domains[0].density"),
        ("block_model: {origin: [0, .inf, 0], block_size: [5, 5, 5], shape: [2, 2, 2]}",
         "block_model.origin[1]"),
    ],
    ids=["composite-length", "density", "origin"],
)  # fmt: skip
def test_non_finite_numbers_elsewhere(folder, extra, key):
    text = BASE.format(assays="a1.csv") + extra + "\n"
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_text(folder, text)


def test_model_with_no_variance_is_refused(folder):
    text = BASE.format(assays="a1.csv") + (
        "variography: {all: {pd: {model: {nugget: 0, structures: "
        "[{type: spherical, sill: 0, ranges: [10, 10, 10]}]}}}}\n"
    )
    with pytest.raises(ConfigError, match=r"variography.all.pd.model: the nugget and every sill"):
        load_text(folder, text)


def test_enormous_grid_is_refused_before_any_work(folder):
    text = BASE.format(assays="a1.csv") + GRID.format(
        bs="5, 5, 5", shape="100000, 100000, 100000", rot=0
    )
    with pytest.raises(ConfigError, match=r"block_model.shape: 100000 x 100000 x 100000 .* chunks"):
        load_text(folder, text)
    # as NetCDF (one file, in memory) the same grid is refused for its memory
    text += "output: {format: netcdf}\n"
    with pytest.raises(ConfigError, match=r"block_model.shape: 100000 x 100000 x 100000 .* memory"):
        load_text(folder, text)


def test_folder_given_as_data_file(folder):
    (folder / "data").mkdir()
    text = BASE.format(assays="data")
    with pytest.raises(ConfigError, match=r"data.assays\[0\]: .*data is a folder, not a file"):
        load_text(folder, text)


def test_config_path_is_a_folder(folder):
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(folder)


def test_zone_domains_without_wireframe_need_a_block_rule(folder):
    text = BASE.format(assays="a1.csv") + (
        "domains:\n"
        "  - {name: ox, zone_code: OX}\n"
        "  - {name: sulph, zone_code: SU}\n"
        "  - {name: ore, wireframe: ore.obj}\n"
    ) + GRID.format(bs="5, 5, 5", shape="2, 2, 2", rot=0)  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_text(folder, text)
    text_err = str(info.value)
    assert "domains[0] (ox): no wireframe" in text_err
    assert "domains[1] (sulph): no wireframe" in text_err
    assert "domains[2]" not in text_err
    assert "rule: nearest_sample" in text_err


def test_zone_domains_with_a_block_rule_load(folder):
    text = BASE.format(assays="a1.csv") + (
        "domains:\n"
        "  - {name: ox, zone_code: OX, blocks: {rule: nearest_sample, max_distance: 20}}\n"
    ) + GRID.format(bs="5, 5, 5", shape="2, 2, 2", rot=0)  # fmt: skip
    cfg = load_text(folder, text)
    assert cfg.domains[0].blocks.max_distance == 20


def test_domain_with_neither_wireframe_nor_zone_code(folder):
    text = BASE.format(assays="a1.csv") + "domains: [{name: ox}]\n"
    with pytest.raises(ConfigError, match="neither a wireframe nor a zone_code"):
        load_text(folder, text)


def test_gaussian_without_nugget_warns_at_load(folder, caplog):
    text = BASE.format(assays="a1.csv") + (
        "variography: {all: {pd: {model: {nugget: 0, structures: "
        "[{type: gaussian, sill: 1, ranges: [50, 50, 10]}]}}}}\n"
    )
    with caplog.at_level(logging.WARNING, logger="estimator"):
        load_text(folder, text)
    assert any("gaussian structure with no nugget" in r.getMessage() for r in caplog.records)


def test_cutoffs_are_sorted_and_unique(folder):
    cfg = load_text(folder, BASE.format(assays="a1.csv") + "report: {cutoffs: [2, 0, 1, 2]}\n")
    assert cfg.report.cutoffs == [0.0, 1.0, 2.0]


def test_yaml_safe_tags_still_refused(folder):
    text = BASE.format(assays="a1.csv") + "x: !!python/object/apply:os.system ['true']\n"
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_text(folder, text)


def test_merge_keys_are_not_duplicates(folder):
    text = BASE.format(assays="a1.csv") + (
        "block_model: {origin: [0, 0, 0], block_size: [5, 5, 5], shape: [2, 2, 2]}\n"
        "estimation:\n"
        "  passes:\n"
        "    - &first {ranges: [50, 50, 10], min_samples: 4, max_samples: 12}\n"
        "    - {<<: *first, min_samples: 1}\n"
    )
    cfg = load_text(folder, text)
    assert [p.min_samples for p in cfg.estimation.passes] == [4, 1]
    assert cfg.estimation.passes[1].ranges == (50, 50, 10)


def test_max_grade_names_a_grade(folder):
    text = BASE.format(assays="a1.csv") + ""
    text = text.replace("grades: [pd]", "grades: [pd]\n").replace(
        "  assays: a1.csv", "  assays: a1.csv\n  max_grade: {au: 100}"
    )
    with pytest.raises(ConfigError, match=r"data.max_grade.au: no such grade \(grades are pd\)"):
        load_text(folder, text)


@pytest.mark.parametrize("name", ["all", "total"])
def test_reserved_domain_names(folder, name):
    text = BASE.format(assays="a1.csv") + f"domains: [{{name: {name}, wireframe: ore.obj}}]\n"
    with pytest.raises(ConfigError, match="reserved name"):
        load_text(folder, text)
