"""A cost budget must cover at least one LLM call: `max_cost_usd` below the estimated cost of one call of
the request (the dry run's USD over its calls, from the layer's prompt profile) is refused with a 422, as
it could only stop the job before its first call. Where the dry run cannot price the request (no prompt
profile yet, so its tokens are unknown) the budget is accepted; the workers still refuse any call whose
estimated cost it cannot cover."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.contract.objects import ObjectStore
from service.estimates.estimate import estimate_cost
from service.problems import InvalidInput
from service.settings import Settings

if TYPE_CHECKING:
    from service.estimates.validate import ResolvedRequest


def check_cost_budget(resolved: ResolvedRequest, store: ObjectStore, settings: Settings) -> None:
    """Raise InvalidInput (`budget.max_cost_usd`) when the request's cost budget is below one call's cost."""
    budget = resolved.request.budget
    if budget is None or budget.max_cost_usd is None:
        return
    llm = estimate_cost(resolved, store, settings).llm
    if not llm.calls or llm.cost_usd is None:
        return
    per_call = llm.cost_usd / llm.calls
    if budget.max_cost_usd < per_call:
        raise InvalidInput.for_field(
            "budget.max_cost_usd",
            f"{budget.max_cost_usd:g} USD is below the estimated cost of one LLM call of this request "
            f"({per_call:.6g} USD, the dry run's {llm.cost_usd:g} USD over {llm.calls} calls), so no call "
            "could be made: raise it, or ask for a dry run to see the request's cost",
        )
