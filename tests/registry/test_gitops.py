"""The registry's git access writes exactly what git's own plumbing would, and reads back what git wrote."""

from __future__ import annotations

import subprocess

import pytest

from ftkit.errors import RegistryError
from ftkit.registry import gitops
from ftkit.registry.gitops import Entry


def _git(git_dir, *args, input=None):
    proc = subprocess.run(["git", "--git-dir", str(git_dir), *args], input=input, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


@pytest.fixture
def repo(tmp_path):
    repo = gitops.init_repo(tmp_path / "repo.git")
    yield repo
    gitops.close(repo)


def test_objects_match_git(repo):
    git_dir = repo.git_dir
    data = b"hello\x00world\n"
    blob = gitops.write_blob(repo, data)
    assert blob == _git(git_dir, "hash-object", "--stdin", input=data)
    assert gitops.write_blob(repo, data) == blob  # idempotent
    sub = gitops.write_tree(repo, [Entry.blob("f", blob)])
    # names chosen so that git's tree order ("a-b" < "a/" < "a0") differs from plain sorting
    entries = [Entry.blob("a0", blob), Entry.tree("a", sub), Entry.blob("a-b", blob)]
    tree = gitops.write_tree(repo, entries)
    mktree_input = "".join(
        f"{'040000 tree' if e.is_tree else '100644 blob'} {e.sha}\t{e.name}\n" for e in entries
    ).encode()
    assert tree == _git(git_dir, "mktree", input=mktree_input)
    assert list(gitops.read_tree(repo, tree)) == ["a-b", "a", "a0"]
    assert gitops.read_tree(repo, tree)["a"] == Entry.tree("a", sub)
    assert gitops.read_object(repo, blob, b"blob") == data
    actor = gitops.identity(repo)
    commit = gitops.write_commit(repo, tree, [], "msg\n\nbody", actor)
    assert _git(git_dir, "cat-file", "-t", commit) == "commit"
    assert _git(git_dir, "log", "--format=%B", commit) == "msg\n\nbody"
    assert gitops.commit_tree(repo, commit) == tree
    assert _git(git_dir, "fsck", "--strict", "--no-dangling") == ""


def test_tree_with_duplicate_names_is_refused(repo):
    blob = gitops.write_blob(repo, b"x")
    with pytest.raises(RegistryError, match="duplicate"):
        gitops.write_tree(repo, [Entry.blob("x", blob), Entry.blob("x", blob)])


def test_compare_and_swap_moves_a_ref_only_from_the_expected_value(repo):
    tree = gitops.write_tree(repo, [Entry.blob("f", gitops.write_blob(repo, b"f"))])
    first = gitops.write_commit(repo, tree, [], "one", gitops.identity(repo))
    second = gitops.write_commit(repo, tree, [first], "two", gitops.identity(repo))
    ref = "refs/heads/main"
    assert gitops.tip(repo, ref) is None
    assert gitops.compare_and_swap(repo, ref, first, None, "create")
    assert not gitops.compare_and_swap(repo, ref, first, None, "create again")  # already exists
    assert not gitops.compare_and_swap(repo, ref, second, second, "wrong old value")
    assert gitops.tip(repo, ref) == first
    assert gitops.compare_and_swap(repo, ref, second, first, "right old value")
    assert gitops.tip(repo, ref) == second == _git(repo.git_dir, "rev-parse", "main")
    assert _git(repo.git_dir, "rev-list", "--parents", "-1", "main").split() == [second, first]


def test_read_blobs_matches_cat_file_and_reports_missing(repo):
    blobs = [gitops.write_blob(repo, f"blob {i}\n".encode() * (i + 1)) for i in range(50)]
    tree = gitops.write_tree(repo, [Entry.blob(f"f{i}", sha) for i, sha in enumerate(blobs)])
    names = [*blobs, f"{tree}:f7", f"{tree}:absent", "0" * 40, tree]
    read = gitops.read_blobs(repo, names)
    expected = [subprocess.run(["git", "--git-dir", str(repo.git_dir), "cat-file", "blob", sha],
                               capture_output=True, check=True).stdout for sha in blobs]  # fmt: skip
    assert read[:50] == expected
    assert read[50] == expected[7]
    assert read[51:] == [None, None, None]  # a missing path, a missing object, a tree
    assert gitops.read_blobs(repo, []) == []


def test_damaged_objects_raise_registry_errors(repo):
    blob = gitops.write_blob(repo, b"x")
    with pytest.raises(RegistryError, match="missing or invalid tree"):
        gitops.read_tree(repo, blob)
    with pytest.raises(RegistryError, match="missing or invalid blob"):
        gitops.read_object(repo, "1" * 40, b"blob")


def test_inherited_git_dir_does_not_redirect_the_registry(tmp_path, monkeypatch):
    decoy = tmp_path / "decoy.git"
    subprocess.run(["git", "init", "-q", "--bare", str(decoy)], check=True)
    monkeypatch.setenv("GIT_DIR", str(decoy))
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(decoy / "objects"))
    repo = gitops.init_repo(tmp_path / "registry.git")
    tree = gitops.write_tree(repo, [Entry.blob("f", gitops.write_blob(repo, b"f"))])
    commit = gitops.write_commit(repo, tree, [], "one", gitops.identity(repo))
    assert gitops.compare_and_swap(repo, "refs/heads/main", commit, None, "create")
    gitops.close(repo)
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_OBJECT_DIRECTORY")
    assert _git(tmp_path / "registry.git", "rev-parse", "main") == commit
    assert _git(decoy, "for-each-ref") == ""
