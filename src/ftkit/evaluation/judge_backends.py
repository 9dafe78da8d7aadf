"""Judge backends: something that answers chat messages. One interface, two kinds.

    judge.complete([[{"role": "user", "content": "..."}], ...]) -> ["answer", ...]   # same order as given

- `LocalJudge`: a model and tokenizer the caller has already loaded (a registry run, a folder, a hub id or a GGUF);
  greedy decoding through `ftkit.evaluation.generate` with the tokenizer's chat template, honouring `use_cache`
  (False for prefix and prompt tuning).
- `HttpJudge`: any OpenAI-compatible chat-completions endpoint, over the standard library's urllib. The API key is
  read from the environment at each request (`FTKIT_JUDGE_API_KEY`, else `OPENAI_API_KEY`, or the variable named by
  `api_key_env`); it is never kept on the object, never printed, and scrubbed from every error message.

Every failure is a `JudgeError` (exit 2) that names the endpoint and says what to do next.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol
from urllib.parse import urlsplit

from ftkit.errors import FtkitError
from ftkit.registry.scrub import REDACTED, scrub_text

Messages = list[dict[str, str]]
API_KEY_ENVS = ("FTKIT_JUDGE_API_KEY", "OPENAI_API_KEY")
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class JudgeError(FtkitError):
    """A judge could not answer: endpoint unreachable, key rejected, malformed response (exit 2)."""

    kind = "judge"


class Judge(Protocol):
    """What judge_answers and judge_pairwise need: a description for the record and a batch completion."""

    description: str

    def complete(self, batch: list[Messages]) -> list[str]:
        """One answer per message list, in order."""
        ...


def render_chat(tokenizer: Any, messages: Messages) -> str:
    """The prompt text a local judge sees: its chat template with the assistant turn opened, or, for a tokenizer
    without one (a base model), each message's content on its own paragraph."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(message["content"] for message in messages) + "\n\n"


