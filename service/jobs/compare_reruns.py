"""What posting a comparison again re-runs (service/jobs/compare.py): whether any of its jobs is still in
flight (its budget pool is then in use), the finished scans to drop when a compare job found one missing,
and the deferred compare jobs nothing will release (a job they waited for was deleted or replaced)."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from rq.job import Job
from rq.job import JobStatus as RqStatus

from service.contract import ERROR_SCAN_MISSING, JobMeta, RedisKeys
from service.jobs.record import read_record
from service.jobs.rq_jobs import ACTIVE, RERUNNABLE, delete_job, fetch_job, fetch_jobs


def comparison_jobs(
    connection: redis.Redis, keys: RedisKeys, part_ids: Sequence[str], base_job_id: str
) -> list[Job | None]:
    """The compare jobs (``part_ids``) and the explain parts of the base's request."""
    base = read_record(connection, keys, base_job_id)
    ids = list(part_ids) + ([part.id for part in base.parts if part.enqueued] if base is not None else [])
    return fetch_jobs(connection, ids)


def in_flight(jobs: Sequence[Job | None]) -> bool:
    """Whether one of a comparison's jobs is queued, waiting or running."""
    return any(job is not None and job.get_status(refresh=False) in ACTIVE for job in jobs)


def found_scan_missing(job: Job | None) -> bool:
    """A job that failed because a scan artifact was not in the store."""
    if job is None or job.get_status(refresh=False) not in RERUNNABLE:
        return False
    error = JobMeta.from_meta(job.meta).error
    return error is not None and error.type == ERROR_SCAN_MISSING


def forget_missing_scans(
    connection: redis.Redis, jobs: Sequence[Job | None], scan_ids: Sequence[str | None]
) -> None:
    """When one of a comparison's jobs found a scan missing: drop its finished scan jobs (``scan_ids``),
    so the scans run again (a layer whose artifact is stored is read, not scanned) and the compare jobs,
    enqueued afresh, wait for them (the base's request drops its own)."""
    if not any(found_scan_missing(job) for job in jobs):
        return
    for scan_id in scan_ids:
        scan = fetch_job(connection, scan_id) if scan_id is not None else None
        if scan is not None and scan.get_status(refresh=False) == RqStatus.FINISHED:
            delete_job(connection, scan)


def waits_for_nothing(connection: redis.Redis, job: Job) -> bool:
    """A deferred job that nothing will release: a job it depends on is gone, or is a new job under the
    same id that does not list it (and has not finished)."""
    for dependency_id in job.dependency_ids:
        dependency = fetch_job(connection, dependency_id)
        if dependency is None:
            return True
        listed = job.id.encode() in connection.smembers(dependency.dependents_key)  # type: ignore[operator]
        if not listed and dependency.get_status(refresh=False) != RqStatus.FINISHED:
            return True
    return False
