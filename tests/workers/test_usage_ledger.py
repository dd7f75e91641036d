"""Usage that is what was spent (issue 20): every LLM call is metered on the job's Redis ledger when it is
reserved and settled when it is answered, so a worker killed mid-call leaves its calls counted; a cost
budget reserves each call's estimated cost first, so concurrent calls never overshoot it. Against the
loopback LLM peer (tests/llm_peer) and a real Redis; the killed worker is a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from service.contract import RedisKeys
from service.jobs.usage_ledger import ledger_usage
from tests.llm_peer import Fault, LLMPeer
from tests.workers.test_llm_client import MESSAGES, _endpoint
from tests.workers.usage_child import PRICES
from workers.llm.call_estimate import estimated_cost_usd
from workers.llm.caller import LLMCaller
from workers.llm.pool import map_concurrently
from workers.llm.usage import BudgetExhausted, UsageMeter, metering
from workers.process.request_budget import BudgetSpec, RedisBudget

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def _cost(prompt: int, completion: int) -> float:
    return (prompt * 2.5 + completion * 10) / 1e6


def _wait(condition: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_worker_killed_mid_call_leaves_every_call_it_made_counted(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    with LLMPeer() as peer:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.workers.usage_child", redis_url, peer.base_url, "job-killed"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        try:
            assert child.stdout is not None and child.stdin is not None
            assert child.stdout.readline().strip() == "ready"
            peer.add_faults(Fault("hang", 2))
            child.stdin.write("go\n")
            child.stdin.flush()
            _wait(lambda: peer.calls == 5)  # both calls reached the peer, which holds them
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        answered = peer.requests
    usage = ledger_usage(redis_conn.hgetall(RedisKeys().llm_usage("job-killed")))
    assert usage is not None
    assert len(answered) == 3
    prompt, completion = sum(r.prompt_tokens for r in answered), sum(r.completion_tokens for r in answered)
    # Every call the endpoint received is counted, the two the worker never saw answered among them.
    assert (usage.calls, usage.calls_unanswered) == (5, 2)
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt, completion)
    params = {"messages": MESSAGES, "max_tokens": 64}
    estimate = estimated_cost_usd(_endpoint(peer.base_url, **PRICES), params)
    assert estimate is not None
    assert usage.cost_usd == pytest.approx(_cost(prompt, completion) + 2 * estimate)


def test_a_cost_budget_reserves_every_call_in_flight_and_is_overrun_by_one_call_at_most(
    redis_conn: redis.Redis,
) -> None:
    with LLMPeer(latency_ms=30) as peer:
        caller = LLMCaller(_endpoint(peer, concurrency=8, **PRICES))
        one_call = estimated_cost_usd(caller.endpoint, {"messages": MESSAGES, "max_tokens": 24})
        assert one_call is not None
        budget_usd = 20.5 * one_call
        spec = BudgetSpec(group="req-cost", max_cost_usd=budget_usd)
        gate = RedisBudget(redis_conn, RedisKeys(), spec, "job-cost")
        with metering(UsageMeter(gate=gate)), pytest.raises(BudgetExhausted):
            chat = lambda _: caller.chat(MESSAGES, model="peer-simulator", max_tokens=24)  # noqa: E731
            map_concurrently(chat, list(range(200)), 8)
        assert peer.max_in_flight > 1  # calls were in flight together when the budget ran out
    spent = _cost(
        sum(r.prompt_tokens for r in peer.requests), sum(r.completion_tokens for r in peer.requests)
    )
    assert peer.calls >= 20  # the answers cost less than reserved: what was settled made room
    # Overrun by at most the one call that reached it (8 were in flight); what it leaves unspent is at most
    # what the calls in flight when it refused had reserved beyond their cost.
    assert budget_usd - 8 * one_call < spent < budget_usd + one_call
    usage = ledger_usage(redis_conn.hgetall(RedisKeys().llm_usage("job-cost")))
    assert usage is not None and usage.calls == peer.calls and usage.calls_unanswered == 0
    assert usage.cost_usd == pytest.approx(spent)
    assert float(redis_conn.get(RedisKeys().budget_cost("req-cost")) or 0) == pytest.approx(spent)