class LocalJudge:
    """A loaded model used as the judge: greedy, batched, deterministic."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "local model",
        max_new_tokens: int = 256,
        use_cache: bool = True,
        device: str = "cpu",
        batch_size: int = 8,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.use_cache = max_new_tokens, use_cache
        self.device, self.batch_size = device, batch_size
        self.description = name

    @classmethod
    def from_trained(cls, trained: Any, **options: Any) -> LocalJudge:
        """A judge from `ftkit.inference.load_trained_model(...)`: its method decides `use_cache`."""
        options.setdefault("name", str(trained.output_dir))
        options.setdefault("device", trained.device)
        return cls(trained.model, trained.tokenizer, use_cache=trained.method.generation_use_cache, **options)

    def complete(self, batch: list[Messages]) -> list[str]:
        """Greedy answers to each message list, through the chat template."""
        from ftkit.evaluation.generate import greedy_generate_batch

        prompts = [render_chat(self.tokenizer, messages) for messages in batch]
        return greedy_generate_batch(
            self.model,
            self.tokenizer,
            prompts,
            self.max_new_tokens,
            use_cache=self.use_cache,
            device=self.device,
            batch_size=self.batch_size,
        )


def is_endpoint(spec: str) -> bool:
    """True when a `--judge` value is an HTTP(S) URL rather than a model (folder, hub id, GGUF, run)."""
    return str(spec).lower().startswith(("http://", "https://"))


def chat_completions_url(base: str) -> str:
    """`http://host:8000/v1` -> `http://host:8000/v1/chat/completions`; a full `.../chat/completions` is kept."""
    url = str(base).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise JudgeError(
            f"judge endpoint {url!r} is not an http:// or https:// URL",
            hint="give the server's base URL, e.g. http://127.0.0.1:8000/v1, or the full /v1/chat/completions",
        )
    if parts.username or parts.password:
        raise JudgeError(
            "judge endpoint URL must not hold credentials",
            hint=f"put the key in the {API_KEY_ENVS[0]} environment variable instead",
        )
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


class HttpJudge:
    """An OpenAI-compatible chat-completions endpoint as the judge (temperature 0 by default)."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout: float = 120.0,
        retries: int = 4,
        backoff: float = 1.0,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        workers: int = 4,
    ):
        self.url = chat_completions_url(url)
        self.model = model
        self.api_key_envs = (api_key_env,) if api_key_env else API_KEY_ENVS
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.temperature, self.max_tokens, self.workers = temperature, max_tokens, max(1, workers)
        self.description = f"{self.url} model={model}"

    def _api_key(self) -> tuple[str | None, str | None]:
        """(key, the variable it came from), read now; (None, None) when none is set (local servers need none)."""
        for name in self.api_key_envs:
            value = os.environ.get(name, "").strip()
            if value:
                return value, name
        return None, None

    def complete(self, batch: list[Messages]) -> list[str]:
        """One request per message list, `workers` at a time; answers come back in the order given."""
        if self.workers == 1 or len(batch) <= 1:
            return [self._complete_one(messages) for messages in batch]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self._complete_one, batch))

    def _complete_one(self, messages: Messages) -> str:
        key, key_env = self._api_key()
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "ftkit-judge",
        }
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode("utf-8")
        attempts = self.retries + 1
        for attempt in range(attempts):
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as error:
                detail = _excerpt(error.read(), key)
                if error.code in RETRY_STATUSES and attempt + 1 < attempts:
                    time.sleep(self._delay(attempt, error.headers.get("Retry-After")))
                    continue
                tries = attempts if error.code in RETRY_STATUSES else 1
                raise self._http_error(error.code, detail, key_env, tries) from None
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionResetError,
                http.client.IncompleteRead,
            ) as error:
                reason = error.reason if isinstance(error, urllib.error.URLError) else error
                if not isinstance(reason, (TimeoutError, ConnectionResetError, http.client.IncompleteRead)):
                    raise self._connection_error(reason, key) from None
                if attempt + 1 < attempts:  # timeouts and dropped connections are transient
                    time.sleep(self._delay(attempt, None))
                    continue
                raise JudgeError(
                    f"judge endpoint {self.url}: no complete answer in {attempts} attempts "
                    f"({type(reason).__name__}: {_scrub(str(reason), key)}; timeout {self.timeout:g} s)",
                    hint="check the server is not overloaded, or raise the judge timeout",
                ) from None
            return self._answer(raw, key)
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Exponential backoff; a numeric Retry-After from the server wins, capped at a minute."""
        if retry_after:
            try:
                return min(max(float(retry_after), 0.0), 60.0)
            except ValueError:
                pass
        return self.backoff * 2**attempt

    def _http_error(self, status: int, detail: str, key_env: str | None, attempts: int) -> JudgeError:
        where = f"judge endpoint {self.url}"
        if status in (401, 403):
            source = (
                f"the key in {key_env}"
                if key_env
                else "no key (none of " + ", ".join(self.api_key_envs) + " set)"
            )
            return JudgeError(
                f"{where} refused the request (HTTP {status}) with {source}: {detail}",
                hint=f"set {self.api_key_envs[0]} to a key this server accepts",
            )
        if status == 404:
            return JudgeError(
                f"{where} answered HTTP 404 (no such route or model {self.model!r}): {detail}",
                hint="give the base URL ending in /v1 (or the full /v1/chat/completions) and a model the server has",
            )
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return JudgeError(
            f"{where} answered HTTP {status}{tries}: {detail}",
            hint="check the server's log; 429 and 5xx are retried with backoff, other statuses are not",
        )

    def _connection_error(self, reason: Any, key: str | None) -> JudgeError:
        text = _scrub(str(reason), key)
        if isinstance(reason, ConnectionRefusedError) or "refused" in text.lower():
            message = f"judge endpoint {self.url}: connection refused (nothing listens there)"
            hint = "start the server, or fix the host and port given to --judge"
        elif isinstance(reason, socket.gaierror):
            message = f"judge endpoint {self.url}: host not found ({text})"
            hint = "check the host name in the --judge URL"
        else:
            message = f"judge endpoint {self.url}: cannot connect ({text})"
            hint = "check the URL, the network and the server"
        return JudgeError(message, hint=hint)

    def _answer(self, raw: bytes, key: str | None) -> str:
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise JudgeError(
                f"judge endpoint {self.url} answered something that is not JSON: {_excerpt(raw, key)}",
                hint="check that the URL is an OpenAI-compatible /v1/chat/completions endpoint",
            ) from None
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise JudgeError(
                f"judge endpoint {self.url} answered JSON without choices: {_excerpt(raw, key)}",
                hint="the response must hold choices[0].message.content (OpenAI chat-completions format)",
            )
        message = choices[0].get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return content if isinstance(content, str) else ""  # a null content (refusal) parses as unparsed


def _scrub(text: str, key: str | None) -> str:
    """Text with the API key (however short) and anything credential-like replaced."""
    if key:
        text = text.replace(key, REDACTED)
    return scrub_text(text)


def _excerpt(raw: bytes, key: str | None, limit: int = 300) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    text = _scrub(text, key)
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text) if text else "(empty body)"
