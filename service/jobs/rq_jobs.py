"""What the API does with RQ itself, in one place: fetching jobs (JSON serializer), the sets of RQ
statuses it tells apart, enqueue locks, retries, re-running a failed job, queue positions and the workers
listening on a job's queues."""

from __future__ import annotations

from collections.abc import Sequence

import redis
from redis.lock import Lock
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Dependency, Job
from rq.job import JobStatus as RqStatus
from rq.serializers import JSONSerializer
from rq.worker_registration import get_keys as registered_worker_keys

from service.contract import ContractModel, JobMeta, RedisKeys
from service.settings import Settings

LOCK_TIMEOUT_S = 10
"""Seconds an enqueue lock is held at most (and waited for): enqueueing takes milliseconds."""

ACTIVE = frozenset(
    {RqStatus.QUEUED, RqStatus.STARTED, RqStatus.DEFERRED, RqStatus.SCHEDULED, RqStatus.CREATED}
)
"""RQ statuses of a job that is still going to run (or running)."""

ENDED_BADLY = frozenset({RqStatus.FAILED, RqStatus.STOPPED, RqStatus.CANCELED})
"""RQ statuses of a job that ended without finishing: the API reports it `failed`."""

RERUNNABLE = frozenset({RqStatus.FAILED, RqStatus.STOPPED})
"""RQ statuses of a job that is re-run under its id, dependents kept (:func:`requeue_failed`); a canceled
job is replaced instead."""


def fetch_job(connection: redis.Redis, job_id: str) -> Job | None:
    """The RQ job ``job_id``; None when it is not recorded."""
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def fetch_jobs(connection: redis.Redis, job_ids: Sequence[str]) -> list[Job | None]:
    """The RQ jobs ``job_ids`` (None for those not recorded), in one round trip."""
    return Job.fetch_many(list(job_ids), connection, serializer=JSONSerializer)


def delete_job(connection: redis.Redis, job: Job) -> None:
    """Delete ``job`` (to enqueue a fresh one under its id) whatever RQ's registries still hold.

    RQ keeps an execution's id in the job's execution registry for a minute after the execution itself
    expired (a SIGKILLed worker's, say), and `Job.delete` reads every listed execution: it raised
    `ValueError: Execution … not found in Redis` for that minute. Ids whose execution is gone are dropped
    first; one that expires in between empties the registry and the delete runs again."""
    registry = job.execution_registry
    for raw in connection.zrange(registry.key, 0, -1):  # type: ignore[union-attr]
        execution_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not connection.exists(Execution(execution_id, job.id, connection).key):
            connection.zrem(registry.key, execution_id)
    try:
        job.delete()
    except ValueError:
        connection.delete(registry.key)
        job.delete()


def enqueue_lock(connection: redis.Redis, keys: RedisKeys, job_id: str) -> Lock:
    """The lock held while the API checks and enqueues the job ``job_id`` (`RedisKeys.lock`)."""
    return connection.lock(keys.lock(job_id), timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S)


def retry_policy(settings: Settings) -> Retry | None:
    """RQ retries of a job; a retried job (its worker died, or it raised) goes to the front of its queue."""
    return Retry(max=settings.job_retries, enqueue_at_front=True) if settings.job_retries > 0 else None


def enqueue_payload(
    queue: Queue,
    func: str,
    payload: ContractModel,
    *,
    job_id: str,
    meta: JobMeta,
    timeout_s: int,
    settings: Settings,
    description: str,
    depends_on: list[Dependency | Job | str] | str | None = None,
) -> Job:
    """Enqueue the task ``func`` by dotted path with its typed payload as the one ``payload`` keyword
    argument (its JSON dump: tasks validate it, workers/process/payloads.py), TTLs and retries from the
    settings and the typed metadata."""
    return queue.enqueue_call(
        func=func,
        kwargs={"payload": payload.model_dump(mode="json")},
        timeout=timeout_s,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.failure_ttl_s,
        job_id=job_id,
        retry=retry_policy(settings),
        depends_on=depends_on,
        meta=meta.to_meta(),
        description=description,
    )


def requeue_failed(job: Job, settings: Settings, request_id: str | None) -> None:
    """Run a failed job again under the same id, keeping its dependents and a fresh retry budget."""
    job.retries_left = settings.job_retries if settings.job_retries > 0 else None
    rid = {"request_id": request_id} if request_id is not None else {}
    meta = JobMeta.from_meta(job.meta).model_copy(update={"error": None, "stage": None, **rid})
    job.meta = meta.to_meta()
    job.save_meta()  # Job.save skips an empty meta, which would leave the old error in place
    job.requeue()


def queue_position(connection: redis.Redis, job: Job) -> int | None:
    """0-based position of a queued job in its queue; None when it has none."""
    if not job.origin:
        return None
    queue = Queue(job.origin, connection=connection, serializer=JSONSerializer)
    return queue.get_job_position(job.id)


def listening_workers(connection: redis.Redis, job: Job) -> int:
    """Workers registered on every queue the job still needs: its own, and its scan's while deferred."""
    names = [job.origin]
    scan_id = JobMeta.from_meta(job.meta).scan_job_id
    if job.get_status(refresh=False) == RqStatus.DEFERRED and scan_id is not None:
        scan = fetch_job(connection, scan_id)
        if scan is not None:
            names.append(scan.origin)
    counts = []
    for name in filter(None, names):
        keys = list(registered_worker_keys(queue=Queue(name, connection=connection)))
        # A killed worker stays registered until a live one cleans up; its key expires with its beats.
        counts.append(int(connection.exists(*keys)) if keys else 0)
    return min(counts, default=0)
