"""A request's job record and the API state of the whole request, aggregated over its explain parts.

A request (`exp-<hash>`, what clients see) is a *group*: one scan job for the layers it needs scanned, and
one explain job per (layer, chunk of `explain_chunk_neurons` neurons), id `part-<hash>`. The record
(`RedisKeys.job_record`, JSON in Redis) lists them; a chunk whose reports were all stored when
the request came is listed without a job and counts as done.

queued      no part started or finished yet (queue_position: the smallest of its parts')
scanning    the scan the parts wait for is running
explaining  a part runs (`simulating` when every running part simulates), or some parts finished while
            others wait
finished    every part finished (or was stored already)
failed      a part failed (its error, prefixed with the layer); the others keep running
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from service.contract import (
    ERROR_PART_LOST,
    ExplanationRequest,
    JobError,
    JobMeta,
    JobState,
    LayerNeurons,
    LayerProgress,
    LLMUsage,
    Progress,
    RedisKeys,
)
from service.contract.objects import ObjectStore
from service.jobs.state import ExplainState, ScanReads, explain_state
from service.reports.listing import indexed_neurons

RECORD_VERSION = 1
"""Version of the record's JSON layout."""


@dataclass(frozen=True)
class Part:
    """One (layer, chunk) of a request: the neurons ``neurons[start:stop]`` of the request's neuron list."""

    id: str
    """Explain job id (`part-…`)."""
    layer: int
    start: int
    """Index of the chunk's first neuron in the request's (sorted) neuron list."""
    stop: int
    """One past the index of its last."""
    enqueued: bool
    """False when every report of the chunk was stored when the request came (no job runs it)."""

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class JobRecord:
    """What a job record (`RedisKeys.job_record`) holds: the resolved request, its report variant, its
    scan job and its parts."""

    job_id: str
    request: ExplanationRequest
    """The resolved request (`layer` or a sorted `layers`, `neurons` a sorted list)."""
    variant: str
    scan_job_id: str | None
    """The scan job the parts wait for; None when nothing needed scanning."""
    parts: list[Part]
    created_at: datetime
    ttl_s: int
    """Seconds the record is kept after its last write (refreshed while the request is not over)."""

    @property
    def layers(self) -> list[int]:
        return self.request.layer_list()

    def part_neurons(self, part: Part) -> list[int]:
        return self.request.neuron_list()[part.start : part.stop]

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": RECORD_VERSION,
                "request": self.request.model_dump(mode="json"),
                "variant": self.variant,
                "scan_job_id": self.scan_job_id,
                "parts": [[p.id, p.layer, p.start, p.stop, p.enqueued] for p in self.parts],
                "created_at": self.created_at.isoformat(),
                "ttl_s": self.ttl_s,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, job_id: str, raw: bytes | str) -> JobRecord:
        data = json.loads(raw)
        return cls(
            job_id=job_id,
            request=ExplanationRequest.model_validate(data["request"]),
            variant=str(data["variant"]),
            scan_job_id=data["scan_job_id"],
            parts=[Part(str(i), int(la), int(a), int(b), bool(e)) for i, la, a, b, e in data["parts"]],
            created_at=datetime.fromisoformat(data["created_at"]),
            ttl_s=int(data["ttl_s"]),
        )


def read_record(connection: redis.Redis, keys: RedisKeys, job_id: str) -> JobRecord | None:
    raw = connection.get(keys.job_record(job_id))
    if raw is None:
        return None
    try:
        return JobRecord.from_json(job_id, raw)  # type: ignore[arg-type]
    except (ValueError, KeyError, TypeError):
        return None  # another version's record: the request is posted again


def write_record(connection: redis.Redis, keys: RedisKeys, record: JobRecord) -> None:
    connection.set(keys.job_record(record.job_id), record.to_json(), ex=record.ttl_s)


def now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- state of the parts


@dataclass(frozen=True)
class PartState:
    part: Part
    job: Job | None
    state: ExplainState | None
    """None for a chunk stored when the request came, or whose job expired after storing every report."""
    done: int
    status: JobState
    error: JobError | None = None


_PART_LOST = "this part's job is no longer recorded and its reports are not all stored; post the request "
_PART_LOST += "again to re-run it"


