"""Judge rubrics: the prompt a judge model reads, its placeholders, and the strict parsing of its answer.

A rubric is Markdown or plain text. `{name}` (a name in braces, no spaces) is a placeholder, filled in one pass so
an answer that itself contains `{reference}` is left as written; any other brace text (JSON examples) is kept.

- single mode: `{prompt}`, `{reference}`, `{answer}` (`{answer}` required). The judge must end with the lines
  `VERDICT: PASS` or `VERDICT: FAIL` and `SCORE: N` (an integer 1-10).
- pairwise mode: `{prompt}`, `{reference}`, `{answer_1}`, `{answer_2}` (both answers required). The judge must end
  with `WINNER: 1`, `WINNER: 2` or `WINNER: TIE`.

Parsing is strict: keywords and values are case-insensitive and Markdown emphasis (`*`, `` ` ``) around them is
ignored, but the line must hold nothing else; a missing line, a value out of range or two lines that disagree make
the verdict unparsed (with the reason), never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ftkit.errors import UsageError

PLACEHOLDERS = {
    "single": ("prompt", "reference", "answer"),
    "pairwise": ("prompt", "reference", "answer_1", "answer_2"),
}
REQUIRED = {"single": ("answer",), "pairwise": ("answer_1", "answer_2")}

DEFAULT_RUBRIC = """\
You are grading an answer written by an AI assistant against a reference answer.

Judge two things:
1. Correctness: the answer states the same facts and the same final result as the reference. Wording may differ;
   a wrong, missing or contradicting part is an error.
2. Format: the answer has the form the reference has (a number, a label, JSON with the same fields, a short
   sentence, ...).

The answer passes only if it is correct and its format matches the reference.

[Question]
{prompt}

[Reference answer]
{reference}

[Answer to grade]
{answer}

