"""Keep secrets out of the registry.

Three nets, applied to everything a run commits:

1. keys that name a secret (`hf_token`, `api_key`, `password`, `client_secret`, ...) have string values replaced;
   special-token keys such as `pad_token` or `eos_token` are not secrets and are left alone;
2. values that look like credentials (`hf_...`, `sk-...`, `ghp_...`, AWS access keys, Slack tokens, bearer
   headers, private-key blocks) are replaced wherever they appear, in data and in text;
3. the values of secret-looking environment variables (HF_TOKEN, OPENAI_API_KEY, WANDB_API_KEY, ...) are
   replaced wherever they appear verbatim.
"""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "***redacted***"

_SECRET_KEY = re.compile(
    r"(?:^|[_.-])(?:token|secret|password|passwd|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|"
    r"private[_-]?key|credentials?|auth)$|^(?:token|secret|password|api[_-]?key|authorization)$",
    re.IGNORECASE,
)
_NOT_SECRET_KEYS = re.compile(
    r"^(?:pad|eos|bos|unk|sep|cls|mask|start|end|additional_special|special|chat|image|audio|video|"
    r"decoder_start|max|num|n|total)[_-]?tokens?$",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"\bhf_[A-Za-z0-9]{10,}"
    r"|\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{20,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bglpat-[A-Za-z0-9_-]{20,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/-]{16,}=*"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
)
_SECRET_ENV_NAME = re.compile(
    r"(?:TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|APIKEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)", re.IGNORECASE
)
_MIN_ENV_SECRET = 8
# user:password@ in any scheme://; the password is replaced, the user and host stay readable. One slash is
# enough: a URL taken for a relative path comes back as `.../https:/user:password@host` in messages.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://?[^/\s:@'\"]*:)([^@\s/'\"]+)(@)")
# a comment that names a secret key: `# password: x`, `# api_key = x` (commented-out settings keep their values)
_YAML_SECRET_COMMENT = re.compile(r"(#\s*[\"']?([A-Za-z0-9_.-]+)[\"']?\s*[:=]\s*)(\S.*)$")


def is_secret_key(key: str) -> bool:
    """True when a config key names a secret (its last dotted segment is checked)."""
    last = str(key).rsplit(".", 1)[-1]
    if _NOT_SECRET_KEYS.match(last):
        return False
    return bool(_SECRET_KEY.search(last))


def env_secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look like secrets, longest first."""
    environ = os.environ if environ is None else environ
    values = {
        value
        for name, value in environ.items()
        if _SECRET_ENV_NAME.search(name) and len(value) >= _MIN_ENV_SECRET and not value.isdigit()
    }
    return sorted(values, key=len, reverse=True)


def mask_url(text: str) -> str:
    """`scheme://user:password@host` with the password replaced by ***, anywhere in `text`."""
    return _URL_PASSWORD.sub(r"\1***\3", text)


def scrub_text(text: str, env_values: list[str] | None = None) -> str:
    """Replace credential-looking values, URL passwords and secret environment values inside free text."""
    if env_values is None:
        env_values = env_secret_values()
    for value in env_values:
        if value in text:
            text = text.replace(value, REDACTED)
    return mask_url(_SECRET_VALUE.sub(REDACTED, text))


_YAML_SECRET_LINE = re.compile(r"^(\s*-?\s*)([\"']?)([A-Za-z0-9_.-]+)\2(\s*:\s*)(\S.*?)(\s+#.*)?$")


def scrub_yaml_text(text: str, env_values: list[str] | None = None) -> str:
    """Scrub recipe YAML as given: values of secret-named keys, then credential-looking values anywhere."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        match = _YAML_SECRET_LINE.match(body)
        if (
            match
            and is_secret_key(match.group(3))
            and match.group(5) not in ("|", ">", "null", "~", "''", '""')
        ):
            value = match.group(5)
            if value.lower() not in ("true", "false") and not value.startswith(("{", "[")):
                body = f"{match.group(1)}{match.group(2)}{match.group(3)}{match.group(2)}{match.group(4)}"
                body += f'"{REDACTED}"' + (match.group(6) or "")
        comment = _YAML_SECRET_COMMENT.search(body)
        if comment and is_secret_key(comment.group(2)):
            body = body[: comment.start(3)] + REDACTED
        out.append(body + ending)
    return _scrub_yaml_values("".join(out), env_values)


def _scrub_yaml_values(text: str, env_values: list[str] | None) -> str:
    """Like scrub_text, but a replacement that starts a plain YAML scalar is quoted (a leading * is an alias)."""
    if env_values is None:
        env_values = env_secret_values()
    pattern = "|".join([re.escape(v) for v in env_values] + [_SECRET_VALUE.pattern])
    if not pattern:
        return text

    def replace(match: re.Match) -> str:
        before = text[text.rfind("\n", 0, match.start()) + 1 : match.start()].rstrip()
        # `before` is right-stripped: a list dash or `?` counts alone or after a space, never inside `run-`
        starts_scalar = before.strip() in ("", "-", "?") or before.endswith((":", " -", " ?", "[", ",", "{"))
        return f'"{REDACTED}"' if starts_scalar else REDACTED

    return mask_url(re.sub(pattern, replace, text))


def scrub_data(value: Any, env_values: list[str] | None = None, key: str | None = None) -> Any:
    """Scrub nested JSON-like data: secret-named keys and credential-looking string values."""
    if env_values is None:
        env_values = env_secret_values()
    if isinstance(value, dict):
        return {k: scrub_data(v, env_values, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_data(item, env_values, key) for item in value]
    if isinstance(value, str):
        if key is not None and value and is_secret_key(key):
            return REDACTED
        return scrub_text(value, env_values)
    return value
