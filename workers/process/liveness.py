"""Worker liveness from Redis (`neuronlens-worker --check`, the Kubernetes liveness probe): how long ago a
worker's RQ heartbeat was, against the abandon window (``ABANDON_AFTER_BEATS`` missed beats)."""

from __future__ import annotations

import socket
from collections.abc import Collection
from datetime import UTC, datetime

import redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

ABANDON_AFTER_BEATS = 3
"""A running job whose worker missed this many heartbeats in a row is declared abandoned (and retried)."""


def check_liveness(
    connection: redis.Redis,
    heartbeat_s: int,
    name: str | None = None,
    hostname: str | None = None,
    queues: Collection[str] | None = None,
) -> tuple[bool, str]:
    """``(alive, reason)``: whether a worker beat within ``ABANDON_AFTER_BEATS`` heartbeat periods of
    ``heartbeat_s`` seconds.

    The worker is the one called ``name``, else the newest registered worker started on ``hostname``
    (default: this host, which in Kubernetes is the pod, so a restarted container is judged, not the
    key its killed predecessor left behind) that listens on one of ``queues`` (RQ's worker registry is
    shared by every deployment on the Redis; None: any queue).
    """
    limit_s = ABANDON_AFTER_BEATS * heartbeat_s
    host = hostname or socket.gethostname()
    if name is not None:
        key = SimpleWorker.redis_worker_namespace_prefix + name
        found = SimpleWorker.find_by_key(key, connection=connection, serializer=JSONSerializer)
        candidates = [found] if found is not None else []
        who = f"worker {name}"
    else:
        candidates = [
            worker
            for worker in SimpleWorker.all(connection=connection, serializer=JSONSerializer)
            if worker.hostname == host and (queues is None or set(worker.queue_names()) & set(queues))
        ]
        who = f"the newest worker on host {host}"
    if not candidates:
        return False, f"{who}: not registered in Redis"
    oldest = datetime.min.replace(tzinfo=UTC)
    worker = max(candidates, key=lambda w: _aware(w.birth_date) or oldest)
    beat = _aware(worker.last_heartbeat)
    if beat is None:
        return False, f"{who} ({worker.name}): no heartbeat recorded"
    age_s = (datetime.now(UTC) - beat).total_seconds()
    verdict = "fresh" if age_s <= limit_s else "stale"
    return (
        age_s <= limit_s,
        f"{who} ({worker.name}): last heartbeat {age_s:.1f} s ago ({verdict}, limit {limit_s} s)",
    )


def _aware(moment: datetime | None) -> datetime | None:
    """RQ stores UTC timestamps; older versions parse them naive."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
