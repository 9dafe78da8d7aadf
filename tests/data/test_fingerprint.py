"""Data fingerprints: the sha256 `sha256sum` prints for a file, a defined digest for a folder, none for a Hub id."""

from __future__ import annotations

import hashlib

from ftkit.data.fingerprint import fingerprint


def test_a_file_hashes_to_its_bytes(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"text": "a"}\n' * 100_000)  # over one read block (1 MiB)
    assert fingerprint(path, 7) == {
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "rows": 7,
    }


def test_a_folder_hashes_each_relative_path_then_its_bytes_in_path_order(tmp_path):
    folder = tmp_path / "saved"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.arrow").write_bytes(b"BBB")
    (folder / "a.json").write_bytes(b"A")
    expected = hashlib.sha256(b"a.json" + b"A" + b"sub/b.arrow" + b"BBB").hexdigest()
    assert fingerprint(folder, 2)["sha256"] == expected


def test_a_hub_dataset_id_has_no_local_bytes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fingerprint("tatsu-lab/alpaca", 3) == {
        "path": "tatsu-lab/alpaca",
        "sha256": None,
        "rows": 3,
        "source": "hub",
    }
