"""Git access for the run registry, through GitPython: objects, trees, commits and compare-and-swap ref updates.

Nothing here touches an index or a work tree, so any number of processes can commit at once: blobs, trees and
commits go straight into the object database, and a commit is published with `git update-ref REF NEW OLD`
(`repo.git.update_ref`), which git applies only while REF still equals OLD; a writer that loses the race re-reads
the tip, rebuilds its tree on top of it and tries again (store.py).

GitPython does the work: `git.Repo` opens the repository, its object database reads through one persistent
`git cat-file --batch` process, `Commit.create_from_tree` writes commits, `TreeModifier` sorts tree entries in
git's order and `git.objects.fun` packs and unpacks tree objects, `SymbolicReference` reads refs without a
subprocess, and `repo.git` runs update-ref, fetch and push. Kept here, because GitPython lacks it:

- `ObjectDB.store` writes loose objects in-process (gitdb's `LooseObjectDB.store`, the library GitPython's object
  database is built on). GitPython 3.2's default database starts one `git hash-object` process per object, and a
  run commit writes about a dozen objects: 13 objects took 28–67 ms that way against 12–27 ms in-process;
- `read_blobs` reads many blobs in one pipelined `git cat-file --batch` exchange. GitPython's object database asks
  for one object at a time and waits for each answer; listing 1,000 runs with a cold summary cache reads 2,000
  blobs: 0.18–0.32 s one at a time against 0.11 s in one exchange on the 2-core benchmark machine;
- `write_tree` builds a tree object from entries: GitPython writes trees only from an index, which a lock-free
  registry must not share.

Importing GitPython is not free, but it is not 0.2 s either: `python -X importtime -c "import git"` measured
67–74 ms here, and 34–40 ms inside `ftkit runs`, where the standard-library modules it needs are already loaded
(both include the `git version` check GitPython runs at import). `ftkit runs` and `ftkit diff` pay it once; PyYAML
is imported only to write or load a run, never to list runs.
"""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import git
from git.objects.fun import tree_entries_from_data, tree_to_stream
from git.objects.tree import TreeModifier
from gitdb import IStream, LooseObjectDB

from ftkit.errors import RegistryError
from ftkit.registry import processes, testpoints

ZERO_SHA = "0" * 40
TREE_MODE = 0o040000
BLOB_MODE = 0o100644


class Entry(NamedTuple):
    """One entry of a git tree, in GitPython's tree-cache layout (binsha, mode, name)."""

    binsha: bytes
    mode: int
    name: str

    @classmethod
    def blob(cls, name: str, sha: str) -> Entry:
        """A file entry for blob `sha` (hex)."""
        return cls(bytes.fromhex(sha), BLOB_MODE, name)

    @classmethod
    def tree(cls, name: str, sha: str) -> Entry:
        """A folder entry for tree `sha` (hex)."""
        return cls(bytes.fromhex(sha), TREE_MODE, name)

    @property
    def sha(self) -> str:
        """The hex sha."""
        return self.binsha.hex()

    @property
    def is_tree(self) -> bool:
        """True for a folder."""
        return self.mode == TREE_MODE


Entries = dict[str, Entry]


class ObjectDB(git.GitCmdObjectDB):
    """GitPython's object database (reads through a persistent `git cat-file`) writing loose objects in-process."""

    def store(self, istream: IStream) -> IStream:
        """Write one object as a loose object (temporary file, then rename) and return it with its sha set."""
        return LooseObjectDB.store(self, istream)


def _environment(git_dir: Path) -> dict[str, str]:
    # An inherited GIT_DIR or GIT_OBJECT_DIRECTORY (ftkit started from a git hook, say) must not redirect the
    # registry's git commands to another repository; remotes must never wait for a password prompt.
    return {
        "GIT_DIR": str(git_dir),
        "GIT_OBJECT_DIRECTORY": str(git_dir / "objects"),
        "GIT_TERMINAL_PROMPT": "0",
    }


def init_repo(git_dir: Path) -> git.Repo:
    """Create a bare repository at `git_dir` with branch `main` (idempotent) and open it."""
    command = git.Git(str(git_dir.parent))
    command.update_environment(**_environment(git_dir))
    try:
        command.init("--quiet", "--bare", "--initial-branch=main", str(git_dir))
    except git.GitCommandError as error:
        raise RegistryError(
            f"cannot create a git repository at {git_dir}: {error.stderr.strip() or error}",
            hint="check the folder is writable, or pass --registry DIR",
        ) from error
    return open_repo(git_dir)


def open_repo(git_dir: Path) -> git.Repo:
    """Open the bare repository at `git_dir` with the in-process object writer."""
    try:
        repo = git.Repo(str(git_dir), odbt=ObjectDB)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        raise RegistryError(
            f"{git_dir} is not a usable git directory (corrupt or foreign)",
            hint="point --registry at another folder, or move this one away and let ftkit create a new one",
        ) from error
    repo.git.update_environment(**_environment(Path(git_dir)))
    # GitPython follows an inherited GIT_OBJECT_DIRECTORY; the registry's objects are always its own.
    repo.odb = ObjectDB(str(Path(git_dir) / "objects"), repo.git)
    return repo


