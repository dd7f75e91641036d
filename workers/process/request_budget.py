"""A request's budget in Redis: every explain job of the request reserves each LLM call on one counter and
adds what it cost to another (keys from ``contract.budget_calls_key`` / ``budget_cost_key``), so a budget
holds across jobs, processes and retries.

A reservation is one Lua script: it refuses when the cost spent so far has reached ``max_cost_usd``, else
increments the call counter and refuses when that passes ``max_llm_calls``. A refused call is never made.
Cost is known only once a call returns, so a cost budget can be overrun by the calls in flight when it is
reached (at most the endpoint's concurrency).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from service.contract import Budget, RedisKeys
from workers.llm.usage import BudgetExhausted

BUDGET_TTL_S = 7 * 24 * 3600
"""How long a budget's counters outlive their last use, seconds (the API resets them when it enqueues a
request's jobs afresh)."""

_RESERVE = """
local spent = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[2] ~= '' and spent >= tonumber(ARGV[2]) then
  return -1
end
local calls = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if ARGV[1] ~= '' and calls > tonumber(ARGV[1]) then
  return -2
end
return calls
"""


@dataclass(frozen=True)
class BudgetSpec:
    """A request's budget as the API hands it to each of its explain jobs."""

    group: str
    """The request's id: every explain job of the request shares its counters."""
    max_llm_calls: int | None = None
    max_cost_usd: float | None = None

    @classmethod
    def of(cls, group: str | None, budget: Budget | None) -> BudgetSpec | None:
        """The budget of an explain job's payload (its ``group`` and ``budget``; None: no budget)."""
        if budget is None or group is None:
            return None
        return cls(group=group, max_llm_calls=budget.max_llm_calls, max_cost_usd=budget.max_cost_usd)


class RedisBudget:
    """The CallGate of one request budget (workers/llm/usage.py), shared by the threads of one job."""

    def __init__(
        self, connection: redis.Redis, keys: RedisKeys, spec: BudgetSpec, ttl_s: int = BUDGET_TTL_S
    ) -> None:
        self.spec = spec
        self._connection = connection
        self._ttl_s = max(1, ttl_s)
        self._reserve = connection.register_script(_RESERVE)
        self._keys = [keys.budget_calls(spec.group), keys.budget_cost(spec.group)]
        self.exhausted = False
        """Set by the first refusal; later reservations are refused without asking Redis."""

    def reserve(self) -> None:
        if self.exhausted:
            raise BudgetExhausted(self._describe())
        limit_calls = "" if self.spec.max_llm_calls is None else str(self.spec.max_llm_calls)
        limit_cost = "" if self.spec.max_cost_usd is None else repr(self.spec.max_cost_usd)
        answer = int(self._reserve(keys=self._keys, args=[limit_calls, limit_cost, self._ttl_s]))
        if answer < 0:
            self.exhausted = True
            raise BudgetExhausted(self._describe())

    def spend(self, cost_usd: float) -> None:
        pipe = self._connection.pipeline(transaction=False)
        pipe.incrbyfloat(self._keys[1], cost_usd)
        pipe.expire(self._keys[1], self._ttl_s)
        pipe.execute()

    def _describe(self) -> str:
        limits = []
        if self.spec.max_llm_calls is not None:
            limits.append(f"{self.spec.max_llm_calls} LLM calls")
        if self.spec.max_cost_usd is not None:
            limits.append(f"{self.spec.max_cost_usd:g} USD")
        return f"the request's budget ({' or '.join(limits)}) is spent"
