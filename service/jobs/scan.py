"""Scan jobs of a request: the one place that enqueues them and reads where they stand.

A request's layers are scanned by one scan job (one forward pass over the probe set for all of them, or
as few as the workers' scan memory budget allows): its id is a hash of what determines the artifacts, so
a repeat joins the scan in flight and two API replicas enqueue one. Explain jobs depend on the id
:func:`ensure_scan_jobs` returns.

A sharded scan (K > 1 shards, from the request or ``NEURONLENS_SCAN_SHARDS``) is K shard jobs, each
recording a contiguous part of the probe set, and one merge job that depends on all of them and writes
the same layer artifacts as a one-shard scan. Ids: the one-shard scan is ``scan-<hash>``; the merge of a
K-shard scan of the same layers is ``scan-<hash>-k<K>`` and its shards ``scan-<hash>-s<k>of<K>`` (k = 0 …
K-1). The artifacts are the same whatever K, but the jobs are not: distinct ids keep a K = 1 and a K = 3
request for the same layers from reading, re-running or deleting each other's job records (each may
run; the second to finish finds the artifacts stored and keeps them). Explain jobs wait for the merge.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis
from rq import Retry
from rq.exceptions import NoSuchJobError
from rq.job import Dependency, Job
from rq.job import JobStatus as RqStatus
from rq.serializers import JSONSerializer

from service.contract import (
    MERGE_SCAN_TASK,
    SCAN_JOB_PREFIX,
    SCAN_SHARD_TASK,
    SCAN_TASK,
    SCAN_VERSION,
    DatasetSpec,
    JobMeta,
    ModelSpec,
    RedisKeys,
    ScanState,
    dataset_identity,
)
from service.estimates.validate import ResolvedRequest
from service.jobs.queues import JobQueues
from service.settings import Settings

LOCK_TIMEOUT_S = 10
"""Seconds an enqueue lock is held at most (and waited for): enqueueing takes milliseconds."""

ACTIVE = {RqStatus.QUEUED, RqStatus.STARTED, RqStatus.DEFERRED, RqStatus.SCHEDULED, RqStatus.CREATED}
"""RQ states of a job that is still going to run (or running)."""


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
    keys: RedisKeys,
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    layers: Sequence[int],
    n_top: int,
    seed: int,
) -> str:
    """Id of the scan job of ``layers``: a hash of everything that determines their scan artifacts (and
    of the deployment's key prefix, `RedisKeys.job_id`)."""
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
    return keys.job_id(SCAN_JOB_PREFIX, payload)


def merge_job_id(scan_id: str, n_shards: int) -> str:
    """Id of the merge job of a ``n_shards``-shard scan whose one-shard scan job id is ``scan_id``."""
    return f"{scan_id}-k{n_shards}"


def shard_job_id(scan_id: str, shard: int, n_shards: int) -> str:
    """Id of shard ``shard`` (0-based) of a ``n_shards``-shard scan whose one-shard id is ``scan_id``."""
    return f"{scan_id}-s{shard}of{n_shards}"


def _enqueuer(
    queues: JobQueues,
    settings: Settings,
    func: str,
    kwargs: dict[str, Any],
    job_id: str,
    meta: JobMeta,
    description: str,
    depends_on: list[Dependency | Job | str] | None = None,
) -> Callable[[], object]:
    """What enqueues one scan-queue job (timeouts, TTLs and retries from the settings)."""
    return lambda: queues.scan.enqueue_call(
        func=func,
        kwargs=kwargs,
        timeout=settings.scan_timeout_s,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.failure_ttl_s,
        job_id=job_id,
        retry=retry_policy(settings),
        depends_on=depends_on,
        meta=meta.to_meta(),
        description=description,
    )


def _ensure_job(
    connection: redis.Redis,
    settings: Settings,
    job_id: str,
    request_id: str | None,
    enqueue: Callable[[], object],
) -> None:
    """Re-run a failed job under its id; enqueue it (``enqueue``) when it is not recorded or gone bad;
    leave a queued, running or finished one alone."""
    job = fetch_job(connection, job_id)
    status = job.get_status(refresh=False) if job is not None else None
    if job is not None and status in (RqStatus.FAILED, RqStatus.STOPPED):
        requeue_failed(job, settings, request_id)
    elif job is None or status not in (ACTIVE | {RqStatus.FINISHED}):
        if job is not None:
            job.delete()
        enqueue()


def ensure_scan_jobs(
    connection: redis.Redis,
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedRequest,
    layers: Sequence[int],
    request_id: str | None = None,
    shards: int | None = None,
) -> str:
    """Make sure the scan of ``layers`` of a resolved request is queued, running or finished (a failed one
    is re-run under its id); return the id of the job its explain jobs wait for.

    ``shards`` splits the probe set into that many shard jobs and a merge job (whose id is returned);
    None takes the request's ``shards``, else the deployment's ``scan_shards``. A failed shard or merge
    is re-run under its id; a merge stays deferred until every shard has finished."""
    request = resolved.request
    n_shards = shards or request.shards or settings.scan_shards
    hook = request.hook or resolved.model.default_hook
    options = request.options
    wanted = sorted(set(layers))
    keys = settings.redis_keys
    job_id = scan_job_id(keys, resolved.model, resolved.dataset, hook, wanted, options.n_top, options.seed)
    shown = f"layer {wanted[0]}" if len(wanted) == 1 else f"{len(wanted)} layers"
    what = f"{resolved.model.id} {shown} ({hook}, {resolved.dataset.id})"
    payload = {
        "model": resolved.model.id,
        "hook": hook,
        "layers": wanted,
        "dataset": resolved.dataset.id,
        "options": options.model_dump(mode="json"),
    }
    if n_shards <= 1:
        with connection.lock(keys.lock(job_id), timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S):
            enqueue = _enqueuer(
                queues, settings, SCAN_TASK, payload, job_id, JobMeta(request_id=request_id), f"scan {what}"
            )
            _ensure_job(connection, settings, job_id, request_id, enqueue)
        return job_id
    return _ensure_sharded(connection, queues, settings, job_id, n_shards, payload, what, request_id)


def _ensure_sharded(
    connection: redis.Redis,
    queues: JobQueues,
    settings: Settings,
    scan_id: str,
    n_shards: int,
    payload: dict[str, Any],
    what: str,
    request_id: str | None,
) -> str:
    """The shard jobs and the merge job of a sharded scan (see the module docstring); the merge's id.

    Every shard and the merge get the API's scan batch size: it fixes the batches the probe set is cut
    into, so all of them must agree (a worker checks it, the merge checks the shards used it)."""
    merge_id = merge_job_id(scan_id, n_shards)
    shard_ids = [shard_job_id(scan_id, k, n_shards) for k in range(n_shards)]
    sharded = dict(payload, batch_size=settings.scan_batch_size)
    scan = ScanState(passes_planned=0, passes_done=0, samples_done=0, samples_total=0, shards=n_shards)
    meta = JobMeta(request_id=request_id, scan=scan)
    lock = settings.redis_keys.lock(merge_id)
    with connection.lock(lock, timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S):
        merge = fetch_job(connection, merge_id)
        if merge is not None and merge.get_status(refresh=False) == RqStatus.FINISHED:
            return merge_id  # the artifacts are stored; the shards' records may be gone already
        for shard, shard_id in enumerate(shard_ids):
            kwargs = dict(sharded, shard=shard, n_shards=n_shards)
            shown = f"scan shard {shard + 1}/{n_shards} of {what}"
            enqueue = _enqueuer(queues, settings, SCAN_SHARD_TASK, kwargs, shard_id, meta, shown)
            _ensure_job(connection, settings, shard_id, request_id, enqueue)
        kwargs = dict(sharded, n_shards=n_shards)
        shown = f"merge {n_shards} scan shards of {what}"
        depends: list[Dependency | Job | str] = list(shard_ids)
        enqueue = _enqueuer(queues, settings, MERGE_SCAN_TASK, kwargs, merge_id, meta, shown, depends)
        _ensure_job(connection, settings, merge_id, request_id, enqueue)
    return merge_id


def scan_parts(connection: redis.Redis, scan_id: str) -> list[Job]:
    """The shard jobs of the sharded scan whose merge job is ``scan_id``, in shard order (those still
    recorded); empty for a one-shard scan or an unknown id."""
    job = fetch_job(connection, scan_id)
    if job is None or job.func_name != MERGE_SCAN_TASK:
        return []
    n_shards = int(job.kwargs.get("n_shards", 1))
    base = scan_id.removesuffix(f"-k{n_shards}")
    parts = [fetch_job(connection, shard_job_id(base, k, n_shards)) for k in range(n_shards)]
    return [part for part in parts if part is not None]


def failed_scan_part(connection: redis.Redis, scan_id: str) -> Job | None:
    """The failed (or stopped, or canceled) shard job that holds back the merge job ``scan_id``: RQ leaves
    the merge deferred when a shard fails, so the job status shows this shard's error; re-running it
    (:func:`ensure_scan_jobs`) releases the merge. None when no shard failed or the scan is not sharded."""
    for part in scan_parts(connection, scan_id):
        if part.get_status(refresh=False) in (RqStatus.FAILED, RqStatus.STOPPED, RqStatus.CANCELED):
            return part
    return None


def scan_state(connection: redis.Redis, scan_id: str) -> ScanState | None:
    """Where the scan a job waits for stands (passes and samples, as its worker last wrote them); None when
    it has not started or is no longer recorded.

    For a sharded scan (``scan_id`` is its merge job) the shards' states are summed: ``shards_done``
    counts finished shards, ``passes_planned`` is each shard's plan (the same for all), ``passes_done``
    the passes every shard has finished, ``samples_done`` the samples of the pass after those done
    summed over the shards, ``samples_total`` the shards' samples summed (the probe set once all shards
    have started). Once the merge has finished its own record is returned."""
    job = fetch_job(connection, scan_id)
    if job is None:
        return None
    own = JobMeta.from_meta(job.meta).scan
    if job.func_name != MERGE_SCAN_TASK or job.get_status(refresh=False) == RqStatus.FINISHED:
        return own
    n_shards = int(job.kwargs.get("n_shards", 1))
    states: list[tuple[ScanState, bool]] = []
    for part in scan_parts(connection, scan_id):
        state = JobMeta.from_meta(part.meta).scan
        if state is not None:
            states.append((state, part.get_status(refresh=False) == RqStatus.FINISHED))
    planned = max((state.passes_planned for state, _ in states), default=0)
    done_by = [planned if finished else state.passes_done for state, finished in states]
    passes_done = min(done_by, default=0) if len(states) == n_shards else 0
    samples_done = 0
    for (state, _), done in zip(states, done_by, strict=True):
        samples_done += state.samples_total if done > passes_done else state.samples_done
    if planned and passes_done >= planned:
        samples_done = 0  # every pass done: as a finished one-shard scan shows it
    return ScanState(
        passes_planned=planned,
        passes_done=passes_done,
        samples_done=samples_done,
        samples_total=sum(state.samples_total for state, _ in states),
        shards=n_shards,
        shards_done=sum(finished for _, finished in states),
    )