Explain your judgement in a few sentences, then end with exactly these two lines:
VERDICT: PASS or FAIL
SCORE: an integer from 1 (wrong) to 10 (correct and in the reference's format)
"""

DEFAULT_PAIRWISE_RUBRIC = """\
You are comparing two answers written by AI assistants to the same question, using a reference answer.

Prefer the answer that is correct (it agrees with the reference) and has the reference's format. If both are
equally good or equally bad, the result is a tie. The order of the answers and their length must not influence you.

[Question]
{prompt}

[Reference answer]
{reference}

[Answer 1]
{answer_1}

[Answer 2]
{answer_2}

Explain your judgement in a few sentences, then end with exactly this line:
WINNER: 1, 2 or TIE
"""

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VERDICT = re.compile(r"^VERDICT\s*:\s*(PASS|FAIL)$", re.IGNORECASE)
_SCORE = re.compile(r"^SCORE\s*:\s*(\d+)(?:\s*/\s*10)?$", re.IGNORECASE)
_WINNER = re.compile(r"^WINNER\s*:\s*(1|2|TIE)$", re.IGNORECASE)
_KEYWORD = re.compile(r"^(VERDICT|SCORE|WINNER)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class Rubric:
    """A validated rubric: its text, where it came from (`default`, `default-pairwise` or a file path) and its mode."""

    text: str
    source: str
    mode: str = "single"

    def fill(self, **values: str) -> str:
        """The rubric with every placeholder replaced by `values[name]`, in one pass."""
        return _PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), self.text)


def default_rubric(mode: str = "single") -> Rubric:
    """The built-in rubric for `mode` (`single`: correctness and format against the reference; `pairwise`)."""
    _check_mode(mode)
    if mode == "single":
        return Rubric(DEFAULT_RUBRIC, "default", "single")
    return Rubric(DEFAULT_PAIRWISE_RUBRIC, "default-pairwise", "pairwise")


def load_rubric(path: str | Path, mode: str = "single") -> Rubric:
    """Read and validate a rubric file for `mode`; unknown or missing placeholders are located errors (exit 2)."""
    _check_mode(mode)
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"rubric file {path} not found",
            hint="pass --rubric with a Markdown or text file, or leave it out to use the default rubric",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: rubric is not UTF-8 text ({error.reason} at byte {error.start})") from None
    return parse_rubric(text, source=str(path), mode=mode)


def parse_rubric(text: str, source: str = "<rubric>", mode: str = "single") -> Rubric:
    """Validate rubric `text` (named `source` in messages) for `mode` and return it as a Rubric."""
    _check_mode(mode)
    known = PLACEHOLDERS[mode]
    listed = " ".join("{" + name + "}" for name in known)
    if not text.strip():
        raise UsageError(f"{source}: rubric is empty", hint=f"write the judge's instructions with {listed}")
    problems, seen = [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _PLACEHOLDER.finditer(line):
            name = match.group(1)
            seen.add(name)
            if name not in known:
                where = f"{source}:{number}:{match.start() + 1}"
                problems.append(f"{where}: unknown placeholder {{{name}}} ({mode} mode knows {listed})")
    for name in REQUIRED[mode]:
        if name not in seen:
            problems.append(f"{source}: missing placeholder {{{name}}}: the judge would never see the answer")
    if problems:
        raise UsageError(
            f"{source}: rubric has {len(problems)} problem(s)",
            problems=problems,
            hint=f"use only {listed} in a {mode} rubric; other brace text must not be a bare {{name}}",
        )
    return Rubric(text, source, mode)


@dataclass(frozen=True)
class Verdict:
    """A parsed single-mode verdict. `passed` is None when unparsed, and `problem` says why."""

    passed: bool | None
    score: int | None
    problem: str | None = None

    @property
    def parsed(self) -> bool:
        return self.passed is not None


def _answer_lines(text: str, keyword: str) -> list[str]:
    """Lines starting with `keyword:` once Markdown emphasis is removed, stripped."""
    lines = []
    for raw in text.splitlines():
        line = raw.replace("*", "").replace("`", "").strip()
        match = _KEYWORD.match(line)
        if match and match.group(1).upper() == keyword:
            lines.append(line)
    return lines


def parse_verdict(text: str) -> Verdict:
    """Strictly parse `VERDICT: PASS|FAIL` and `SCORE: 1-10` lines from a judge's answer."""
    verdicts = _answer_lines(text, "VERDICT")
    scores = _answer_lines(text, "SCORE")
    if not verdicts:
        return Verdict(None, None, "no VERDICT line")
    values = set()
    for line in verdicts:
        match = _VERDICT.match(line)
        if not match:
            return Verdict(None, None, f"VERDICT line is not PASS or FAIL: {line[:80]!r}")
        values.add(match.group(1).upper())
    if len(values) > 1:
        return Verdict(None, None, "VERDICT lines disagree")
    if not scores:
        return Verdict(None, None, "no SCORE line")
    numbers = set()
    for line in scores:
        match = _SCORE.match(line)
        if not match or not 1 <= int(match.group(1)) <= 10:
            return Verdict(None, None, f"SCORE line is not an integer from 1 to 10: {line[:80]!r}")
        numbers.add(int(match.group(1)))
    if len(numbers) > 1:
        return Verdict(None, None, "SCORE lines disagree")
    return Verdict(values.pop() == "PASS", numbers.pop())


def parse_winner(text: str) -> tuple[str | None, str | None]:
    """Strictly parse `WINNER: 1|2|TIE`: ("1" | "2" | "tie", None), or (None, why it is unparsed)."""
    lines = _answer_lines(text, "WINNER")
    if not lines:
        return None, "no WINNER line"
    values = set()
    for line in lines:
        match = _WINNER.match(line)
        if not match:
            return None, f"WINNER line is not 1, 2 or TIE: {line[:80]!r}"
        values.add(match.group(1).lower())
    if len(values) > 1:
        return None, "WINNER lines disagree"
    return values.pop(), None


def _check_mode(mode: str) -> None:
    if mode not in PLACEHOLDERS:
        raise UsageError(f"judge mode {mode!r} is not one of: {', '.join(PLACEHOLDERS)}")
