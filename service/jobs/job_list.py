"""`GET /v1/jobs`: the explanation jobs, newest first, filtered and paged by cursor.

The listing reads the durable job records in the artifact store (service/jobs/record.py), so it outlives
Redis as the records do: one folder listing and one small read per record, filters on the record (model,
created range, owner) before any state is derived, then each candidate's state as `GET /v1/jobs/{id}`
derives it until the page is full. A cursor is the (created_at, job id) of the last job of a page, so pages
stay stable while new jobs arrive (they sort before it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

import redis

from service.contract import JobState, RedisKeys
from service.contract.job_list import JobList, JobSummary
from service.contract.objects import ObjectStore
from service.jobs.record import JobRecord, durable_job_ids, read_record
from service.jobs.state import job_status
from service.problems import InvalidInput


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a listing shows: None matches all."""

    status: JobState | None = None
    model: str | None = None
    created_after: datetime | None = None
    """Only jobs created at or after this instant."""
    created_before: datetime | None = None
    """Only jobs created before this instant."""
    owner: str | None = None
    """Only jobs this API key posted (auth on, a key without `admin`)."""

    def matches(self, record: JobRecord) -> bool:
        created = record.created_at
        return (
            (self.model is None or record.request.model == self.model)
            and (self.created_after is None or created >= self.created_after)
            and (self.created_before is None or created < self.created_before)
            and (self.owner is None or self.owner in record.owners)
        )


def encode_cursor(record: JobRecord) -> str:
    raw = f"{record.created_at.isoformat()}|{record.job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(created_at, job id) of a cursor; InvalidInput for anything `encode_cursor` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, job_id = raw.split("|", 1)
        return datetime.fromisoformat(created), job_id
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput.for_field("cursor", "not a cursor this API gave out") from error


def _key(record: JobRecord) -> tuple[datetime, str]:
    return record.created_at, record.job_id


def list_jobs(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    wanted: JobFilter,
    limit: int,
    cursor: str | None = None,
) -> JobList:
    """One page of the jobs ``wanted`` selects, newest first, after ``cursor``."""
    after = decode_cursor(cursor) if cursor is not None else None
    records = [r for r in (read_record(connection, keys, i, store) for i in durable_job_ids(store)) if r]
    candidates = sorted((r for r in records if wanted.matches(r)), key=_key, reverse=True)
    if after is not None:
        candidates = [r for r in candidates if _key(r) < after]
    page: list[JobSummary] = []
    last: JobRecord | None = None
    for record in candidates:
        if len(page) == limit:
            return JobList(jobs=page, next_cursor=encode_cursor(last) if last is not None else None)
        status = job_status(connection, keys, store, record.job_id, limit=0)
        if status is None or (wanted.status is not None and status.status != wanted.status):
            continue
        page.append(
            JobSummary(
                job_id=record.job_id,
                model=record.request.model,
                layers=record.layers,
                neurons=len(record.request.neuron_list()),
                **status.model_dump(
                    include={"status", "progress", "created_at", "started_at", "ended_at", "error", "usage"}
                    | {"budget_exhausted"}
                ),
            )
        )
        last = record
    return JobList(jobs=page)
