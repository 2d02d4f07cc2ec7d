"""Command line: ``estimator run|check|intercepts|report|demo`` (SPEC section 4).

Thin on purpose: parse arguments, load the config, set up logging, call the pipeline.
Exit status: 0 done; 2 bad config or data (the message names the problem); 1 a bug.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

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
        print("Data report: no problems found.")
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


def cmd_run(args) -> int:
    from estimator.config import load_config
    from estimator.pipeline import run

    cfg = load_config(args.config)
    state = run(
        cfg, until=args.until, out=args.out, scheduler=args.scheduler, progress=_progress(args)
    )
    _print_report_summary(state.report.to_frame(), state.out)
    for key, path in state.files.items():
        print(f"{key:14s} {path}")
    return 0


def cmd_check(args) -> int:
    from estimator.config import load_config
    from estimator.pipeline import run

    cfg = load_config(args.config)
    state = run(cfg, until="data", out=args.out, progress=_progress(args))
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
    _print_report_summary(state.report.to_frame(), state.out)
    return 0


def cmd_intercepts(args) -> int:
    from estimator.config import load_config
    from estimator.pipeline import run_intercepts

    cfg = load_config(args.config)
    table, text, path = run_intercepts(cfg, out=args.out)
    print(text)
    print(f"\n{len(table)} row(s) written to {path}")
    return 0


def cmd_report(args) -> int:
    from estimator.pipeline import rereport

    cutoffs = [float(c) for c in args.cutoffs] if args.cutoffs else None
    table, path = rereport(Path(args.run_dir), cutoffs)
    print(table.to_string(index=False))
    print(f"\nwritten to {path}")
    return 0


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

    r = common(sub.add_parser("run", help="run all stages (or --until one)"))
    r.add_argument("config")
    r.add_argument("--out", help="run folder (default: the config's output)")
    r.add_argument("--scheduler", help="threads | processes | synchronous | tcp://host:port")
    r.add_argument(
        "--until",
        default="report",
        choices=["data", "composites", "variograms", "estimate", "report"],
        help="last stage to run",
    )
    r.set_defaults(func=cmd_run)

    c = common(sub.add_parser("check", help="validate config and data, write the data report"))
    c.add_argument("config")
    c.add_argument("--out")
    c.set_defaults(func=cmd_check)

    i = common(
        sub.add_parser("intercepts", help="significant-intercept table, press-release style")
    )
    i.add_argument("config")
    i.add_argument("--out")
    i.set_defaults(func=cmd_intercepts)

    rep = common(sub.add_parser("report", help="re-report an existing run at other cut-offs"))
    rep.add_argument("run_dir")
    rep.add_argument("--cutoffs", nargs="+")
    rep.set_defaults(func=cmd_report)

    d = common(sub.add_parser("demo", help="write the bundled demo data set and its config"))
    d.add_argument("dir", nargs="?", default="demo")
    d.add_argument("--seed", type=int, default=2011)
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``estimator`` console script."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.quiet)
    try:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
