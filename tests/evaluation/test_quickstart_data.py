"""The quickstart's eval rows share no sentence template, first name or city with its training rows, so its eval score
measures extraction on unseen sentences. Checked on the files `make_data.py` writes, read back as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ftkit.evaluation.scoring import score_generations

MAKE_DATA = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "make_data.py"


def _rows(path: Path) -> list[tuple[str, dict, str]]:
    """(sentence, answer object, template) per row; the template is the sentence with the answer's values
    replaced by their {field} names."""
    rows = []
    for line in path.read_text().splitlines():
        user, assistant = json.loads(line)["messages"]
        sentence = user["content"].split("\n", 1)[1]
        answer = json.loads(assistant["content"])
        template = sentence
        for field in ("name", "city", "job", "age"):
            assert str(answer[field]) in template, (sentence, field)
            template = template.replace(str(answer[field]), "{" + field + "}")
        rows.append((sentence, answer, template))
    return rows


def test_eval_rows_use_held_out_templates_names_and_cities(tmp_path):
    subprocess.run([sys.executable, str(MAKE_DATA), "--out", str(tmp_path)], check=True, capture_output=True)
    train, evaluation = _rows(tmp_path / "train.jsonl"), _rows(tmp_path / "eval.jsonl")
    assert (len(train), len(evaluation)) == (480, 40)
    for field in ("name", "city"):
        seen = {answer[field] for _, answer, _ in train}
        held_out = {answer[field] for _, answer, _ in evaluation}
        assert len(held_out) >= 3 and not seen & held_out, field
        train_text = " ".join(sentence for sentence, _, _ in train)
        assert not [value for value in held_out if value in train_text], field  # not even inside a sentence
    train_templates = {template for _, _, template in train}
    eval_templates = {template for _, _, template in evaluation}
    assert len(eval_templates) >= 2 and not train_templates & eval_templates
    # the references are JSON objects, so json_fields scores every eval row (a reference against itself: 1.0)
    references = [json.dumps(answer) for _, answer, _ in evaluation]
    aggregate, _ = score_generations(["json_fields", "json_valid"], references, references)
    assert aggregate["json_fields"] == aggregate["json_valid"] == 1.0
    assert {key for key in aggregate if key.startswith("json_field.")} == {
        "json_field.name",
        "json_field.age",
        "json_field.job",
        "json_field.city",
    }
