"""The run folder's report page (``report.html``): content, self-containment, and a real browser.

The run folder is the demo (June, then ``estimator update`` with September, so the diff exists)
on a coarser grid with classification rules; the files of the stages not wired yet (capping and
declustering analysis, validation pack, resource statement) are made by the test.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from estimator.cli import main
from estimator.errors import DataError
from estimator.io.report_html import (
    NOT_PRODUCED,
    PNG_SIGNATURE,
    _table,
    class_rule_words,
    composite_statistics,
    render_report,
    write_report,
)

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo"
CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = [
    "run", "data-report", "composites", "capping", "declustering", "variograms", "estimation",
    "validation", "classification", "grade-tonnage", "resource-statement", "diff",
]  # fmt: skip
CLASSES = [
    {"name": "indicated", "max_pass": 1, "min_samples": 8, "min_slope": 0.3},
    {"name": "inferred", "max_pass": 2},
]


def _png(path: Path, seed: int) -> None:
    """A small real PNG plot (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(np.cumsum(rng.normal(size=50)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=60)
    plt.close(fig)


def _config(folder: Path, name: str, assays: int) -> Path:
    raw = yaml.safe_load((DEMO / "demo.yaml").read_text())
    raw["data"]["assays"] = raw["data"]["assays"][:assays]
    # the same extent on 10 m blocks: 8 times fewer blocks than the demo's 5 m grid
    raw["block_model"].update(block_size=[10.0, 10.0, 10.0], shape=[33, 43, 52], subcells=[2, 2, 2])
    raw["classification"] = {"classes": CLASSES}
    raw["report"]["statement"] = {"cutoff": 2}
    raw["output"] = "run"
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    for pattern in ("*.csv", "*.obj"):
        for src in DEMO.glob(pattern):
            shutil.copy(src, folder / src.name)
    june = _config(folder, "june.yaml", 1)
    both = _config(folder, "both.yaml", 2)
    run = folder / "run"
    assert main(["run", str(june), "--out", str(run), "--quiet"]) == 0
    assert main(["update", str(both), "--out", str(run), "--quiet"]) == 0
    return run


@pytest.fixture(scope="module")
def page(run_dir) -> str:
    return render_report(run_dir)


def _img_sources(text: str) -> list[str]:
    return re.findall(r'<img[^>]*\ssrc="([^"]*)"', text)


# -- content ---------------------------------------------------------------------------------
def test_every_section_is_there_and_produced(page):
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in page
        assert f'href="#{anchor}"' in page
    toc = page[page.index('<nav class="toc">') : page.index("</nav>")]
    assert NOT_PRODUCED not in toc
    assert page.count("<table") >= 15


def test_every_image_is_an_embedded_png(page, run_dir):
    sources = _img_sources(page)
    pngs = [*run_dir.glob("plots/*.png"), *run_dir.glob("diff/plots/*.png")]
    assert len(pngs) >= 7
    assert len(sources) == len(pngs)
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert embedded == {p.read_bytes() for p in pngs}


def test_nothing_is_loaded_from_outside_the_page(page):
    refs = re.findall(r'\b(?:src|href)\s*=\s*["\']?([^"\'\s>]*)', page, flags=re.IGNORECASE)
    assert refs
    for ref in refs:
        assert ref.startswith(("#", "data:image/png;base64,")), ref[:80]
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page


def test_header_says_the_run(page, run_dir):
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["run_id"] in page and meta["created"] in page
    assert "both.yaml" in page
    for sha in meta["inputs"].values():
        assert sha[:12] in page
    for tranche in ("2011-06-28", "2011-09-14"):
        assert tranche in page


def test_composite_statistics_agree_with_numpy(run_dir, page):
    comps = pd.read_csv(run_dir / "composites.csv")
    table = composite_statistics(comps, ["pd"])
    for dom in ("offset", "roby"):
        x = comps.loc[comps["domain"] == dom, "pd"].dropna().to_numpy()
        row = table[(table["domain"] == dom) & (table["grade"] == "pd")].iloc[0]
        assert row["count"] == x.size
        np.testing.assert_allclose(
            [row["mean"], row["sd"], row["min"], row["median"], row["max"]],
            [x.mean(), np.sqrt(((x - x.mean()) ** 2).sum() / (x.size - 1)), x.min(),
             np.sort(x)[x.size // 2] if x.size % 2 else np.sort(x)[x.size // 2 - 1 :
                                                                   x.size // 2 + 1].mean(),
             x.max()],
            rtol=1e-12,
        )  # fmt: skip
        assert row["cv"] == pytest.approx(row["sd"] / row["mean"])
        assert f"{x.size:,}" in page and f"{x.mean():,.2f}" in page
    every = table[table["domain"] == "all domains"].iloc[0]
    assert every["count"] == comps["pd"].notna().sum()
    assert "mean (g/t)" in page and "length (m)" in page


def test_variogram_table_lists_every_structure_of_the_models(page):
    doc = yaml.safe_load((DEMO / "demo.yaml").read_text())["variography"]
    section = page[page.index('<section id="variograms">') :]
    section = section[: section.index("</section>")]
    n = sum(len(e["pd"]["model"]["structures"]) for e in doc.values())
    assert section.count("<tr>") - 1 == n  # one header row
    assert "major (m)" in section and "ang1 (°)" in section
    assert ">150<" in section and ">-65.0<" in section


def test_classification_rules_in_words_and_tonnes_per_class(page, run_dir):
    assert "pass &lt;= 1 and at least 8 samples and slope of regression &gt;= 0.3" in page
    assert "pass &lt;= 2" in page
    gt = pd.read_csv(run_dir / "grade_tonnage.csv")
    low = gt[(gt["cutoff"] == gt["cutoff"].min()) & (gt["domain"] == "total")]
    per_class = low[low["class"] != "all"]
    assert set(per_class["class"]) >= {"indicated", "inferred"}
    section = page[page.index('<section id="classification">') :]
    section = section[: section.index("</section>")]
    for tonnes in per_class["tonnes"]:
        assert f">{tonnes:,.0f}<" in section
    # the classes never hold more than every class together
    assert per_class["tonnes"].sum() <= low.loc[low["class"] == "all", "tonnes"].iloc[0] + 1e-6


def test_class_rule_words_says_every_condition():
    rule = {"name": "m", "max_pass": 1, "min_samples": 8, "min_holes": 3, "min_slope": 0.5,
            "max_dist": 40.0}  # fmt: skip
    assert class_rule_words(rule, "m") == (
        "pass <= 1 and at least 8 samples and at least 3 holes and slope of regression >= 0.5 "
        "and mean anisotropic distance <= 40 m"
    )
    assert class_rule_words({"name": "x"}) == "every estimated block"


def test_grade_tonnage_and_diff_sections(page, run_dir):
    gt = pd.read_csv(run_dir / "grade_tonnage.csv")
    top = gt[(gt["domain"] == "total") & (gt["class"] == "all")].iloc[0]
    assert f">{top['tonnes']:,.0f}<" in page and f">{top['metal']:,.0f}<" in page
    assert "tonnes (t)" in page and "grade (g/t)" in page and "metal (oz)" in page
    section = page[page.index('<section id="diff">') :]
    for title in ("before and after", "Class migration", "Holes driving the change",
                  "Release table"):  # fmt: skip
        assert title in section
    holes = pd.read_csv(run_dir / "diff/holes_driving_change.csv")
    assert str(holes["hole_id"].iloc[0]) in section
    assert "tonnes_before (t)" in section


def test_resource_statement_marks_the_qp_placeholders(page, run_dir):
    section = page[page.index('<section id="resource-statement">') :]
    section = section[: section.index("</section>")]
    notes = section[section.index("<pre") :]
    text = (run_dir / "resource_statement.md").read_text()
    assert notes.count('<mark class="qp">') == text.count("[QP:") >= 3
    assert "must be completed by the Qualified Person" in section
    first = pd.read_csv(run_dir / "resource_statement.csv").iloc[0]
    assert f">{first['tonnes']:,.0f}<" in section


def test_validation_and_analysis_tables_with_units(page):
    assert "Cross validation summary" in page
    assert "rmse (g/t)" in page and "cell_size (m)" in page and "cap (g/t)" in page
    assert "estimate_mean (g/t)" in page


# -- formatting and hostile content ----------------------------------------------------------
def test_table_formats_numbers_and_units():
    frame = pd.DataFrame(
        {"domain": ["a", "b"], "hole_id": [1001, 2002], "tonnes": [1234567.8, np.nan],
         "grade": [4.56789, 0.5], "tonnes_unit": ["t", "t"]}
    )  # fmt: skip
    text = _table(frame, units={"grade": "g/t"})
    assert '<th class="num">tonnes (t)</th>' in text and "tonnes_unit" not in text
    assert '<td class="num">1,234,568</td>' in text
    assert '<td class="num">–</td>' in text
    assert '<td class="num">4.57</td>' in text and "grade (g/t)" in text
    assert "<td>1001</td>" in text  # a hole id is a name, not a quantity
    # a small value keeps two significant digits beside larger ones (Babbitt's ni nugget)
    small = _table(pd.DataFrame({"sill": [0.0019, 0.07, 0.5]}))
    assert ">0.0019<" in small and ">0.0700<" in small
    assert ">12,345<" in _table(pd.DataFrame({"t": [12345.4, 0.5]}), decimals={"t": 0})
    long = _table(pd.DataFrame({"v": range(100)}), max_rows=10, source="x.csv")
    assert long.count("<tr>") == 11 and "First 10 of 100 rows shown (all of them in x.csv)" in long


def _minimal(folder: Path, meta: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"name": "tiny", "run_id": "r1", "created": "today", "estimator_version": "0",
           "config": {"name": "tiny", "grades": ["au"], "data": {"grade_unit": "g/t"}}}  # fmt: skip
    doc.update(meta or {})
    (folder / "run.json").write_text(json.dumps(doc))
    return folder


def test_a_folder_with_only_run_json_says_what_is_missing(tmp_path):
    text = render_report(_minimal(tmp_path / "run"))
    toc = text[text.index('<nav class="toc">') : text.index("</nav>")]
    assert toc.count(NOT_PRODUCED) == len(SECTIONS) - 1  # all but the header
    assert "data_report.csv: not produced by this run" in text


def test_hostile_text_is_escaped_and_outside_files_are_not_read(tmp_path):
    run = _minimal(tmp_path / "run", {"warnings": ["<b>bold</b> & more"]})
    (run / "data_report.csv").write_text(
        'file,line,hole,code,what,action\na.csv,3,"<script>x</script>",bad,"a <i>b</i>",kept\n'
    )
    outside = tmp_path / "secret.png"
    _png(outside, 1)
    (run / "plots").mkdir()
    (run / "plots" / "variogram_link.png").symlink_to(outside)
    (run / "plots" / "capping_fake.png").write_bytes(b"GIF89a not a png")
    text = render_report(run)
    assert "<script>" not in text and "&lt;script&gt;x&lt;/script&gt;" in text
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in text
    assert "a &lt;i&gt;b&lt;/i&gt;" in text
    assert not _img_sources(text)
    assert "plots/capping_fake.png is not a PNG image; left out" in text


def test_a_broken_csv_is_said_not_raised(tmp_path):
    run = _minimal(tmp_path / "run")
    (run / "composites.csv").write_bytes(b'hole_id,pd\n"unclosed,1\n')
    text = render_report(run)
    assert "composites.csv could not be read as CSV" in text


def test_no_run_json_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"run\.json.*not found"):
        render_report(tmp_path)
    (tmp_path / "run.json").write_text("")
    with pytest.raises(DataError, match="empty"):
        render_report(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        render_report(tmp_path / "nowhere")


def test_write_report_writes_the_page(run_dir, page, tmp_path):
    path = write_report(run_dir, tmp_path / "out.html")
    assert path.read_text(encoding="utf-8") == page
    assert not list(tmp_path.glob(".out.html.*"))  # no temporary file left


# -- in a real browser -----------------------------------------------------------------------
_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var tables = Array.from(document.querySelectorAll('table'));
  var empty = tables.filter(function (t) { return t.querySelectorAll('tbody tr').length === 0; });
  var res = performance.getEntriesByType('resource').filter(function (r) {
    return !r.name.startsWith('data:'); });
  document.body.setAttribute('data-check', (bad.length || empty.length || res.length ? 'bad' : 'ok')
    + ' n_img=' + imgs.length + ' bad_img=' + bad.length + ' n_tables=' + tables.length
    + ' empty_tables=' + empty.length + ' external=' + res.length);
});
</script>"""

_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--hide-scrollbars",
]  # fmt: skip


def _chromium(args: list[str], tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{name}"
    cmd = [str(CHROMIUM), *_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is missing: install it with .ci/install-chromium (CI does)",
)
def test_page_renders_in_headless_chromium(page, tmp_path):
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", _CHECK + "\n</body>"), encoding="utf-8")
    dom = _chromium(["--virtual-time-budget=10000", "--dump-dom", checked.as_uri()], tmp_path,
                    "dom")  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    marker = re.search(r'data-check="([^"]*)"', dom.stdout)
    assert marker, dom.stdout[-2000:]
    n_img = len(_img_sources(page))
    n_tables = page.count("<table")
    assert marker.group(1) == (
        f"ok n_img={n_img} bad_img=0 n_tables={n_tables} empty_tables=0 external=0"
    )
    shot = tmp_path / "report.png"
    plain = tmp_path / "report.html"
    plain.write_text(page, encoding="utf-8")
    res = _chromium([f"--screenshot={shot}", "--window-size=1280,2400", plain.as_uri()],
                    tmp_path, "shot")  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = (int.from_bytes(data[k : k + 4], "big") for k in (16, 20))
    assert (width, height) == (1280, 2400)
    assert len(data) > 50_000  # a page of text, tables and plots, not a blank screen
