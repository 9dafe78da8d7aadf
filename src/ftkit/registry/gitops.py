"""Git plumbing for the run registry: objects written in-process, refs moved with compare-and-swap.

Nothing here touches an index or a work tree, so any number of processes can commit at once:

- blobs, trees and commits are written as loose objects straight into the object database (what
  `git hash-object -w`, `git mktree` and `git commit-tree` do), each through a temporary file and an atomic link;
- a commit is published with `git update-ref REF NEW OLD`, which git applies only while REF still equals OLD;
  a caller that loses the race re-reads the tip, rebuilds its tree on top of it and tries again;
- objects are read through one long-lived `git cat-file --batch` process, so reading a thousand runs costs one
  subprocess, not a thousand.

Only the standard library is used here (GitPython is allowed by the design but costs ~0.2 s to import, and every
`ftkit runs` would pay it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ftkit.errors import RegistryError

ZERO_SHA = "0" * 40
MODE_TREE = "40000"
MODE_BLOB = "100644"


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a git tree: mode ("100644" or "40000"), name and hex sha."""

    mode: str
    name: str
    sha: str

    @property
    def is_tree(self) -> bool:
        return self.mode == MODE_TREE


class GitCommandError(RegistryError):
    """A git subprocess failed; `stderr` holds what git said."""

    def __init__(self, args: list[str], returncode: int, stderr: str):
        super().__init__(
            f"git {' '.join(args)} failed (exit {returncode}): {stderr.strip()}",
            hint="check that git is installed and the registry folder is intact",
        )
        self.returncode = returncode
        self.stderr = stderr


