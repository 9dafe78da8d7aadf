"""`python -m benchmarks [--preset small|gpu] [--only NAME ...]`: run the benchmarks and write the report.

Writes benchmarks/results/latest.json and latest.md (plus a time-stamped copy); a full run of the small preset
also refreshes the committed benchmarks/LATEST.md.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.context import Context
from benchmarks.harness import LATEST_MD, RESULTS_DIR, BenchResult, load_average, new_report, write_report
from benchmarks.presets import PRESETS

# Run order matters a little: efficiency reuses the training runs of overhead, defaults and memory.
BENCHMARKS = ("cli_latency", "overhead", "defaults", "memory", "efficiency")
NEEDS_MODEL = {"overhead", "defaults", "memory", "efficiency"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="where the JSON and Markdown go")
    parser.add_argument("--keep-workdir", action="store_true", help="keep recipes, outputs and registry")
    parser.add_argument(
        "--no-latest-md", action="store_true", help="do not refresh benchmarks/LATEST.md even on a full run"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    command = (
        "python -m benchmarks --preset "
        + preset.name
        + (" --only " + " ".join(args.only) if args.only else "")
    )
    report = new_report(preset.name, command)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="ftkit-bench-"))
    ctx = Context(preset, workdir)
    ctx.log(f"{command}: work folder {workdir}")
    try:
        if NEEDS_MODEL & set(names):
            from benchmarks.assets import ensure_model

            ctx.log("preparing SmolLM2-135M-Instruct (fp32 folder, cached after the first run)")
            ctx.model_dir = ensure_model()
        for name in names:
            module = importlib.import_module(f"benchmarks.{name}")
            ctx.log(f"== {name}")
            bench_started = time.perf_counter()
            try:
                result = module.run(ctx)
            except Exception as error:  # one broken benchmark must not lose the others' results
                result = BenchResult(name, error=f"{type(error).__name__}: {error}")
            result.seconds = time.perf_counter() - bench_started
            report["benchmarks"].append(result.to_dict())
            ctx.log(
                f"== {name} done in {result.seconds:.0f} s"
                + (f" (error: {result.error})" if result.error else "")
            )
            report["total_seconds"] = round(time.perf_counter() - started, 1)
            report["load_average_at_end"] = load_average()
            write_report(
                report, args.results
            )  # after every benchmark, so an interrupted run keeps what it has
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    report["load_average_at_end"] = load_average()
    full_small = preset.name == "small" and not args.only and not args.no_latest_md
    path = write_report(report, args.results, LATEST_MD if full_small else None)
    print((args.results / "latest.md").read_text())
    ctx.log(
        f"wrote {path} and latest.md in {report['total_seconds']:.0f} s"
        + (f"; refreshed {LATEST_MD}" if full_small else "")
    )
    return 1 if any(bench.get("error") for bench in report["benchmarks"]) else 0


if __name__ == "__main__":
    sys.exit(main())
