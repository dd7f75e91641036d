"""Where a request stands: ONE model, derived from its job record (service/jobs/record.py) and the RQ
jobs of its parts (service/jobs/part_state.py), and the API's `JobStatus` from it.

queued      no part started or finished yet (queue_position: the smallest of its parts')
scanning    the scan the parts wait for is running
explaining  a part runs (`simulating` when every running part simulates), or some parts finished while
            others wait
finished    every part finished (or was stored already)
failed      a part failed (its error, prefixed with the layer); the others keep running
cancelled   `DELETE /v1/jobs/{id}` cancelled it (service/jobs/cancel.py); stored reports are kept
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis
from rq.job import Job

from service.contract import (
    ERROR_PART_LOST,
    JobError,
    JobMeta,
    JobState,
    JobStatus,
    LayerNeurons,
    LayerProgress,
    LLMUsage,
    NeuronReport,
    Progress,
    RedisKeys,
)
from service.contract.objects import ObjectStore
from service.jobs.part_state import PartState, ScanReads, part_state
from service.jobs.record import JobRecord, Part, note_state, read_durable, read_record
from service.jobs.rq_jobs import fetch_jobs, listening_workers
from service.jobs.scan import scan_state
from service.reports.exemplar_links import link_exemplar_images
from service.reports.listing import indexed_neurons

_PART_LOST = JobError(
    type=ERROR_PART_LOST,
    message="this part's job is no longer recorded and its reports are not all stored; post the request "
    "again to re-run it",
)


def part_states(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    record: JobRecord,
    parts: Sequence[Part] | None = None,
) -> list[PartState]:
    """Where each part of a request stands (its RQ job read with one round trip for all). A part without
    a job is finished when its reports are stored (it was stored when the request came, or its job expired
    after storing them), else failed (lost)."""
    chosen = list(record.parts if parts is None else parts)
    enqueued = [p for p in chosen if p.enqueued]
    by_id = dict(zip([p.id for p in enqueued], fetch_jobs(connection, [p.id for p in enqueued]), strict=True))
    scans = ScanReads(connection)
    stored: dict[int, set[int]] = {}
    states = []
    for part in chosen:
        job = by_id.get(part.id)
        if job is not None:
            states.append(part_state(connection, part, job, scans))
            continue
        if part.enqueued and part.layer not in stored:
            model, variant = record.request.model, record.variant
            stored[part.layer] = set(indexed_neurons(connection, keys, store, model, part.layer, variant))
        if not part.enqueued or set(record.part_neurons(part)) <= stored[part.layer]:
            states.append(PartState(part, None, "finished", part.size))
        else:
            states.append(PartState(part, None, "failed", 0, error=_PART_LOST))
    return states


def _combine(statuses: Iterable[JobState]) -> JobState:
    seen = list(statuses)
    if "failed" in seen:
        return "failed"
    if all(s == "finished" for s in seen):
        return "finished"
    running = [s for s in seen if s in ("explaining", "simulating")]
    if running:
        return "simulating" if all(s == "simulating" for s in running) else "explaining"
    if "scanning" in seen:
        return "scanning"
    return "explaining" if "finished" in seen else "queued"


def _usage(metas: Iterable[JobMeta]) -> LLMUsage | None:
    found = [meta.usage for meta in metas if meta.usage is not None]
    if not found:
        return None
    costs = [u.cost_usd for u in found if u.cost_usd is not None]
    return LLMUsage(
        calls=sum(u.calls for u in found),
        prompt_tokens=sum(u.prompt_tokens for u in found),
        completion_tokens=sum(u.completion_tokens for u in found),
        cost_usd=sum(costs) if costs else None,
    )


def _layers(states: Sequence[PartState], record: JobRecord) -> list[LayerProgress]:
    layers = []
    for layer in record.layers:
        mine = [s for s in states if s.part.layer == layer]
        status = _combine(s.status for s in mine)
        done, total = sum(s.done for s in mine), sum(s.part.size for s in mine)
        layers.append(LayerProgress(layer=layer, status=status, done=done, total=total))
    return layers


def request_state(states: Sequence[PartState], record: JobRecord) -> JobStatus:
    """The request's state aggregated over its parts' (module docstring): every field of its `JobStatus`
    but those read elsewhere (`reports`, `reports_total`, `workers`, `scan`)."""
    status = _combine(s.status for s in states)
    failed = next((s for s in states if s.status == "failed"), None)
    error = failed.error if failed is not None else None
    if failed is not None and error is not None and len(record.layers) > 1:
        error = error.model_copy(update={"message": f"layer {failed.part.layer}: {error.message}"})
    positions = [s.queue_position for s in states if s.queue_position is not None]
    started = [s.started_at for s in states if s.started_at is not None]
    ended = [s.ended_at for s in states if s.ended_at is not None]
    metas = [JobMeta.from_meta(s.job.meta) for s in states if s.job is not None]
    not_done: dict[int, list[int]] = {}
    for s in states:
        if s.job is not None and (missing := JobMeta.from_meta(s.job.meta).not_done):
            not_done.setdefault(s.part.layer, []).extend(missing)
    if record.cancelled_at is not None:  # parts still running stop after their current neuron
        status, error = "cancelled", None
    terminal = status in ("finished", "failed", "cancelled")
    return JobStatus(
        job_id=record.job_id,
        status=status,
        progress=Progress(done=sum(s.done for s in states), total=sum(s.part.size for s in states)),
        queue_position=min(positions) if status == "queued" and positions else None,
        created_at=record.created_at,
        started_at=min(started) if started and status != "queued" else None,
        ended_at=record.cancelled_at
        or (max(ended) if terminal and ended else (record.created_at if terminal else None)),
        error=error,
        layers=_layers(states, record),
        usage=_usage(metas),
        budget_exhausted=any(meta.budget_exhausted for meta in metas),
        not_done=[LayerNeurons(layer=k, neurons=sorted(v)) for k, v in sorted(not_done.items())] or None,
    )


def _waiting(states: Sequence[PartState]) -> Job | None:
    """A part job that has not ended (for the count of listening workers); None when all ended."""
    return next((s.job for s in states if s.job is not None and s.status not in ("finished", "failed")), None)


def _reports_page(
    store: ObjectStore, record: JobRecord, status: JobStatus, offset: int, limit: int
) -> tuple[list[NeuronReport], int]:
    """A page of a finished request's reports in (layer, neuron) order, and how many there are."""
    refs = record.report_refs({entry.layer: set(entry.neurons) for entry in status.not_done or []})
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
    return reports, len(refs)


