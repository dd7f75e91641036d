"""Comparisons over RQ: submit (the base's explanation request, the target's scan, one compare job per
layer and chunk that depends on both), the comparison's record, and where it stands.

A comparison (`cmp-<hash>`, what clients see) reuses what exists: the base's explanation request is
submitted as `POST /v1/explanations` would (stored reports and scans are reused, its parts joined), the
target's layers get a scan job (a stored layer is read, not scanned), and each compare job (`cmpp-…`, on
the explain queue) waits for the base's part of its chunk and the target's scan. Each compare job writes a
NeuronComparison per neuron to the artifact store (`comparison_key`); the status reads them back.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import redis
from rq.job import Job
from rq.job import JobStatus as RqStatus

from service.contract import (
    ERROR_JOB_CANCELED,
    PIPELINE_VERSION,
    JobError,
    JobMeta,
    LLMUsage,
    Progress,
    RedisKeys,
)
from service.contract.comparisons import (
    COMPARE_PART_PREFIX,
    COMPARE_TASK,
    COMPARISON_PREFIX,
    CompareJobPayload,
    ComparisonRequest,
    ComparisonState,
    ComparisonStatus,
    NeuronComparison,
    comparison_key,
    comparison_request_key,
)
from service.contract.jobs import ExplainJobPayload, LayerNeurons
from service.contract.objects import ObjectStore
from service.estimates.compare_check import ResolvedComparison
from service.estimates.validate import ResolvedRequest
from service.jobs.compare_reruns import (
    comparison_jobs,
    forget_missing_scans,
    found_scan_missing,
    in_flight,
    waits_for_nothing,
)
from service.jobs.part_state import job_error
from service.jobs.queues import JobQueues
from service.jobs.record import now, read_record
from service.jobs.rq_jobs import (
    ACTIVE,
    ENDED_BADLY,
    RERUNNABLE,
    delete_job,
    enqueue_lock,
    enqueue_payload,
    fetch_job,
    fetch_jobs,
    requeue_failed,
)
from service.jobs.scan import ensure_scan_jobs, failed_scan_part
from service.jobs.state import job_status
from service.jobs.submit import submit_explanation
from service.settings import Settings


@dataclass(frozen=True)
class ComparisonRecord:
    """What a comparison's record (`RedisKeys.job_record(cmp-…)`) holds."""

    comparison_id: str
    request: ComparisonRequest
    base_job_id: str
    target_scan_id: str
    parts: list[tuple[str, int, list[int]]]
    """(compare job id, layer, neurons) per chunk."""
    created_at: datetime
    base_scan_id: str | None = None
    """The base's scan job the comparison waits for itself (layers whose base reports were all stored)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "request": self.request.model_dump(mode="json"),
                "base_job_id": self.base_job_id,
                "target_scan_id": self.target_scan_id,
                "parts": self.parts,
                "created_at": self.created_at.isoformat(),
                "base_scan_id": self.base_scan_id,
            }
        )

    @classmethod
    def from_json(cls, comparison_id: str, raw: bytes | str) -> ComparisonRecord:
        data = json.loads(raw)
        return cls(
            comparison_id=comparison_id,
            request=ComparisonRequest.model_validate(data["request"]),
            base_job_id=data["base_job_id"],
            target_scan_id=data["target_scan_id"],
            parts=[(str(i), int(layer), [int(n) for n in neurons]) for i, layer, neurons in data["parts"]],
            created_at=datetime.fromisoformat(data["created_at"]),
            base_scan_id=data.get("base_scan_id"),
        )

    def keys(self) -> list[tuple[int, int, str]]:
        """(layer, neuron, comparison key) of every neuron, in (layer, neuron) order."""
        found = [(layer, n) for _, layer, neurons in self.parts for n in neurons]
        return [(layer, n, comparison_key(self.comparison_id, layer, n)) for layer, n in sorted(found)]


def comparison_id(keys: RedisKeys, resolved: ResolvedComparison) -> str:
    """The comparison's id: a hash of the resolved request, both sides' report variants and the pipeline."""
    payload = {
        "request": comparison_request_key(resolved.request),
        "base": resolved.base.variant,
        "target": resolved.target.variant,
        "pipeline": PIPELINE_VERSION,
    }
    return keys.job_id(COMPARISON_PREFIX, payload)


def read_comparison(connection: redis.Redis, keys: RedisKeys, cmp_id: str) -> ComparisonRecord | None:
    if not cmp_id.startswith(COMPARISON_PREFIX):
        return None
    raw = connection.get(keys.job_record(cmp_id))
    return ComparisonRecord.from_json(cmp_id, raw) if raw is not None else None  # type: ignore[arg-type]


def _payload(side: ResolvedRequest, group: str) -> ExplainJobPayload:
    return ExplainJobPayload(
        request=side.request, llm_models=side.llm_models, variant=side.variant, group=group
    )


def _ensure_part(
    connection: redis.Redis,
    queues: JobQueues,
    settings: Settings,
    part_id: str,
    payload: CompareJobPayload,
    depends_on: list[str],
    request_id: str | None,
) -> None:
    """Enqueue one compare job unless it is queued, waiting, running or finished. A failed one is re-run
    (one that found a scan missing is enqueued afresh, after that scan); so is one waiting for a job that
    was deleted or replaced since (a failed base part posted again), and one the budget stopped."""
    job = fetch_job(connection, part_id)
    status = job.get_status(refresh=False) if job is not None else None
    if job is not None and status in RERUNNABLE:
        if not found_scan_missing(job):
            requeue_failed(job, settings, request_id)
            return
    elif job is not None and status == RqStatus.DEFERRED:
        if not waits_for_nothing(connection, job):
            return
    elif job is not None and status in ACTIVE:
        return
    if job is not None and status == RqStatus.FINISHED and not JobMeta.from_meta(job.meta).budget_exhausted:
        return  # (one the budget stopped runs again, on a fresh budget, for the neurons it left)
    if job is not None:
        delete_job(connection, job)
    layer, count = payload.base.request.layer, len(payload.base.request.neuron_list())
    meta = JobMeta(total=count, request_id=request_id, group=payload.comparison_id)
    enqueue_payload(
        queues.explain,
        COMPARE_TASK,
        payload,
        job_id=part_id,
        meta=meta,
        timeout_s=settings.explain_timeout_s,
        settings=settings,
        depends_on=depends_on,  # type: ignore[arg-type]
        description=f"compare {payload.base.request.model} and {payload.target.request.model} layer {layer}: "
        f"{count} neurons ({payload.comparison_id})",
    )


def _before_rerun(
    connection: redis.Redis, keys: RedisKeys, cmp_id: str, previous: ComparisonRecord | None, budgeted: bool
) -> None:
    """A fresh budget pool when nothing of the comparison is in flight; its finished scans dropped when a
    compare job found one missing (service/jobs/compare_reruns.py)."""
    if previous is None:
        jobs: list[Job | None] = []
    else:
        part_ids = [part_id for part_id, _, _ in previous.parts]
        jobs = comparison_jobs(connection, keys, part_ids, previous.base_job_id)
    if budgeted and not in_flight(jobs):
        connection.delete(keys.budget_calls(cmp_id), keys.budget_cost(cmp_id))
    if previous is not None:
        forget_missing_scans(connection, jobs, [previous.target_scan_id, previous.base_scan_id])


def submit_comparison(
    connection: redis.Redis,
    store: ObjectStore,
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedComparison,
    request_id: str | None = None,
) -> str:
    """Make sure the base's explanations, the target's scan and every compare job are stored, in flight or
    enqueued; record the comparison; its id. A budget is one pool keyed on the comparison's id (the base's
    explanations draw on it too); a fresh run (nothing of the comparison in flight) starts it afresh."""
    keys = settings.redis_keys
    cmp_id = comparison_id(keys, resolved)
    with enqueue_lock(connection, keys, cmp_id):
        previous = read_comparison(connection, keys, cmp_id)
        _before_rerun(connection, keys, cmp_id, previous, resolved.request.budget is not None)
        base_job = submit_explanation(
            connection, store, queues, settings, resolved.base, request_id, budget_group=cmp_id
        ).job_id
        base_record = read_record(connection, keys, base_job)
        assert base_record is not None  # just written
        scan_id = ensure_scan_jobs(connection, queues, settings, resolved.target, resolved.layers, request_id)
        enqueued = {part.id for part in base_record.parts if part.enqueued}
        found = [job for job in fetch_jobs(connection, sorted(enqueued)) if job is not None]
        existing = {job.id for job in found}
        # Layers with no base part in flight (their reports stored, or their part done) wait for the base's
        # scan themselves: a scan whose artifact is there is read, not scanned.
        busy = {job.id for job in found if job.get_status(refresh=False) in ACTIVE}
        stored_layers = {p.layer for p in base_record.parts} - {
            p.layer for p in base_record.parts if p.id in busy
        }
        base_scan = (
            ensure_scan_jobs(connection, queues, settings, resolved.base, sorted(stored_layers), request_id)
            if stored_layers
            else None
        )
        parts = []
        for part in base_record.parts:
            neurons = base_record.part_neurons(part)
            part_id = keys.job_id(
                COMPARE_PART_PREFIX, {"comparison": cmp_id, "layer": part.layer, "neurons": neurons}
            )
            payload = CompareJobPayload(
                comparison_id=cmp_id,
                base=_payload(resolved.base.for_layer(part.layer, neurons), base_job),
                target=_payload(resolved.target.for_layer(part.layer, neurons), cmp_id),
                reexplain=resolved.request.reexplain,
                rule=resolved.request.rule,
                budget=resolved.request.budget,
            )
            depends = [scan_id] + ([part.id] if part.id in existing else [])
            depends += [base_scan] if base_scan is not None and part.layer in stored_layers else []
            _ensure_part(connection, queues, settings, part_id, payload, depends, request_id)
            parts.append((part_id, part.layer, neurons))
        created = previous.created_at if previous else now()
        record = ComparisonRecord(cmp_id, resolved.request, base_job, scan_id, parts, created, base_scan)
        ttl = max(settings.result_ttl_s, settings.failure_ttl_s)
        connection.set(keys.job_record(cmp_id), record.to_json(), ex=ttl)
    return cmp_id


def _stored(store: ObjectStore, record: ComparisonRecord) -> list[NeuronComparison]:
    refs = record.keys()
    found = store.read_many([key for _, _, key in refs])
    return [NeuronComparison.model_validate_json(raw) for raw in found if raw is not None]


def _scan_error(connection: redis.Redis, scan_id: str | None) -> JobError | None:
    """Why a scan job the comparison waits for failed (a sharded scan: why a shard failed); None while
    it has not."""
    scan = fetch_job(connection, scan_id) if scan_id is not None else None
    if scan is None:
        return None
    status = scan.get_status(refresh=False)
    if status in ENDED_BADLY:
        return job_error(scan)
    failed = failed_scan_part(connection, scan.id) if status == RqStatus.DEFERRED else None
    return job_error(failed) if failed is not None else None


def _state(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    record: ComparisonRecord,
    jobs: list[Job | None],
) -> tuple[ComparisonState, JobError | None]:
    statuses = [job.get_status(refresh=False) if job is not None else None for job in jobs]
    for job, status in zip(jobs, statuses, strict=True):
        if job is None:
            return "failed", JobError(
                type="JobLost", message="a compare job is no longer recorded: post again"
            )
        if status in (RqStatus.FAILED, RqStatus.STOPPED, RqStatus.CANCELED):
            error = JobMeta.from_meta(job.meta).error
            return "failed", error or JobError(type="JobFailed", message=f"compare job {job.id} failed")
    if all(status == RqStatus.FINISHED for status in statuses):
        return "finished", None
    if any(status == RqStatus.STARTED for status in statuses):
        return "comparing", None
    base = job_status(connection, keys, store, record.base_job_id, limit=1)
    if base is not None and base.status == "failed":
        return "failed", base.error
    if base is not None and base.status == "cancelled":
        message = f"the base's explanations ({record.base_job_id}) were cancelled: post the comparison again"
        return "failed", JobError(type=ERROR_JOB_CANCELED, message=message)
    for scan_id in (record.target_scan_id, record.base_scan_id):
        error = _scan_error(connection, scan_id)
        if error is not None:
            return "failed", error
    if base is not None and base.status != "finished":
        return base.status if base.status != "simulating" else "explaining", None  # type: ignore[return-value]
    if any(status == RqStatus.DEFERRED for status in statuses):
        return "scanning", None
    return "queued", None


def _done(job: Job | None, size: int) -> int:
    """Neurons a compare job has compared: all once it finished, what it counted so far while it runs."""
    if job is None:
        return 0
    status = job.get_status(refresh=False)
    if status == RqStatus.FINISHED:
        return size
    return min(size, JobMeta.from_meta(job.meta).done) if status == RqStatus.STARTED else 0


def comparison_status(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    cmp_id: str,
    offset: int = 0,
    limit: int = 100,
) -> ComparisonStatus | None:
    """`GET /v1/comparisons/{id}`: None when no comparison has that id."""
    record = read_comparison(connection, keys, cmp_id)
    if record is None:
        return None
    jobs = fetch_jobs(connection, [part_id for part_id, _, _ in record.parts])
    state, error = _state(connection, keys, store, record, jobs)
    total = sum(len(neurons) for _, _, neurons in record.parts)
    usage = LLMUsage()
    for job in jobs:
        meta_usage = JobMeta.from_meta(job.meta).usage if job is not None else None
        if meta_usage is not None:
            usage = LLMUsage(
                calls=usage.calls + meta_usage.calls,
                prompt_tokens=usage.prompt_tokens + meta_usage.prompt_tokens,
                completion_tokens=usage.completion_tokens + meta_usage.completion_tokens,
            )
    stored = _stored(store, record)
    done = sum(_done(job, len(n)) for job, (_, _, n) in zip(jobs, record.parts, strict=True))
    refused = sorted((item.layer, item.neuron) for item in stored if item.budget_exhausted)
    status = ComparisonStatus(
        comparison_id=cmp_id,
        status=state,
        base=record.request.base,
        target=record.request.target,
        units=record.request.units,
        layers=sorted({layer for _, layer, _ in record.parts}),
        progress=Progress(done=done, total=total),
        base_job_id=record.base_job_id,
        created_at=record.created_at,
        error=error,
        verdicts=dict(Counter(item.verdict for item in stored)),
        usage=usage,
        budget_exhausted=bool(refused),
        not_done=[
            LayerNeurons(layer=layer, neurons=[n for at, n in refused if at == layer])
            for layer in sorted({layer for layer, _ in refused})
        ]
        or None,
    )
    if state == "finished":
        status.comparisons = stored[offset : offset + limit]
        status.comparisons_total = len(stored)
    return status
