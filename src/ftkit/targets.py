"""What `ftkit generate`, `ftkit chat` (and `ftkit eval`) run on: a registry run, a run output folder, a plain model
folder, a Hub model id or a .gguf file, loaded ready for inference.

    from ftkit.registry.store import RunRegistry
    from ftkit.targets import load_target

    target = load_target("@latest", RunRegistry.open(create=False))   # a run: its saved output
    target = load_target("models/my-model")                          # a plain transformers folder
    print(target.label, target.task, target.use_cache)

`locate_target` finds what a reference names without loading anything heavy (a located error when it names
nothing usable); `load_model_target` loads it. A registry run whose output folder was deleted or moved is rebuilt
from the registry's objects store into `<registry>/.git/ftkit-cache/outputs/<run-id>/` (never tracked by git),
and the target's `notes` say so. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftkit.errors import ModelError

# Files that hold trained weights in a run output (adapters, whole models, sharded models).
_WEIGHTS = re.compile(r"(^|/)[^/]*\.safetensors$|(^|/)(pytorch_model|adapter_model|model)[^/]*\.bin$")
_TEXT_SUFFIXES = (".json", ".yaml", ".yml", ".txt", ".jinja", ".md", ".model")


@dataclass
class TargetSource:
    """Where a model reference points, found without loading the model.

    kind: `run` (a registry run), `run-output` (a run output folder), `model-folder`, `hub` or `gguf`.
    path: the folder or file to load (for `hub`, the id). task is None when only loading the model tells.
    """

    ref: str
    kind: str
    path: str
    label: str
    task: str | None = None
    run_id: str | None = None
    base_model: str | None = None
    data_format: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ModelTarget:
    """A loaded model ready for inference.

    use_cache: whether cached (KV) decoding is exact for it; False for prefix and prompt tuning, which ftkit decodes
    by full forward passes. labels: class names of a classification model (None for causal LMs).
    """

    model: Any
    tokenizer: Any
    task: str
    labels: list[str] | None
    use_cache: bool
    label: str
    run_id: str | None
    base_model: str | None
    source: TargetSource
    device: str = "cpu"
    method: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def max_length(self) -> int | None:
        """Tokens a prompt and its answer may take together: the model's positions, less the virtual tokens of
        prompt or prefix tuning; None when the config does not say."""
        config = getattr(self.model, "config", None)
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        if not isinstance(limit, int):
            return None
        peft_config = getattr(self.model, "peft_config", None)
        if isinstance(peft_config, dict) and peft_config:
            active = peft_config.get(getattr(self.model, "active_adapter", None)) or next(
                iter(peft_config.values())
            )
            limit -= int(getattr(active, "num_virtual_tokens", 0) or 0)
        return limit

    @property
    def data_format(self) -> str | None:
        """The data format the run trained on (chat, completion, ...); None for a plain model."""
        return self.source.data_format


def load_target(ref: str | Path, registry: Any = None, *, device: str = "cpu") -> ModelTarget:
    """Locate `ref` (see `locate_target`) and load it: model, tokenizer, task and how to decode it."""
    return load_model_target(locate_target(ref, registry), device=device)


def locate_target(ref: str | Path, registry: Any = None) -> TargetSource:
    """What `ref` names, in this order: an existing path (a .gguf file, a run output folder with resolved.yaml, a
    model folder with config.json), a run in `registry` (a RunRegistry: id, prefix, name, tag, @latest), else an
    `owner/name` Hub model id. Raises ModelError or RegistryError (exit 2) saying what was tried."""
    text = str(ref)
    path = Path(text).expanduser()
    if path.exists():
        return _local_source(text, path)
    if text.endswith(".gguf"):
        raise ModelError(f"{text}: no such GGUF file", hint="check the path")
    if registry is not None:
        from ftkit.errors import RegistryError

        try:
            run_id = registry.resolve(text)
        except RegistryError as error:
            if "/" not in text:
                error.hint = (error.hint + "; " if error.hint else "") + (
                    "a model folder or .gguf file must exist at that path, and a Hub model id is owner/name"
                )
                raise
        else:
            return _run_source(text, run_id, registry)
    from ftkit.hub_ids import is_hub_model_id

    if "/" in text and is_hub_model_id(text):
        return TargetSource(text, "hub", text, text)
    where = f"no run in the registry at {registry.root} has that name" if registry is not None else (
        "there is no run registry to look it up in")  # fmt: skip
    raise ModelError(
        f"`{text}` is not a file or folder, {where}, and it is not a Hub model id (owner/name)",
        hint="name a registry run (`ftkit runs` lists them), a run output or model folder, a .gguf file, "
        "or a Hub id such as HuggingFaceTB/SmolLM2-135M-Instruct",
    )


def locate_run(run_id: str, registry: Any) -> TargetSource:
    """A registry run's TargetSource, `run_id` as `registry.resolve` returned it (never read as a path)."""
    return _run_source(run_id, run_id, registry)


