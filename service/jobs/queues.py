"""The RQ queues of one deployment."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from service.contract import EXPLAIN_QUEUE, SCAN_QUEUE
from service.settings import Settings


@dataclass(frozen=True)
class JobQueues:
    """The two RQ queues of one deployment (named by ``settings.redis_keys``)."""

    scan: Queue
    explain: Queue

    @classmethod
    def connect(cls, connection: redis.Redis, settings: Settings) -> JobQueues:
        def queue(name: str) -> Queue:
            return Queue(settings.redis_keys.queue(name), connection=connection, serializer=JSONSerializer)

        return cls(scan=queue(SCAN_QUEUE), explain=queue(EXPLAIN_QUEUE))

    def all(self) -> list[Queue]:
        return [self.scan, self.explain]
