"""The text rules generation metrics apply: answer normalisation, regex extraction, numbers, JSON objects.

Each rule is documented where it is defined and restated in `ftkit.evaluation.scoring.METRICS` (README's Metrics
table), so a score can be reproduced by hand.
"""

from __future__ import annotations

import json
import re
import unicodedata
from fractions import Fraction
from typing import Any

# Trailing punctuation that says nothing about the answer: "Paris." and "Paris" are the same answer.
TRAILING_PUNCTUATION = ".!?;:,"

# A number: optional sign (not right after a letter or digit, so the "-" of "3-5" is a dash), digits with
# optional thousands commas (groups of exactly three), an optional decimal part, then either a fraction's
# denominator ("3/4") or an exponent ("1.5e3"). Not inside a word ("v1.2", "x2") nor right after a decimal point.
NUMBER = re.compile(
    r"""
    (?<![\w.])
    (?P<sign>[-+\u2212])?
    (?P<digits>\d{1,3}(?:,\d{3})+(?!\d|,\d)|\d+)?
    (?(digits)(?:\.(?P<decimals>\d+))?|\.(?P<only_decimals>\d+))
    (?:
        /(?P<denominator>\d+)(?!\d|\.\d)
      | [eE](?P<exponent>[-+]?\d+)
    )?
    """,
    re.VERBOSE,
)

_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n(?P<body>.*?)\n?[ \t]*```$", re.DOTALL)


def normalize_answer(text: str) -> str:
    """The form `exact_match`, `answer_match` and `contains` compare: Unicode NFKC (full-width letters and digits,
    ligatures and no-break spaces become plain ones), case-folded, every whitespace run one space, the ends
    trimmed, then any trailing `. ! ? ; : ,` (and spaces between them) removed. Leading punctuation, quotes and
    punctuation inside the answer stay."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split()).rstrip(TRAILING_PUNCTUATION + " ")


def exact_match_strict(prediction: str, reference: str) -> bool:
    """Equal once every whitespace run is one space and the ends are trimmed; case and punctuation count
    (`Red` is not `red`, `red.` is not `red`). What ftkit 0.1.0 reported as `exact_match`."""
    return " ".join(prediction.split()) == " ".join(reference.split())


def extract_answer(text: str, pattern: re.Pattern[str]) -> str | None:
    """The answer `pattern` finds in `text`: of all non-overlapping matches (re.finditer) the LAST one, since
    answers come after the reasoning; its group 1 when the pattern has a group (an unmatched optional group gives
    ""), else the whole match; stripped of surrounding whitespace. None when nothing matches."""
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - the loop keeps the last match
        pass
    if last is None:
        return None
    value = last.group(1) if pattern.groups else last.group(0)
    return (value or "").strip()


def last_number(text: str) -> tuple[str, Fraction] | None:
    """The last number in `text` (after NFKC), as (the text matched, its exact value); None when there is none.

    Accepted: a sign (+, -, or U+2212 minus) unless it follows a letter or digit; thousands commas in groups of
    three (`1,234,567`); decimals (`3.25`, `.5`); an exponent (`1e-3`); a fraction of integers (`3/4`; `x/0` is read
    as x). Currency signs, `%` and units around the number are ignored. A comma list such as `1,2,3` is three
    numbers; `12,3456` is 12 then 3456."""
    found = None
    for found in NUMBER.finditer(unicodedata.normalize("NFKC", text)):  # noqa: B007 - keeps the last match
        pass
    if found is None:
        return None
    digits = (found["digits"] or "0").replace(",", "")
    decimals = found["decimals"] or found["only_decimals"]
    value = Fraction(f"{digits}.{decimals}" if decimals else digits)
    if found["denominator"] and int(found["denominator"]):
        value /= int(found["denominator"])
    elif found["exponent"]:
        value *= Fraction(10) ** int(found["exponent"])
    if found["sign"] in ("-", "\u2212"):
        value = -value
    matched = found.group(0)
    if found["denominator"] and not int(found["denominator"]):
        matched = matched.split("/")[0]
    return matched, value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_object(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the JSON object `text` holds, None) or (None, why not). The text is trimmed; when it is one markdown code
    fence (```` ``` ```` or ```` ```json ````) the fence's inside is parsed. Any other text before or after the
    object, a value that is not an object (a list, a string, a number), or NaN/Infinity makes it not an object.
    Duplicate keys keep the last value, as Python's json does."""
    body = text.strip()
    fence = _FENCE.match(body)
    if fence:
        body = fence["body"].strip()
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        return None, f"not JSON: {error.msg} at character {error.pos}"
    except ValueError as error:
        return None, f"not JSON: {error}"
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(value), "a number"
        )
        return None, f"JSON {kind}, not an object"
    return value, None


def json_equal(left: Any, right: Any) -> bool:
    """Exact JSON equality: same type except that integers and floats compare by value (1 == 1.0); booleans are
    not numbers (true != 1); strings compare exactly (case and whitespace count); arrays in order; objects by
    their key sets and values."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    if left is None or right is None:
        return left is right
    return type(left) is type(right) and left == right
