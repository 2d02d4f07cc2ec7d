"""Time the drillhole stages on the real Babbitt data and on the demo.

Loading + validating, wireframe reading, desurveying, domain flagging and compositing, each
timed on its own (best of ``--repeat``), plus the whole ``data`` + ``composites`` stages.

Run: ``python benchmarks/bench_drillholes.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from estimator.compositing import composite
from estimator.config import load_config
from estimator.datareport import DataReport
from estimator.domains import flag_domains, wireframe_domains
from estimator.drillholes.desurvey import desurvey
from estimator.io.drillholes import read_drillholes
from estimator.io.wireframe import load_wireframe
from estimator.pipeline import RunState, stage_composites, stage_data

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"babbitt": ROOT / "configs" / "babbitt.yaml", "demo": ROOT / "configs" / "demo" / "demo.yaml"}


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def bench(name: str, repeat: int) -> None:
    cfg = load_config(CONFIGS[name])
    rows = []
    t, holes = best(lambda: read_drillholes(cfg.data, cfg.grades, DataReport()), repeat)
    rows.append(("load + validate", t, f"{len(holes.collars)} holes, {len(holes.assays)} intervals"))
    t, wfs = best(lambda: {d.name: load_wireframe(d.wireframe) for d in cfg.domains}, repeat)
    rows.append(("read wireframes", t, f"{sum(len(w.faces) for w in wfs.values())} triangles"))
    a = holes.assays
    mids = 0.5 * (a["from"].to_numpy(float) + a["to"].to_numpy(float))
    t, xyz = best(lambda: desurvey(holes.collars, holes.surveys, a["hole_id"].to_numpy(), mids), repeat)
    rows.append(("desurvey mid-points", t, f"{len(mids)} points"))
    t, wf_dom = best(lambda: wireframe_domains(cfg.domains, wfs, xyz), repeat)
    rows.append(("inside tests", t, f"{len(xyz)} points x {len(wfs)} wireframes"))
    codes = {c: d.name for d in cfg.domains for c in d.zone_codes}
    t, intervals = best(lambda: flag_domains(a, holes.zones, codes, wf_dom, DataReport()), repeat)
    rows.append(("flag domains", t, f"{int((intervals['domain'] != '').sum())} intervals in domains"))
    c = cfg.composites
    t, comps = best(lambda: composite(intervals, cfg.grades, c.length, min_length=c.min_length), repeat)
    rows.append(("composite", t, f"{len(comps)} composites"))

    def whole():
        with tempfile.TemporaryDirectory() as tmp:
            state = RunState(config=cfg, out=Path(tmp))
            stage_data(state)
            stage_composites(state)
            return state

    t, state = best(whole, repeat)
    rows.append(("data + composites stages", t, f"{state.counts['composites']} composites written"))
    print(f"\n{name}: {CONFIGS[name].relative_to(ROOT)}")
    for what, secs, note in rows:
        print(f"  {what:26s} {secs * 1000:9.1f} ms   {note}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    np.seterr(all="ignore")
    for name in CONFIGS:
        bench(name, args.repeat)


if __name__ == "__main__":
    main()
