"""The in-process plumbing writes exactly what git's own plumbing would."""

from __future__ import annotations

import subprocess

from ftkit.registry.gitops import MODE_BLOB, MODE_TREE, GitRepo, TreeEntry, format_tree, parse_tree


def _git(git_dir, *args, input=None):
    proc = subprocess.run(["git", "--git-dir", str(git_dir), *args], input=input, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().strip()


def test_objects_match_git(tmp_path):
    git_dir = tmp_path / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    repo = GitRepo(git_dir)
    data = b"hello\x00world\n"
    blob = repo.write_blob(data)
    assert blob == _git(git_dir, "hash-object", "--stdin", input=data)
    assert repo.write_blob(data) == blob  # idempotent
    sub = repo.write_tree([TreeEntry(MODE_BLOB, "f", blob)])
    # names chosen so that git's tree order ("a-b" < "a/" < "a0") differs from plain sorting
    entries = [
        TreeEntry(MODE_BLOB, "a0", blob),
        TreeEntry(MODE_TREE, "a", sub),
        TreeEntry(MODE_BLOB, "a-b", blob),
    ]
    tree = repo.write_tree(entries)
    mktree_input = "".join(
        f"{'040000 tree' if e.is_tree else '100644 blob'} {e.sha}\t{e.name}\n" for e in entries
    ).encode()
    assert tree == _git(git_dir, "mktree", input=mktree_input)
    commit = repo.write_commit(tree, [], "msg\n\nbody", "A U Thor <a@example.com>", "1700000000 +0100")
    assert _git(git_dir, "cat-file", "-t", commit) == "commit"
    assert repo.compare_and_swap("refs/heads/main", commit, None, "create")
    assert not repo.compare_and_swap("refs/heads/main", commit, None, "create again")  # already exists
    second = repo.write_commit(tree, [commit], "two", "A U Thor <a@example.com>", "1700000001 +0000")
    assert not repo.compare_and_swap("refs/heads/main", second, second, "wrong old value")
    assert repo.compare_and_swap("refs/heads/main", second, commit, "right old value")
    assert repo.rev_parse("refs/heads/main") == second
    assert repo.read_commit(second)["parents"] == [commit]
    assert [e.name for e in repo.read_tree(tree)] == ["a-b", "a", "a0"]
    assert repo.read_blob(blob) == data
    assert repo.read_object("0" * 40) is None
    assert _git(git_dir, "fsck", "--strict") == ""
    repo.close()


def test_parse_format_round_trip():
    entries = [TreeEntry(MODE_BLOB, "x.json", "ab" * 20), TreeEntry(MODE_TREE, "runs", "cd" * 20)]
    assert parse_tree(format_tree(entries)) == sorted(entries, key=lambda e: e.name)
