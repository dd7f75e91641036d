"""The artifact store: named artifacts (a folder of files plus `manifest.json`) under one root URL.

An artifact is complete exactly when its manifest exists, and the manifest is always written last, so a
killed writer never leaves something that looks complete. On a local disk the whole folder is written
under a temporary name and renamed into place (atomic); on object stores (s3://…) data files go first and
the manifest last, and readers check the manifest's file sizes.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from service.contract.keys import SCAN_MANIFEST
from workers.errors import ArtifactCorrupt

MANIFEST = SCAN_MANIFEST
"""Written last into every artifact folder (scans, tokenised probe sets): the artifact is complete."""


class ArtifactStore(Protocol):
    """Where scans and tokenised probe sets live; shared by scan and explain workers."""

    @property
    def url(self) -> str: ...

    def exists(self, key: str) -> bool:
        """True when the artifact is complete (its manifest exists)."""
        ...

    def read_manifest(self, key: str) -> dict[str, Any]: ...

    def read_bytes(self, key: str, name: str) -> bytes: ...

    def local_path(self, key: str, name: str) -> str | None:
        """A path on this host's disk for memory-mapping, or None for remote stores."""
        ...

    def write(self, key: str, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> bool:
        """Write an artifact; False when a complete one already existed (it is kept, ours dropped)."""
        ...

    def verify(self, key: str) -> dict[str, Any]:
        """The manifest, after checking every data file it lists is complete (ArtifactCorrupt if not)."""
        ...

    def delete(self, key: str) -> bool:
        """Remove an artifact, its manifest first (so it never looks complete half-removed); False when
        there was nothing under ``key``."""
        ...


class FsspecArtifactStore:
    """ArtifactStore over any fsspec URL: a local folder (default), `file://`, `s3://`, `memory://`."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._fs, root = url_to_fs(url)
        self._root = root.rstrip("/")
        self._is_local = isinstance(self._fs, LocalFileSystem)

    @property
    def url(self) -> str:
        return self._url

    def _path(self, key: str, name: str | None = None) -> str:
        base = f"{self._root}/{key}"
        return f"{base}/{name}" if name else base

    def exists(self, key: str) -> bool:
        return bool(self._fs.exists(self._path(key, MANIFEST)))

    def read_manifest(self, key: str) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads(self._fs.cat_file(self._path(key, MANIFEST)))
        return manifest

    def read_bytes(self, key: str, name: str) -> bytes:
        try:
            data: bytes = self._fs.cat_file(self._path(key, name))
        except FileNotFoundError:
            raise ArtifactCorrupt(f"artifact {key!r} in {self._url} lacks its file {name!r}") from None
        return data

    def local_path(self, key: str, name: str) -> str | None:
        return self._path(key, name) if self._is_local else None

    def write(self, key: str, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> bool:
        if MANIFEST in files:
            raise ValueError(f"{MANIFEST} is written by the store itself")
        if self.exists(key):
            return False
        body = dict(manifest, files={name: len(data) for name, data in files.items()})
        manifest_bytes = json.dumps(body, indent=2, sort_keys=True).encode()
        if self._is_local:
            return self._write_local(key, files, manifest_bytes)
        for name, data in files.items():
            self._fs.pipe_file(self._path(key, name), data)
        self._fs.pipe_file(self._path(key, MANIFEST), manifest_bytes)
        return True

    def _write_local(self, key: str, files: Mapping[str, bytes], manifest_bytes: bytes) -> bool:
        final = self._path(key)
        temp = f"{final}.tmp-{uuid.uuid4().hex}"
        os.makedirs(temp)
        try:
            for name, data in files.items():
                _write_synced(os.path.join(temp, name), data)
            _write_synced(os.path.join(temp, MANIFEST), manifest_bytes)
            if os.path.isdir(final) and not os.path.exists(os.path.join(final, MANIFEST)):
                shutil.rmtree(final, ignore_errors=True)  # leftover of a writer without atomic rename
            try:
                os.rename(temp, final)
            except OSError:
                if self.exists(key):
                    return False  # another worker finished the same artifact first
                raise
            return True
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def verify(self, key: str) -> dict[str, Any]:
        """The manifest, after checking every data file it lists has the recorded size."""
        manifest = self.read_manifest(key)
        for name, size in manifest.get("files", {}).items():
            path = self._path(key, name)
            if not self._fs.exists(path) or self._fs.size(path) != size:
                raise ArtifactCorrupt(
                    f"artifact {key!r} in {self._url}: file {name!r} is missing or truncated"
                )
        return manifest

    def delete(self, key: str) -> bool:
        return _delete(self._fs, self._path(key), self._path(key, MANIFEST))


def _delete(fs: Any, root: str, manifest: str) -> bool:
    if not fs.exists(root):
        return False
    if fs.exists(manifest):
        fs.rm_file(manifest)
    fs.rm(root, recursive=True)
    return True


def _write_synced(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
