"""A request's job record: the one typed record of what the API made of a request.

A request (`exp-<hash>`, what clients see) is one scan job for the layers it needs scanned, and one
explain job ("part", `part-<hash>`) per (layer, chunk of `explain_chunk_neurons` neurons). The record
(`RedisKeys.job_record`, JSON in Redis) holds the resolved request, its report variant, its scan job,
its parts and the API keys that posted it; a chunk whose reports were all stored when the request came is
listed without a job and counts as done. Where the request stands is derived from this record
(service/jobs/state.py).

The record is durable too: the same JSON, with the last state the API derived (a `JobStatus` without
reports), is written to the artifact store beside the reports (`job_record_key`) at submit and at each
change of state, so status, export and listing by job id survive a Redis that lost it (FLUSHALL, no AOF).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import redis

from service.contract import (
    EXPLAIN_JOB_PREFIX,
    JOB_RECORD_ROOT,
    ExplanationRequest,
    JobStatus,
    RedisKeys,
    job_record_key,
    report_key,
)
from service.contract.objects import ObjectStore

RECORD_VERSION = 1
"""Version of the record's JSON layout."""


@dataclass(frozen=True)
class Part:
    """One (layer, chunk) of a request: the neurons ``neurons[start:stop]`` of the request's neuron list."""

    id: str
    """Explain job id (`part-…`)."""
    layer: int
    start: int
    """Index of the chunk's first neuron in the request's (sorted) neuron list."""
    stop: int
    """One past the index of its last."""
    enqueued: bool
    """False when every report of the chunk was stored when the request came (no job runs it)."""

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class JobRecord:
    """What a job record (`RedisKeys.job_record`) holds: the resolved request, its report variant, its
    scan job and its parts."""

    job_id: str
    request: ExplanationRequest
    """The resolved request (`layer` or a sorted `layers`, `neurons` a sorted list)."""
    variant: str
    scan_job_id: str | None
    """The scan job the parts wait for; None when nothing needed scanning."""
    parts: list[Part]
    created_at: datetime
    ttl_s: int
    """Seconds the record is kept after its last write (refreshed while the request is not over)."""
    owners: tuple[str, ...] = ()
    """Ids of the API keys that posted the request (empty with auth off): who lists it."""
    cancelled_at: datetime | None = None
    """When `DELETE /v1/jobs/{id}` cancelled the request (None: not cancelled since it was last run)."""

    @property
    def layers(self) -> list[int]:
        return self.request.layer_list()

    def part_neurons(self, part: Part) -> list[int]:
        return self.request.neuron_list()[part.start : part.stop]

    def to_dict(self) -> dict[str, object]:
        return {
            "v": RECORD_VERSION,
            "request": self.request.model_dump(mode="json"),
            "variant": self.variant,
            "scan_job_id": self.scan_job_id,
            "parts": [[p.id, p.layer, p.start, p.stop, p.enqueued] for p in self.parts],
            "created_at": self.created_at.isoformat(),
            "ttl_s": self.ttl_s,
            "owners": list(self.owners),
            "cancelled_at": self.cancelled_at.isoformat() if self.cancelled_at is not None else None,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, job_id: str, data: dict[str, Any]) -> JobRecord:
        return cls(
            job_id=job_id,
            request=ExplanationRequest.model_validate(data["request"]),
            variant=str(data["variant"]),
            scan_job_id=data["scan_job_id"],
            parts=[Part(str(i), int(la), int(a), int(b), bool(e)) for i, la, a, b, e in data["parts"]],
            created_at=datetime.fromisoformat(data["created_at"]),
            ttl_s=int(data["ttl_s"]),
            owners=tuple(str(owner) for owner in data.get("owners", ())),
            cancelled_at=datetime.fromisoformat(data["cancelled_at"]) if data.get("cancelled_at") else None,
        )

    @classmethod
    def from_json(cls, job_id: str, raw: bytes | str) -> JobRecord:
        return cls.from_dict(job_id, json.loads(raw))

    def report_refs(self, not_done: dict[int, set[int]] | None = None) -> list[tuple[int, int, str]]:
        """(layer, neuron, report key) of every report the request produces, in (layer, neuron) order,
        less the neurons of ``not_done`` (by layer)."""
        skip = not_done or {}
        model, variant = self.request.model, self.variant
        return [
            (layer, n, report_key(model, layer, n, variant))
            for layer in self.layers
            for n in self.request.neuron_list()
            if n not in skip.get(layer, ())
        ]