def job_status(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    job_id: str,
    offset: int = 0,
    limit: int = 100,
) -> JobStatus | None:
    """`GET /v1/jobs/{job_id}`: None when no request has that id; the request's state, and once finished a
    page of its reports in (layer, neuron) order. A request Redis no longer holds is answered from its
    durable record: the last state derived while Redis held it once that state was final, else derived
    again from what is stored."""
    record = read_record(connection, keys, job_id)
    if record is None:
        durable = read_durable(store, job_id)
        if durable is None:
            return None
        record, last = durable
        if last is not None and last.status in FINAL:
            return _with_reports(store, record, last, offset, limit)
        return _derived(connection, keys, store, record, offset, limit)
    return _derived(connection, keys, store, record, offset, limit)


FINAL = frozenset({"finished", "failed", "cancelled"})
"""States a request stays in until it is posted again."""


def _with_reports(
    store: ObjectStore, record: JobRecord, status: JobStatus, offset: int, limit: int
) -> JobStatus:
    if status.status != "finished":
        return status
    page, total = _reports_page(store, record, status, offset, limit)
    return status.model_copy(update={"reports": page, "reports_total": total})


def _derived(
    connection: redis.Redis, keys: RedisKeys, store: ObjectStore, record: JobRecord, offset: int, limit: int
) -> JobStatus:
    """The request's state derived from its parts' jobs (noted in its durable record when it changed)."""
    states = part_states(connection, keys, store, record)
    status = request_state(states, record)
    ended = status.status in FINAL
    if not ended:
        connection.expire(keys.job_record(record.job_id), record.ttl_s)  # a request kept waiting keeps it
    waiting = _waiting(states)
    changes: dict[str, object] = {
        "workers": None if ended else (listening_workers(connection, waiting) if waiting else 0),
        "scan": scan_state(connection, record.scan_job_id) if record.scan_job_id is not None else None,
    }
    status = status.model_copy(update=changes)
    note_state(connection, keys, store, record, status)
    return _with_reports(store, record, status, offset, limit)
