"""Reading stored NeuronReports from the artifact store.

Explain workers write one JSON object per neuron (`contract.report_key`; layout in
service/contract/keys.py) and then add its neuron id to a Redis set (`contract.report_index_key`). The
store is the durable copy; the index only saves listing the store's folder, and service/listing.py is its
one reader (and rebuilds it from a folder listing after Redis lost it). The API reads with fsspec only (no
torch, numpy or worker code), like the exemplar images.
"""

from __future__ import annotations

import anyio.to_thread
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from service.contract import report_folder_key, report_object_neuron


class ReportStore:
    """The report objects under an artifact-store URL (a local folder or any fsspec URL), read-only."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._fs, root = url_to_fs(url)
        self._root = root.rstrip("/")
        self._is_local = isinstance(self._fs, LocalFileSystem)

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def exists(self, key: str) -> bool:
        """True when an object is stored at ``key`` (e.g. a scan's manifest)."""
        return bool(self._fs.exists(self._path(key)))

    def read(self, key: str) -> bytes | None:
        """One report's JSON, or None when it is not stored."""
        try:
            if self._is_local:
                with open(self._path(key), "rb") as handle:  # plain open: a third of fsspec's cost
                    return handle.read()
            data: bytes = self._fs.cat_file(self._path(key))
            return data
        except FileNotFoundError:
            return None

    async def read_async(self, key: str) -> bytes | None:
        """`read` from the event loop: a local file (13 KB, usually in the page cache) is read in place,
        which costs less than a thread hop; a remote store is read on a worker thread."""
        if self._is_local:
            return self.read(key)
        return await anyio.to_thread.run_sync(self.read, key)

    def read_many(self, keys: list[str]) -> list[bytes | None]:
        """The JSON of each key, in order (None where not stored); remote stores fetch them concurrently."""
        if self._is_local or len(keys) < 2:
            return [self.read(key) for key in keys]
        found = self._fs.cat([self._path(key) for key in keys], on_error="omit")
        return [found.get(self._path(key)) for key in keys]

    def stored_neurons(self, model: str, layer: int, variant: str) -> set[int]:
        """The neurons of one layer and variant with a stored report (one folder listing)."""
        try:
            names = self._fs.ls(self._path(report_folder_key(model, layer, variant)), detail=False)
        except FileNotFoundError:
            return set()
        found = (report_object_neuron(str(name)) for name in names)
        return {neuron for neuron in found if neuron is not None}
