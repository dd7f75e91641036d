"""Enqueue and deduplicate explanation work over RQ (JSON serializer; tasks named by dotted path).

A request (`exp-<hash>`, what clients see) becomes one scan job on the ``scan`` queue for every layer whose
reports are not all stored (one forward pass for them all), and one explain job ("part") per (layer,
chunk of ``explain_chunk_neurons`` neurons) on the ``explain`` queue, each depending on the scan. Every id
is a hash of what determines its output, so a repeat joins the jobs in flight and two API replicas create
one of each. The request's record (service/jobs/group.py) lists its scan and parts for `GET /v1/jobs/{id}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis
from rq import Queue
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.serializers import JSONSerializer
from rq.worker_registration import get_keys as registered_worker_keys

from service.contract import (
    ERROR_SCAN_MISSING,
    EXPLAIN_JOB_PREFIX,
    EXPLAIN_PART_PREFIX,
    EXPLAIN_TASK,
    PIPELINE_VERSION,
    JobMeta,
    JobStatus,
    NeuronReport,
    RedisKeys,
    dataset_identity,
    report_key,
)
from service.contract.objects import ObjectStore
from service.estimates.validate import ResolvedRequest
from service.jobs.group import (
    JobRecord,
    Part,
    group_state,
    now,
    part_states,
    read_record,
    write_record,
)
from service.jobs.queues import JobQueues
from service.jobs.scan import (
    LOCK_TIMEOUT_S,
    ensure_scan_jobs,
    fetch_job,
    retry_policy,
    scan_state,
)
from service.jobs.state import explain_state
from service.reports.exemplar_links import link_exemplar_images
from service.reports.listing import indexed_neurons
from service.settings import Settings

__all__ = [
    "JobQueues",
    "Submission",
    "explain_job_id",
    "fetch_job",
    "job_report_refs",
    "job_status",
    "submit_explanation",
]


def _identity(resolved: ResolvedRequest) -> dict[str, object]:
    return {
        "request": resolved.request.model_dump(mode="json"),
        "revision": resolved.model.revision,
        "dataset": dataset_identity(resolved.dataset),
        "llm_models": resolved.llm_models.model_dump(mode="json") if resolved.llm_models else None,
        "pipeline": PIPELINE_VERSION,
    }


def explain_job_id(keys: RedisKeys, resolved: ResolvedRequest) -> str:
    """Id of a request (the whole job clients see): a hash of the canonical resolved request (layers,
    backends, endpoint and k included), the model revision, the probe set, the endpoint's model names and
    the pipeline version (and the deployment's key prefix, `RedisKeys.job_id`)."""
    return keys.job_id(EXPLAIN_JOB_PREFIX, _identity(resolved))


def part_job_id(keys: RedisKeys, part: ResolvedRequest, group: str, budgeted: bool) -> str:
    """Id of the explain job of one (layer, chunk): the same hash over its one-layer request, so requests
    that share a chunk share its job; a request with a budget keeps its parts to itself (``group``)."""
    payload = {**_identity(part), "group": group if budgeted else None}
    return keys.job_id(EXPLAIN_PART_PREFIX, payload)


def _chunks(resolved: ResolvedRequest, size: int) -> list[tuple[int, int, int]]:
    """(layer, start, stop) of each part: ``size`` neurons of the request's neuron list per layer."""
    count = len(resolved.neurons)
    return [(layer, a, min(a + size, count)) for layer in resolved.layers for a in range(0, count, size)]


def _stored_chunks(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    resolved: ResolvedRequest,
    chunks: list[tuple[int, int, int]],
) -> set[tuple[int, int, int]]:
    """The chunks whose every report is stored. The report index (rebuilt from the store if lost) answers
    "not all" on its own; a layer whose chunks it lists as stored is confirmed by one listing of the
    store's folder, so reports gone from the store (another artifact store behind the same Redis, a wiped
    folder) are explained again rather than answered as stored."""
    neurons = resolved.neurons
    model, variant = resolved.model.id, resolved.variant
    found: set[tuple[int, int, int]] = set()
    for layer in resolved.layers:
        indexed = set(indexed_neurons(connection, keys, store, model, layer, variant))
        mine = [c for c in chunks if c[0] == layer and set(neurons[c[1] : c[2]]) <= indexed]
        if mine:
            listed = store.stored_neurons(model, layer, variant)
            found.update(c for c in mine if set(neurons[c[1] : c[2]]) <= listed)
    return found


# --------------------------------------------------------------------------- submission


@dataclass(frozen=True)
class Submission:
    """What `POST /v1/explanations` did: nothing to run (every report stored), or the job that runs."""

    job_id: str
    stored: bool
    """Every requested report was already stored: nothing was enqueued and the job reads `finished`."""


def _forget_finished_scan(connection: redis.Redis, explain: Job) -> None:
    """Drop the finished scan job of an explain job whose scan artifact was missing, so it runs again."""
    scan_id = JobMeta.from_meta(explain.meta).scan_job_id
    scan = fetch_job(connection, scan_id) if scan_id is not None else None
    if scan is not None and scan.get_status(refresh=False) == RqStatus.FINISHED:
        scan.delete()


def _enqueue_part(
    queues: JobQueues,
    settings: Settings,
    part: ResolvedRequest,
    part_id: str,
    scan_id: str,
    request_id: str | None,
    group: str,
    budget: dict[str, object] | None,
) -> None:
    request = part.request
    models = part.llm_models
    queues.explain.enqueue_call(
        func=EXPLAIN_TASK,
        # The worker checks that its own endpoint models and registry give the same variant.
        kwargs={
            "request": request.model_dump(mode="json"),
            "llm_models": models.model_dump(mode="json") if models is not None else None,
            "variant": part.variant,
            "group": group,
            # The request's budget (its Budget dump), shared by every part of `group`; None: no budget.
            "budget": budget,
        },
        timeout=settings.explain_timeout_s,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.failure_ttl_s,
        job_id=part_id,
        retry=retry_policy(settings),
        depends_on=scan_id,
        meta=JobMeta(
            scan_job_id=scan_id,
            model_revision=part.model.revision,
            total=len(part.neurons),
            request_id=request_id,
            group=group,
        ).to_meta(),
        description=f"explain {part.model.id} layer {request.layer}: {len(part.neurons)} neurons ({group})",
    )


@dataclass
class _Plan:
    """What a submission does with each part that has reports to write."""

    join: list[Part]
    run: list[tuple[Part, ResolvedRequest, Job | None]]
    """Parts to (re-)enqueue, with the job to delete first."""
    after_scan: list[tuple[Part, ResolvedRequest, Job]]
    """Failed parts whose scan failed: re-running that scan releases them (when it is the one re-run)."""
    forget_scan: list[Job]
    """Parts that found no scan artifact: their finished scan is dropped so it runs again."""


def _plan(connection: redis.Redis, parts: list[tuple[Part, ResolvedRequest]]) -> _Plan:
    plan = _Plan([], [], [], [])
    jobs = Job.fetch_many([p.id for p, _ in parts], connection, serializer=JSONSerializer)
    for (part, child), job in zip(parts, jobs, strict=True):
        if job is None:
            plan.run.append((part, child, None))
            continue
        state = explain_state(connection, job)
        if state.status not in ("finished", "failed"):
            plan.join.append(part)
        elif state.failed_scan is not None:
            plan.after_scan.append((part, child, job))
        else:
            # Failed, or finished while some reports went missing since: start over under the same id.
            if state.error is not None and state.error.type == ERROR_SCAN_MISSING:
                plan.forget_scan.append(job)
            plan.run.append((part, child, job))
    return plan


def submit_explanation(
    connection: redis.Redis,
    store: ObjectStore,
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedRequest,
    request_id: str | None = None,
    before_enqueue: Callable[[], None] | None = None,
) -> Submission:
    """Record the request's job and make sure each of its parts is stored, in flight or enqueued (joining
    jobs in flight, re-running failed ones). ``request_id`` (the HTTP request's X-Request-ID) goes into
    the meta of the jobs it enqueues; ``before_enqueue`` runs just before anything is enqueued and may
    refuse by raising (quotas)."""
    admit = before_enqueue or (lambda: None)
    keys = settings.redis_keys
    job_id = explain_job_id(keys, resolved)
    chunks = _chunks(resolved, settings.explain_chunk_neurons)
    ttl_s = max(settings.result_ttl_s, settings.failure_ttl_s)
    budget = resolved.request.budget
    with connection.lock(keys.lock(job_id), timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S):
        stored = _stored_chunks(connection, keys, store, resolved, chunks)
        neurons = resolved.neurons
        parts: list[tuple[Part, ResolvedRequest]] = []
        for layer, a, b in chunks:
            child = resolved.for_layer(layer, neurons[a:b])
            enqueued = (layer, a, b) not in stored
            part_id = part_job_id(keys, child, job_id, budget is not None)
            parts.append((Part(part_id, layer, a, b, enqueued), child))
        pending = [(part, child) for part, child in parts if part.enqueued]
        previous = read_record(connection, keys, job_id)
        scan_id = previous.scan_job_id if previous is not None else None
        plan = _plan(connection, pending)
        enqueues = bool(plan.run or plan.after_scan)
        if enqueues:
            admit()  # from here on something is enqueued
            for job in plan.forget_scan:
                _forget_finished_scan(connection, job)
            layers = sorted({part.layer for part, _ in pending})
            scan_id = ensure_scan_jobs(connection, queues, settings, resolved, layers, request_id)
            for part, child, job in plan.after_scan:
                if JobMeta.from_meta(job.meta).scan_job_id != scan_id:  # it waits on another scan
                    plan.run.append((part, child, job))
            dump = None
            if budget is not None:
                if not plan.join:
                    # A fresh run of the request gets a fresh budget (while a part is still in flight the
                    # budget it draws from stays); every part of the request shares the counters.
                    connection.delete(keys.budget_calls(job_id), keys.budget_cost(job_id))
                dump = {"group": job_id, **budget.model_dump(mode="json")}
            for part, child, old in plan.run:
                if old is not None:
                    old.delete()
                _enqueue_part(queues, settings, child, part.id, scan_id, request_id, job_id, dump)
        elif plan.join and scan_id is None:
            joined = fetch_job(connection, plan.join[0].id)
            scan_id = JobMeta.from_meta(joined.meta).scan_job_id if joined is not None else None
        record = JobRecord(
            job_id=job_id,
            request=resolved.request,
            variant=resolved.variant,
            scan_job_id=scan_id if pending else None,
            parts=[part for part, _ in parts],
            created_at=previous.created_at if previous is not None and pending and not enqueues else now(),
            ttl_s=ttl_s,
        )
        write_record(connection, keys, record)
    return Submission(job_id=job_id, stored=not pending)


# --------------------------------------------------------------------------- status


def listening_workers(connection: redis.Redis, job: Job) -> int:
    """Workers registered on every queue the job still needs: its own, and its scan's while deferred."""
    names = [job.origin]
    scan_id = job.meta.get("scan_job_id")
    if job.get_status(refresh=False) == RqStatus.DEFERRED and isinstance(scan_id, str):
        scan = fetch_job(connection, scan_id)
        if scan is not None:
            names.append(scan.origin)
    counts = []
    for name in filter(None, names):
        keys = list(registered_worker_keys(queue=Queue(name, connection=connection)))
        # A killed worker stays registered until a live one cleans up; its key expires with its beats.
        counts.append(int(connection.exists(*keys)) if keys else 0)
    return min(counts, default=0)


def _report_refs(record: JobRecord, not_done: dict[int, set[int]]) -> list[tuple[int, int, str]]:
    model, variant = record.request.model, record.variant
    return [
        (layer, n, report_key(model, layer, n, variant))
        for layer in record.layers
        for n in record.request.neuron_list()
        if n not in not_done.get(layer, ())
    ]


def job_report_refs(
    connection: redis.Redis, keys: RedisKeys, job_id: str
) -> list[tuple[int, int, str]] | None:
    """(layer, neuron, report key) of every report a request produces, in (layer, neuron) order; None when
    no request has that id. A report is in the store once its part finished (see `GET /v1/jobs/{id}`);
    neurons a budget left not done are listed too and have none."""
    if not job_id.startswith(EXPLAIN_JOB_PREFIX):
        return None
    record = read_record(connection, keys, job_id)
    return _report_refs(record, {}) if record is not None else None


def job_status(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    job_id: str,
    offset: int = 0,
    limit: int = 100,
) -> JobStatus | None:
    """`GET /v1/jobs/{job_id}`: None when no request has that id; the state aggregated over its parts
    (service/jobs/group.py), and once finished a page of its reports in (layer, neuron) order."""
    if not job_id.startswith(EXPLAIN_JOB_PREFIX):
        return None
    record = read_record(connection, keys, job_id)
    if record is None:
        return None
    group = group_state(part_states(connection, keys, store, record), record)
    ended = group.status in ("finished", "failed")
    if not ended:
        connection.expire(keys.job_record(job_id), record.ttl_s)  # a request kept waiting keeps its record
    reports: list[NeuronReport] | None = None
    total: int | None = None
    if group.status == "finished":
        not_done = {entry.layer: set(entry.neurons) for entry in group.not_done or []}
        refs = _report_refs(record, not_done)
        total = len(refs)
        page = refs[offset : offset + limit]
        values = store.read_many([key for _, _, key in page])
        reports = [
            link_exemplar_images(
                NeuronReport.model_validate_json(value),
                record.request.for_layer(layer, [neuron]),
                record.variant,
            )
            for (layer, neuron, _), value in zip(page, values, strict=True)
            if value is not None
        ]
    return JobStatus(
        job_id=job_id,
        status=group.status,
        progress=group.progress,
        queue_position=group.queue_position,
        created_at=group.created_at,
        started_at=group.started_at,
        ended_at=group.ended_at,
        error=group.error,
        reports=reports,
        reports_total=total,
        workers=None if ended else (listening_workers(connection, group.waiting) if group.waiting else 0),
        scan=scan_state(connection, record.scan_job_id) if record.scan_job_id is not None else None,
        layers=group.layers,
        usage=group.usage,
        budget_exhausted=group.budget_exhausted,
        not_done=group.not_done,
    )
