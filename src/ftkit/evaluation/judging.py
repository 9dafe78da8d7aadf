"""`ftkit eval --judge`: the glue between an evaluation's answers and `ftkit.evaluation.judge`.

Single mode (`--judge J`): the judge grades each generated answer against its reference with the rubric; its
metrics (`judge.pass_rate`, `judge.mean_score`, `judge.judged`, `judge.unparsed`, ...) join the record's metrics
(the base's answers are judged too with --base), and when exact_match or answer_match ran, the agreement between the
judge's verdicts and that metric is recorded as `judge.agreement.<metric>` (percent) and `judge.kappa.<metric>`
(Cohen's kappa, absent when undefined). Pairwise mode (`--judge J --judge-pairwise OTHER`): OTHER answers the same
rows with the same settings, the judge compares the two answers per row in both orders, and the record of the
evaluated model gets `judge_pairwise.win_rate` (it answered better), `judge_pairwise.loss_rate` (OTHER did),
`judge_pairwise.tie_rate`, `judge_pairwise.position_consistency`, ... naming OTHER in its settings.

The judge is a local model (anything `ftkit.targets` loads) or an OpenAI-compatible endpoint (HttpJudge: the key is
read from FTKIT_JUDGE_API_KEY or OPENAI_API_KEY at each request, never stored). The judge's exact prompts and raw
answers are kept for judge.jsonl.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftkit.errors import UsageError
from ftkit.evaluation.eval_rows import question_text

if TYPE_CHECKING:
    from ftkit.evaluation.eval_job import EvalOutcome, EvalPlan, JudgeRequest
    from ftkit.evaluation.eval_rows import Scored

AGREEMENT_WITH = ("exact_match", "answer_match")


@dataclass
class JudgePlan:
    """A checked judge: mode (`single` or `pairwise`), rubric, and either an endpoint URL (with the model name it
    serves) or a located local model; `other` the pairwise opponent."""

    mode: str
    rubric: Any
    max_new_tokens: int
    url: str | None = None
    model_name: str | None = None
    source: Any = None
    other: Any = None


def plan_judge(request: JudgeRequest, registry: Any, plan: EvalPlan) -> JudgePlan:
    """Check the judge options before any model loads (exit 2 with what to do for each problem)."""
    from ftkit.evaluation.eval_job import ANSWERABLE
    from ftkit.evaluation.judge import chat_completions_url, default_rubric, is_endpoint, load_rubric
    from ftkit.targets import locate_target

    if plan.task == "classification":
        raise UsageError(
            f"--judge grades generated answers, and {plan.source.label} is a classification model (it picks "
            "labels; accuracy and macro_f1 already score them)",
            hint="leave out --judge, or evaluate a causal-lm run",
        )
    if plan.data_format not in ANSWERABLE:
        raise UsageError(
            f"--judge grades answers to prompts, and {plan.request.data} holds {plan.data_format} rows without "
            "a prompt and a reference answer",
            hint="give chat, instruction or completion rows",
        )
    mode = "pairwise" if request.pairwise else "single"
    rubric = load_rubric(request.rubric, mode) if request.rubric else default_rubric(mode)
    judge = JudgePlan(mode, rubric, request.max_new_tokens)
    if is_endpoint(request.spec):
        judge.url = chat_completions_url(request.spec)
        if not request.model_name:
            raise UsageError(
                f"--judge {judge.url}: name the model the endpoint should use with --judge-model",
                hint="e.g. --judge-model gpt-4o-mini (the `model` field of the chat-completions request); the key "
                "comes from FTKIT_JUDGE_API_KEY or OPENAI_API_KEY",
            )
        judge.model_name = request.model_name
    else:
        if request.model_name:
            raise UsageError(
                f"--judge-model names the model an endpoint serves; --judge {request.spec} is a local model",
                hint="leave out --judge-model, or give --judge an http(s) URL",
            )
        judge.source = _generating(locate_target(request.spec, registry), "--judge")
    if request.pairwise:
        judge.other = _generating(locate_target(request.pairwise, registry), "--judge-pairwise")
    return judge


def _generating(source: Any, option: str) -> Any:
    if source.task == "classification":
        raise UsageError(
            f"{option}: {source.label} is a classification model; it cannot write answers",
            hint=f"give {option} a causal-lm run or model",
        )
    return source


def _load(source: Any, device: str, say: Callable[[str], None]) -> Any:
    from ftkit.data.render import ensure_chat_template
    from ftkit.targets import load_model_target

    say(f"loading {source.label}")
    target = load_model_target(source, device=device)
    if target.task == "classification":  # a Hub id: only its config told
        _generating(target.source, "--judge")
    ensure_chat_template(target.tokenizer)
    return target


def run_judge(
    plan: JudgePlan,
    outcome: EvalOutcome,
    tuned: Scored,
    base: Scored | None,
    device: str,
    say: Callable[[str], None],
) -> None:
    """Judge the outcome's answers (and, pairwise, the other model's) and add metrics, per-row verdicts, the
    transcript and the agreement with exact/answer match to `outcome`."""
    examples = outcome.plan.examples
    other_answers = None
    if plan.other is not None:
        other_answers = _other_answers(plan, outcome.plan, device, say)
    judge = _judge(plan, outcome.plan, device, say)
    settings = {
        "mode": plan.mode,
        "judge": judge.description,
        "rubric": plan.rubric.source,
        "rubric_sha256": hashlib.sha256(plan.rubric.text.encode("utf-8")).hexdigest(),
        "max_new_tokens": plan.max_new_tokens if plan.url is None else None,
    }
    outcome.plan.settings["judge"] = settings  # recorded with the other settings; diff compares them
    rows = [
        {
            "prompt": question_text(e.data),
            "reference": sample["reference"],
            "prediction": sample["prediction"],
        }
        for e, sample in zip(examples, tuned.samples, strict=True)
    ]
    batch = outcome.plan.settings["batch_size"]
    if other_answers is not None:
        settings.update({"other": plan.other.label, "other_run": plan.other.run_id})
        pairs = [
            {**row, "answer_a": row["prediction"], "answer_b": b}
            for row, b in zip(rows, other_answers, strict=True)
        ]
        say(f"judging {len(pairs)} answer pairs with {judge.description} (both orders)")
        metrics, per_row = _pairwise(judge, pairs, plan, batch)
        outcome.metrics.update(metrics)
        for row, verdict, answer in zip(outcome.rows, per_row, other_answers, strict=True):
            row.update({"other_prediction": answer, "pairwise": verdict["outcome"]})
        transcript = [{"line": r["line"], **v} for r, v in zip(outcome.rows, per_row, strict=True)]
        outcome.judge = {"settings": settings, "transcript": transcript}
        return
    from ftkit.evaluation.judge import judge_answers

    say(f"judging {len(rows)} answers with {judge.description}")
    metrics, per_row = judge_answers(judge, rows, plan.rubric, batch_size=batch)
    outcome.metrics.update(metrics)
    transcript = [
        {"line": r["line"], "side": "tuned", **v} for r, v in zip(outcome.rows, per_row, strict=True)
    ]
    for row, verdict in zip(outcome.rows, per_row, strict=True):
        row.update({"judge": verdict["verdict"], "judge_score": verdict["score"]})
    if base is not None and base.samples:
        base_rows = [
            {**row, "prediction": sample["prediction"]}
            for row, sample in zip(rows, base.samples, strict=True)
        ]
        say(f"judging the base model's {len(base_rows)} answers")
        base_metrics, base_verdicts = judge_answers(judge, base_rows, plan.rubric, batch_size=batch)
        outcome.base_metrics.update(base_metrics)
        transcript += [
            {"line": r["line"], "side": "base", **v} for r, v in zip(outcome.rows, base_verdicts, strict=True)
        ]
        for row, verdict in zip(outcome.rows, base_verdicts, strict=True):
            row.update({"base_judge": verdict["verdict"], "base_judge_score": verdict["score"]})
    outcome.judge = {
        "settings": settings,
        "transcript": transcript,
        "agreement": _agreements(outcome, tuned, per_row),
    }


def _agreements(outcome: EvalOutcome, tuned: Scored, per_row: list[dict]) -> dict[str, Any]:
    """Judge verdicts against exact_match / answer_match where those ran: metrics and the full tables."""
    from ftkit.evaluation.judge import agreement

    verdicts = [None if row["verdict"] is None else row["verdict"] == "PASS" for row in per_row]
    found = {}
    for name in AGREEMENT_WITH:
        if name not in outcome.plan.metrics:
            continue
        exact = [(sample.get("scores") or {}).get(name) == 1.0 for sample in tuned.samples]
        result = agreement(verdicts, exact)
        found[name] = result
        if result["percent_agreement"] is not None:
            outcome.metrics[f"judge.agreement.{name}"] = result["percent_agreement"]
        if result["kappa"] is not None:
            outcome.metrics[f"judge.kappa.{name}"] = result["kappa"]
    return found


def _pairwise(judge: Any, pairs: list[dict], plan: JudgePlan, batch: int) -> tuple[dict, list[dict]]:
    from ftkit.evaluation.judge import judge_pairwise

    metrics, per_row = judge_pairwise(judge, pairs, plan.rubric, batch_size=batch)
    names = {"judge.win_rate_a": "win_rate", "judge.win_rate_b": "loss_rate"}
    renamed = {
        f"judge_pairwise.{names.get(key, key.removeprefix('judge.'))}": value
        for key, value in metrics.items()
    }
    return renamed, per_row


def _other_answers(
    plan: JudgePlan, eval_plan: EvalPlan, device: str, say: Callable[[str], None]
) -> list[str]:
    """The pairwise opponent's greedy answers to the same rows, with the same settings and its own decoding."""
    from ftkit.evaluation.evaluate import generate_samples

    target = _load(plan.other, device, say)
    settings = eval_plan.settings
    say(f"{target.label} answers the same {len(eval_plan.examples)} rows")
    samples = generate_samples(
        target.model,
        target.tokenizer,
        [example.data for example in eval_plan.examples],
        max_new_tokens=settings["max_new_tokens"],
        batch_size=settings["batch_size"],
        use_cache=target.use_cache,
        device=device,
    )
    target.model = None
    return [sample["prediction"] for sample in samples]


def _judge(plan: JudgePlan, eval_plan: EvalPlan, device: str, say: Callable[[str], None]) -> Any:
    from ftkit.evaluation.judge import HttpJudge, LocalJudge

    if plan.url is not None:
        return HttpJudge(plan.url, str(plan.model_name))
    target = _load(plan.source, device, say)
    return LocalJudge(
        target.model,
        target.tokenizer,
        name=target.label,
        max_new_tokens=plan.max_new_tokens,
        use_cache=target.use_cache,
        device=device,
        batch_size=eval_plan.settings["batch_size"],
    )
