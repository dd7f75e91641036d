"""A job's LLM calls metered in Redis, and the request's budget that admits them.

Every call is reserved before it is made with its estimated cost (workers/llm/call_estimate.py) and
settled when its answer (or failure) comes back. Both are Lua scripts on the job's usage ledger (a hash at
``RedisKeys.llm_usage(job id)``: calls, open calls, tokens, cost) and, with a budget, on the request's
counters (``RedisKeys.budget_calls`` / ``budget_cost``, shared by every job of the request, so a budget
holds across jobs, processes and retries):

- reserve: refuse when the budget's cost (spent, plus the estimates of the calls in flight) has reached
  ``max_cost_usd``, or when one more call passes ``max_llm_calls``; else count the call and add its
  estimate to the budget's cost and to the ledger (``calls``, ``open``, ``cost_usd``). A refused call is
  never made.
- settle: add the reported tokens, replace the estimate by the reported cost (a failed attempt costs 0),
  and close the call (``open`` − 1).

So a call a worker made is counted even when the worker dies before its answer: it stays open, at its
estimated cost. The estimate caps the answer at the request's ``max_tokens``, so a call in flight never
reserves less than it can cost (but for what characters ÷ 4 misjudges of the prompt): every call is
admitted while the budget is not reached, so a cost budget is overrun by at most the one call that reached
it, however many calls are in flight in however many workers (before, each of them could overrun it).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from service.contract import Budget, RedisKeys
from workers.llm.usage import BudgetExhausted

BUDGET_TTL_S = 7 * 24 * 3600
"""How long a budget's counters and a job's usage ledger outlive their last use, seconds (the API resets
them when it enqueues a request's jobs afresh)."""

TOLERANCE_USD = 1e-12
"""Float slack of the cost comparison (the counters are sums of float deltas)."""

_RESERVE = """
local estimate = tonumber(ARGV[4])
if #KEYS > 1 then
  local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
  if ARGV[2] ~= '' and spent >= tonumber(ARGV[2]) - tonumber(ARGV[5]) then
    return -1
  end
  local calls = tonumber(redis.call('GET', KEYS[2]) or '0') + 1
  if ARGV[1] ~= '' and calls > tonumber(ARGV[1]) then
    return -2
  end
  redis.call('SET', KEYS[2], calls, 'EX', ARGV[3])
  redis.call('INCRBYFLOAT', KEYS[3], estimate)
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
redis.call('HINCRBY', KEYS[1], 'calls', 1)
redis.call('HINCRBY', KEYS[1], 'open', 1)
redis.call('HINCRBYFLOAT', KEYS[1], 'cost_usd', estimate)
if ARGV[6] == '0' then
  redis.call('HSET', KEYS[1], 'unpriced', 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

_SETTLE = """
local delta = tonumber(ARGV[3])
redis.call('HINCRBY', KEYS[1], 'open', -1)
redis.call('HINCRBY', KEYS[1], 'prompt_tokens', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'completion_tokens', ARGV[2])
redis.call('HINCRBYFLOAT', KEYS[1], 'cost_usd', delta)
redis.call('EXPIRE', KEYS[1], ARGV[4])
if #KEYS > 1 then
  redis.call('INCRBYFLOAT', KEYS[2], delta)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return 1
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
    """The CallGate of one job (workers/llm/usage.py): its usage ledger, and the request's budget when it
    has one; shared by the threads of the job."""

    def __init__(
        self,
        connection: redis.Redis,
        keys: RedisKeys,
        spec: BudgetSpec | None,
        job_id: str,
        ttl_s: int = BUDGET_TTL_S,
    ) -> None:
        self.spec = spec
        self._ttl_s = max(1, ttl_s)
        self._reserve = connection.register_script(_RESERVE)
        self._settle = connection.register_script(_SETTLE)
        budget = [] if spec is None else [keys.budget_calls(spec.group), keys.budget_cost(spec.group)]
        self._keys = [keys.llm_usage(job_id), *budget]
        self.exhausted = False
        """Set by the first refusal; later reservations are refused without asking Redis."""

    def reserve(self, estimate_usd: float | None) -> None:
        if self.exhausted:
            raise BudgetExhausted(self._describe())
        spec = self.spec or BudgetSpec(group="")
        args: list[str | int] = [
            "" if spec.max_llm_calls is None else str(spec.max_llm_calls),
            "" if spec.max_cost_usd is None else repr(spec.max_cost_usd),
            self._ttl_s,
            repr(estimate_usd or 0.0),
            repr(TOLERANCE_USD),
            "0" if estimate_usd is None else "1",
        ]
        if int(self._reserve(keys=self._keys, args=args)) < 0:
            self.exhausted = True
            raise BudgetExhausted(self._describe())

    def settle(
        self, estimate_usd: float | None, prompt_tokens: int, completion_tokens: int, cost_usd: float | None
    ) -> None:
        delta = (cost_usd or 0.0) - (estimate_usd or 0.0)
        keys = self._keys[:1] + self._keys[2:]  # the ledger, and the budget's cost counter
        self._settle(keys=keys, args=[prompt_tokens, completion_tokens, repr(delta), self._ttl_s])

    def _describe(self) -> str:
        limits = []
        if self.spec is not None and self.spec.max_llm_calls is not None:
            limits.append(f"{self.spec.max_llm_calls} LLM calls")
        if self.spec is not None and self.spec.max_cost_usd is not None:
            limits.append(f"{self.spec.max_cost_usd:g} USD")
        return f"the request's budget ({' or '.join(limits)}) is spent"
