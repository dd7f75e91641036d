"""A worker stand-in for tests/workers/test_usage_ledger.py: meters LLM calls on a job's Redis ledger and
is SIGKILLed by the test while two of them are in flight.

python -m tests.workers.usage_child REDIS_URL BASE_URL JOB_ID: three calls one after the other, then
"ready" on stdout; on a line from stdin, two calls at once (the peer hangs them)."""

from __future__ import annotations

import sys

import redis

from service.contract import RedisKeys
from tests.workers.test_llm_client import MESSAGES, _endpoint
from workers.llm.caller import LLMCaller
from workers.llm.pool import map_concurrently
from workers.llm.usage import UsageMeter, metering
from workers.process.request_budget import RedisBudget

PRICES = {"prompt_usd_per_mtok": 2.5, "completion_usd_per_mtok": 10.0}


def main(redis_url: str, base_url: str, job_id: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    caller = LLMCaller(_endpoint(base_url, timeout_s=600.0, **PRICES))
    meter = UsageMeter(gate=RedisBudget(connection, RedisKeys(), None, job_id))
    with metering(meter):
        for _ in range(3):
            caller.chat(MESSAGES, model="peer-simulator", max_tokens=64)
        print("ready", flush=True)
        sys.stdin.readline()
        map_concurrently(lambda _: caller.chat(MESSAGES, model="peer-simulator", max_tokens=64), [0, 1], 2)


if __name__ == "__main__":
    main(*sys.argv[1:4])