def part_states(
    connection: redis.Redis,
    keys: RedisKeys,
    store: ObjectStore,
    record: JobRecord,
    parts: Sequence[Part] | None = None,
) -> list[PartState]:
    """Where each part of a request stands (its RQ job read with one round trip for all)."""
    chosen = list(record.parts if parts is None else parts)
    enqueued = [p for p in chosen if p.enqueued]
    jobs = Job.fetch_many([p.id for p in enqueued], connection, serializer=JSONSerializer)
    by_id = dict(zip([p.id for p in enqueued], jobs, strict=True))
    scans = ScanReads(connection)
    stored: dict[int, set[int]] = {}
    states = []
    for part in chosen:
        job = by_id.get(part.id)
        if not part.enqueued:
            states.append(PartState(part, None, None, part.size, "finished"))
            continue
        if job is None:
            if part.layer not in stored:
                model, variant = record.request.model, record.variant
                stored[part.layer] = set(indexed_neurons(connection, keys, store, model, part.layer, variant))
            if set(record.part_neurons(part)) <= stored[part.layer]:
                states.append(PartState(part, None, None, part.size, "finished"))
            else:
                lost = JobError(type=ERROR_PART_LOST, message=_PART_LOST)
                states.append(PartState(part, None, None, 0, "failed", lost))
            continue
        state = explain_state(connection, job, scans)
        if state.status == "finished":  # every neuron, less those a budget left without a report
            skipped = JobMeta.from_meta(job.meta).not_done
            done = part.size - len(skipped or [])
        else:
            done = min(state.progress.done, part.size)
        states.append(PartState(part, job, state, done, state.status, state.error))
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


@dataclass(frozen=True)
class GroupState:
    """The API state of a whole request."""

    status: JobState
    progress: Progress
    queue_position: int | None
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    error: JobError | None
    layers: list[LayerProgress]
    usage: LLMUsage | None
    budget_exhausted: bool
    not_done: list[LayerNeurons] | None
    waiting: Job | None
    """A part job that has not ended (for the count of listening workers); None when all ended."""


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


def group_state(states: Sequence[PartState], record: JobRecord) -> GroupState:
    """Aggregate the parts' states (module docstring)."""
    status = _combine(s.status for s in states)
    layers = []
    for layer in record.layers:
        mine = [s for s in states if s.part.layer == layer]
        layers.append(
            LayerProgress(
                layer=layer,
                status=_combine(s.status for s in mine),
                done=sum(s.done for s in mine),
                total=sum(s.part.size for s in mine),
            )
        )
    failed = next((s for s in states if s.status == "failed"), None)
    error = failed.error if failed is not None else None
    if failed is not None and error is not None and len(record.layers) > 1:
        error = error.model_copy(update={"message": f"layer {failed.part.layer}: {error.message}"})
    explained = [s.state for s in states if s.state is not None]
    positions = [x.queue_position for x in explained if x.queue_position is not None]
    started = [x.started_at for x in explained if x.started_at is not None]
    ended = [x.ended_at for x in explained if x.ended_at is not None]
    metas = [JobMeta.from_meta(s.job.meta) for s in states if s.job is not None]
    not_done: dict[int, list[int]] = {}
    for s in states:
        if s.job is not None and (missing := JobMeta.from_meta(s.job.meta).not_done):
            not_done.setdefault(s.part.layer, []).extend(missing)
    terminal = status in ("finished", "failed")
    waiting = next(
        (s.job for s in states if s.job is not None and s.status not in ("finished", "failed")), None
    )
    return GroupState(
        status=status,
        progress=Progress(done=sum(s.done for s in states), total=sum(s.part.size for s in states)),
        queue_position=min(positions) if status == "queued" and positions else None,
        created_at=record.created_at,
        started_at=min(started) if started and status != "queued" else None,
        ended_at=max(ended) if terminal and ended else (record.created_at if terminal else None),
        error=error,
        layers=layers,
        usage=_usage(metas),
        budget_exhausted=any(meta.budget_exhausted for meta in metas),
        not_done=[LayerNeurons(layer=k, neurons=sorted(v)) for k, v in sorted(not_done.items())] or None,
        waiting=waiting,
    )
