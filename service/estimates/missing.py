"""Why a dry run's tokens or cost are null, in words (the estimate's `llm.missing`)."""

from __future__ import annotations

from service.contract import ExplanationRequest, TokenBasis
from service.estimates.validate import LLM_SETUP_HINT
from service.settings import Settings, llm_endpoint_configs


def missing_figures(
    request: ExplanationRequest, settings: Settings, basis: TokenBasis, cost_usd: float | None
) -> str | None:
    """None when tokens and cost are both known (or no LLM is called); else what is missing and why."""
    if "openai" not in (request.explainer, request.simulator):
        return None
    reasons = []
    if basis == "none":
        reasons.append(
            "tokens: no prompt profile of this model and probe set exists yet (scan a layer first)"
        )
    if cost_usd is None:
        config = llm_endpoint_configs(settings).get(str(request.endpoint)) if request.endpoint else None
        if request.endpoint is None:
            reasons.append(
                "cost: no LLM endpoint is configured, so there are no prices (the call count needs none); "
                + LLM_SETUP_HINT
            )
        elif config is None or not config.has_prices:
            reasons.append(
                f"cost: LLM endpoint '{request.endpoint}' has no prices configured (prompt_usd_per_mtok, "
                "completion_usd_per_mtok)"
            )
        else:
            reasons.append("cost: the tokens are unknown")
    return "; ".join(reasons) or None