def tip(repo: git.Repo, ref: str) -> str | None:
    """The commit sha `ref` points at, read fresh from disk (no subprocess, no cache); None when it does not exist."""
    try:
        return git.SymbolicReference.dereference_recursive(repo, ref)
    except ValueError:
        return None


def _damaged(repo: git.Repo, what: str, sha: str) -> RegistryError:
    root = Path(repo.git_dir).parent
    return RegistryError(
        f"missing or invalid {what} {sha} in {repo.git_dir}",
        hint=f"`ftkit registry verify --registry {root}` lists the damage; `ftkit registry repair --from REMOTE "
        f"--registry {root}` restores lost objects from a registry that has them",
    )


def read_object(repo: git.Repo, sha: str, kind: bytes) -> bytes:
    """The data of object `sha` (hex), which must be of type `kind` (b"blob", b"tree" or b"commit")."""
    try:
        stream = repo.odb.stream(bytes.fromhex(sha))
        data = stream.read()
    except (ValueError, git.BadObject) as error:
        raise _damaged(repo, kind.decode(), sha) from error
    if stream.type != kind:
        raise _damaged(repo, kind.decode(), sha)
    return data


# Trees never change (their sha is their content), so parsed trees are kept: GitPython's parser checks every name
# (about 13 ms for the 1,000 entries of runs/), and `ftkit log` would otherwise parse runs/ once per run it shows.
_TREES: dict[tuple[str, str], Entries] = {}
_TREES_KEPT = 64


def _keep_tree(repo: git.Repo, sha: str, entries: Entries) -> None:
    if len(_TREES) >= _TREES_KEPT:
        _TREES.clear()
    _TREES[(repo.git_dir, sha)] = entries


def read_tree(repo: git.Repo, sha: str) -> Entries:
    """A tree's entries by name (a new dict the caller may change)."""
    entries = _TREES.get((repo.git_dir, sha))
    if entries is None:
        entries = {e[2]: Entry(*e) for e in tree_entries_from_data(read_object(repo, sha, b"tree"))}
        _keep_tree(repo, sha, entries)
    return dict(entries)


def commit_tree(repo: git.Repo, sha: str) -> str:
    """The tree sha of commit `sha`."""
    try:
        return git.Commit(repo, bytes.fromhex(sha)).tree.hexsha
    except (ValueError, git.BadObject) as error:
        raise _damaged(repo, "commit", sha) from error


def subtree(repo: git.Repo, root: Entries, name: str) -> Entries:
    """Entries of folder `name` in `root` ({} when there is none)."""
    entry = root.get(name)
    return read_tree(repo, entry.sha) if entry is not None and entry.is_tree else {}


def write_blob(repo: git.Repo, data: bytes) -> str:
    """Store `data` as a blob; return its sha."""
    return repo.odb.store(IStream(b"blob", len(data), io.BytesIO(data))).hexsha.decode()


def write_tree(repo: git.Repo, entries: Iterable[Entry]) -> str:
    """Store a tree of `entries` (sorted into git's order here); return its sha."""
    cache = [tuple(entry) for entry in entries]
    if len({entry[2] for entry in cache}) != len(cache):
        raise RegistryError("duplicate names in a git tree", hint="this is a bug in ftkit; please report it")
    TreeModifier(cache).set_done()  # git's order: a folder sorts as if its name ended with "/"
    buffer = io.BytesIO()
    tree_to_stream(cache, buffer.write)
    data = buffer.getvalue()
    sha = repo.odb.store(IStream(b"tree", len(data), io.BytesIO(data))).hexsha.decode()
    _keep_tree(repo, sha, {entry[2]: Entry(*entry) for entry in cache})
    return sha


def with_child(repo: git.Repo, root: Entries, folder: str, name: str, entry: Entry | None) -> Entries:
    """`root` with `folder/name` set to `entry` (None: removed); the folder disappears when it empties."""
    children = subtree(repo, root, folder)
    if entry is None:
        children.pop(name, None)
    else:
        children[name] = entry._replace(name=name)
    root = dict(root)
    if children:
        root[folder] = Entry.tree(folder, write_tree(repo, children.values()))
    else:
        root.pop(folder, None)
    return root


def identity(repo: git.Repo) -> git.Actor:
    """Who commits: GIT_AUTHOR_NAME/EMAIL or git's user.name/user.email, else a neutral ftkit identity."""
    try:
        actor = git.Actor.author(repo.config_reader())
    except Exception:  # no user name or host name to fall back on, e.g. a bare container
        return git.Actor("ftkit", "ftkit@localhost")
    return actor if actor.name and actor.email else git.Actor("ftkit", "ftkit@localhost")


