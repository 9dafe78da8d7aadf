"""The playground's POST /api/chat against a real `ftkit ui` server on a registry holding a real tiny run: the
streamed pieces make up the final text, and the replies (tuned and base, one turn and two) are the ones `ftkit chat`
prints for the same conversation through stdin; bad references, bodies, tokens and classification runs are refused
before anything streams."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from tests.conftest import build_tokenizer, chat_rows, classification_rows, write_jsonl, write_recipe
from tests.ui.conftest import start_ui, stop_ui

pytestmark = pytest.mark.slow  # the module trains three tiny runs
MAX_NEW = 24
FIRST, SECOND = "what is the color of the cat", "and the owl"


def long_model(directory):
    """A Llama with 2048 positions, slow enough per token (4 layers of 256) that 1024 tokens take seconds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir()
    tokenizer = build_tokenizer(directory)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=1,
                         eos_token_id=2, pad_token_id=3, tie_word_embeddings=False)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def chat_runs(tmp_path_factory, tiny_model_dir, tiny_encoder_dir):
    """A registry served by `ftkit ui` with a full fine-tune of the tiny Llama (60 steps: it answers with colours),
    a classifier and a one-step LoRA run on a slower Llama: (server, chat run, classifier run, slow run)."""
    root = tmp_path_factory.mktemp("chat-api")
    registry = root / "registry"
    train = write_jsonl(root / "train.jsonl", chat_rows(64, seed=1))
    recipe = write_recipe(root / "full.yaml", tiny_model_dir, train, None, "full")
    classes = write_jsonl(root / "classes.jsonl", classification_rows(32, seed=1))
    classifier = root / "cls.yaml"
    classifier.write_text(
        f"model: {tiny_encoder_dir}\ntask: classification\ndata:\n  train: {classes}\nmethod:\n  name: full\n"
        f"training:\n  max_steps: 2\n  batch_size: 16\n  max_seq_len: 32\noutput: {root / 'cls-out'}\n"
    )
    slow = write_recipe(root / "slow.yaml", long_model(root / "slow-model"), train, None, "lora")
    ids = []
    for path, extra in ((recipe, ["--set", "training.max_steps=60"]), (classifier, []),
                        (slow, ["--set", "training.max_steps=1", "--set", f"output={root / 'slow-out'}"])):  # fmt: skip
        result = CliRunner().invoke(app, ["run", str(path), "--json", "--registry", str(registry), *extra])
        assert result.exit_code == 0, result.output
        ids.append(json.loads(result.stdout)["run_id"])
    server = start_ui(registry)
    yield server, *ids
    stop_ui(server)


def post(server, path: str, body: dict, token: bool = True) -> tuple[int, str, bytes]:
    """(status, content type, body) of a POST carrying the page's token like the page does."""
    host, port = server.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    headers = {"Content-Type": "application/json", "Origin": server.url}
    if token:
        headers["X-Ftkit-Token"] = server.token
    connection.request("POST", path, json.dumps(body).encode(), headers)
    response = connection.getresponse()
    return response.status, response.getheader("content-type") or "", response.read()


def events(payload: bytes) -> list[dict]:
    """The server-sent events' data objects, in order."""
    blocks = payload.decode().split("\n\n")
    return [json.loads(block.removeprefix("data: ")) for block in blocks if block.strip()]


def chat(server, run: str, messages: list[dict], which: str = "tuned") -> str:
    """The streamed reply, after checking that its pieces make up the final event's text."""
    status, kind, payload = post(
        server, "/api/chat", {"run": run, "which": which, "messages": messages, "max_new_tokens": MAX_NEW}
    )
    assert status == 200, payload
    assert kind.startswith("text/event-stream")
    stream = events(payload)
    *tokens, done = stream
    assert done["done"] is True and all(set(event) == {"token"} for event in tokens), stream
    assert "".join(event["token"] for event in tokens) == done["text"]
    assert 1 <= done["tokens"] <= MAX_NEW and done["dropped"] == 0
    return done["text"]


def loaded_models(server) -> list[dict]:
    """GET /api/chat/models."""
    with urllib.request.urlopen(f"{server.url}/api/chat/models", timeout=30) as response:
        return json.loads(response.read())["models"]


