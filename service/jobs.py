"""Enqueue and deduplicate explanation work over RQ (JSON serializer; tasks named by dotted path).

A request becomes two jobs: a scan job per (model, revision, hook, layer, dataset, scan options) on the
``scan`` queue, and an explain job on the ``explain`` queue that depends on it. Both ids are hashes of
what determines their output, so a repeat joins the job in flight and two API replicas create one job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis
from rq import Queue
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.worker_registration import get_keys as registered_worker_keys

from service.contract import (
    ERROR_SCAN_MISSING,
    EXPLAIN_JOB_PREFIX,
    EXPLAIN_TASK,
    PIPELINE_VERSION,
    ExplanationRequest,
    JobMeta,
    JobStatus,
    LayerNeurons,
    NeuronReport,
    budget_calls_key,
    budget_cost_key,
    dataset_identity,
    report_key,
)
from service.exemplar_links import link_exemplar_images
from service.job_state import explain_state
from service.queues import JobQueues
from service.report_store import ReportStore, index_lacks_any
from service.scan_jobs import (
    LOCK_TIMEOUT_S,
    digest,
    ensure_scan_jobs,
    fetch_job,
    retry_policy,
)
from service.settings import Settings
from service.validate import ResolvedRequest

__all__ = ["JobQueues", "Submission", "explain_job_id", "fetch_job", "job_status", "submit_explanation"]


def explain_job_id(resolved: ResolvedRequest) -> str:
    """Id of the explain job: a hash of the canonical resolved request (backends, endpoint and k included),
    the model revision, the probe set, the endpoint's model names and the pipeline version."""
    payload = {
        "request": resolved.request.model_dump(mode="json"),
        "revision": resolved.model.revision,
        "dataset": dataset_identity(resolved.dataset),
        "llm_models": resolved.llm_models.model_dump(mode="json") if resolved.llm_models else None,
        "pipeline": PIPELINE_VERSION,
    }
    return EXPLAIN_JOB_PREFIX + digest(payload)


def variant_report_keys(request: ExplanationRequest, variant: str) -> list[str]:
    """Artifact-store keys of a request's reports of one report variant, in neuron order."""
    return [report_key(request.model, request.only_layer(), n, variant) for n in request.neuron_list()]


def request_report_keys(resolved: ResolvedRequest) -> list[str]:
    """Artifact-store keys of the reports a resolved request produces, in neuron order."""
    return variant_report_keys(resolved.request, resolved.variant)


def stored_reports(
    connection: redis.Redis, store: ReportStore, resolved: ResolvedRequest
) -> list[bytes] | None:
    """The stored report JSON of every neuron of a resolved request, or None when any is missing. The
    Redis index answers "not all" without touching the store; otherwise (all indexed, or the index lost)
    the objects are read, and they decide."""
    request = resolved.request
    if index_lacks_any(
        connection, request.model, request.only_layer(), resolved.variant, request.neuron_list()
    ):
        return None
    values = store.read_many(request_report_keys(resolved))
    if any(value is None for value in values):
        return None
    return [value for value in values if value is not None]


# --------------------------------------------------------------------------- submission


@dataclass(frozen=True)
class Submission:
    """What `POST /v1/explanations` answers: stored reports at once, or the job that will produce them."""

    job_id: str
    reports: list[bytes] | None
    """Every requested report's JSON when all were already stored (nothing was enqueued)."""


def _forget_finished_scan(connection: redis.Redis, explain: Job) -> None:
    """Drop the finished scan job of an explain job whose scan artifact was missing, so it runs again."""
    scan_id = JobMeta.from_meta(explain.meta).scan_job_id
    scan = fetch_job(connection, scan_id) if scan_id is not None else None
    if scan is not None and scan.get_status(refresh=False) == RqStatus.FINISHED:
        scan.delete()


