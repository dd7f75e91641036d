"""Scan jobs of a request: the one place that enqueues them and reads how far they got.

A request's layers are scanned by one scan job (one forward pass over the probe set for all of them, or
as few as the workers' scan memory budget allows); a repeat joins the scan in flight and two API replicas
enqueue one (ids: service/jobs/ids.py). Explain jobs depend on the id :func:`ensure_scan_jobs` returns.

A sharded scan (K > 1 shards, from the request or ``NEURONLENS_SCAN_SHARDS``) is K shard jobs, each
recording a contiguous part of the probe set, and one merge job that depends on all of them and writes
the same layer artifacts as a one-shard scan (each may run; the second to finish finds the artifacts
stored and keeps them). Explain jobs wait for the merge.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import redis
from rq.job import Dependency, Job
from rq.job import JobStatus as RqStatus

from service.contract import (
    MERGE_SCAN_TASK,
    SCAN_SHARD_TASK,
    SCAN_TASK,
    JobMeta,
    MergeScanJobPayload,
    ScanJobPayload,
    ScanShardJobPayload,
    ScanState,
)
from service.estimates.validate import ResolvedRequest
from service.jobs.ids import merge_job_id, scan_job_id, shard_job_id, shard_job_ids
from service.jobs.queues import JobQueues
from service.jobs.rq_jobs import (
    ACTIVE,
    ENDED_BADLY,
    RERUNNABLE,
    delete_job,
    enqueue_lock,
    enqueue_payload,
    fetch_job,
    requeue_failed,
)
from service.settings import Settings


def _enqueuer(
    queues: JobQueues,
    settings: Settings,
    func: str,
    payload: ScanJobPayload,
    job_id: str,
    meta: JobMeta,
    description: str,
    depends_on: list[Dependency | Job | str] | None = None,
) -> Callable[[], object]:
    """What enqueues one scan-queue job (timeouts, TTLs and retries from the settings)."""
    return lambda: enqueue_payload(
        queues.scan,
        func,
        payload,
        job_id=job_id,
        meta=meta,
        timeout_s=settings.scan_timeout_s,
        settings=settings,
        description=description,
        depends_on=depends_on,
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
    if job is not None and status in RERUNNABLE:
        requeue_failed(job, settings, request_id)
    elif job is None or status not in (ACTIVE | {RqStatus.FINISHED}):
        if job is not None:
            delete_job(connection, job)
        enqueue()


def ensure_scan_jobs(
    connection: redis.Redis,
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedRequest,
    layers: Sequence[int],
    request_id: str | None = None,
    shards: int | None = None,
    traceparent: str | None = None,
) -> str:
    """Make sure the scan of ``layers`` of a resolved request is queued, running or finished (a failed one
    is re-run under its id); return the id of the job its explain jobs wait for.

    ``shards`` splits the probe set into that many shard jobs and a merge job (whose id is returned);
    None takes the request's ``shards``, else the deployment's ``scan_shards``. A failed shard or merge
    is re-run under its id; a merge stays deferred until every shard has finished. ``traceparent`` (W3C
    trace context of the request that enqueues them) goes into the new jobs' meta."""
    request = resolved.request
    # Latents are scanned in one job: their dictionary's reconstruction totals are not merged across shards.
    n_shards = 1 if request.units is not None else shards or request.shards or settings.scan_shards
    hook = request.hook or resolved.model.default_hook
    options = request.options
    wanted = sorted(set(layers))
    keys = settings.redis_keys
    job_id = scan_job_id(keys, resolved.model, resolved.dataset, hook, wanted, options.n_top, options.seed)
    shown = f"layer {wanted[0]}" if len(wanted) == 1 else f"{len(wanted)} layers"
    what = f"{resolved.model.id} {shown} ({hook}, {resolved.dataset.id})"
    payload = ScanJobPayload(
        model=resolved.model.id,
        hook=hook,
        units=request.units,
        layers=wanted,
        dataset=resolved.dataset.id,
        options=options,
    )
    if n_shards <= 1:
        with enqueue_lock(connection, keys, job_id):
            meta = JobMeta(request_id=request_id, traceparent=traceparent)
            enqueue = _enqueuer(queues, settings, SCAN_TASK, payload, job_id, meta, f"scan {what}")
            _ensure_job(connection, settings, job_id, request_id, enqueue)
        return job_id
    trace = (request_id, traceparent)
    return _ensure_sharded(connection, queues, settings, job_id, n_shards, payload, what, trace)


def _ensure_sharded(
    connection: redis.Redis,
    queues: JobQueues,
    settings: Settings,
    scan_id: str,
    n_shards: int,
    payload: ScanJobPayload,
    what: str,
    trace: tuple[str | None, str | None],
) -> str:
    """The shard jobs and the merge job of a sharded scan (see the module docstring); the merge's id.

    Every shard and the merge get the API's scan batch size: it fixes the batches the probe set is cut
    into, so all of them must agree (a worker checks it, the merge checks the shards used it)."""
    merge_id = merge_job_id(scan_id, n_shards)
    shard_ids = [shard_job_id(scan_id, k, n_shards) for k in range(n_shards)]
    merge_payload = MergeScanJobPayload(
        **payload.model_dump(), n_shards=n_shards, batch_size=settings.scan_batch_size
    )
    scan = ScanState(passes_planned=0, passes_done=0, samples_done=0, samples_total=0, shards=n_shards)
    request_id = trace[0]
    meta = JobMeta(request_id=request_id, traceparent=trace[1], scan=scan)
    with enqueue_lock(connection, settings.redis_keys, merge_id):
        merge = fetch_job(connection, merge_id)
        if merge is not None and merge.get_status(refresh=False) == RqStatus.FINISHED:
            return merge_id  # the artifacts are stored; the shards' records may be gone already
        for shard, shard_id in enumerate(shard_ids):
            shard_payload = ScanShardJobPayload(**merge_payload.model_dump(), shard=shard)
            shown = f"scan shard {shard + 1}/{n_shards} of {what}"
            enqueue = _enqueuer(queues, settings, SCAN_SHARD_TASK, shard_payload, shard_id, meta, shown)
            _ensure_job(connection, settings, shard_id, request_id, enqueue)
        shown = f"merge {n_shards} scan shards of {what}"
        depends: list[Dependency | Job | str] = list(shard_ids)
        enqueue = _enqueuer(queues, settings, MERGE_SCAN_TASK, merge_payload, merge_id, meta, shown, depends)
        _ensure_job(connection, settings, merge_id, request_id, enqueue)
    return merge_id


# --------------------------------------------------------------------------- how far a scan got


def scan_parts(connection: redis.Redis, scan_id: str) -> list[Job]:
    """The shard jobs of the sharded scan whose merge job is ``scan_id``, in shard order (those still
    recorded); empty for a one-shard scan or an unknown id."""
    job = fetch_job(connection, scan_id)
    if job is None or job.func_name != MERGE_SCAN_TASK:
        return []
    parts = [fetch_job(connection, shard_id) for shard_id in shard_job_ids(scan_id)]
    return [part for part in parts if part is not None]


def failed_scan_part(connection: redis.Redis, scan_id: str) -> Job | None:
    """The failed (or stopped, or canceled) shard job that holds back the merge job ``scan_id``: RQ leaves
    the merge deferred when a shard fails, so the job status shows this shard's error; re-running it
    (:func:`ensure_scan_jobs`) releases the merge. None when no shard failed or the scan is not sharded."""
    for part in scan_parts(connection, scan_id):
        if part.get_status(refresh=False) in ENDED_BADLY:
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
    n_shards = len(shard_job_ids(scan_id))
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
