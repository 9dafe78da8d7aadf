"""`python -m benchmarks [--preset small|gpu|smoke] [--only NAME ...] [--report]`: measure, record, report.

Each benchmark writes benchmarks/results/<preset>/<name>.json (commit, clean-tree flag, machine, load at start and
end, every row); then benchmarks/LATEST.md and the README's benchmark tables are regenerated from those files
(small preset; other presets write <results>/LATEST.md only). A tree with uncommitted changes is refused, because
its figures would belong to no commit: commit first, or pass --allow-dirty to measure anyway with every figure
marked as such. `--preset smoke` checks that every piece runs (1 repetition, 2 steps; results in
benchmarks/results/smoke/, git-ignored); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.context import Context
from benchmarks.harness import (
    REPO_ROOT,
    RESULTS_DIR,
    BenchResult,
    git_state,
    load_average,
    machine_info,
    package_versions,
)
from benchmarks.presets import PRESETS
from benchmarks.report import ORDER, now_iso, regenerate, results_record, write_results_file

BENCHMARKS = ORDER
MODULES = {"registry": "registry_bench", "methods": "compare_methods"}
# Every benchmark but these few trains or loads SmolLM2, so a new one needs the model unless listed here.
MODEL_FREE = {"cli_latency", "registry", "precision", "ui_runs_page"}
NEEDS_MODEL = set(ORDER) - MODEL_FREE
LATEST_MD = Path(__file__).resolve().parent / "LATEST.md"
README = REPO_ROOT / "README.md"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--results", type=Path, help="results folder (default: benchmarks/results/<preset>)")
    parser.add_argument(
        "--report", action="store_true", help="only regenerate the reports from results files"
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="measure a tree with uncommitted changes (marked in every file)",
    )
    parser.add_argument(
        "--reps",
        type=int,
        help="repetitions per comparison instead of the preset's (a timing check; not for README)",
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep recipes, outputs and registry")
    return parser.parse_args(argv)


def report_targets(preset: str, results: Path) -> tuple[Path, Path | None]:
    """The canonical small-preset results feed benchmarks/LATEST.md and the README; others report in place."""
    if preset == "small" and results.resolve() == (RESULTS_DIR / "small").resolve():
        return LATEST_MD, README
    return results / "LATEST.md", None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    if args.reps:
        preset = replace(preset, reps=args.reps)
        if not args.results and not args.report:
            print(
                "python -m benchmarks: --reps needs --results DIR (the preset's own files stay as measured)",
                file=sys.stderr,
            )
            return 2
    results = args.results or RESULTS_DIR / preset.name
    latest_md, readme = report_targets(preset.name, results)
    if args.report:
        try:
            written = regenerate(results, preset.name, latest_md, readme)
        except ValueError as error:
            print(f"python -m benchmarks --report: {error}", file=sys.stderr)
            return 2
        print("wrote " + ", ".join(str(path) for path in written), file=sys.stderr)
        return 0
    git_start = git_state()
    if not git_start["clean"] and not args.allow_dirty:
        changed = git_start["changed"]
        print(
            "python -m benchmarks: the tree has uncommitted changes, so the figures would belong to no commit:\n  "
            + "\n  ".join(changed[:20] or [git_start.get("error", "not a git checkout")])
            + "\ncommit (or stash) them first, or pass --allow-dirty to measure anyway (every figure is marked).",
            file=sys.stderr,
        )
        return 2
    names = [name for name in BENCHMARKS if not args.only or name in args.only]
    machine, packages = machine_info(), package_versions()
    workdir = Path(tempfile.mkdtemp(prefix="ftkit-bench-"))
    ctx = Context(preset, workdir, reps_override=args.reps)
    ctx.log(f"preset {preset.name}: {', '.join(names)}; work folder {workdir}; results {results}")
    failed = False
    started = time.perf_counter()
    try:
        if NEEDS_MODEL & set(names):
            from benchmarks.assets import ensure_model

            ctx.log("preparing SmolLM2-135M-Instruct (fp32 folder, cached after the first run)")
            ctx.model_dir = ensure_model()
        for name in names:
            module = importlib.import_module(f"benchmarks.{MODULES.get(name, name)}")
            ctx.log(f"== {name}")
            load_start, started_at, bench_started = load_average(), now_iso(), time.perf_counter()
            try:
                result = module.run(ctx)
            except Exception as error:  # one broken benchmark must not lose the others' results
                result = BenchResult(name, error=f"{type(error).__name__}: {error}")
            result.seconds = time.perf_counter() - bench_started
            record = results_record(
                result,
                preset=preset.name,
                command=ctx.command(name),
                started_at=started_at,
                git_start=git_start,
                git_end=git_state(),
                machine=machine,
                packages=packages,
                load_start=load_start,
                load_end=load_average(),
            )
            path = write_results_file(record, results)
            regenerate(results, preset.name, latest_md, readme)
            failed = failed or bool(result.error)
            ctx.log(
                f"== {name} done in {result.seconds:.0f} s: {path}"
                + (f" (error: {result.error})" if result.error else "")
            )
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    ctx.log(
        f"all done in {time.perf_counter() - started:.0f} s; reports: {latest_md}"
        + (f", {readme} (tables between the bench markers)" if readme else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