def _enqueue_explain(
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedRequest,
    job_id: str,
    scan_id: str,
    request_id: str | None,
) -> None:
    request = resolved.request
    models = resolved.llm_models
    budget = None
    if request.budget is not None:
        # A fresh run of the request gets a fresh budget; every explain job of it shares the counters.
        queues.explain.connection.delete(budget_calls_key(job_id), budget_cost_key(job_id))
        budget = {"group": job_id, **request.budget.model_dump(mode="json")}
    queues.explain.enqueue_call(
        func=EXPLAIN_TASK,
        # The worker checks that its own endpoint models and registry give the same variant.
        kwargs={
            "request": request.model_dump(mode="json"),
            "llm_models": models.model_dump(mode="json") if models is not None else None,
            "variant": resolved.variant,
            "budget": budget,
        },
        timeout=settings.explain_timeout_s,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.failure_ttl_s,
        job_id=job_id,
        retry=retry_policy(settings),
        depends_on=scan_id,
        meta=JobMeta(
            scan_job_id=scan_id,
            model_revision=resolved.model.revision,
            total=len(resolved.neurons),
            request_id=request_id,
        ).to_meta(),
        description=f"explain {resolved.model.id} layer {request.layer}: {len(resolved.neurons)} neurons",
    )


def submit_explanation(
    connection: redis.Redis,
    store: ReportStore,
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedRequest,
    request_id: str | None = None,
    before_enqueue: Callable[[], None] | None = None,
) -> Submission:
    """Answer with the stored reports, join the job in flight, re-run a failed one, or enqueue a new one.
    ``request_id`` (the HTTP request's X-Request-ID) goes into the meta of the jobs it enqueues;
    ``before_enqueue`` runs just before anything is enqueued and may refuse by raising (quotas)."""
    admit = before_enqueue or (lambda: None)
    job_id = explain_job_id(resolved)
    reports = stored_reports(connection, store, resolved)
    if reports is not None:
        return Submission(job_id=job_id, reports=reports)
    with connection.lock(f"nl:lock:{job_id}", timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_TIMEOUT_S):
        job = fetch_job(connection, job_id)
        if job is not None:
            state = explain_state(connection, job)
            if state.status == "finished":
                # It may have finished between the check above and taking the lock.
                reports = stored_reports(connection, store, resolved)
                if reports is not None:
                    return Submission(job_id=job_id, reports=reports)
            elif state.status != "failed":
                return Submission(job_id=job_id, reports=None)
        admit()  # from here on something is enqueued
        if job is not None:
            if state.failed_scan is not None:
                # The explain job is still registered as a dependent of the scan: re-running the scan
                # releases it once the scan finishes.
                ensure_scan_jobs(
                    connection, queues, settings, resolved, [resolved.request.only_layer()], request_id
                )
                return Submission(job_id=job_id, reports=None)
            # Failed, or finished while some reports went missing since: start over under the same id.
            if state.error is not None and state.error.type == ERROR_SCAN_MISSING:
                _forget_finished_scan(connection, job)
            job.delete()
        scan_id = ensure_scan_jobs(
            connection, queues, settings, resolved, [resolved.request.only_layer()], request_id
        )
        _enqueue_explain(queues, settings, resolved, job_id, scan_id, request_id)
    return Submission(job_id=job_id, reports=None)


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


def job_status(
    connection: redis.Redis, store: ReportStore, job_id: str, offset: int = 0, limit: int = 100
) -> JobStatus | None:
    """`GET /v1/jobs/{job_id}`: None when no explain job has that id; reports paged once finished (read
    from the store)."""
    if not job_id.startswith(EXPLAIN_JOB_PREFIX):
        return None
    job = fetch_job(connection, job_id)
    if job is None:
        return None
    state = explain_state(connection, job)
    meta = JobMeta.from_meta(job.meta)
    request = ExplanationRequest.model_validate(job.kwargs["request"])
    reports: list[NeuronReport] | None = None
    total: int | None = None
    if state.status == "finished":
        variant = str(job.kwargs.get("variant", ""))
        keys = variant_report_keys(request, variant)
        total = len(keys)
        page = keys[offset : offset + limit]
        values = store.read_many(page)
        reports = [
            link_exemplar_images(NeuronReport.model_validate_json(v), request, variant)
            for v in values
            if v is not None
        ]
    return JobStatus(
        job_id=job_id,
        status=state.status,
        progress=state.progress,
        queue_position=state.queue_position,
        created_at=state.created_at,
        started_at=state.started_at,
        ended_at=state.ended_at,
        error=state.error,
        reports=reports,
        reports_total=total,
        workers=None if state.status in ("finished", "failed") else listening_workers(connection, job),
        usage=meta.usage,
        budget_exhausted=meta.budget_exhausted,
        not_done=[LayerNeurons(layer=request.only_layer(), neurons=meta.not_done)] if meta.not_done else None,
    )
