"""Stored NeuronReports: one JSON object per neuron in the artifact store (`contract.report_key`, layout
in service/contract/artifact_keys.py), and their index in Redis (`RedisKeys.report_index`), which the API
reads.

A report is written as soon as its neuron is done; the object first (atomically, by the shared object store:
a temporary file renamed into place on a local disk, one PUT on object stores), the index entry after, so
the index never names a report that is not there. Objects are never rewritten: a report is keyed by
everything that changes it.
"""

from __future__ import annotations

import redis

from service.contract import NeuronReport, RedisKeys
from service.contract.objects import ObjectStore
from workers.process.counters import record_report

ReportObjects = ObjectStore
"""The artifact store's objects as explain workers write them (reports, prompt profiles): the object store
the API reads too (service/contract/objects.py; atomic writes, one folder listing per layer)."""


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