def write_commit(repo: git.Repo, tree: str, parents: list[str], message: str, actor: git.Actor) -> str:
    """Store a commit of `tree` with `parents` (hex shas) and `message`; nothing moves; return its sha."""
    commit = git.Commit.create_from_tree(
        repo,
        git.Tree(repo, bytes.fromhex(tree)),
        message.rstrip("\n") + "\n",
        parent_commits=[git.Commit(repo, bytes.fromhex(parent)) for parent in parents],
        head=False,
        author=actor,
        committer=actor,
    )
    return commit.hexsha


# git's words for a ref update that retrying cannot fix: the disk, not another writer, is in the way.
_CANNOT_WRITE = (
    "Read-only file system",
    "No space left on device",
    "Disk quota exceeded",
    "Permission denied",
)
_REFUSALS: dict[str, str] = {}  # git dir -> git's message for its latest refused ref update


def compare_and_swap(repo: git.Repo, ref: str, new: str, old: str | None, reason: str) -> bool:
    """Move `ref` to `new` only if it still points at `old` (None: only if it does not exist yet). False when the
    ref moved or another writer holds its lock (retry; `refused` reports git's message); RegistryError with git's
    own message when git cannot write there at all (a read-only or full disk, no permission)."""
    with processes.writing(Path(repo.git_dir)):  # names this process beside git's lock (preflight.py)
        testpoints.pause_if_inside("registry-commit")
        status, _, stderr = repo.git.update_ref(
            "-m", reason, ref, new, old or ZERO_SHA, with_extended_output=True, with_exceptions=False
        )
    if status == 0:
        return True
    message = (stderr or "").strip()
    _REFUSALS[repo.git_dir] = message
    if any(words in message for words in _CANNOT_WRITE):
        raise RegistryError(
            f"git cannot update {ref} in {repo.git_dir}: {message.splitlines()[0]}",
            hint="make the registry writable (or free space on its disk), then retry",
            problems=[line for line in message.splitlines()[1:] if line.strip()],
        )
    return False


def refusing_lock(repo: git.Repo) -> Path | None:
    """The lock file git named when it last refused a ref update in `repo` (None when it named none)."""
    lock = re.search(r"Unable to create '([^']+\.lock)'", _REFUSALS.get(repo.git_dir, ""))
    return Path(lock.group(1)) if lock else None


def refused(repo: git.Repo, what: str) -> RegistryError:
    """The error after compare-and-swap kept failing in `repo`: `what` happened, git's own last message, and the
    lock it names (the file to remove when no writer is running)."""
    message = _REFUSALS.get(repo.git_dir, "")
    first = message.splitlines()[0] if message else ""
    lock = re.search(r"Unable to create '([^']+\.lock)'", message)
    hint = (
        f"if no other ftkit or git command is writing to the registry, the lock is stale: rm {lock.group(1)}"
        if lock
        else "retry; if it persists, run `git fsck` in the registry's .git folder"
    )
    return RegistryError(f"{what}; git: {first}" if first else what, hint=hint)


def read_blobs(repo: git.Repo, names: list[str]) -> list[bytes | None]:
    """Many blobs, each named by sha or `TREE:PATH`, in one pipelined `git cat-file --batch` exchange (None for
    a name that is missing, damaged or not a blob). When git stops at a damaged object, that name reads as None
    and the exchange resumes after it."""
    blobs: list[bytes | None] = []
    pending = list(names)
    while pending:
        answered, complete = _batch(repo, pending)
        blobs += answered
        pending = pending[len(answered) :]
        if pending and not complete:
            blobs.append(None)
            pending = pending[1:]
    return blobs


def _batch(repo: git.Repo, names: list[str]) -> tuple[list[bytes | None], bool]:
    """(answers to a prefix of `names`, whether git answered them all and exited cleanly)."""
    proc = repo.git.cat_file("--batch", as_process=True, istream=subprocess.PIPE)
    out, _ = proc.communicate("".join(f"{name}\n" for name in names).encode())
    blobs: list[bytes | None] = []
    pos = 0
    for _ in names:
        end = out.find(b"\n", pos)
        if end < 0:
            break
        header = out[pos:end].split()
        if len(header) != 3:  # "<name> missing" or "<name> ambiguous"
            blobs.append(None)
            pos = end + 1
            continue
        size = int(header[2])
        if len(out) < end + 2 + size:
            break
        blobs.append(out[end + 1 : end + 1 + size] if header[1] == b"blob" else None)
        pos = end + 2 + size
    return blobs, proc.returncode == 0 and len(blobs) == len(names)


def objects_present(repo: git.Repo, shas: list[str]) -> list[bool]:
    """Whether git (a new `git cat-file --batch-check` process, which sees the packs as they are now) finds each
    object."""
    if not shas:
        return []
    proc = repo.git.cat_file("--batch-check", as_process=True, istream=subprocess.PIPE)
    out, _ = proc.communicate("".join(f"{sha}\n" for sha in shas).encode())
    answers = out.decode(errors="replace").splitlines()
    return [index < len(answers) and not answers[index].endswith(" missing") for index in range(len(shas))]


def close(repo: git.Repo) -> None:
    """Stop GitPython's persistent git processes."""
    repo.close()
