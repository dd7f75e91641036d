"""Where one part of a request stands: its explain job's RQ status (and its scan job's) in API terms
(docs/api.md#job-states).

queued      the explain job waits in its queue, or waits for a scan job that is itself queued
            (queue_position is then the scan's position in the scan queue)
scanning    the scan job it depends on is running
explaining  the explain job is running (its JobMeta stage narrows it to `simulating`)
finished    the explain job finished
failed      the explain job failed, stopped or was canceled, or its scan failed for good (RQ leaves
            such dependents deferred forever; here they show `failed` with the scan's error)

A sharded scan's explain jobs wait for its merge job, which waits (deferred) for the shard jobs: while
it does, the shards say where the scan stands (one running: scanning; one failed: failed with that
shard's error, and re-running the scan re-runs that shard).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import redis
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.job import JobStatus as RqStatus

from service.contract import (
    ERROR_JOB_CANCELED,
    ERROR_JOB_FAILED,
    ERROR_JOB_STOPPED,
    ERROR_SCAN_LOST,
    ERROR_WORKER_DIED,
    WORKER_DIED_MESSAGE,
    JobError,
    JobMeta,
    JobState,
)
from service.jobs.record import Part
from service.jobs.rq_jobs import ENDED_BADLY, fetch_job, queue_position
from service.jobs.scan import failed_scan_part, scan_parts


@dataclass(frozen=True)
class PartState:
    """Where one part of a request stands, in API terms."""

    part: Part
    job: Job | None
    """Its explain job; None for a chunk stored when the request came, or whose job expired (after
    storing every report, or not: then the part is `failed`)."""
    status: JobState
    done: int
    """Neurons of the part whose report is stored (or that a budget left not done, once finished)."""
    queue_position: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: JobError | None = None
    failed_scan: Job | None = None
    """The scan job whose failure failed this part (re-running it releases this one)."""


def job_error(job: Job) -> JobError:
    """Why a job failed, never a traceback: the error its worker recorded, else what RQ's own status says.

    Workers record every failure in the job's meta (timeouts and RQ's abandoned-job cleanup included, by
    exception class: workers/process/worker.py). Only a cleanup run by a process without that handler
    (RQ's own CLI, a registry count) leaves no record; RQ then writes a fixed sentence naming
    AbandonedJobError."""
    recorded = JobMeta.from_meta(job.meta).error
    if recorded is not None:
        return recorded
    status = job.get_status(refresh=False)
    if status == RqStatus.STOPPED:
        return JobError(
            type=ERROR_JOB_STOPPED, message="the job was stopped by an operator before it finished"
        )
    if status == RqStatus.CANCELED:
        return JobError(type=ERROR_JOB_CANCELED, message="the job was canceled by an operator before it ran")
    result = job.latest_result()
    exc_string = (result.exc_string or "") if result is not None else ""
    if AbandonedJobError.__name__ in exc_string:
        return JobError(type=ERROR_WORKER_DIED, message=WORKER_DIED_MESSAGE)
    return JobError(type=ERROR_JOB_FAILED, message="the job failed without recording why")


_SCAN_LOST = JobError(
    type=ERROR_SCAN_LOST,
    message="the scan this job waited for is no longer recorded (or was replaced); "
    "post the request again to re-run it",
)


class ScanReads:
    """Scan jobs and their dependents read once for many explain jobs waiting on the same scan (the parts
    of one request); a fresh one per status answer."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._jobs: dict[str, Job | None] = {}
        self._dependents: dict[str, set[bytes]] = {}

    def job(self, scan_id: str) -> Job | None:
        if scan_id not in self._jobs:
            self._jobs[scan_id] = fetch_job(self.connection, scan_id)
        return self._jobs[scan_id]

    def lists(self, scan: Job, job_id: str) -> bool:
        """Whether ``scan`` still lists ``job_id`` among its dependents."""
        if scan.id not in self._dependents:
            self._dependents[scan.id] = set(self.connection.smembers(scan.dependents_key))  # type: ignore[arg-type]
        return job_id.encode() in self._dependents[scan.id]


def _deferred_state(connection: redis.Redis, base: PartState, job: Job, reads: ScanReads) -> PartState:
    scan_id = JobMeta.from_meta(job.meta).scan_job_id
    scan = reads.job(scan_id) if scan_id is not None else None
    # RQ registers a dependent atomically with deferring it, and releases it atomically with enqueueing
    # it: a deferred job its scan does not list would wait forever. The status read above may predate
    # a release that happened since, so a job that looks lost is read again before it is called lost.
    if scan is None or not reads.lists(scan, job.id):
        job.refresh()
        if job.get_status(refresh=False) != RqStatus.DEFERRED:
            return part_state(connection, base.part, job, reads)
        return replace(base, status="failed", error=_SCAN_LOST)
    scan_status = scan.get_status(refresh=False)
    if scan_status in ENDED_BADLY:
        return replace(base, status="failed", error=job_error(scan), ended_at=scan.ended_at, failed_scan=scan)
    if scan_status == RqStatus.STARTED:
        return replace(base, status="scanning", started_at=scan.started_at)
    if scan_status == RqStatus.QUEUED:
        return replace(base, queue_position=queue_position(connection, scan))
    if scan_status == RqStatus.DEFERRED:  # a sharded scan's merge, waiting for its shards
        failed = failed_scan_part(connection, scan.id)
        if failed is not None:
            error = job_error(failed)
            return replace(base, status="failed", error=error, ended_at=failed.ended_at, failed_scan=failed)
        parts = scan_parts(connection, scan.id)
        started = [p.started_at for p in parts if p.get_status(refresh=False) == RqStatus.STARTED]
        if started:
            return replace(base, status="scanning", started_at=min(filter(None, started), default=None))
        queued = [p for p in parts if p.get_status(refresh=False) == RqStatus.QUEUED]
        if queued:
            return replace(base, queue_position=queue_position(connection, queued[0]))
    # The scan just finished (RQ is about to move this job to its queue) or waits for a retry.
    return base


def part_state(connection: redis.Redis, part: Part, job: Job, scans: ScanReads | None = None) -> PartState:
    """Where ``part`` stands from its explain job ``job`` (fetched with the JSON serializer); ``scans``
    shares the reads of scan jobs between the parts of one request."""
    meta = JobMeta.from_meta(job.meta)
    status = job.get_status(refresh=False)
    done = min(meta.done, part.size)
    timed = PartState(part, job, "queued", done, started_at=job.started_at, ended_at=job.ended_at)
    if status == RqStatus.DEFERRED:
        return _deferred_state(connection, timed, job, scans or ScanReads(connection))
    if status in ENDED_BADLY:
        return replace(timed, status="failed", error=job_error(job))
    if status == RqStatus.FINISHED:  # every neuron, less those a budget left without a report
        return replace(timed, status="finished", done=part.size - len(meta.not_done or []))
    if status == RqStatus.STARTED:
        return replace(timed, status=meta.stage or "explaining")
    return PartState(part, job, "queued", done, queue_position=queue_position(connection, job))
