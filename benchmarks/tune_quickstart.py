"""`ftkit tune` on the quickstart data against the quickstart recipe, same machine, same model folder, same files.

The recipe runs as written (`ftkit run examples/quickstart/recipe.yaml`, with the model and data paths pointed at
this benchmark's copies); `ftkit tune TRAIN --eval EVAL --model M --time-budget B` generates its own recipe. Tune
must reach at least the recipe's exact match of greedy answers and no worse eval loss. Both JSON documents
(metrics, review, and tune's plan and recipe) are kept in the results file's details.
"""

from __future__ import annotations

import sys

from benchmarks.context import Context
from benchmarks.harness import BenchResult, child_env, run_child
from benchmarks.tune_real import BUDGETS, MIN_TIMEOUT_S, QUICKSTART, ftkit_argv, row, summarize, tune_child

NAME = "tune_quickstart"


def _compare(ctx: Context, budget: str, result: BenchResult, command: str) -> None:
    data = ctx.workdir / "quickstart-data"
    made = run_child([sys.executable, str(QUICKSTART / "make_data.py"), "--out", str(data)], env=child_env())
    if not made.ok:
        raise RuntimeError(f"make_data.py failed:\n{made.tail()}")
    recipe_run = run_child(
        ftkit_argv(
            "run",
            str(QUICKSTART / "recipe.yaml"),
            "--set",
            f"model={ctx.model_dir}",
            "--set",
            f"data.train={data / 'train.jsonl'}",
            "--set",
            f"data.eval={data / 'eval.jsonl'}",
            "--set",
            f"output={ctx.workdir / 'outputs'}",
            "--registry",
            str(ctx.workdir / "registry"),
            "--json",
        ),  # fmt: skip
        cwd=ctx.workdir,
        env=child_env(),
        timeout=max(ctx.preset.child_timeout_s, MIN_TIMEOUT_S),
    )
    recipe_doc = recipe_run.json() or {}
    tuned = tune_child(
        ctx, data / "train.jsonl", "tune-quickstart", budget, [], eval_file=data / "eval.jsonl"
    )
    summary = summarize(tuned)
    result.details["quickstart"] = {
        "recipe": {
            "exit_code": recipe_run.returncode,
            "wall_s": round(recipe_run.wall_s, 1),
            "metrics": recipe_doc.get("metrics"),
            "review": recipe_doc.get("review"),
            "stderr_tail": None if recipe_run.ok else recipe_run.tail(20),
        },
        "tune": summary,
    }
    recipe_m, tune_m = recipe_doc.get("metrics") or {}, summary["metrics"] or {}
    for metric, unit, higher in (("eval.exact_match", "fraction", True), ("eval.loss", "nats", False)):
        mine, theirs = tune_m.get(metric), recipe_m.get(metric)
        met = None if mine is None or theirs is None else (mine >= theirs if higher else mine <= theirs)
        status = "n/a" if met is None else ("met" if met else "missed")
        result.rows.append(
            row(f"quickstart recipe {metric}", unit, theirs, command, f"qs_recipe_{metric}", note="20 steps")
        )
        result.rows.append(
            row(
                f"ftkit tune {metric} (quickstart data, no recipe, budget {budget})",
                unit,
                mine,
                command,
                f"qs_tune_{metric}",
                benchmark=NAME,
                target=f"{'≥' if higher else '≤'} the recipe's",
                status=status,
            )
        )


def run(ctx: Context) -> BenchResult:
    """The recipe's and tune's scores on the quickstart data, side by side."""
    result = BenchResult(NAME)
    budget = BUDGETS.get(ctx.preset.name, BUDGETS["small"])["quickstart"]
    _compare(ctx, budget, result, ctx.command(NAME))
    return result
