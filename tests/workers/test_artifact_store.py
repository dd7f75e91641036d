"""The artifact store: complete-or-absent artifacts on a local disk and on a non-local fsspec store, and the
object store they are built on."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import fsspec
import pytest

from service.contract import report_folder_key
from service.contract.objects import ObjectStore
from workers.errors import ArtifactCorrupt
from workers.scan.store import MANIFEST, FsspecArtifactStore


def test_local_write_then_read(tmp_path: Path) -> None:
    store = FsspecArtifactStore(str(tmp_path / "root"))
    assert not store.exists("scans/a")
    assert store.write("scans/a", {"data.bin": b"\x00\x01\x02"}, {"kind": "test"})
    assert store.exists("scans/a")
    assert store.read_bytes("scans/a", "data.bin") == b"\x00\x01\x02"
    manifest = store.read_manifest("scans/a")
    assert manifest["kind"] == "test" and manifest["files"] == {"data.bin": 3}
    assert store.local_path("scans/a", "data.bin") == str(tmp_path / "root" / "scans" / "a" / "data.bin")
    assert store.verify("scans/a")["kind"] == "test"
    # Nothing but the final folder is left behind (the temporary one was renamed into place).
    assert sorted(os.listdir(tmp_path / "root" / "scans")) == ["a"]


def test_second_write_keeps_the_first_artifact(tmp_path: Path) -> None:
    store = FsspecArtifactStore(str(tmp_path))
    assert store.write("k", {"f": b"first"}, {"n": 1})
    assert not store.write("k", {"f": b"second"}, {"n": 2})
    assert store.read_bytes("k", "f") == b"first"
    assert store.read_manifest("k")["n"] == 1


def test_a_killed_writer_never_looks_complete(tmp_path: Path) -> None:
    store = FsspecArtifactStore(str(tmp_path))
    # What a writer killed before its rename leaves: a temporary folder with data but no manifest …
    orphan = tmp_path / f"k.tmp-{uuid.uuid4().hex}"
    orphan.mkdir()
    (orphan / "f").write_bytes(b"partial")
    # … and what a non-atomic writer killed before the manifest leaves: the final folder without one.
    final = tmp_path / "k"
    final.mkdir()
    (final / "f").write_bytes(b"part")
    assert not store.exists("k")
    assert store.write("k", {"f": b"complete"}, {"ok": True})
    assert store.exists("k") and store.read_bytes("k", "f") == b"complete"


def test_object_store_writes_manifest_last_and_verifies_sizes() -> None:
    url = f"memory://neuronlens-test-{uuid.uuid4().hex}"
    store = FsspecArtifactStore(url)
    assert store.local_path("k", "f") is None
    assert store.write("scans/k", {"f": b"12345"}, {"kind": "memory"})
    assert store.exists("scans/k")
    assert store.read_bytes("scans/k", "f") == b"12345"
    assert json.loads(json.dumps(store.verify("scans/k")))["files"] == {"f": 5}
    # A data file cut short after the manifest was written is caught.
    fsspec.filesystem("memory").pipe_file(f"{url.removeprefix('memory://')}/scans/k/f", b"12")
    with pytest.raises(ArtifactCorrupt, match="missing or truncated"):
        store.verify("scans/k")
    with pytest.raises(ArtifactCorrupt, match="lacks its file"):
        store.read_bytes("scans/k", "nope")


def test_manifest_name_is_reserved(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=MANIFEST):
        FsspecArtifactStore(str(tmp_path)).write("k", {MANIFEST: b"{}"}, {})


@pytest.mark.parametrize("where", ["local", "memory"])
def test_the_shared_object_store_reads_writes_lists_and_deletes(tmp_path: Path, where: str) -> None:
    """service/contract/objects.py, which the API and the workers (reports, profiles, scans) share."""
    url = str(tmp_path / "root") if where == "local" else f"memory://neuronlens-test-{uuid.uuid4().hex}"
    objects = ObjectStore(url)
    folder = report_folder_key("m", 0, "0123456789abcdef")
    assert objects.read(f"{folder}/1.json") is None and objects.list_names(folder) == []
    objects.write(f"{folder}/1.json", b"one")
    objects.write(f"{folder}/2.json", b"two")
    objects.write(f"{folder}/2.json", b"two!")  # replaced whole
    objects.write(f"{folder}/notes.txt", b"not a report")
    assert objects.read_many([f"{folder}/2.json", f"{folder}/9.json", f"{folder}/1.json"]) == [
        b"two!", None, b"one",
    ]  # fmt: skip
    assert sorted(objects.list_names(folder)) == ["1.json", "2.json", "notes.txt"]  # no temporary files
    assert objects.stored_neurons("m", 0, "0123456789abcdef") == {1, 2}
    assert objects.size(f"{folder}/2.json") == 4 and objects.size(f"{folder}/9.json") is None
    assert (objects.local_path("k") is not None) == (where == "local")
    assert objects.delete(folder, first=f"{folder}/1.json")
    assert not objects.exists(folder) and objects.read(f"{folder}/2.json") is None
    assert not objects.delete(folder)