class GitRepo:
    """A bare-style git directory driven through plumbing only."""

    def __init__(self, git_dir: Path):
        self.git_dir = Path(git_dir)
        self._catfile: subprocess.Popen | None = None

    # -- subprocesses -------------------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["GIT_DIR"] = str(self.git_dir)
        for key in (
            "GIT_WORK_TREE",
            "GIT_INDEX_FILE",
            "GIT_OBJECT_DIRECTORY",
            "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        ):
            env.pop(key, None)
        env.setdefault("GIT_TERMINAL_PROMPT", "0")
        env["LC_ALL"] = "C"
        return env

    def run(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess:
        """Run `git ARGS` against this repository; raise GitCommandError on failure when `check`."""
        try:
            proc = subprocess.run(["git", *args], env=self._env(), input=input, capture_output=True)
        except FileNotFoundError as error:  # git itself is missing
            raise RegistryError(
                "git is not installed or not on PATH",
                hint="install git; the run registry is a git repository",
            ) from error
        if check and proc.returncode != 0:
            raise GitCommandError(list(args), proc.returncode, proc.stderr.decode("utf-8", "replace"))
        return proc

    def init(self) -> subprocess.CompletedProcess:
        """`git init --bare` this git directory with branch `main` (idempotent)."""
        env = self._env()
        env.pop("GIT_DIR", None)
        return subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(self.git_dir)],
            env=env,
            capture_output=True,
        )

    def close(self) -> None:
        """Stop the cat-file process, if one was started."""
        if self._catfile is not None:
            try:
                self._catfile.stdin.close()  # type: ignore[union-attr]
                self._catfile.wait(timeout=5)
            except Exception:  # pragma: no cover - best effort
                self._catfile.kill()
            self._catfile = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        with contextlib.suppress(Exception):
            self.close()

    # -- reading ------------------------------------------------------------------------------------------------

    def _batch(self) -> subprocess.Popen:
        if self._catfile is None or self._catfile.poll() is not None:
            self._catfile = subprocess.Popen(
                ["git", "cat-file", "--batch"],
                env=self._env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        return self._catfile

    def read_object(self, name: str) -> tuple[str, str, bytes] | None:
        """(sha, type, data) of an object named by sha or ref, or None when it does not exist."""
        proc = self._batch()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(name.encode() + b"\n")
        proc.stdin.flush()
        header = proc.stdout.readline()
        if not header:
            raise RegistryError(f"git cat-file stopped unexpectedly in {self.git_dir}")
        parts = header.split()
        if len(parts) < 3 or parts[1] in (b"missing", b"ambiguous"):
            return None
        sha, kind, size = parts[0].decode(), parts[1].decode(), int(parts[2])
        data = proc.stdout.read(size)
        proc.stdout.read(1)  # trailing newline
        return sha, kind, data

    def read_many(self, names: list[str]) -> list[tuple[str, str, bytes] | None]:
        """Read many objects in one pipelined exchange with cat-file (requests are written by a thread while the
        answers are read, so neither pipe can fill up and block)."""
        if not names:
            return []
        proc = self._batch()
        assert proc.stdin is not None and proc.stdout is not None
        payload = "".join(f"{name}\n" for name in names).encode()
        errors: list[BaseException] = []

        def feed() -> None:
            try:
                proc.stdin.write(payload)  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
            except BaseException as error:  # pragma: no cover - surfaced below
                errors.append(error)

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        out: list[tuple[str, str, bytes] | None] = []
        for _ in names:
            header = proc.stdout.readline()
            if not header:
                raise RegistryError(f"git cat-file stopped unexpectedly in {self.git_dir}")
            parts = header.split()
            if len(parts) < 3 or parts[1] in (b"missing", b"ambiguous"):
                out.append(None)
                continue
            data = proc.stdout.read(int(parts[2]))
            proc.stdout.read(1)
            out.append((parts[0].decode(), parts[1].decode(), data))
        writer.join()
        if errors:
            raise RegistryError(f"cannot talk to git cat-file in {self.git_dir}: {errors[0]}")
        return out

    def read_blob(self, sha: str) -> bytes:
        obj = self.read_object(sha)
        if obj is None or obj[1] != "blob":
            raise RegistryError(
                f"missing or invalid blob {sha} in {self.git_dir}", hint="run `git fsck` there"
            )
        return obj[2]

    def read_tree(self, sha: str) -> list[TreeEntry]:
        obj = self.read_object(sha)
        if obj is None or obj[1] != "tree":
            raise RegistryError(
                f"missing or invalid tree {sha} in {self.git_dir}", hint="run `git fsck` there"
            )
        return parse_tree(obj[2])

    def read_commit(self, sha: str) -> dict:
        """A commit as {"sha", "tree", "parents", "message"}."""
        obj = self.read_object(sha)
        if obj is None or obj[1] != "commit":
            raise RegistryError(
                f"missing or invalid commit {sha} in {self.git_dir}", hint="run `git fsck` there"
            )
        head, _, message = obj[2].partition(b"\n\n")
        tree, parents = "", []
        for line in head.split(b"\n"):
            if line.startswith(b"tree "):
                tree = line[5:].decode()
            elif line.startswith(b"parent "):
                parents.append(line[7:].decode())
        return {
            "sha": obj[0],
            "tree": tree,
            "parents": parents,
            "message": message.decode("utf-8", "replace"),
        }

    def rev_parse(self, name: str) -> str | None:
        """Fresh (uncached) lookup of a ref or revision; None when it does not exist."""
        proc = self.run("rev-parse", "--verify", "--quiet", name + "^{commit}", check=False)
        if proc.returncode != 0:
            return None
        return proc.stdout.decode().strip()

    # -- writing ------------------------------------------------------------------------------------------------

    def write_object(self, kind: str, data: bytes) -> str:
        """Write a loose object (like `git hash-object -w`) and return its sha; safe under concurrency."""
        raw = f"{kind} {len(data)}\0".encode() + data
        sha = hashlib.sha1(raw).hexdigest()
        folder = self.git_dir / "objects" / sha[:2]
        target = folder / sha[2:]
        if target.exists():
            return sha
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="tmp_obj_", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(zlib.compress(raw, 1))
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, target)
            except FileExistsError:
                pass
            except OSError:  # filesystems without hard links
                os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return sha

    def write_blob(self, data: bytes) -> str:
        return self.write_object("blob", data)

    def write_tree(self, entries: Iterable[TreeEntry]) -> str:
        return self.write_object("tree", format_tree(entries))

    def write_commit(self, tree: str, parents: list[str], message: str, author: str, when: str) -> str:
        """Write a commit object; `author` is "Name <email>", `when` is "<unix-seconds> <+hhmm>"."""
        lines = [f"tree {tree}"] + [f"parent {parent}" for parent in parents]
        lines += [f"author {author} {when}", f"committer {author} {when}"]
        body = "\n".join(lines) + "\n\n" + message.rstrip("\n") + "\n"
        return self.write_object("commit", body.encode("utf-8"))

    def compare_and_swap(self, ref: str, new: str, old: str | None, reason: str) -> bool:
        """Move `ref` to `new` only if it still points at `old` (None: only if it does not exist yet)."""
        proc = self.run("update-ref", "-m", reason, ref, new, old or ZERO_SHA, check=False)
        return proc.returncode == 0

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.run("merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0


def parse_tree(data: bytes) -> list[TreeEntry]:
    """Parse raw tree object data into entries."""
    entries: list[TreeEntry] = []
    pos, end = 0, len(data)
    while pos < end:
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        mode = data[pos:space].decode()
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        sha = data[nul + 1 : nul + 21].hex()
        entries.append(TreeEntry(mode, name, sha))
        pos = nul + 21
    return entries


def _sort_key(entry: TreeEntry) -> bytes:
    name = entry.name.encode("utf-8", "surrogateescape")
    return name + b"/" if entry.is_tree else name


def format_tree(entries: Iterable[TreeEntry]) -> bytes:
    """Raw tree object data in git's canonical order (trees sort as if their name ended with '/')."""
    out = bytearray()
    seen: set[str] = set()
    for entry in sorted(entries, key=_sort_key):
        if entry.name in seen:
            raise RegistryError(f"duplicate tree entry {entry.name!r}")
        seen.add(entry.name)
        out += f"{entry.mode} ".encode() + entry.name.encode("utf-8", "surrogateescape") + b"\0"
        out += bytes.fromhex(entry.sha)
    return bytes(out)
