"""A finished job's reports as one table (`GET /v1/jobs/{job_id}/reports`): which reports, from the job's
record, read and encoded by the reports' export (service/reports/exports.py).

A job exports once it is `finished` (409 before: a table of some of its neurons would look complete); a
job stopped by its budget is finished and exports the reports it completed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import redis

from service.contract import RedisKeys, Registry
from service.contract.objects import ObjectStore
from service.jobs.record import job_report_refs, read_record
from service.jobs.state import job_status
from service.problems import JobNotFinished, NotFound
from service.reports.exemplar_links import link_report_json
from service.reports.exports import ExportFields, is_vision_language, read_pages


def job_export_pages(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    registry: Registry,
    job_id: str,
    fields: ExportFields,
) -> Iterator[list[bytes]]:
    """Pages of a finished job's stored reports. NotFound for an unknown job; JobNotFinished while it
    runs or when it failed."""
    refs = job_report_refs(connection, keys, job_id, store)
    status = job_status(connection, keys, store, job_id, limit=0) if refs is not None else None
    if refs is None or status is None:
        raise NotFound(f"job '{job_id}' not found: no such job, or its record expired")
    if status.status != "finished":
        why = f" ({status.error.type}: {status.error.message})" if status.error is not None else ""
        raise JobNotFinished(
            f"job '{job_id}' is {status.status}{why}: its reports export once it is finished "
            f"(GET /v1/jobs/{job_id} follows it)"
        )
    return read_pages(
        store, refs, _job_linker(connection, keys, store, registry, job_id) if fields == "full" else None
    )


def _job_linker(
    connection: redis.Redis, keys: RedisKeys, store: ObjectStore, registry: Registry, job_id: str
) -> Callable[[int, str, bytes], bytes] | None:
    """Fills exemplar image links of a vision-language job's reports, from the job's request."""
    record = read_record(connection, keys, job_id, store)
    if record is None:
        return None
    request = record.request
    if not is_vision_language(registry, request.model):
        return None  # text models have no image exemplars: the stored bytes are served as they are

    def link(layer: int, key: str, raw: bytes) -> bytes:
        # The links name the report's layer; the report itself names its neuron.
        return link_report_json(raw, request.for_layer(layer, [0]), record.variant)

    return link