def _local_source(text: str, path: Path) -> TargetSource:
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelError(
                f"{text} is a file but not a .gguf model",
                hint="pass a model folder (with config.json), a run output folder or a .gguf file",
            )
        return TargetSource(text, "gguf", str(path.resolve()), text, task="causal-lm")
    if (path / "resolved.yaml").is_file():
        return _run_output_source(text, path.resolve(), label=text)
    if (path / "config.json").is_file():
        return TargetSource(text, "model-folder", str(path.resolve()), text, task=_folder_task(path))
    if (path / "adapter_config.json").is_file():
        raise ModelError(
            f"{text} holds a PEFT adapter but no resolved.yaml, so ftkit cannot tell how it was trained",
            hint="pass the ftkit run output folder (it has resolved.yaml), or merge the adapter into its base "
            "model and pass that folder",
        )
    raise ModelError(
        f"{text} is a folder without config.json or resolved.yaml: not a model folder",
        hint="pass a transformers model folder, an ftkit run output folder, or a .gguf file",
    )


def _folder_task(path: Path) -> str:
    try:
        architectures = (
            json.loads((path / "config.json").read_text(encoding="utf-8")).get("architectures") or []
        )
    except (OSError, ValueError, AttributeError):
        return "causal-lm"
    return "classification" if any("SequenceClassification" in a for a in architectures) else "causal-lm"


def _run_output_source(ref: str, folder: Path, label: str, run_id: str | None = None) -> TargetSource:
    from ftkit.inference import read_resolved

    resolved = read_resolved(folder)
    method = (resolved.get("method") or {}).get("name", "lora")
    return TargetSource(
        ref,
        "run" if run_id else "run-output",
        str(folder),
        f"{label} ({method} on {resolved.get('model')})",
        task=resolved.get("task", "causal-lm"),
        run_id=run_id,
        base_model=str(resolved.get("model")) if resolved.get("model") is not None else None,
        data_format=(resolved.get("data") or {}).get("format"),
    )


def has_weights(names: list[str]) -> bool:
    """Whether a run output's file names include trained weights (safetensors, or a model/adapter .bin)."""
    return any(_WEIGHTS.search(name) for name in names)


def _run_source(ref: str, run_id: str, registry: Any) -> TargetSource:
    loaded = registry.load_run(run_id)
    run = loaded.get("run") or {}
    artifacts = [a for a in loaded.get("artifacts") or [] if isinstance(a, dict) and a.get("name")]
    name = run.get("name") or ""
    label = f"run {run_id}" + (f" {name}" if name else "")
    status = run.get("status") or "?"
    output = Path(run["output_dir"]).expanduser() if run.get("output_dir") else None
    notes = (
        [] if status == "succeeded" else [f"{label} is {status}: its saved weights are what it had trained"]
    )
    if output is not None and _output_intact(output, artifacts):
        source = _run_output_source(ref, output.resolve(), label, run_id)
    elif artifacts and has_weights([a["name"] for a in artifacts]):
        folder, how = _rebuilt_from_store(registry, run_id, artifacts, output)
        source = _run_output_source(ref, folder, label, run_id)
        notes.append(how)
    else:
        why = (
            f"its output folder {output} holds no trained weights"
            if output and output.is_dir()
            else (f"its output folder {output} is gone" if output else "it recorded no output folder")
        )
        error = f" (error: {run['error']})" if run.get("error") else ""
        raise ModelError(
            f"{label} ({status}) has no saved weights: {why}, and the registry stored none{error}",
            hint=f"it ended before saving a model; train it again with `ftkit rerun {run_id}`, or pick a "
            "succeeded run (`ftkit runs`)",
        )  # fmt: skip
    source.notes = notes + source.notes
    return source


