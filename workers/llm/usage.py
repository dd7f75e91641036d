"""What LLM calls spend, counted where they are made, and the gate a budget puts in front of them.

Every HTTP request the LLM caller makes (retries included) is counted by the :class:`UsageMeter` that is
current in its context: an explain job sets one for the job (:func:`metering`), each neuron a child of it,
so a report carries its own neuron's calls, tokens and cost and the job their sum. Pool threads carry the
context along (workers/llm/pool.py copies it into every call). Before each request the meter asks the
job's :class:`CallGate` (workers/process/request_budget.py: the job's usage ledger in Redis and the request's
budget) to reserve the call with its estimated cost; a refusal raises :class:`BudgetExhausted` instead of
calling, which abandons the neuron in progress. When the answer (or the failure) comes back the gate settles
the reservation with what the endpoint reported, so a call whose worker died in flight stays counted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from service.contract import LLMUsage


class BudgetExhausted(Exception):
    """The request's budget refused an LLM call: the neuron in progress is abandoned, the job stops."""


class CallGate(Protocol):
    """Meters a job's LLM calls where they outlive the worker (reserved before, settled after) and admits
    them against the limit shared by every job of one request, if any."""

    def reserve(self, estimate_usd: float | None) -> None:
        """Reserve one call and its estimated cost (USD; None: the endpoint has no prices) before it is
        made; raise BudgetExhausted when the budget cannot cover it."""
        ...

    def settle(
        self, estimate_usd: float | None, prompt_tokens: int, completion_tokens: int, cost_usd: float | None
    ) -> None:
        """Replace a reserved call's estimate by what it cost (its tokens as reported; 0 for a failure)."""
        ...


class UsageMeter:
    """Calls, tokens and cost of one scope (a job, or one neuron of it), thread-safe. A child adds what it
    counts to its parent as well; the root's gate (if any) admits every call of the tree."""

    def __init__(self, parent: UsageMeter | None = None, gate: CallGate | None = None) -> None:
        self.parent = parent
        self.gate = gate
        self._lock = threading.Lock()
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd: float | None = None
        self.priced = True
        """False once a call of an endpoint without prices was counted (the cost is then unknown)."""

    def child(self) -> UsageMeter:
        """A meter of a part of this scope (one neuron of a job)."""
        return UsageMeter(parent=self)

    def reserve(self, estimate_usd: float | None = None) -> None:
        """Ask the gates of the tree for one call of this estimated cost; BudgetExhausted when one refuses."""
        meter: UsageMeter | None = self
        while meter is not None:
            if meter.gate is not None:
                meter.gate.reserve(estimate_usd)
            meter = meter.parent

    def record(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float | None,
        estimate_usd: float | None = None,
    ) -> None:
        """Count one made request (its tokens as the endpoint reported them; 0 for a failed attempt) and
        settle its reservation (``estimate_usd``, what :meth:`reserve` was given) with the gates."""
        meter: UsageMeter | None = self
        while meter is not None:
            with meter._lock:
                meter.calls += 1
                meter.prompt_tokens += prompt_tokens
                meter.completion_tokens += completion_tokens
                if cost_usd is None:
                    meter.priced = False
                elif meter.priced:
                    meter.cost_usd = (meter.cost_usd or 0.0) + cost_usd
            if meter.gate is not None:
                meter.gate.settle(estimate_usd, prompt_tokens, completion_tokens, cost_usd)
            meter = meter.parent

    def usage(self) -> LLMUsage:
        """What this scope spent so far (cost null when any call had no prices, or none was made)."""
        with self._lock:
            cost = round(self.cost_usd, 9) if self.priced and self.cost_usd is not None else None
            return LLMUsage(
                calls=self.calls,
                prompt_tokens=self.prompt_tokens,
                completion_tokens=self.completion_tokens,
                cost_usd=cost,
            )


def add_usage(first: LLMUsage, second: LLMUsage) -> LLMUsage:
    """Two scopes' usage together (cost null when either made calls without prices)."""
    costs = [u.cost_usd for u in (first, second) if u.calls]
    return LLMUsage(
        calls=first.calls + second.calls,
        prompt_tokens=first.prompt_tokens + second.prompt_tokens,
        completion_tokens=first.completion_tokens + second.completion_tokens,
        cost_usd=None if not costs or None in costs else round(sum(c or 0.0 for c in costs), 9),
    )


_CURRENT: ContextVar[UsageMeter | None] = ContextVar("neuronlens_llm_meter", default=None)


def current_meter() -> UsageMeter | None:
    """The meter that counts LLM calls made in this context (None: nothing counts them)."""
    return _CURRENT.get()


@contextmanager
def metering(meter: UsageMeter) -> Iterator[UsageMeter]:
    """Count the LLM calls made inside the block (and in pool threads started from it) with ``meter``."""
    token = _CURRENT.set(meter)
    try:
        yield meter
    finally:
        _CURRENT.reset(token)
