"""A request's LLM usage as its workers metered it in Redis: each part job's ledger
(``RedisKeys.llm_usage``, written by workers/process/request_budget.py: every call counted when it is
reserved, settled when it is answered), so the usage a job status shows includes the calls of a worker
that died mid-job, of every retry and of every re-run (a re-run part keeps its job id, and so its
ledger). A part without a ledger (enqueued before ledgers existed) counts with the usage its worker wrote
into the job's meta."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from service.contract import JobMeta, LLMUsage, RedisKeys
from service.jobs.part_state import PartState


def ledger_usage(fields: dict[bytes, bytes]) -> LLMUsage | None:
    """One job's usage from its ledger hash (as HGETALL returns it); None when it has none."""
    if not fields:
        return None
    got = {key.decode(): value.decode() for key, value in fields.items()}
    cost = max(0.0, float(got.get("cost_usd", "0")))
    return LLMUsage(
        calls=int(got.get("calls", "0")),
        prompt_tokens=int(got.get("prompt_tokens", "0")),
        completion_tokens=int(got.get("completion_tokens", "0")),
        cost_usd=None if "unpriced" in got else round(cost, 9),
        calls_unanswered=max(0, int(got.get("open", "0"))),
    )


def request_usage(connection: redis.Redis, keys: RedisKeys, states: Sequence[PartState]) -> LLMUsage | None:
    """The sum of the parts' usage (one round trip for every ledger); None when no part made calls."""
    pipe = connection.pipeline(transaction=False)
    for state in states:
        pipe.hgetall(keys.llm_usage(state.part.id))
    found: list[LLMUsage] = []
    for state, fields in zip(states, pipe.execute(), strict=True):
        usage = ledger_usage(fields)
        if usage is None and state.job is not None:
            usage = JobMeta.from_meta(state.job.meta).usage
        if usage is not None:
            found.append(usage)
    if not found:
        return None
    costs = [u.cost_usd for u in found if u.cost_usd is not None]
    return LLMUsage(
        calls=sum(u.calls for u in found),
        prompt_tokens=sum(u.prompt_tokens for u in found),
        completion_tokens=sum(u.completion_tokens for u in found),
        cost_usd=round(sum(costs), 9) if costs else None,
        calls_unanswered=sum(u.calls_unanswered for u in found),
    )