def _output_intact(folder: Path, artifacts: list[dict]) -> bool:
    """The run's output folder is there with its weights: every recorded file present, binary files at their
    recorded size (text files are stored scrubbed, so their size may differ). Without a record: weights present."""
    if not (folder / "resolved.yaml").is_file():
        return False
    if not artifacts:
        return has_weights([p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()])
    for artifact in artifacts:
        path = folder / artifact["name"]
        if not path.is_file():
            return False
        if path.suffix.lower() not in _TEXT_SUFFIXES and path.stat().st_size != artifact.get("size"):
            return False
    return True


def _rebuilt_from_store(
    registry: Any, run_id: str, artifacts: list[dict], output: Path | None
) -> tuple[Path, str]:
    """The run's output rebuilt from the objects store under the registry's git folder (reused when complete)."""
    cache = Path(registry.repo.git_dir) / "ftkit-cache" / "outputs" / run_id
    why = f"its output folder {output} is gone or changed" if output else "it recorded no output folder"
    if _output_intact(cache, artifacts):
        return cache, f"{why}: using its copy rebuilt from the registry's objects store, {cache}"
    missing = [a["name"] for a in artifacts if not registry.artifact_path(str(a.get("sha256"))).is_file()]
    if missing:
        raise ModelError(
            f"run {run_id}: {why}, and the registry's objects store lacks {len(missing)} of its files",
            hint=f"`ftkit registry verify --registry {registry.root}` lists lost objects; pull them from a registry "
            "that has them, or train again with `ftkit rerun`",
            problems=[f"{name}: not in {registry.root / 'objects'}" for name in missing[:10]],
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=cache.parent))
    try:
        for artifact in artifacts:
            target = staging / artifact["name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(registry.artifact_path(str(artifact["sha256"])), target)  # writable copy
        if cache.exists():
            shutil.rmtree(cache)
        os.replace(staging, cache)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache, f"{why}: rebuilt it from the registry's objects store into {cache}"


def load_model_target(source: TargetSource, *, device: str = "cpu") -> ModelTarget:
    """Load what `locate_target` found: a run output through `ftkit.inference.load_trained_model` (each method's
    own loading and decoding), anything else as a plain transformers model in fp32."""
    if source.kind in ("run", "run-output"):
        from ftkit.inference import load_trained_model

        trained = load_trained_model(source.path, device=device)
        return ModelTarget(
            trained.model,
            trained.tokenizer,
            source.task or "causal-lm",
            trained.labels,
            trained.use_cache,
            source.label,
            source.run_id,
            source.base_model,
            source,
            device,
            trained.method.name,
            list(source.notes),
        )
    return _plain_target(source, device)


def _plain_target(source: TargetSource, device: str) -> ModelTarget:
    import torch

    from ftkit.train.model_loading import load_model, load_tokenizer

    base = Path.cwd()
    tokenizer = load_tokenizer(source.path, base)
    task = source.task
    if task is None:  # a Hub id: its config decides
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(source.path)
        archs = config.architectures or []
        task = "classification" if any("SequenceClassification" in a for a in archs) else "causal-lm"
    labels = None
    if task == "classification":
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(source.path)
        labels = [str(config.id2label[index]) for index in sorted(config.id2label)]
    model = load_model(source.path, base, task, torch.float32, None, labels, tokenizer.pad_token_id)
    model.to(device)
    model.eval()
    return ModelTarget(
        model, tokenizer, task, labels, True, source.label, None, source.path, source, device, None
    )
