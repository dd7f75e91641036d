"""Checks of pins over RQ: `POST /v1/checks` enqueues one, `GET /v1/checks/{id}` says where it stands.

A check (`chk-<hash>`, service/jobs/ids.py) is one RQ job (:data:`contract.CHECK_TASK`, on the explain
queue) that waits for the scan of its pinned layers (service/jobs/scan.py: a stored scan is reused, a
scan in flight joined) and then re-scores every pin; its typed result (`CheckJobResult`) is the RQ job's
return value, kept `NEURONLENS_RESULT_TTL_S`. A repeat joins the check in flight or answers the finished
one; a failed one (or one whose scan failed) runs again. The resolved request is kept beside the job
(`RedisKeys.job_record`), so the API reads its own record, never the worker's arguments.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from rq.job import JobStatus as RqStatus

from service.contract import (
    CHECK_TASK,
    ERROR_PART_LOST,
    ERROR_SCAN_MISSING,
    CheckJobPayload,
    CheckJobResult,
    CheckRequest,
    CheckStatus,
    JobError,
    JobMeta,
    RedisKeys,
)
from service.estimates.checks import ResolvedCheck
from service.jobs.ids import check_job_id
from service.jobs.part_state import part_state
from service.jobs.queues import JobQueues
from service.jobs.record import Part
from service.jobs.rq_jobs import ACTIVE, delete_job, enqueue_lock, enqueue_payload, fetch_job
from service.jobs.scan import ensure_scan_jobs
from service.settings import Settings

_CHECKING = {"explaining": "checking", "simulating": "checking"}
"""A running check job's stage, in check terms."""


def _forget_missing_scan(connection: redis.Redis, job_meta: JobMeta) -> None:
    """A check that found no scan artifact drops its finished scan job, so the scan runs again."""
    scan_id = job_meta.scan_job_id
    scan = fetch_job(connection, scan_id) if scan_id is not None else None
    if scan is not None and scan.get_status(refresh=False) == RqStatus.FINISHED:
        delete_job(connection, scan)


def submit_check(
    connection: redis.Redis,
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedCheck,
    request_id: str | None = None,
    before_enqueue: Callable[[], None] | None = None,
) -> str:
    """Make sure the check is in flight or finished (joining it, or enqueueing it after its layers' scan);
    its id. ``before_enqueue`` runs just before anything is enqueued and may refuse by raising (quotas)."""
    keys = settings.redis_keys
    check_id = check_job_id(keys, resolved)
    request = resolved.request
    with enqueue_lock(connection, keys, check_id):
        job = fetch_job(connection, check_id)
        status = job.get_status(refresh=False) if job is not None else None
        if status == RqStatus.FINISHED or status in ACTIVE - {RqStatus.DEFERRED}:
            return check_id
        if job is not None and status == RqStatus.DEFERRED:
            state = part_state(connection, _part(check_id, request), job)
            if state.failed_scan is not None:
                # Its scan failed: re-run that scan (RQ keeps its dependents, this check among them).
                ensure_scan_jobs(
                    connection, queues, settings, resolved.scan, request.layer_list(), request_id
                )
                return check_id
            if state.status != "failed":
                return check_id  # it waits for its scan
            # else its scan is no longer recorded: nothing would release it, so it is enqueued afresh
        if before_enqueue is not None:
            before_enqueue()
        if job is not None:
            meta = JobMeta.from_meta(job.meta)
            if meta.error is not None and meta.error.type == ERROR_SCAN_MISSING:
                _forget_missing_scan(connection, meta)
            delete_job(connection, job)
        _enqueue(connection, queues, settings, resolved, check_id, request_id)
    return check_id


def _enqueue(
    connection: redis.Redis,
    queues: JobQueues,
    settings: Settings,
    resolved: ResolvedCheck,
    check_id: str,
    request_id: str | None,
) -> None:
    keys, request = settings.redis_keys, resolved.request
    scan_id = ensure_scan_jobs(connection, queues, settings, resolved.scan, request.layer_list(), request_id)
    if request.budget is not None:  # a fresh run gets a fresh budget
        connection.delete(keys.budget_calls(check_id), keys.budget_cost(check_id))
    ttl = max(settings.result_ttl_s, settings.failure_ttl_s)
    connection.set(keys.job_record(check_id), request.model_dump_json(), ex=ttl)
    payload = CheckJobPayload(
        request=request,
        check_id=check_id,
        llm_models=resolved.llm_models,
        model_revision=resolved.model.revision,
        units_revision=resolved.model.units.revision if resolved.model.units is not None else None,
    )
    meta = JobMeta(
        scan_job_id=scan_id,
        model_revision=resolved.model.revision,
        total=len(request.pins),
        request_id=request_id,
        group=check_id,
    )
    enqueue_payload(
        queues.explain,
        CHECK_TASK,
        payload,
        job_id=check_id,
        meta=meta,
        timeout_s=settings.explain_timeout_s,
        settings=settings,
        depends_on=scan_id,
        description=f"check {len(request.pins)} pins of {request.model} ({check_id})",
    )


def _part(check_id: str, request: CheckRequest) -> Part:
    """The check job seen as one part (service/jobs/part_state.py reads its state and its scan's)."""
    return Part(check_id, request.layer_list()[0], 0, len(request.pins), True)


def _read_request(connection: redis.Redis, keys: RedisKeys, check_id: str) -> CheckRequest | None:
    raw = connection.get(keys.job_record(check_id))
    if raw is None:
        return None
    try:
        return CheckRequest.model_validate_json(raw)  # type: ignore[arg-type]
    except ValueError:
        return None  # another version's record: the check is posted again


def check_status(connection: redis.Redis, keys: RedisKeys, check_id: str) -> CheckStatus | None:
    """Where the check ``check_id`` stands, with every pin's result once finished; None when no check has
    that id (or it expired)."""
    request = _read_request(connection, keys, check_id)
    job = fetch_job(connection, check_id) if request is not None else None
    if request is None or job is None:
        return None
    state = part_state(connection, _part(check_id, request), job)
    base = CheckStatus(
        check_id=check_id,
        status="queued",
        model=request.model,
        model_revision=JobMeta.from_meta(job.meta).model_revision,
        pins_total=len(request.pins),
        created_at=job.created_at,
        ended_at=state.ended_at,
    )
    if state.status == "finished":
        returned = job.return_value()
        if returned is None:
            lost = JobError(
                type=ERROR_PART_LOST, message="the check's result is no longer kept: post it again"
            )
            return base.model_copy(update={"status": "failed", "error": lost})
        result = CheckJobResult.model_validate(returned)
        failed = sum(not r.passed for r in result.results)
        return base.model_copy(
            update={
                "status": "finished",
                "passed": failed == 0,
                "pins_failed": failed,
                "results": result.results,
                "usage": result.usage,
                "budget_exhausted": result.budget_exhausted,
            }
        )
    if state.status == "failed":
        return base.model_copy(update={"status": "failed", "error": state.error})
    return base.model_copy(update={"status": _CHECKING.get(state.status, state.status)})
