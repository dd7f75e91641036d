"""The artifact store: named artifacts (a folder of files plus `manifest.json`) under one root URL, built on
the object store the API reads too (service/contract/objects.py).

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

from service.contract.artifact_keys import SCAN_MANIFEST
from service.contract.objects import ObjectStore, write_synced
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
    """ArtifactStore over any fsspec URL: a local folder (default), `file://`, `s3://`, `memory://`; its
    files are objects of the shared object store (service/contract/objects.py)."""

    def __init__(self, url: str) -> None:
        self._objects = ObjectStore(url)

    @property
    def url(self) -> str:
        return self._objects.url

    def exists(self, key: str) -> bool:
        return self._objects.exists(f"{key}/{MANIFEST}")

    def read_manifest(self, key: str) -> dict[str, Any]:
        data = self._objects.read(f"{key}/{MANIFEST}")
        if data is None:
            raise FileNotFoundError(f"artifact {key!r} in {self.url} is not complete (no {MANIFEST})")
        manifest: dict[str, Any] = json.loads(data)
        return manifest

    def read_bytes(self, key: str, name: str) -> bytes:
        data = self._objects.read(f"{key}/{name}")
        if data is None:
            raise ArtifactCorrupt(f"artifact {key!r} in {self.url} lacks its file {name!r}")
        return data

    def local_path(self, key: str, name: str) -> str | None:
        return self._objects.local_path(f"{key}/{name}")

    def write(self, key: str, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> bool:
        if MANIFEST in files:
            raise ValueError(f"{MANIFEST} is written by the store itself")
        if self.exists(key):
            return False
        body = dict(manifest, files={name: len(data) for name, data in files.items()})
        manifest_bytes = json.dumps(body, indent=2, sort_keys=True).encode()
        final = self._objects.local_path(key)
        if final is not None:
            return self._write_local(key, final, files, manifest_bytes)
        for name, data in files.items():
            self._objects.write(f"{key}/{name}", data)
        self._objects.write(f"{key}/{MANIFEST}", manifest_bytes)
        return True

    def _write_local(self, key: str, final: str, files: Mapping[str, bytes], manifest_bytes: bytes) -> bool:
        """The whole folder under a temporary name, renamed into place: complete or absent."""
        temp = f"{final}.tmp-{uuid.uuid4().hex}"
        os.makedirs(temp)
        try:
            for name, data in files.items():
                write_synced(os.path.join(temp, name), data)
            write_synced(os.path.join(temp, MANIFEST), manifest_bytes)
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
            if self._objects.size(f"{key}/{name}") != size:
                raise ArtifactCorrupt(
                    f"artifact {key!r} in {self.url}: file {name!r} is missing or truncated"
                )
        return manifest

    def delete(self, key: str) -> bool:
        return self._objects.delete(key, first=f"{key}/{MANIFEST}")
