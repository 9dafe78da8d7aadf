"""The playground's API: chat with a run's tuned model or its base model, the reply streamed token by token.

POST /api/chat {"run": ref, "which": "tuned"|"base", "messages": [{role, content}, ...], "max_new_tokens": 128,
"system"?: str, "temperature"?: 0, "top_p"?: 1, "seed"?: int} answers `text/event-stream`: one
`data: {"token": "..."}` per decoded piece, then `data: {"done": true, "text": ..., "tokens": n, "dropped": k,
"model": label}` (tokens: those decoded, the stop token included) (or `data: {"error": ..., "hint": ...}` when decoding fails). A bad body, an unknown run, a
classification run or a conversation that cannot fit is a JSON error before anything streams.

The path is `ftkit chat`'s: the run located in the registry (`ftkit.targets`), loaded by `ftkit.conversation`
(each method's own loading), the messages rendered through the chat template by `Conversation` (the oldest
exchanges dropped when the model's positions run out, `dropped` says how many) and decoded by
`ftkit.evaluation.decoding.stream_text` (prefix and prompt tuning without a KV cache). `which: base` is what
`ftkit chat <the run's model:>` loads. Models stay loaded in the server (ui/model_cache.py); a client that goes
away stops its generation. GET /api/chat/models lists the loaded models. Torch loads on the first chat only.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ftkit.errors import FtkitError, RegistryError, UsageError
from ftkit.ui.errors import NotFound
from ftkit.ui.model_cache import LoadedModel, ModelCache

DEFAULT_NEW_TOKENS = 128
MAX_NEW_TOKENS = 1024
ROLES = ("user", "assistant")


@dataclass
class ChatRequest:
    """A checked POST /api/chat body."""

    run: str
    which: str
    system: str | None
    history: list[dict[str, str]]
    message: str
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int | None


def parse_request(body: Any) -> ChatRequest:
    """The checked body; UsageError (400) naming the bad field otherwise."""
    if not isinstance(body, dict):
        raise UsageError("the body must be a JSON object", hint='send {"run": ..., "messages": [...]}')
    problems: list[str] = []
    run = body.get("run")
    if not isinstance(run, str) or not run.strip():
        problems.append("run: a run reference (id, prefix, name, tag, @latest) is required")
    which = body.get("which", "tuned")
    if which not in ("tuned", "base"):
        problems.append(f"which: {which!r} is not one of tuned, base")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        problems.append("system: must be a string")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("messages: a non-empty list of {role, content} is required")
        messages = []
    if messages and isinstance(messages[0], dict) and messages[0].get("role") == "system" and system is None:
        system, messages = messages[0].get("content"), messages[1:]
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            problems.append(
                f"messages[{index}]: role must be user or assistant (a system message only first)"
            )
        elif not isinstance(message.get("content"), str):
            problems.append(f"messages[{index}].content: must be a string")
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") != "user":
        problems.append("messages: the last message must be the user's (the model answers it)")
    limits = {
        "max_new_tokens": (body.get("max_new_tokens", DEFAULT_NEW_TOKENS), int, 1, MAX_NEW_TOKENS),
        "temperature": (body.get("temperature", 0.0), float, 0.0, 10.0),
        "top_p": (body.get("top_p", 1.0), float, 0.0, 1.0),
    }
    for key, (value, kind, low, high) in limits.items():
        whole = isinstance(value, int) or kind is float and isinstance(value, float)
        if isinstance(value, bool) or not whole or not low <= value <= high:
            problems.append(
                f"{key}: {value!r} is not a{'n integer' if kind is int else ' number'} in [{low}, {high}]"
            )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        problems.append(f"seed: {seed!r} is not an integer")
    if problems:
        raise UsageError(
            "the chat request is not valid", hint="fix the fields listed in problems", problems=problems
        )
    return ChatRequest(
        run.strip(), which, system, [dict(m) for m in messages[:-1]], messages[-1]["content"],
        int(limits["max_new_tokens"][0]), float(limits["temperature"][0]), float(limits["top_p"][0]), seed,
    )  # fmt: skip


def locate(registry_root: Path, ref: str, which: str) -> tuple[str, Any]:
    """(run id, TargetSource) of the model to chat with: the run's own output, or for `base` the model its recipe
    started from (another run's output for `model: run:<id>`). NotFound for an unknown run; UsageError for a
    classification run."""
    from ftkit.conversation import refuse_classifier
    from ftkit.registry.store import RunRegistry
    from ftkit.targets import locate_run, locate_target

    if not (registry_root / ".git").exists():
        raise NotFound(f"there is no run registry at {registry_root} yet", hint="train a run first")
    registry = RunRegistry.open(registry_root, create=False)
    try:
        try:
            run_id = registry.resolve(ref)
        except RegistryError as error:
            raise NotFound(str(error), hint=error.hint or "the runs page lists the runs") from None
        source = locate_run(run_id, registry)
        if source.task == "classification":
            raise refuse_classifier(source.label, "chat")
        if which == "tuned":
            return run_id, source
        base = source.base_model
        if not base:
            raise UsageError(f"{source.label} records no base model", hint="chat with its tuned model")
        if base.startswith("run:"):
            return run_id, locate_run(registry.resolve(base.removeprefix("run:")), registry)
        return run_id, locate_target(base, None)
    finally:
        registry.close()


def prepare(loaded: LoadedModel, request: ChatRequest) -> tuple[str, int]:
    """The rendered prompt and how many old exchanges were dropped; UsageError when the message cannot fit."""
    from ftkit.conversation import Conversation

    target = loaded.target
    conversation = Conversation(target.tokenizer, request.system, target.max_length, request.max_new_tokens)
    conversation.turns = request.history
    text, dropped = conversation.prompt_for(request.message)
    if text is None:
        raise UsageError(
            f"that message alone does not fit the model's {conversation.limit} positions with a "
            f"{request.max_new_tokens}-token reply",
            hint="shorten it, or lower max_new_tokens",
        )
    return text, dropped


def error_event(error: BaseException) -> dict[str, Any]:
    """A failure as the stream's last event (no traceback unless FTKIT_DEBUG=1, on the server's stderr)."""
    if isinstance(error, FtkitError):
        return {"error": str(error), "hint": error.hint}
    if os.environ.get("FTKIT_DEBUG") == "1":
        traceback.print_exception(error, file=sys.stderr)
    return {
        "error": f"internal error: {type(error).__name__}: {error}",
        "hint": "FTKIT_DEBUG=1 shows the traceback",
    }


def generate(loaded: LoadedModel, request: ChatRequest, prompt: str, dropped: int, emit: Any,
             stop: threading.Event) -> None:  # fmt: skip
    """Decode the reply in this thread, one generation at a time on the model, `emit`ting each event; setting
    `stop` (the client went away) ends the decoding at the next token."""
    from ftkit.evaluation.decoding import stream_text

    target = loaded.target
    with loaded.lock:
        if stop.is_set():
            loaded.last = {"tokens": 0, "finish": "stopped"}
            return
        pieces: list[str] = []
        decoded = 0

        def count(tokens: int) -> None:
            nonlocal decoded
            decoded += tokens

        stream = stream_text(target.model, target.tokenizer, prompt, request.max_new_tokens,
                             use_cache=target.use_cache, device=target.device, temperature=request.temperature,
                             top_p=request.top_p, seed=request.seed,
                             on_tokens=count, cancel=stop)  # fmt: skip
        finish = "done"
        try:
            for piece in stream:
                pieces.append(piece)
                emit({"token": piece})
            if stop.is_set():  # the decoding ended because the client went away
                finish = "stopped"
        except Exception as error:
            finish = "error"
            emit(error_event(error))
        finally:
            stream.close()  # ends the decoding thread of cached generation
        text = "".join(pieces)
        loaded.last = {"tokens": decoded, "finish": finish}
        if finish == "done":
            emit({"done": True, "text": text, "tokens": decoded, "dropped": dropped, "model": target.label})


def _cache(request: Request) -> ModelCache:
    state = request.app.state
    if getattr(state, "chat_models", None) is None:
        state.chat_models = ModelCache()
    return state.chat_models


async def chat(request: Request) -> Response:
    """POST /api/chat: the reply as server-sent events (see the module's docstring)."""
    try:
        body = await request.json()
    except ValueError:
        raise UsageError("the body is not JSON", hint='send {"run": ..., "messages": [...]}') from None
    parsed = parse_request(body)
    settings = request.app.state.settings
    run_id, source = await run_in_threadpool(locate, settings.registry, parsed.run, parsed.which)

    def load() -> Any:
        from ftkit.conversation import load_for_generation

        return load_for_generation(source, "chat")

    loaded = await run_in_threadpool(_cache(request).get, (run_id, parsed.which), load)
    prompt, dropped = await run_in_threadpool(prepare, loaded, parsed)
    return StreamingResponse(
        _events(loaded, parsed, prompt, dropped),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def _events(loaded: LoadedModel, parsed: ChatRequest, prompt: str, dropped: int) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    stop = threading.Event()

    def emit(event: dict[str, Any] | None) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, event)
        except RuntimeError:  # the server's loop is closing
            stop.set()

    def work() -> None:
        try:
            generate(loaded, parsed, prompt, dropped, emit, stop)
        except BaseException as error:
            emit(error_event(error))
        finally:
            emit(None)

    threading.Thread(target=work, name="ftkit-ui-chat", daemon=True).start()
    try:
        while (event := await queue.get()) is not None:
            yield f"data: {json.dumps(event)}\n\n"
    finally:  # the client went away (the response task is cancelled) or the reply ended
        stop.set()


async def models(request: Request) -> Response:
    """GET /api/chat/models: the models loaded in this server, most recently used first."""
    return JSONResponse({"models": _cache(request).describe()})


def routes() -> list[Route]:
    """The playground's routes."""
    return [Route("/api/chat", chat, methods=["POST"]), Route("/api/chat/models", models)]
