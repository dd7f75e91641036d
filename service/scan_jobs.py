"""Scan jobs of a request: the one place that enqueues them and reads where they stand.

A request's layers are scanned by one scan job (one forward pass over the probe set for all of them, or
as few as the workers' scan memory budget allows): its id is a hash of what determines the artifacts, so
a repeat joins the scan in flight and two API replicas enqueue one. Explain jobs depend on the id
:func:`ensure_scan_jobs` returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import redis
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.serializers import JSONSerializer

from service.contract import (
    SCAN_JOB_PREFIX,
    SCAN_TASK,
    SCAN_VERSION,
    DatasetSpec,
    JobMeta,
    ModelSpec,
    ScanState,
    canonical_json,
    dataset_identity,
)
from service.queues import JobQueues
from service.settings import Settings
from service.validate import ResolvedRequest

LOCK_TIMEOUT_S = 10
"""Seconds an enqueue lock is held at most (and waited for): enqueueing takes milliseconds."""

ACTIVE = {RqStatus.QUEUED, RqStatus.STARTED, RqStatus.DEFERRED, RqStatus.SCHEDULED, RqStatus.CREATED}
"""RQ states of a job that is still going to run (or running)."""


def digest(payload: object) -> str:
    """24 hex digits of the SHA-256 of a payload's canonical JSON: the hash part of job ids."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:24]


def fetch_job(connection: redis.Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def retry_policy(settings: Settings) -> Retry | None:
    """RQ retries of a job; a retried job (its worker died, or it raised) goes to the front of its queue."""
    return Retry(max=settings.job_retries, enqueue_at_front=True) if settings.job_retries > 0 else None


def requeue_failed(job: Job, settings: Settings, request_id: str | None) -> None:
    """Run a failed job again under the same id, keeping its dependents and a fresh retry budget."""
    job.retries_left = settings.job_retries if settings.job_retries > 0 else None
    rid = {"request_id": request_id} if request_id is not None else {}
    meta = JobMeta.from_meta(job.meta).model_copy(update={"error": None, "stage": None, **rid})
    job.meta = meta.to_meta()
    job.save_meta()  # Job.save skips an empty meta, which would leave the old error in place
    job.requeue()


def scan_job_id(
    model: ModelSpec, dataset: DatasetSpec, hook: str, layers: Sequence[int], n_top: int, seed: int
) -> str:
    """Id of the scan job of ``layers``: a hash of everything that determines their scan artifacts."""
    payload = {
        "model": model.id,
        "revision": model.revision,
        "hook": hook,
        "layers": sorted(set(layers)),
        "dataset": dataset_identity(dataset),
        "n_top": n_top,
        "seed": seed,
        "scan_version": SCAN_VERSION,
    }
    return SCAN_JOB_PREFIX + digest(payload)


def ensure_scan_jobs(
    connection: redis.Redis,
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedRequest,
    layers: Sequence[int],
    request_id: str | None = None,
) -> str:
    """Make sure the scan of ``layers`` of a resolved request is queued, running or finished (a failed one
    is re-run under its id); return the id of the job its explain jobs wait for."""
    request = resolved.request
    hook = request.hook or resolved.model.default_hook
    options = request.options
    wanted = sorted(set(layers))
    job_id = scan_job_id(resolved.model, resolved.dataset, hook, wanted, options.n_top, options.seed)
    with connection.lock(f"nl:lock:{job_id}", timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S):
        job = fetch_job(connection, job_id)
        status = job.get_status(refresh=False) if job is not None else None
        if job is not None and status in (RqStatus.FAILED, RqStatus.STOPPED):
            requeue_failed(job, settings, request_id)
        elif job is None or status not in (ACTIVE | {RqStatus.FINISHED}):
            if job is not None:
                job.delete()
            shown = f"layer {wanted[0]}" if len(wanted) == 1 else f"{len(wanted)} layers"
            queues.scan.enqueue_call(
                func=SCAN_TASK,
                kwargs={
                    "model": resolved.model.id,
                    "hook": hook,
                    "layers": wanted,
                    "dataset": resolved.dataset.id,
                    "options": options.model_dump(mode="json"),
                },
                timeout=settings.scan_timeout_s,
                result_ttl=settings.result_ttl_s,
                failure_ttl=settings.failure_ttl_s,
                job_id=job_id,
                retry=retry_policy(settings),
                meta=JobMeta(request_id=request_id).to_meta(),
                description=f"scan {resolved.model.id} {shown} ({hook}, {resolved.dataset.id})",
            )
    return job_id


def scan_state(connection: redis.Redis, scan_id: str) -> ScanState | None:
    """Where the scan a job waits for stands (passes and samples, as its worker last wrote them); None when
    it has not started or is no longer recorded."""
    job = fetch_job(connection, scan_id)
    if job is None:
        return None
    return JobMeta.from_meta(job.meta).scan
