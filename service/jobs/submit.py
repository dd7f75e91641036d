"""Enqueue and deduplicate explanation work over RQ (JSON serializer; tasks named by dotted path).

A request (`exp-<hash>`, what clients see) becomes one scan job on the ``scan`` queue for every layer whose
reports are not all stored (one forward pass for them all; service/jobs/scan.py), and one explain job
("part") per (layer, chunk of ``explain_chunk_neurons`` neurons) on the ``explain`` queue, each depending on
the scan. Every id is a hash of what determines its output (service/jobs/ids.py), so a repeat joins the
jobs in flight and two API replicas create one of each. Each job gets its typed payload
(`ExplainJobPayload`, `ScanJobPayload`, …) as its one keyword argument. The request's record
(service/jobs/record.py) lists its scan and parts; where it stands is derived from it
(service/jobs/state.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import redis
from rq.job import Job
from rq.job import JobStatus as RqStatus

from service.contract import (
    ERROR_SCAN_MISSING,
    EXPLAIN_TASK,
    Budget,
    ExplainJobPayload,
    JobMeta,
    RedisKeys,
)
from service.contract.objects import ObjectStore
from service.estimates.validate import ResolvedRequest
from service.jobs.ids import explain_job_id, part_job_id
from service.jobs.part_state import part_state
from service.jobs.queues import JobQueues
from service.jobs.record import JobRecord, Part, keep_record, now, read_record, write_record
from service.jobs.rq_jobs import delete_job, enqueue_lock, enqueue_payload, fetch_job, fetch_jobs
from service.jobs.scan import ensure_scan_jobs
from service.reports.listing import indexed_neurons
from service.settings import Settings

Chunk = tuple[int, int, int]
"""(layer, start, stop) of a part: ``neurons[start:stop]`` of the request's neuron list in one layer."""


@dataclass(frozen=True)
class Submission:
    """What `POST /v1/explanations` did: nothing to run (every report stored), or the job that runs."""

    job_id: str
    stored: bool
    """Every requested report was already stored: nothing was enqueued and the job reads `finished`."""


def _chunks(resolved: ResolvedRequest, size: int) -> list[Chunk]:
    """The chunks of a request: ``size`` neurons of its neuron list per layer."""
    count = len(resolved.neurons)
    return [(layer, a, min(a + size, count)) for layer in resolved.layers for a in range(0, count, size)]


def _stored_chunks(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    resolved: ResolvedRequest,
    chunks: list[Chunk],
) -> set[Chunk]:
    """The chunks whose every report is stored. The report index (rebuilt from the store if lost) answers
    "not all" on its own; a layer whose chunks it lists as stored is confirmed by one listing of the
    store's folder, so reports gone from the store (another artifact store behind the same Redis, a wiped
    folder) are explained again rather than answered as stored."""
    neurons = resolved.neurons
    model, variant = resolved.model.id, resolved.variant
    found: set[Chunk] = set()
    for layer in resolved.layers:
        indexed = set(indexed_neurons(connection, keys, store, model, layer, variant))
        mine = [c for c in chunks if c[0] == layer and set(neurons[c[1] : c[2]]) <= indexed]
        if mine:
            listed = store.stored_neurons(model, layer, variant)
            found.update(c for c in mine if set(neurons[c[1] : c[2]]) <= listed)
    return found


def _parts(
    connection: redis.Redis, store: ObjectStore, settings: Settings, resolved: ResolvedRequest, job_id: str
) -> list[tuple[Part, ResolvedRequest]]:
    """Every part of a request with its one-layer request; a part whose reports are all stored is listed
    as not enqueued."""
    keys = settings.redis_keys
    chunks = _chunks(resolved, settings.explain_chunk_neurons)
    stored = _stored_chunks(connection, keys, store, resolved, chunks)
    budgeted = resolved.request.budget is not None
    parts = []
    for layer, a, b in chunks:
        child = resolved.for_layer(layer, resolved.neurons[a:b])
        part_id = part_job_id(keys, child, job_id, budgeted)
        parts.append((Part(part_id, layer, a, b, (layer, a, b) not in stored), child))
    return parts


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

    @property
    def layers(self) -> list[int]:
        """The layers of every part with reports to write: those the scan covers."""
        parts = [p for p in self.join] + [p for p, _, _ in self.run] + [p for p, _, _ in self.after_scan]
        return sorted({part.layer for part in parts})


def _plan(connection: redis.Redis, parts: list[tuple[Part, ResolvedRequest]]) -> _Plan:
    plan = _Plan([], [], [], [])
    jobs = fetch_jobs(connection, [p.id for p, _ in parts])
    for (part, child), job in zip(parts, jobs, strict=True):
        if job is None:
            plan.run.append((part, child, None))
            continue
        state = part_state(connection, part, job)
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


def _forget_finished_scan(connection: redis.Redis, explain: Job) -> None:
    """Drop the finished scan job of an explain job whose scan artifact was missing, so it runs again."""
    scan_id = JobMeta.from_meta(explain.meta).scan_job_id
    scan = fetch_job(connection, scan_id) if scan_id is not None else None
    if scan is not None and scan.get_status(refresh=False) == RqStatus.FINISHED:
        delete_job(connection, scan)


