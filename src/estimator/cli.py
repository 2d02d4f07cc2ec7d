"""Command line: ``estimator run|check|intercepts|report|demo`` (SPEC section 4).

Thin on purpose: parse arguments, load the config, set up logging, call the pipeline.
Exit status: 0 done; 2 bad config or data (the message names the problem); 1 a bug.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from estimator import __version__
from estimator.errors import EstimatorError

log = logging.getLogger("estimator")


def _setup_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("estimator")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def _progress(args) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _print_report_summary(frame, out: Path) -> None:
    if frame.empty:
        print(f"Data report: no problems found ({out / 'data_report.csv'}).")
        return
    print(f"Data report: {len(frame)} line(s) in {out / 'data_report.csv'}")
    for code, group in frame.groupby("code", sort=False):
        first = group.iloc[0]
        where = f"{first['file']}" + (
            f" line {first['line']}"
            if first["line"] is not None and str(first["line"]) != "<NA>"
            else ""
        )
        hole = f" hole {first['hole']}" if first["hole"] else ""
        print(
            f"  {len(group):6d}  {code:28s} e.g. {where}{hole}: {first['what']} -> {first['action']}"
        )


def _numba_cache_is_cold() -> bool:
    """True when the compiled kriging kernel is not cached yet (the first run on a machine)."""
    try:
        from estimator.kriging import _kernels

        cache = Path(_kernels.krige_serial._cache._cache_path)  # where numba keeps it
    except Exception:  # numba internals moved: say nothing rather than fail
        return False
    return not any(cache.glob("_kernels._make_krige_loop*.nbi"))


def _announce_compilation(args) -> None:
    if not args.quiet and _numba_cache_is_cold():
        log.info(
            "First run on this machine: compiling the numerical kernels (about 40 s, once; "
            "later runs reuse them)"
        )


def _print_files(state) -> None:
    plots = [rel for rel in state.files.values() if rel.startswith("plots/")]
    for key, rel in state.files.items():
        if not rel.startswith("plots/"):
            print(f"{key:16s} {state.folder / rel}")
    if plots:
        print(f"{'plots':16s} {state.folder / 'plots'} ({len(plots)} files)")


def _run_one(path: str, args, client=None) -> None:
    """One config of ``estimator run``: the run and its summary on the terminal."""
    from estimator.config import load_config
    from estimator.pipeline import run, with_scheduler
    from estimator.reporting import format_resource

    cfg = with_scheduler(load_config(path), args.scheduler)
    if cfg.sensitivity and args.until == "report":
        _run_study(cfg, args)
        return
    state = run(
        cfg,
        until=args.until,
        out=args.out,
        scheduler=args.scheduler,
        progress=_progress(args),
        reuse=not args.recompute,
        client=client,
    )
    if args.quiet:
        return
    _print_report_summary(state.report.to_frame(), state.folder)
    _print_files(state)
    if state.stages:
        print("\nStages:")
        for name, rec in state.stages.items():
            print(f"  {name:12s} {rec['status']:9s} {rec['why']}")
    table = state.results.get("grade_tonnage")
    if table is not None:
        grade = cfg.report.grade or cfg.grades[0]
        print(f"\nResource, {grade}, all classes, at the configured cut-offs "
              f"({state.folder / 'grade_tonnage.csv'}):")  # fmt: skip
        print(format_resource(table, cfg.data.grade_unit))
    if state.notes:
        print(f"\n{len(state.notes)} warning(s): see above and run.json")


def _run_study(cfg, args) -> None:
    """``estimator run`` of a config with ``sensitivity`` variants: the study and its summary."""
    from estimator.sensitivity import sensitivity_headline, study

    base, states, table = study(cfg, out=args.out, scheduler=args.scheduler,
                                progress=_progress(args), reuse=not args.recompute)  # fmt: skip
    if args.quiet:
        return
    folder = base.folder / "sensitivity"
    meta = json.loads((folder / "study.json").read_text())
    print(f"\nSensitivity study of {cfg.name}: base and {len(states)} variant(s) "
          f"({folder / 'sensitivity.csv'}, {folder / 'sensitivity.png'})")  # fmt: skip
    cut = (cfg.report.statement.cutoff if cfg.report.statement is not None
           else min(cfg.report.cutoffs))  # fmt: skip
    gu = cfg.data.grade_unit or "grade units"
    print(f"  {'variant':14s} {'estimate':22s} {'seconds':>8s} {'tonnes':>14s} {'grade':>8s}"
          f"   (all domains and classes at {cut:g} {gu})")  # fmt: skip
    sub = sensitivity_headline(table)
    sub = sub[np.isclose(sub["cutoff"].astype(float), cut)]
    for name in ["base", *states]:
        how = meta["variants"].get(name, {})
        est = (base.stages.get("estimate", {}).get("status", "") if name == "base" else
               "re-weighted, no kriging" if how.get("reweighted") else how.get("estimate", ""))
        row = sub[sub["variant"] == name]
        t = f"{row['tonnes'].iloc[0]:,.0f}" if len(row) else "-"
        g = f"{row['grade'].iloc[0]:.3g}" if len(row) else "-"
        print(f"  {name:14s} {est:22s} {meta['seconds'][name]:8.2f} {t:>14s} {g:>8s}")


def cmd_run(args) -> int:
    _announce_compilation(args)
    if len(args.config) == 1:
        _run_one(args.config[0], args)
        return 0
    return _run_batch(args)


def _run_batch(args) -> int:
    """Several configs, one after another on one scheduler; a failure stops only its own run.

    Exit status: 0 when every run finished, 2 when the failures were all bad configs, data or
    arguments, 1 when any was a bug; the summary names each failed config.
    """
    from estimator.errors import DataError
    from estimator.kriging.parallel import connect

    if args.out:
        msg = "--out names one run folder; with several configs each runs into its own output"
        raise DataError(msg)
    client = connect(args.scheduler) if args.scheduler else None
    results: list[tuple[str, int, str]] = []
    try:
        for path in args.config:
            if not args.quiet:
                print(f"\n=== {path}")
            try:
                _run_one(path, args, client)
                results.append((path, 0, "done"))
            except EstimatorError as err:
                print(f"estimator: error: {path}: {err}", file=sys.stderr)
                results.append((path, 2, str(err).splitlines()[0]))
            except KeyboardInterrupt:
                raise
            except Exception as err:
                traceback.print_exc()
                results.append((path, 1, f"internal error: {type(err).__name__}: {err}"))
    finally:
        if client is not None:
            client.close()
    failed = [r for r in results if r[1]]
    print(f"\n{len(results)} configs: {len(results) - len(failed)} done, {len(failed)} failed")
    for path, rc, what in results:
        print(f"  {'ok    ' if rc == 0 else 'FAILED'} {path}: {what}")
    if not failed:
        return 0
    return 1 if any(rc == 1 for _, rc, _ in failed) else 2


def cmd_update(args) -> int:
    from estimator.config import load_config
    from estimator.pipeline import update, with_scheduler
    from estimator.reporting import format_resource

    _announce_compilation(args)
    cfg = with_scheduler(load_config(args.config), args.scheduler)
    state = update(
        cfg,
        source=args.source,
        out=args.out,
        until=args.until,
        scheduler=args.scheduler,
        progress=_progress(args),
    )
    if args.quiet:
        return 0
    info = state.results.get("update", {})
    _print_report_summary(state.report.to_frame(), state.folder)
    print("\nStages:")
    for name, rec in state.stages.items():
        print(f"  {name:12s} {rec['status']:9s} {rec['why']}")
    upd = state.counts.get("update")
    if upd and state.stages.get("estimate", {}).get("status") == "computed":
        if upd.get("reused"):
            per = [v for d in upd["blocks"].values() for v in d.values()]
            est = sum(v["estimated"] for v in per)
            kept = sum(v["copied"] for v in per)
            share = 100.0 * est / (est + kept) if est + kept else 0.0
            print(f"  estimate: {est:,} block estimates redone ({share:.1f}%), {kept:,} kept "
                  "from the previous run (within search reach of a changed composite or not)")
        else:
            print(f"  estimate: every block estimated ({upd.get('reason')})")
    if not info.get("previous_usable"):
        print(f"\nNo usable previous run ({info.get('why_not')}): every stage ran.")
    diff = state.results.get("diff")
    if diff is not None:
        print(f"\nWhat changed ({state.folder / 'diff'}):")
        print(getattr(diff, "text", ""))
    release = state.results.get("release")
    if release is not None:
        print(f"\nRelease table of tranche {info.get('newest_tranche')} "
              f"({state.folder / 'release' / 'intercepts.txt'}):")  # fmt: skip
        print(release[1])
    table = state.results.get("grade_tonnage")
    if table is not None:
        grade = cfg.report.grade or cfg.grades[0]
        print(f"\nResource, {grade}, all classes ({state.folder / 'grade_tonnage.csv'}):")
        print(format_resource(table, cfg.data.grade_unit))
    return 0


def cmd_diff(args) -> int:
    from estimator.diffing import DIFF_FILES, diff_runs
    from estimator.pipeline import check_side_folder, verify_run_folder

    run_a, run_b = Path(args.run_a), Path(args.run_b)
    if args.out:
        out = Path(args.out)
    else:
        meta = verify_run_folder(run_a)
        out = run_b / "reports" / f"diff-{meta.get('run_id') or run_a.name}"
    check_side_folder(out, "--out" if args.out else "diff folder", list(DIFF_FILES.values()))
    result = diff_runs(run_a, run_b, out, progress=_progress(args))
    if not args.quiet:
        print(result.text)
        print(f"\nwritten to {out}")
    return 0


def cmd_export(args) -> int:
    from estimator.io.exports import export_name, export_run
    from estimator.pipeline import check_side_folder, verify_run_folder

    run_dir = Path(args.run_dir)
    verify_run_folder(run_dir)  # the block model is the one the run wrote
    target = Path(args.out) if args.out else run_dir / "exports"
    if not args.out or target.is_dir():
        target = target / export_name(args.format, args.profile)
    # never over a file the run lists as its own (output.exports), even with --overwrite
    check_side_folder(target.parent, "--out" if args.out else "export", [target.name])
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = export_run(run_dir, args.format, profile=args.profile, out=args.out,
                           overwrite=args.overwrite)  # fmt: skip
    for w in caught:
        logging.getLogger("estimator").warning(str(w.message))
    if not args.quiet:
        for f in files:
            size = f.stat().st_size
            print(f"written {f} ({size / 1e6:,.1f} MB)")
    return 0


def cmd_check(args) -> int:
    from estimator.config import load_config
    from estimator.pipeline import run_check

    cfg = load_config(args.config)
    state = run_check(cfg, out=args.out, progress=_progress(args))
    if args.quiet:
        return 0
    print(f"Config {args.config}: valid.")
    c = state.counts
    if "assay_rows" in c:
        print(
            f"Data: {c['holes']} holes, {c['survey_rows']} survey rows, {c['assay_rows']} assay intervals."
        )
        for dom, n in c.get("intervals_by_domain", {}).items():
            print(f"  {dom or '(no domain)':12s} {n} intervals")
    else:
        print(f"Data: {c.get('samples', 0)} samples.")
    _print_report_summary(state.report.to_frame(), state.folder)
    return 0


def cmd_intercepts(args) -> int:
    from estimator.config import load_config
    from estimator.pipeline import run_intercepts

    cfg = load_config(args.config)
    table, text, path = run_intercepts(cfg, out=args.out, tranche=args.tranche)
    print(text)
    print(f"\n{len(table)} row(s) written to {path}")
    return 0


def cmd_report(args) -> int:
    from estimator.pipeline import rereport
    from estimator.reporting import format_resource

    table, path = rereport(Path(args.run_dir), args.cutoffs, out=args.out)
    classes = list(dict.fromkeys(table["class"]))
    for klass in classes:
        print(f"class {klass}:")
        print(format_resource(table, _grade_unit(table), klass))
    print(f"\nwritten to {path} (the run's own grade_tonnage.csv is unchanged)")
    return 0


def _grade_unit(table) -> str | None:
    if "grade_unit" in table and len(table):
        unit = str(table["grade_unit"].iloc[0])
        return None if unit.startswith("not set") else unit
    return None


def _cutoff(text: str) -> float:
    """argparse type of one ``--cutoffs`` value: a finite number, zero or more."""
    try:
        value = float(text)
    except ValueError:
        msg = f"{text!r} is not a number (cut-offs are grades, e.g. --cutoffs 0 0.5 1)"
        raise argparse.ArgumentTypeError(msg) from None
    if not np.isfinite(value) or value < 0:
        msg = f"{text!r}: a cut-off is a grade of zero or more"
        raise argparse.ArgumentTypeError(msg)
    return value


def _scheduler(text: str) -> str:
    from estimator.config import _scheduler_value

    try:
        return _scheduler_value(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def cmd_demo(args) -> int:
    from estimator.io.demo import write_demo

    path = write_demo(Path(args.dir), seed=args.seed)
    print(f"Demo data and config written to {Path(args.dir)}; run it with:\n  estimator run {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used by the docs)."""
    p = argparse.ArgumentParser(prog="estimator", description="Geostatistical resource estimation.")
    p.add_argument("--version", action="version", version=f"estimator {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        sp.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
        return sp

    r = common(sub.add_parser("run", help="run all stages (or --until one) of one or more configs"))
    r.add_argument("config", nargs="+", help="one or more configs, run one after another")
    r.add_argument("--out", help="run folder (default: the config's output)")
    r.add_argument(
        "--scheduler", type=_scheduler, help="threads | processes | synchronous | tcp://host:port"
    )
    r.add_argument(
        "--until",
        default="report",
        choices=["data", "composites", "variograms", "estimate", "validation", "report"],
        help="last stage to run",
    )
    r.add_argument(
        "--recompute",
        action="store_true",
        help="run every stage, even those whose inputs did not change since the last run",
    )
    r.set_defaults(func=cmd_run)

    u = common(
        sub.add_parser(
            "update",
            help="re-estimate after a new tranche, reusing what it cannot change; diff + release",
        )
    )
    u.add_argument("config")
    u.add_argument("--from", dest="source", help="the previous run folder (default: the config's)")
    u.add_argument("--out", help="run folder (default: the config's output)")
    u.add_argument(
        "--scheduler", type=_scheduler, help="threads | processes | synchronous | tcp://host:port"
    )
    u.add_argument("--until", default="report", choices=["data", "composites", "variograms",
                   "estimate", "validation", "report"], help="last stage to run")  # fmt: skip
    u.set_defaults(func=cmd_update)

    df = common(sub.add_parser("diff", help="what changed between two runs, and which holes drove it"))
    df.add_argument("run_a", help="the run before")
    df.add_argument("run_b", help="the run after")
    df.add_argument("--out", help="folder for the diff (default: RUN_B/reports/diff-<A's run id>)")
    df.set_defaults(func=cmd_diff)

    c = common(sub.add_parser("check", help="validate config and data, write the data report"))
    c.add_argument("config")
    c.add_argument("--out", help="folder for the data report (default: <output>/check)")
    c.set_defaults(func=cmd_check)

    i = common(
        sub.add_parser("intercepts", help="significant-intercept table, press-release style")
    )
    i.add_argument("config")
    i.add_argument("--out", help="folder for the tables (default: <output>/intercepts)")
    i.add_argument("--tranche", help="list only the holes with assays from this tranche")
    i.set_defaults(func=cmd_intercepts)

    rep = common(sub.add_parser("report", help="re-report an existing run at other cut-offs"))
    rep.add_argument("run_dir")
    rep.add_argument("--cutoffs", nargs="+", type=_cutoff, metavar="CUTOFF")
    rep.add_argument(
        "--out", help="folder for the re-report (default: RUN_DIR/reports/cutoffs-...)"
    )
    rep.set_defaults(func=cmd_report)

    ex = common(sub.add_parser(
        "export", help="write a run's block model for Datamine, Vulcan, GEOVIA, Leapfrog, ParaView"))
    ex.add_argument("run_dir")
    ex.add_argument("--format", required=True, choices=["csv", "parquet", "omf", "vtk"],
                    help="csv / parquet (sparse, one row per block and domain), omf, vtk")
    ex.add_argument("--profile", choices=["datamine", "vulcan", "geovia", "surpac", "leapfrog"],
                    help="column names and header of a mining package (csv and parquet)")
    ex.add_argument("--out", help="file or folder (default: RUN_DIR/exports/)")
    ex.add_argument("--overwrite", action="store_true", help="replace an existing export")
    ex.set_defaults(func=cmd_export)

    d = common(sub.add_parser("demo", help="write the bundled demo data set and its config"))
    d.add_argument("dir", nargs="?", default="demo")
    d.add_argument("--seed", type=int, default=2011)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``estimator`` console script."""
    from estimator.interrupt import handled

    args = build_parser().parse_args(argv)
    _setup_logging(args.quiet)
    try:
        with handled():
            return args.func(args)
    except EstimatorError as err:
        print(f"estimator: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # output piped into `head` and the reader went away: not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("estimator: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print(
            "estimator: internal error (a bug): please report it with the traceback above",
            file=sys.stderr,
        )
        return 1


def console_main() -> int:
    """The ``estimator`` console script: :func:`main`, then a quick exit.

    The run's objects go away with the process: freezing them spares the garbage collector a
    walk over all of them at interpreter exit (about 0.5 s of a 3 s run).
    """
    rc = main()
    import gc

    gc.freeze()
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
