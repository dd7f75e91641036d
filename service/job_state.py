"""Map an explain job's RQ state (and its scan job's) onto the API's job states (DESIGN §2).

queued      the explain job waits in its queue, or waits for a scan job that is itself queued
            (queue_position is then the scan's position in the scan queue)
scanning    the scan job it depends on is running
explaining  the explain job is running (job.meta["stage"] narrows it to `simulating`)
finished    the explain job finished
failed      the explain job failed, stopped or was canceled, or its scan failed for good (RQ leaves
            such dependents deferred forever; here they show `failed` with the scan's error)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer

from service.schemas import JobError, JobState, Progress

_STAGES: dict[str, JobState] = {
    "explaining": "explaining",
    "simulating": "simulating",
    "scanning": "scanning",
}
_FAILED = (RqStatus.FAILED, RqStatus.STOPPED, RqStatus.CANCELED)


@dataclass(frozen=True)
class ExplainState:
    """Where an explain job stands, in API terms."""

    status: JobState
    progress: Progress
    queue_position: int | None
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    error: JobError | None
    failed_scan: Job | None
    """The scan job whose failure failed this job (re-running it releases this one)."""


def _fetch(connection: redis.Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def _position(connection: redis.Redis, job: Job) -> int | None:
    if not job.origin:
        return None
    queue = Queue(job.origin, connection=connection, serializer=JSONSerializer)
    return queue.get_job_position(job.id)


def _last_exception_line(exc_string: str) -> tuple[str, str] | None:
    """(type, message) from the last line of a Python traceback text, without the traceback."""
    lines = [line.strip() for line in exc_string.strip().splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    name, sep, message = last.partition(":")
    if not sep or " " in name.strip():
        return None
    return name.strip().rsplit(".", 1)[-1], message.strip()


def job_error(job: Job) -> JobError:
    """Why a job failed, never a traceback: the task's own record, else derived from RQ's failure."""
    recorded = job.meta.get("error")
    if isinstance(recorded, dict) and recorded.get("type") and recorded.get("message"):
        return JobError(type=str(recorded["type"]), message=str(recorded["message"]))
    status = job.get_status(refresh=False)
    if status == RqStatus.STOPPED:
        return JobError(type="JobStopped", message="the job was stopped by an operator before it finished")
    if status == RqStatus.CANCELED:
        return JobError(type="JobCanceled", message="the job was canceled by an operator before it ran")
    result = job.latest_result()
    exc_string = (result.exc_string or "") if result is not None else ""
    if "AbandonedJobError" in exc_string:
        return JobError(
            type="WorkerDied",
            message="the worker running this job stopped (killed or crashed) and no retries were left",
        )
    if "JobTimeoutException" in exc_string:
        return JobError(type="JobTimeout", message=f"the job ran longer than its timeout of {job.timeout}s")
    parsed = _last_exception_line(exc_string)
    if parsed is not None:
        return JobError(type=parsed[0], message=parsed[1] or "the job failed without a message")
    return JobError(type="JobFailed", message="the job failed without recording why")


def _progress(job: Job) -> Progress:
    total = job.meta.get("total")
    done = job.meta.get("done")
    return Progress(
        done=done if isinstance(done, int) and done >= 0 else 0,
        total=total if isinstance(total, int) and total >= 0 else 0,
    )


def _state(job: Job, status: JobState, **changes: object) -> ExplainState:
    base: dict[str, object] = {
        "status": status,
        "progress": _progress(job),
        "queue_position": None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "error": None,
        "failed_scan": None,
    }
    base.update(changes)
    return ExplainState(**base)  # type: ignore[arg-type]


_SCAN_LOST = JobError(
    type="ScanLost",
    message="the scan this job waited for is no longer recorded (or was replaced); "
    "post the request again to re-run it",
)


def _deferred_state(connection: redis.Redis, job: Job) -> ExplainState:
    scan_id = job.meta.get("scan_job_id")
    scan = _fetch(connection, scan_id) if isinstance(scan_id, str) else None
    # RQ registers a dependent atomically with deferring it, and releases it atomically with enqueueing
    # it: a deferred job its scan does not list would wait forever. The status read above may predate
    # a release that happened since, so a job that looks lost is read again before it is called lost.
    if scan is None or not connection.sismember(scan.dependents_key, job.id):
        job.refresh()
        if job.get_status(refresh=False) != RqStatus.DEFERRED:
            return explain_state(connection, job)
        return _state(job, "failed", error=_SCAN_LOST)
    scan_status = scan.get_status(refresh=False)
    if scan_status in _FAILED:
        return _state(job, "failed", error=job_error(scan), ended_at=scan.ended_at, failed_scan=scan)
    if scan_status == RqStatus.STARTED:
        return _state(job, "scanning", started_at=scan.started_at)
    if scan_status == RqStatus.QUEUED:
        return _state(job, "queued", queue_position=_position(connection, scan))
    # The scan just finished (RQ is about to move this job to its queue) or waits for a retry.
    return _state(job, "queued")


def explain_state(connection: redis.Redis, job: Job) -> ExplainState:
    """The API state of an explain job (fetched with the JSON serializer)."""
    status = job.get_status(refresh=False)
    if status == RqStatus.DEFERRED:
        return _deferred_state(connection, job)
    if status in _FAILED:
        return _state(job, "failed", error=job_error(job))
    if status == RqStatus.FINISHED:
        return _state(job, "finished")
    if status == RqStatus.STARTED:
        stage = job.meta.get("stage")
        return _state(job, _STAGES.get(stage, "explaining") if isinstance(stage, str) else "explaining")
    return _state(job, "queued", queue_position=_position(connection, job), started_at=None, ended_at=None)