def _enqueue_part(
    queues: JobQueues,
    settings: Settings,
    part: ResolvedRequest,
    part_id: str,
    scan_id: str,
    request_id: str | None,
    group: str,
    budget: Budget | None,
) -> None:
    """Enqueue the explain job of one part, waiting for ``scan_id``. The worker checks that its own
    endpoint models and registry give the same variant; the request's ``budget`` (a one-layer request
    carries none) is shared by every part of ``group``."""
    payload = ExplainJobPayload(
        request=part.request,
        llm_models=part.llm_models,
        variant=part.variant,
        group=group,
        budget=budget,
    )
    meta = JobMeta(
        scan_job_id=scan_id,
        model_revision=part.model.revision,
        total=len(part.neurons),
        request_id=request_id,
        group=group,
    )
    enqueue_payload(
        queues.explain,
        EXPLAIN_TASK,
        payload,
        job_id=part_id,
        meta=meta,
        timeout_s=settings.explain_timeout_s,
        settings=settings,
        depends_on=scan_id,
        description=f"explain {part.model.id} layer {part.request.layer}: {len(part.neurons)} neurons "
        f"({group})",
    )


def _run_plan(
    connection: redis.Redis,
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedRequest,
    job_id: str,
    plan: _Plan,
    request_id: str | None,
) -> str:
    """Enqueue what the plan runs (the scan first); the id of the scan job the parts wait for."""
    for job in plan.forget_scan:
        _forget_finished_scan(connection, job)
    scan_id = ensure_scan_jobs(connection, queues, settings, resolved, plan.layers, request_id)
    for part, child, job in plan.after_scan:
        if JobMeta.from_meta(job.meta).scan_job_id != scan_id:  # it waits on another scan
            plan.run.append((part, child, job))
    connection.delete(settings.redis_keys.job_cancel(job_id))  # a cancelled request runs again
    for _, _, old in plan.run:  # every old job goes before anything of the request's state changes
        if old is not None:
            delete_job(connection, old)
    keys = settings.redis_keys
    budget = resolved.request.budget
    if budget is not None and not plan.join:
        # A fresh run of the request gets a fresh budget (while a part is still in flight the budget it
        # draws from stays); every part of the request shares the counters.
        connection.delete(keys.budget_calls(job_id), keys.budget_cost(job_id))
    for part, child, _ in plan.run:
        _enqueue_part(queues, settings, child, part.id, scan_id, request_id, job_id, budget)
    return scan_id


def _joined_scan(connection: redis.Redis, previous: JobRecord | None, plan: _Plan) -> str | None:
    """The scan job of a request that enqueues nothing: its record's, else that of a part it joins."""
    if previous is not None and previous.scan_job_id is not None:
        return previous.scan_job_id
    joined = fetch_job(connection, plan.join[0].id) if plan.join else None
    return JobMeta.from_meta(joined.meta).scan_job_id if joined is not None else None


def submit_explanation(
    connection: redis.Redis,
    store: ObjectStore,
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedRequest,
    request_id: str | None = None,
    before_enqueue: Callable[[], None] | None = None,
    owner: str | None = None,
) -> Submission:
    """Record the request's job and make sure each of its parts is stored, in flight or enqueued (joining
    jobs in flight, re-running failed ones). ``request_id`` (the HTTP request's X-Request-ID) goes into
    the meta of the jobs it enqueues; ``before_enqueue`` runs just before anything is enqueued and may
    refuse by raising (quotas); ``owner`` (the calling API key's id) is added to the record's owners."""
    keys = settings.redis_keys
    job_id = explain_job_id(keys, resolved)
    arrived = now()  # before anything is enqueued: a worker may start a part at once
    with enqueue_lock(connection, keys, job_id):
        parts = _parts(connection, store, settings, resolved, job_id)
        pending = [(part, child) for part, child in parts if part.enqueued]
        previous = read_record(connection, keys, job_id, store)
        plan = _plan(connection, pending)
        if plan.run or plan.after_scan:
            if before_enqueue is not None:
                before_enqueue()  # from here on something is enqueued
            scan_id: str | None = _run_plan(connection, queues, settings, resolved, job_id, plan, request_id)
        elif previous is not None:
            keep_record(connection, keys, store, previous, owner)  # a repeat that runs nothing
            return Submission(job_id=job_id, stored=not pending)
        else:
            scan_id = _joined_scan(connection, previous, plan)
        parts_run = [part for part, _ in parts]
        scan_id = scan_id if pending else None
        record = _new_record(previous, job_id, resolved, parts_run, scan_id, arrived, settings)
        owners = record.owners if owner is None or owner in record.owners else (*record.owners, owner)
        write_record(connection, keys, replace(record, owners=owners), store)
    return Submission(job_id=job_id, stored=not pending)


def _new_record(
    previous: JobRecord | None,
    job_id: str,
    resolved: ResolvedRequest,
    parts: list[Part],
    scan_id: str | None,
    arrived: datetime,
    settings: Settings,
) -> JobRecord:
    """The record a submission writes: a repeat keeps the job's history (its creation time, and the parts
    it ran listed as run even where their reports are stored by now)."""
    ran = {part.id for part in previous.parts if part.enqueued} if previous is not None else set()
    return JobRecord(
        job_id=job_id,
        request=resolved.request,
        variant=resolved.variant,
        scan_job_id=scan_id,
        parts=[replace(part, enqueued=part.enqueued or part.id in ran) for part in parts],
        created_at=previous.created_at if previous is not None else arrived,
        ttl_s=max(settings.result_ttl_s, settings.failure_ttl_s),
        owners=previous.owners if previous is not None else (),
    )
