"""A request's job record: the one typed record of what the API made of a request.

A request (`exp-<hash>`, what clients see) is one scan job for the layers it needs scanned, and one
explain job ("part", `part-<hash>`) per (layer, chunk of `explain_chunk_neurons` neurons). The record
(`RedisKeys.job_record`, JSON in Redis) holds the resolved request, its report variant, its scan job and
its parts; a chunk whose reports were all stored when the request came is listed without a job and counts
as done. Where the request stands is derived from this record (service/jobs/state.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from service.contract import EXPLAIN_JOB_PREFIX, ExplanationRequest, RedisKeys, report_key

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

    @property
    def layers(self) -> list[int]:
        return self.request.layer_list()

    def part_neurons(self, part: Part) -> list[int]:
        return self.request.neuron_list()[part.start : part.stop]

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": RECORD_VERSION,
                "request": self.request.model_dump(mode="json"),
                "variant": self.variant,
                "scan_job_id": self.scan_job_id,
                "parts": [[p.id, p.layer, p.start, p.stop, p.enqueued] for p in self.parts],
                "created_at": self.created_at.isoformat(),
                "ttl_s": self.ttl_s,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, job_id: str, raw: bytes | str) -> JobRecord:
        data = json.loads(raw)
        return cls(
            job_id=job_id,
            request=ExplanationRequest.model_validate(data["request"]),
            variant=str(data["variant"]),
            scan_job_id=data["scan_job_id"],
            parts=[Part(str(i), int(la), int(a), int(b), bool(e)) for i, la, a, b, e in data["parts"]],
            created_at=datetime.fromisoformat(data["created_at"]),
            ttl_s=int(data["ttl_s"]),
        )

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


def read_record(connection: redis.Redis, keys: RedisKeys, job_id: str) -> JobRecord | None:
    """The record of the request ``job_id``; None when there is none (or it is another version's)."""
    if not job_id.startswith(EXPLAIN_JOB_PREFIX):
        return None
    raw = connection.get(keys.job_record(job_id))
    if raw is None:
        return None
    try:
        return JobRecord.from_json(job_id, raw)  # type: ignore[arg-type]
    except (ValueError, KeyError, TypeError):
        return None  # another version's record: the request is posted again


def write_record(connection: redis.Redis, keys: RedisKeys, record: JobRecord) -> None:
    connection.set(keys.job_record(record.job_id), record.to_json(), ex=record.ttl_s)


def now() -> datetime:
    return datetime.now(UTC)


def job_report_refs(
    connection: redis.Redis, keys: RedisKeys, job_id: str
) -> list[tuple[int, int, str]] | None:
    """(layer, neuron, report key) of every report a request produces, in (layer, neuron) order; None when
    no request has that id. A report is in the store once its part finished (see `GET /v1/jobs/{id}`);
    neurons a budget left not done are listed too and have none."""
    record = read_record(connection, keys, job_id)
    return record.report_refs() if record is not None else None
