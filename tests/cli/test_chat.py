"""`ftkit chat`: two turns through stdin (a pipe) and through a pseudo-terminal, /reset forgets, /exit, end of input
and Ctrl-C end with exit 0; replies are the inference API's for the same conversation; a conversation longer than
the model's positions loses its oldest turns, and says so."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ftkit.cli.app import app
from ftkit.cli.chat import Conversation
from ftkit.inference import generate, load_trained_model
from tests.generation_runs import generation_runs

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    return generation_runs(tmp_path_factory, tiny_model_dir)


def prompts_shown(stderr: str) -> list[str]:
    """The rendered prompts `--show-prompt` printed, in order."""
    return re.findall(r"── prompt\n(.*?)\n── reply", stderr, flags=re.S)


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_two_turns_through_stdin_then_reset_forgets_and_exit_ends(runs, method):
    run = getattr(runs, method)
    lines = ["what is the color of the cat", "and the owl", "/reset", "what is the color of the fox", "/exit",
             "never read"]  # fmt: skip
    result = CliRunner().invoke(
        app,
        ["chat", run["run_id"], "--registry", str(runs.registry), "--max-new-tokens", "8", "--show-prompt"],
        input="\n".join(lines) + "\n",
    )
    assert result.exit_code == 0, result.output
    replies = result.stdout.splitlines()
    assert len(replies) == 3  # one per turn; "/exit" stopped the session before "never read"
    trained = load_trained_model(run["output_dir"])  # the reference: the API with the same history
    first = [{"role": "user", "content": lines[0]}]
    second = [*first, {"role": "assistant", "content": replies[0]}, {"role": "user", "content": lines[1]}]
    fresh = [{"role": "user", "content": lines[3]}]
    assert replies == [generate(trained, first, 8), generate(trained, second, 8), generate(trained, fresh, 8)]
    shown = prompts_shown(result.stderr)
    assert len(shown) == 3
    assert lines[0] in shown[1] and replies[0] in shown[1]  # the second turn sees the first
    assert lines[0] not in shown[2] and lines[1] not in shown[2]  # after /reset: no earlier turn
    assert shown[2] == trained.tokenizer.apply_chat_template(
        fresh, tokenize=False, add_generation_prompt=True
    )
    assert "conversation cleared" in result.stderr
    if method == "prompt":
        assert "decoding without a KV cache" in result.stderr


def test_end_of_input_ends_the_session_with_exit_0(tiny_model_dir):
    result = CliRunner().invoke(app, ["chat", str(tiny_model_dir), "--max-new-tokens", "4"], input="hello\n")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 and "bye" in result.stderr


def test_a_system_message_opens_the_conversation(tiny_model_dir):
    result = CliRunner().invoke(
        app, ["chat", str(tiny_model_dir), "--system", "be brief", "--max-new-tokens", "4", "--show-prompt"],
        input="hello\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert prompts_shown(result.stderr)[0].startswith("<|im_start|>system\nbe brief<|im_end|>")


def test_the_oldest_exchanges_are_dropped_when_the_conversation_no_longer_fits(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def length(messages):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    turn = [{"role": "user", "content": "red cat"}, {"role": "assistant", "content": "blue dog"}]
    last = {"role": "user", "content": "green owl"}
    # Room for exactly two earlier exchanges plus the new message and a 5-token reply: the third is dropped.
    limit = length([*turn, *turn, last]) + 5
    conversation = Conversation(tokenizer, None, limit, 5)
    for _ in range(3):
        conversation.turns += [dict(message) for message in turn]
    text, dropped = conversation.prompt_for("green owl")
    assert dropped == 1 and conversation.turns == [*turn, *turn, last]
    assert text == tokenizer.apply_chat_template(
        [*turn, *turn, last], tokenize=False, add_generation_prompt=True
    )
    alone = Conversation(tokenizer, None, length([last]) + 4, 5)  # not even the new message fits
    assert alone.prompt_for("green owl") == (None, 0) and alone.turns == []


def _read_until(fd: int, pattern: str, seen: bytearray, timeout: float = 120.0) -> str:
    """Read the terminal until `pattern` appears after the previous call's match (two outputs may arrive in one
    read); the text read so far."""
    deadline = time.monotonic() + timeout
    start = _matched.get(id(seen), 0)
    while pattern.encode() not in seen[start:]:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {pattern!r} on the terminal; it showed: {bytes(seen[-800:])!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"the terminal closed before {pattern!r}; it showed: {bytes(seen[-800:])!r}"
            seen += chunk
    _matched[id(seen)] = seen.index(pattern.encode(), start) + len(pattern)
    return seen.decode(errors="replace")


_matched: dict[int, int] = {}  # per screen buffer: where the last match ended


def test_a_terminal_session_streams_replies_resets_and_ends_on_ctrl_c(tiny_model_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200", "TERM": "xterm", "NO_COLOR": "1",
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "ftkit",
        "chat",
        str(tiny_model_dir),
        "--max-new-tokens",
        "6",
        "--show-prompt",
    ]
    pid, fd = pty.fork()
    if pid == 0:  # the child: ftkit with the pseudo-terminal as its terminal
        os.execvpe(command[0], command, env)
    seen = bytearray()
    try:
        _read_until(fd, "you> ", seen)
        screen = seen.decode(errors="replace")
        assert f"model: {tiny_model_dir} · cached decoding" in screen and "/reset clears" in screen
        os.write(fd, b"what is the color of the cat\n")
        _read_until(fd, "model> ", seen)
        _read_until(fd, "you> ", seen)
        os.write(fd, b"and the owl\n")
        _read_until(fd, "you> ", seen)
        os.write(fd, b"/reset\n")
        _read_until(fd, "conversation cleared", seen)
        _read_until(fd, "you> ", seen)
        os.write(fd, b"the fox\n")
        _read_until(fd, "you> ", seen)
        os.write(fd, b"\x03")  # Ctrl-C: the terminal sends SIGINT
        screen = _read_until(fd, "bye", seen)
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, screen
    shown = re.findall(r"── prompt\r?\n(.*?)── reply", screen, flags=re.S)
    assert len(shown) == 3
    assert "the color of the cat" in shown[1] and "and the owl" in shown[1]
    assert "the cat" not in shown[2] and "the owl" not in shown[2] and "the fox" in shown[2]
    assert screen.count("model> ") == 3
