"""Reading stored NeuronReports: the objects from the artifact store, their index from Redis.

Explain workers write one JSON object per neuron (`contract.report_key`; layout in
service/contract/keys.py) and then add its neuron id to a Redis set (`contract.report_index_key`). The
store is the durable copy; the index only saves listing the store's folder. A set without the member
`contract.REPORT_INDEX_SYNCED` (Redis was flushed or lost it) is rebuilt from one folder listing on first
use. The API reads with fsspec only (no torch, numpy or worker code), like the exemplar images.
"""

from __future__ import annotations

import anyio.to_thread
import redis
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from service.contract import REPORT_INDEX_SYNCED, RedisKeys, report_folder_key, report_object_neuron


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


def indexed_neurons(
    connection: redis.Redis, keys: RedisKeys, store: ReportStore, model: str, layer: int, variant: str
) -> list[int]:
    """Every neuron of one layer and variant with a stored report, ascending: from the Redis index, or,
    when the index is not known complete, from the store's folder (and the index is rebuilt from it)."""
    key = keys.report_index(model, layer, variant)
    members = {int(member) for member in connection.smembers(key)}  # type: ignore[union-attr]
    if REPORT_INDEX_SYNCED in members:
        members.discard(REPORT_INDEX_SYNCED)
        return sorted(members)
    # Workers add to the set only after their object is written, so whatever they add while we list is
    # either in the listing or added after it: the union below stays complete.
    stored = store.stored_neurons(model, layer, variant)
    connection.sadd(key, REPORT_INDEX_SYNCED, *stored)
    return sorted(stored | members)


def index_lacks_any(
    connection: redis.Redis, keys: RedisKeys, model: str, layer: int, variant: str, neurons: list[int]
) -> bool:
    """True when the index is known complete and lacks one of ``neurons`` (so not all are stored); False
    when all are indexed or the index may be incomplete (then only the store can tell)."""
    flags = connection.smismember(keys.report_index(model, layer, variant), [REPORT_INDEX_SYNCED, *neurons])
    return bool(flags[0]) and not all(flags[1:])  # type: ignore[index]
