"""Issue 11 §1: distinct secrets planted in every field of a run never reach git history, the weights store or
the CLI's output. Each secret is a unique string; the whole registry and every output are grepped for it."""

from __future__ import annotations

import subprocess

import pytest

from tests.registry.conftest import git, make_record

HF_NAME = "hf_NameTokQ7w2e9r4t6y8u1i3"
HF_OVERRIDE = "hf_OverrideTokZ5x7c9v1b3n"
HF_OUTPUT = "hf_OutputFileTokM4k6j8h2g"
ENV_VALUE = "wandbEnvSecretValue4242"
DATA_PW = "DataUrlPw0rd9917"
MODEL_PW = "ModelUrlPw5531"
COMMENT_PW = "CommentPw7788xyz"
COMMENT_KEY = "CommentApiKey3344"
REMOTE_PW = "RemoteUrlPw6620"
SECRETS = [HF_NAME, HF_OVERRIDE, HF_OUTPUT, ENV_VALUE, DATA_PW, MODEL_PW, COMMENT_PW, COMMENT_KEY, REMOTE_PW]

DATA_URL = f"https://alice:{DATA_PW}@data.example/train.jsonl"
MODEL_URL = f"https://bob:{MODEL_PW}@hub.example/tiny"


def _registry_text(registry) -> str:
    """Everything the registry holds, readable: full history with patches, every git object, every stored file."""
    parts = [
        git(registry, "log", "-p", "--all", "--format=%H%n%B"),
        subprocess.run(
            ["git", "--git-dir", str(registry.root / ".git"), "cat-file", "--batch-all-objects", "--batch"],
            capture_output=True,
            check=True,
        ).stdout.decode("utf-8", "replace"),
    ]
    for path in sorted(registry.root.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def _found(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture
def planted(registry, tmp_path, monkeypatch) -> list[str]:
    """Two runs carrying every secret: name, model, data path, comments, override, output resolved.yaml, env."""
    monkeypatch.setenv("WANDB_API_KEY", ENV_VALUE)
    output = tmp_path / "out"
    output.mkdir()
    (output / "resolved.yaml").write_text(
        f"model: {MODEL_URL}\ndata:\n  train: {DATA_URL}\nhub_token: {HF_OUTPUT}\nname: {ENV_VALUE}\n",
        encoding="utf-8",
    )
    (output / "adapter_model.safetensors").write_bytes(b"\x00weights\x01")
    recipe = (
        f"name: run-{HF_NAME}\n"
        f"model: {MODEL_URL}\n"
        f"# password: {COMMENT_PW}\n"
        f"data:\n  train: {DATA_URL}  # api_key: {COMMENT_KEY}\n"
    )
    first = make_record(
        registry,
        name=f"run-{HF_NAME}",
        model=MODEL_URL,
        recipe_text=recipe,
        overrides=[f"name={HF_OVERRIDE}", f"data.train={DATA_URL}"],
        resolved={"model": MODEL_URL, "data": {"train": DATA_URL}, "name": f"run-{HF_NAME}"},
        data={"train": {"path": DATA_URL, "sha256": "a" * 64, "rows": 3}},
        output_dir=str(output),
    )
    registry.commit_run(first)
    second = make_record(registry, name=ENV_VALUE, model=f"https://user:{MODEL_PW}@host/x")
    registry.commit_run(second)
    return [first.run_id, second.run_id]


def test_commit_messages_redact_name_and_model(registry, planted):
    messages = git(registry, "log", "--format=%B")
    assert _found(messages) == []
    # the runs are still recorded and recognisable
    for run_id in planted:
        assert f"run {run_id} " in messages
    assert "***redacted***" in messages
    assert "https://user:***@host/x" in messages


def test_no_secret_anywhere_in_registry(registry, planted):
    text = _registry_text(registry)
    assert _found(text) == []
    # the structure survives: URLs keep user and host, comments keep their key
    assert "https://alice:***@data.example/train.jsonl" in text
    assert "# password: ***redacted***" in text
    assert "api_key: ***redacted***" in text


def test_stored_resolved_yaml_is_scrubbed_but_weights_are_exact(registry, planted):
    objects = [p for p in (registry.root / "objects").rglob("*") if p.is_file()]
    contents = [p.read_bytes() for p in objects]
    assert b"\x00weights\x01" in contents  # binary artifacts are stored byte for byte
    resolved = [c.decode() for c in contents if c.startswith(b"model:")]
    assert len(resolved) == 1 and _found(resolved[0]) == []
    assert "https://bob:***@hub.example/tiny" in resolved[0]


def test_cli_output_never_echoes_secrets(registry, planted, cli, monkeypatch):
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    remote_url = f"https://carol:{REMOTE_PW}@127.0.0.1:9/registry.git"
    outputs = []
    for args in (
        ("registry", "remote", "origin", remote_url),
        ("registry", "remote"),
        ("registry", "remote", "origin"),
        ("registry", "remote", "--json"),
        ("registry", "push", "origin"),
        ("registry", "push", remote_url),
        ("runs",),
        ("runs", "--json"),
        ("show", planted[0]),
        ("show", planted[0], "--json"),
        ("show", planted[1]),
    ):
        result = cli(*args)
        outputs.append(f"$ {args[:2]}\n{result.output}")  # the typed arguments hold the password
    text = "\n".join(outputs)
    assert _found(text) == [], text
    assert "https://carol:***@127.0.0.1:9/registry.git" in text
    # git itself keeps the real URL so push and pull still authenticate
    assert REMOTE_PW in git(registry, "config", "--get", "remote.origin.url")


def test_remote_error_masks_password(registry, monkeypatch):
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    from ftkit.errors import FtkitError

    with pytest.raises(FtkitError) as caught:
        registry.push(f"https://dave:{REMOTE_PW}@127.0.0.1:9/none.git")
    assert REMOTE_PW not in str(caught.value)
    assert REMOTE_PW not in str(getattr(caught.value, "hint", ""))
