"""`ftkit chat RUN|MODEL`: a multi-turn conversation in the terminal, streamed token by token.

Each turn renders the whole conversation through the model's chat template and streams the reply as it is
decoded (`ftkit.inference.stream`, each method's decoding quirks included). `/reset` forgets the conversation,
`/exit`, end of input (Ctrl-D) or Ctrl-C end the session with exit 0. With stdin a pipe, each line is one turn and
only the replies go to stdout (one per line), so the session can be scripted. When the conversation no longer fits
the model's positions, the oldest turns are dropped, and the session says so.
"""

from __future__ import annotations

import os
import select
import sys
from pathlib import Path
from typing import Any

import typer

from ftkit.cli._options import registry_option
from ftkit.cli._output import Output
from ftkit.cli._target import REF_HELP, describe, load_for_generation, locate
from ftkit.conversation import Conversation

COMMANDS_HELP = "/reset clears the conversation, /exit ends it (also Ctrl-D or Ctrl-C)"


def chat_command(
    ref: str = typer.Argument(..., metavar="RUN|MODEL", help=REF_HELP),
    system: str | None = typer.Option(None, "--system", help="A system message that opens the conversation."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", min=1, help="Most tokens per reply."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0: greedy; above 0: sampled."),
    top_p: float = typer.Option(
        1.0, "--top-p", min=0.0, max=1.0, help="Nucleus sampling mass (with temperature)."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Seed for sampling, set once at the start."),
    show_prompt: bool = typer.Option(
        False, "--show-prompt", help="Print the exact text the model reads before each reply."
    ),
    registry: Path | None = registry_option(),
) -> None:
    """Talk with a registry run or any model in the terminal: multi-turn, streamed, /reset and /exit."""
    interactive = sys.stdin.isatty()
    out = Output(json_mode=not interactive)  # piped: notes on stderr, stdout carries the replies only
    source = locate(ref, registry)
    target = load_for_generation(source, "chat", out)
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    out.hint(describe(target))
    out.hint(COMMANDS_HELP)
    conversation = Conversation(target.tokenizer, system, target.max_length, max_new_tokens)
    options = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
    try:
        _session(target, conversation, out, interactive, show_prompt, options)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
    out.hint("bye")


def _session(target: Any, conversation: Conversation, out: Output, interactive: bool, show_prompt: bool,
             options: dict[str, Any]) -> None:  # fmt: skip
    from ftkit.evaluation.decoding import stream_text

    while True:
        try:
            line = read_typed_line("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            return
        if not line:
            return  # end of input (Ctrl-D, or the end of the pipe)
        message = line.strip()
        if not message:
            continue
        if message in ("/exit", "/quit"):
            return
        if message == "/reset":
            conversation.reset()
            out.hint("conversation cleared")
            continue
        text, dropped = conversation.prompt_for(message)
        if dropped:
            out.warn(
                f"the conversation no longer fits the model's {conversation.limit} positions with a "
                f"{conversation.max_new_tokens}-token reply: dropped the oldest {dropped} exchange(s)"
            )
        if text is None:
            out.warn(
                f"that message alone does not fit the model's {conversation.limit} positions with a "
                f"{conversation.max_new_tokens}-token reply; it was not sent (shorten it, or lower --max-new-tokens)"
            )
            continue
        if show_prompt:
            out.stderr.print(f"── prompt\n{text}\n── reply", markup=False, highlight=False)
        if interactive:
            sys.stdout.write("model> ")
        pieces = []
        for piece in stream_text(target.model, target.tokenizer, text, use_cache=target.use_cache,
                                 device=target.device, **options):  # fmt: skip
            pieces.append(piece)
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
        conversation.answered("".join(pieces))


_typed: list[bytes] = [
    b""
]  # what the terminal sent after the last whole line (two lines may come in one read)


def read_typed_line(prompt: str) -> str:
    """One line typed at the terminal ('' at end of input), read in short select() waits.

    Not input(): the kernel may deliver Ctrl-C's SIGINT to any thread, and torch and the tokenizer start threads
    of their own; input() then sleeps in the C library until the next key, and Ctrl-C looks ignored. Between
    waits Python runs, so a pending SIGINT raises KeyboardInterrupt within 0.1 s whichever thread received it."""
    sys.stdout.write(prompt)
    sys.stdout.flush()
    descriptor = sys.stdin.fileno()
    while b"\n" not in _typed[0]:
        if select.select([descriptor], [], [], 0.1)[0]:
            chunk = os.read(descriptor, 4096)
            if not chunk:  # end of input: whatever was typed without a newline is the last line
                line, _typed[0] = _typed[0], b""
                return line.decode(errors="replace")
            _typed[0] += chunk
    line, _, _typed[0] = _typed[0].partition(b"\n")
    return line.decode(errors="replace") + "\n"


def register(app: typer.Typer) -> None:
    """Add `ftkit chat`."""
    app.command("chat")(chat_command)
