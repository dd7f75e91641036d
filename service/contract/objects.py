"""The artifact store's objects: bytes under keys below one root URL, shared by the API and the workers.

The artifact store is a local folder or any fsspec URL (`file://`, `s3://`, `memory://`). The API reads
reports, exemplar images and prompt profiles from it; workers write reports and profiles and, through
workers/scan/store.py (which builds on this class), scans and other manifest-completed artifacts. Keys are
the paths the contract computes (service/contract/artifact_keys.py), relative to the root.

Writes are atomic: a reader sees a whole object or none. On a local disk the data goes to a temporary
file that is renamed into place; on object stores one PUT is atomic already. A local store reads with
plain `open` (a third of fsspec's cost per small object) and a remote one fetches many keys concurrently.

Pure fsspec, anyio and the standard library (no torch, numpy or Redis), so the API image can use it; not
re-exported by `service.contract`, which the SDK vendors without fsspec. The API reads from its event loop
with :meth:`ObjectStore.read_async`; workers read and write synchronously.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import anyio.to_thread
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from service.contract.artifact_keys import report_folder_key, report_object_neuron

TEMP_PREFIX = ".tmp-"
"""Start of the name of a local object being written (never a key's last part)."""


class ObjectStore:
    """Objects under an artifact-store URL (a local folder or any fsspec URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        fs, root = url_to_fs(url)
        self.fs: Any = fs
        self.root: str = root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def path(self, key: str) -> str:
        """The filesystem path of ``key`` (on this host's disk for a local store)."""
        return f"{self.root}/{key}"

    def local_path(self, key: str) -> str | None:
        """A path on this host's disk (to memory-map or rename), or None for remote stores."""
        return self.path(key) if self.is_local else None

    def exists(self, key: str) -> bool:
        """True when an object (or a folder) is stored at ``key``."""
        return bool(self.fs.exists(self.path(key)))

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when it is not stored."""
        try:
            return int(self.fs.size(self.path(key)))
        except FileNotFoundError:
            return None

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when it is not stored."""
        try:
            if self.is_local:
                with open(self.path(key), "rb") as handle:
                    return handle.read()
            data: bytes = self.fs.cat_file(self.path(key))
            return data
        except FileNotFoundError:
            return None

    async def read_async(self, key: str) -> bytes | None:
        """`read` from an event loop: a local file (13 KB, usually in the page cache) is read in place,
        which costs less than a thread hop; a remote store is read on a worker thread."""
        if self.is_local:
            return self.read(key)
        return await anyio.to_thread.run_sync(self.read, key)

    def read_many(self, keys: list[str]) -> list[bytes | None]:
        """The bytes of each key, in order (None where not stored); remote stores fetch them concurrently."""
        if self.is_local or len(keys) < 2:
            return [self.read(key) for key in keys]
        found = self.fs.cat([self.path(key) for key in keys], on_error="omit")
        return [found.get(self.path(key)) for key in keys]

    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` at ``key`` so that a reader sees all of it or nothing (replacing any object)."""
        path = self.path(key)
        if not self.is_local:
            self.fs.pipe_file(path, data)  # an object-store PUT is atomic
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        try:
            write_synced(temp, data)
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.remove(temp)

    def list_names(self, folder: str) -> list[str]:
        """The names (last path part) of what ``folder`` holds; empty when there is no such folder."""
        try:
            paths = self.fs.ls(self.path(folder), detail=False)
        except FileNotFoundError:
            return []
        return [str(path).rstrip("/").rsplit("/", 1)[-1] for path in paths]

    def delete(self, key: str, first: str | None = None) -> bool:
        """Remove ``key`` and everything under it; ``first``, a key inside it, goes before the rest (a
        manifest, so a half-removed artifact never looks complete). False when nothing was there."""
        if not self.exists(key):
            return False
        if first is not None and self.exists(first):
            self.fs.rm_file(self.path(first))
        self.fs.rm(self.path(key), recursive=True)
        return True

    def stored_neurons(self, model: str, layer: int, variant: str) -> set[int]:
        """The neurons of one layer and variant whose report object exists (one folder listing)."""
        names = self.list_names(report_folder_key(model, layer, variant))
        found = (report_object_neuron(name) for name in names)
        return {neuron for neuron in found if neuron is not None}


def write_synced(path: str, data: bytes) -> None:
    """Write a local file and flush it to disk (before it is renamed into place)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
