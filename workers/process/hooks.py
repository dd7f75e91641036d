"""Releasing the webhook deliveries of requests whose scan failed.

The API's hook job of a request (`contract.hook_job_id`, on the `webhooks` queue) waits for the
request's explain parts to end, failures allowed. A part waiting on a scan that fails never runs: RQ
leaves it deferred, and with it the hook job, although the request reads `failed` from then on. When a
scan job fails for good (no retry left), the worker (workers/process/rq_worker.py) walks the jobs waiting
on it (a merge of shards, then the explain parts) and replaces the deferred hook job of each part's
request (`JobMeta.group`) by the same job with nothing to wait for: the request's `job.failed` webhook
goes out.
"""

from __future__ import annotations

from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from service.contract import EXPLAIN_PART_PREFIX, SCAN_JOB_PREFIX, JobMeta, hook_job_id


def _fetch(job: Job, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=job.connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def _waiting_groups(scan: Job) -> set[str]:
    """The requests (`exp-…`) whose parts wait on ``scan``, directly or through a merge of shards."""
    groups: set[str] = set()
    pending, seen = list(scan.dependent_ids), set[str]()
    while pending:
        job_id = pending.pop()
        if job_id in seen or len(seen) > 10_000:
            continue
        seen.add(job_id)
        dependent = _fetch(scan, job_id)
        if dependent is None:
            continue
        if job_id.startswith(EXPLAIN_PART_PREFIX):
            group = JobMeta.from_meta(dependent.meta).group
            if group is not None:
                groups.add(group)
        elif job_id.startswith(SCAN_JOB_PREFIX):
            pending.extend(dependent.dependent_ids)
    return groups


def release_hooks(job: Job) -> None:
    """When the scan ``job`` failed for good (after RQ recorded it), enqueue the deferred hook jobs of the
    requests waiting on it (module docstring)."""
    if not job.id.startswith(SCAN_JOB_PREFIX) or job.get_status(refresh=True) != JobStatus.FAILED:
        return
    for group in _waiting_groups(job):
        hook = _fetch(job, hook_job_id(group))
        if hook is None or hook.get_status(refresh=False) != JobStatus.DEFERRED:
            continue
        queue = Queue(hook.origin, connection=job.connection, serializer=JSONSerializer)
        func, kwargs, description = str(hook.func_name), hook.kwargs, hook.description
        timeout = int(hook.timeout) if hook.timeout is not None else None
        result_ttl, failure_ttl = hook.result_ttl, hook.failure_ttl
        hook.delete()
        queue.enqueue_call(
            func=func,
            kwargs=kwargs,
            timeout=timeout,
            result_ttl=result_ttl,
            failure_ttl=failure_ttl,
            job_id=hook_job_id(group),
            description=description,
        )