def read_record(
    connection: redis.Redis, keys: RedisKeys, job_id: str, store: ObjectStore | None = None
) -> JobRecord | None:
    """The record of the request ``job_id``; None when there is none (or it is another version's). With a
    ``store``, a record Redis lost is read from its durable copy."""
    if not job_id.startswith(EXPLAIN_JOB_PREFIX):
        return None
    raw = connection.get(keys.job_record(job_id))
    if raw is None:
        durable = read_durable(store, job_id) if store is not None else None
        return durable[0] if durable is not None else None
    try:
        return JobRecord.from_json(job_id, raw)  # type: ignore[arg-type]
    except (ValueError, KeyError, TypeError):
        return None  # another version's record: the request is posted again


def write_record(
    connection: redis.Redis, keys: RedisKeys, record: JobRecord, store: ObjectStore | None = None
) -> None:
    """Write the record to Redis and, with a ``store``, its durable copy (its state to be derived again)."""
    connection.set(keys.job_record(record.job_id), record.to_json(), ex=record.ttl_s)
    if store is not None:
        write_durable(store, record, None)
        connection.delete(keys.job_record_state(record.job_id))


def write_durable(store: ObjectStore, record: JobRecord, status: JobStatus | None) -> None:
    """The durable copy of a record with the last state derived from it (None: not derived yet)."""
    snapshot = status.model_dump(mode="json", exclude={"reports", "workers"}) if status is not None else None
    body = {"record": record.to_dict(), "status": snapshot}
    store.write(job_record_key(record.job_id), json.dumps(body, separators=(",", ":")).encode())


def read_durable(store: ObjectStore, job_id: str) -> tuple[JobRecord, JobStatus | None] | None:
    """A request's durable record and the last state derived from it; None when none is stored (or it is
    another version's)."""
    raw = store.read(job_record_key(job_id)) if job_id.startswith(EXPLAIN_JOB_PREFIX) else None
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        record = JobRecord.from_dict(job_id, data["record"])
        status = JobStatus.model_validate(data["status"]) if data["status"] is not None else None
    except (ValueError, KeyError, TypeError):
        return None
    return record, status


def durable_job_ids(store: ObjectStore) -> list[str]:
    """The ids of every request with a durable record."""
    names = store.list_names(JOB_RECORD_ROOT)
    return sorted(
        n[: -len(".json")] for n in names if n.startswith(EXPLAIN_JOB_PREFIX) and n.endswith(".json")
    )


def note_state(
    connection: redis.Redis, keys: RedisKeys, store: ObjectStore, record: JobRecord, status: JobStatus
) -> None:
    """Write the durable record again when the derived state changed since it was last written (Redis
    remembers which state that was, `RedisKeys.job_record_state`)."""
    seen = connection.get(keys.job_record_state(record.job_id))
    mark = status.status.encode()
    if seen != mark:
        write_durable(store, record, status)
        connection.set(keys.job_record_state(record.job_id), mark, ex=record.ttl_s)


def keep_record(
    connection: redis.Redis, keys: RedisKeys, store: ObjectStore, record: JobRecord, owner: str | None
) -> None:
    """A repeat that runs nothing keeps the record as it is: its time in Redis refreshed (where Redis
    still holds it) and the key that posted it added to its owners."""
    in_redis = bool(connection.expire(keys.job_record(record.job_id), record.ttl_s))
    if owner is None or owner in record.owners:
        return
    updated = replace(record, owners=(*record.owners, owner))
    if in_redis:
        connection.set(keys.job_record(record.job_id), updated.to_json(), ex=record.ttl_s)
    durable = read_durable(store, record.job_id)
    write_durable(store, updated, durable[1] if durable is not None else None)


def now() -> datetime:
    return datetime.now(UTC)


def job_report_refs(
    connection: redis.Redis, keys: RedisKeys, job_id: str, store: ObjectStore | None = None
) -> list[tuple[int, int, str]] | None:
    """(layer, neuron, report key) of every report a request produces, in (layer, neuron) order; None when
    no request has that id. A report is in the store once its part finished (see `GET /v1/jobs/{id}`);
    neurons a budget left not done are listed too and have none."""
    record = read_record(connection, keys, job_id, store)
    return record.report_refs() if record is not None else None
