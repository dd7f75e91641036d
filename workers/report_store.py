"""Stored NeuronReports: one JSON object per neuron in the artifact store (`contract.report_key`, layout
in service/contract/keys.py), and their index in Redis (`contract.report_index_key`), which the API reads.

A report is written as soon as its neuron is done; the object first (atomically: a temporary file renamed
into place on a local disk, one PUT on object stores), the index entry after, so the index never names a
report that is not there. Objects are never rewritten: a report is keyed by everything that changes it.
"""

from __future__ import annotations

import os
import uuid

import redis
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from service.contract import NeuronReport, RedisKeys, report_folder_key, report_object_neuron
from workers.metrics import record_report


class ReportObjects:
    """The report objects under an artifact-store URL (a local folder or any fsspec URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._fs, root = url_to_fs(url)
        self._root = root.rstrip("/")
        self._is_local = isinstance(self._fs, LocalFileSystem)

    def path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def write(self, key: str, data: bytes) -> None:
        """Write one object so that a reader sees all of it or nothing."""
        path = self.path(key)
        if not self._is_local:
            self._fs.pipe_file(path, data)  # an object-store PUT is atomic
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")  # never a `<neuron>.json` name
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.remove(temp)

    def exists(self, key: str) -> bool:
        """True when an object is stored at ``key``."""
        return bool(self._fs.exists(self.path(key)))

    def stored_neurons(self, model: str, layer: int, variant: str) -> set[int]:
        """The neurons of one layer and variant whose report object exists (one folder listing)."""
        try:
            names = self._fs.ls(self.path(report_folder_key(model, layer, variant)), detail=False)
        except FileNotFoundError:
            return set()
        found = (report_object_neuron(str(name)) for name in names)
        return {neuron for neuron in found if neuron is not None}


def missing_reports(
    connection: redis.Redis,
    keys: RedisKeys,
    objects: ReportObjects,
    model: str,
    layer: int,
    variant: str,
    neurons: list[int],
) -> list[int]:
    """The neurons (in ``neurons`` order) whose report is not stored yet, by the store (the durable copy);
    the stored ones are (re)added to the Redis index, which a crash between object and index may have
    missed."""
    stored = objects.stored_neurons(model, layer, variant)
    present = [n for n in neurons if n in stored]
    if present:
        connection.sadd(keys.report_index(model, layer, variant), *present)
    return [n for n in neurons if n not in stored]


def store_report(
    connection: redis.Redis,
    keys: RedisKeys,
    objects: ReportObjects,
    key: str,
    variant: str,
    report: NeuronReport,
    llm_endpoint: str | None,
) -> None:
    """Write ``report`` to the store under ``key`` (`contract.report_key`), then add it to the Redis index
    and count it in the worker metrics, in one round trip."""
    objects.write(key, report.model_dump_json().encode())
    with connection.pipeline(transaction=False) as pipe:
        pipe.sadd(keys.report_index(report.model, report.layer, variant), report.neuron)
        record_report(pipe, keys, report, llm_endpoint)
        pipe.execute()
