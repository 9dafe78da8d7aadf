"""The content-addressed store for weights and other run outputs, beside the registry's git repository.

Files live at `<registry>/objects/sha256/ab/cdef...` (the first two hex digits name the folder). A file that is
already stored is never written again, so identical weights across runs take the space once. Files are copied by
default — a hard link would let a later in-place write to the run's output folder silently change the stored
copy — and `link=True` (or FTKIT_ARTIFACTS=link) hard-links instead when the output folder is on the same disk.
Small text files (resolved.yaml, configs, logs) are stored with
their secrets scrubbed (ftkit.registry.scrub), so their stored sha256 may differ from the output folder's copy.
Stored files are made read-only. Every write goes through a temporary file and an atomic rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from ftkit.errors import RegistryError
from ftkit.hashing import file_sha256, iter_chunks
from ftkit.registry import scrub


class ArtifactStore:
    """Content-addressed files under `root` (normally `<registry>/objects`)."""

    def __init__(self, root: Path, link: bool | None = None):
        self.root = Path(root)
        self.link = os.environ.get("FTKIT_ARTIFACTS", "copy") == "link" if link is None else link

    def relative_path(self, sha256: str) -> str:
        """Where a digest lives, relative to the registry folder (the `path` in artifacts.json)."""
        return f"objects/sha256/{sha256[:2]}/{sha256[2:]}"

    def path_for(self, sha256: str) -> Path:
        """Where a digest lives on disk."""
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def put(self, source: Path) -> tuple[str, int, bool]:
        """Store one file; return (sha256, size, newly_stored)."""
        source = Path(source)
        try:
            digest = file_sha256(source)
            size = source.stat().st_size
        except OSError as error:
            raise RegistryError(f"cannot read output file {source}: {error.strerror or error}") from error
        target = self.path_for(digest)
        if target.is_file():
            return digest, size, False
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.link:
            try:
                tmp = target.parent / f".tmp-{os.getpid()}-{digest[:8]}"
                os.link(source, tmp)
                os.replace(tmp, target)
                return digest, size, True
            except OSError:
                pass  # another filesystem: fall back to a copy
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            copied = hashlib.sha256()
            with os.fdopen(fd, "wb") as writer:
                for chunk in iter_chunks(source):
                    copied.update(chunk)
                    writer.write(chunk)
            if copied.hexdigest() != digest:
                raise RegistryError(f"{source} changed while it was being stored", hint="re-run the command")
            os.chmod(tmp_name, 0o444)
            os.replace(tmp_name, target)
        except OSError as error:
            raise RegistryError(f"cannot store {source} in {self.root}: {error.strerror or error}") from error
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        return digest, size, True

    def put_tree(self, folder: Path) -> list[dict]:
        """Store every file under `folder` (recursively, symlinks followed, sorted); return artifacts.json rows.
        A save's staging folder (left only by a save that never finished) holds no complete file, and `checkpoints/`
        holds training state, not the run's result: both skipped."""
        folder = Path(folder)
        rows = []
        env_values = scrub.env_secret_values()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            parts = path.relative_to(folder).parts
            if any(part.startswith(_STAGING_PREFIX) for part in parts) or parts[0] == _CHECKPOINTS:
                continue
            digest, size = self._put_scrubbed(path, env_values)
            rows.append(
                {
                    "name": path.relative_to(folder).as_posix(),
                    "sha256": digest,
                    "size": size,
                    "path": self.relative_path(digest),
                }
            )
        return rows

    def put_file(self, path: Path, env_values: list[str] | None = None) -> tuple[str, int]:
        """Store one file as put_tree stores each (a small text file with its secrets scrubbed); return
        (sha256, size) of the stored copy."""
        return self._put_scrubbed(Path(path), scrub.env_secret_values() if env_values is None else env_values)

    def _put_scrubbed(self, path: Path, env_values: list[str]) -> tuple[str, int]:
        """Store `path`; a small text file (recipe, config, log) is stored with its secrets scrubbed."""
        text = None
        if path.suffix.lower() in _TEXT_SUFFIXES and path.stat().st_size <= _MAX_SCRUB_BYTES:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = None
        clean = _scrub_artifact(text, path.suffix.lower(), env_values) if text is not None else None
        if clean is None or clean == text:
            digest, size, _ = self.put(path)
            return digest, size
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".scrub-", dir=self.root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as writer:
                writer.write(clean)
            digest, size, _ = self.put(Path(tmp_name))
        finally:
            os.unlink(tmp_name)
        return digest, size

    def verify(self, sha256: str) -> bool:
        """True when the stored file exists and still hashes to its name."""
        path = self.path_for(sha256)
        return path.is_file() and file_sha256(path) == sha256


# ftkit.train.output_files.STAGING_PREFIX: a save writes there and moves its files out only once it succeeded.
_STAGING_PREFIX = ".ftkit-saving-"
# ftkit.train.checkpoints.CHECKPOINTS: resumable training state (optimizer too), kept in the output folder for
# `ftkit resume`, never copied into the store (it is several times the weights' size).
_CHECKPOINTS = "checkpoints"
_TEXT_SUFFIXES = {".yaml", ".yml", ".json", ".jsonl", ".txt", ".md", ".log", ".cfg", ".ini", ".toml"}
_MAX_SCRUB_BYTES = 16 * 1024 * 1024


def _scrub_artifact(text: str, suffix: str, env_values: list[str]) -> str:
    """`text` with secrets redacted; JSON stays valid (re-serialised through the structured scrub if needed)."""
    if suffix in (".yaml", ".yml"):
        return scrub.scrub_yaml_text(text, env_values)
    clean = scrub.scrub_text(text, env_values)
    if suffix != ".json" or clean == text:
        return clean
    try:
        json.loads(clean)
        return clean
    except ValueError:
        return json.dumps(scrub.scrub_data(json.loads(text), env_values), indent=2, ensure_ascii=False)