def cli_replies(ref: str, *lines: str, registry=None) -> list[str]:
    """What `ftkit chat REF` prints for `lines` typed through a pipe: one reply per line."""
    command = [sys.executable, "-m", "ftkit", "chat", ref, "--max-new-tokens", str(MAX_NEW)]
    if registry is not None:
        command += ["--registry", str(registry)]
    result = subprocess.run(
        command, input="".join(f"{line}\n" for line in lines), capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    replies = result.stdout.split("\n")
    assert len(replies) == len(lines) + 1 and replies[-1] == "", result.stdout  # no reply holds a newline
    return replies[:-1]


def turns(first_reply: str) -> tuple[list[dict], list[dict]]:
    """The two conversations the CLI read: the first message, then it, its reply and the second message."""
    one = [{"role": "user", "content": FIRST}]
    return one, [*one, {"role": "assistant", "content": first_reply}, {"role": "user", "content": SECOND}]


def test_the_tuned_model_streams_what_ftkit_chat_answers_over_two_turns(chat_runs):
    server, run_id, *_ = chat_runs
    expected = cli_replies(run_id, FIRST, SECOND, registry=server.registry)
    assert expected[0] and expected[1]  # trained enough to answer with words, not only the end of text
    one, two = turns(expected[0])
    assert [chat(server, run_id, one), chat(server, run_id, two)] == expected


def test_the_base_model_answers_as_ftkit_chat_on_the_base_model_folder(chat_runs, tiny_model_dir):
    server, run_id, *_ = chat_runs
    expected = cli_replies(str(tiny_model_dir), FIRST, SECOND)
    assert expected[0] and expected[1]  # random weights: no early end of text
    one, two = turns(expected[0])
    assert [chat(server, run_id, one, "base"), chat(server, run_id, two, "base")] == expected
    # the second reply depends on the first turn: the history is rendered, not only the last message
    assert chat(server, run_id, [{"role": "user", "content": SECOND}], "base") != expected[1]
    loaded = loaded_models(server)
    assert {(model["run"], model["which"]) for model in loaded} == {(run_id, "base"), (run_id, "tuned")}
    assert all(model["busy"] is False and model["last"]["finish"] == "done" for model in loaded)


def test_an_unknown_run_is_404_before_anything_streams(chat_runs):
    server, *_ = chat_runs
    status, kind, payload = post(server, "/api/chat", {"run": "no-such-run", "messages": [{"role": "user",
                                                                                            "content": "hi"}]})  # fmt: skip
    assert status == 404 and kind == "application/json"
    assert "no-such-run" in json.loads(payload)["error"]


def test_a_bad_body_is_400_naming_each_bad_field(chat_runs):
    server, run_id, *_ = chat_runs
    body = {"run": run_id, "which": "merged", "max_new_tokens": 5000,
            "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}  # fmt: skip
    status, _, payload = post(server, "/api/chat", body)
    assert status == 400
    problems = json.loads(payload)["problems"]
    assert len(problems) == 3
    assert problems[0].startswith("which: 'merged'") and problems[1].startswith("messages: the last message")
    assert problems[2] == "max_new_tokens: 5000 is not an integer in [1, 1024]"


def test_a_chat_without_the_token_is_refused(chat_runs):
    server, run_id, *_ = chat_runs
    status, _, payload = post(server, "/api/chat", {"run": run_id, "messages": []}, token=False)
    assert status == 403 and "token" in json.loads(payload)["error"]


def test_a_classification_run_does_not_chat(chat_runs):
    server, _, classifier, _ = chat_runs
    body = {"run": classifier, "messages": [{"role": "user", "content": "hi"}]}
    status, _, payload = post(server, "/api/chat", body)
    assert status == 400
    assert "is a classification model" in json.loads(payload)["error"]
    assert "`ftkit chat` cannot use it" in json.loads(payload)["error"]


def test_a_client_that_goes_away_stops_its_generation(chat_runs):
    server, *_, slow = chat_runs
    host, port = server.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    body = {"run": slow, "messages": [{"role": "user", "content": "hi"}], "max_new_tokens": 1024}
    headers = {"Content-Type": "application/json", "Origin": server.url, "X-Ftkit-Token": server.token}
    connection.request("POST", "/api/chat", json.dumps(body).encode(), headers)
    response = connection.getresponse()  # the stream has started: the model is loaded and decoding
    assert response.status == 200
    response.close()
    connection.close()
    deadline = time.monotonic() + 120  # a bound on the wait, not a timing check
    while time.monotonic() < deadline:
        models = loaded_models(server)
        entry = next(m for m in models if m["run"] == slow)
        if entry["last"] is not None and not entry["busy"]:
            break
        time.sleep(0.1)
    assert entry["last"]["finish"] == "stopped" and entry["last"]["tokens"] < 1024
    assert len(models) <= 2  # the least recently used model left when this third one loaded
