"""What a job submission will cost, estimated from the request alone (before anything is enqueued).

Quotas (service/ratelimit.py) refuse a submission up front when this estimate does not fit. It is the
one place the cost model lives; a full dry-run estimate (tokens, money) will extend it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from service.validate import ResolvedRequest

CALIBRATION_STRIDE = 4
"""With k > 1 candidates every 4th explainer record is a calibration record; the same value as
``workers/explain/openai_explainer.CALIBRATION_STRIDE`` (a test keeps them equal)."""


class CallEstimate(BaseModel):
    """The estimated cost of one explanation request, before retries."""

    neurons: int = Field(description="Neurons the request names.")
    llm_calls_per_neuron: int = Field(
        description="LLM requests per neuron: 1 explanation request (k candidates drawn in one), plus "
        "k × ⌊n_explain / 4⌋ calibration simulations when k > 1, plus 2 × n_holdout held-out simulations "
        "(top and random records) when the simulator is `openai`; 0 for the offline baselines."
    )
    llm_calls: int = Field(description="neurons × llm_calls_per_neuron; retries left out.")
    scan_passes: int = Field(
        description="Layer scans the request may start (1: its layer; none runs when the scan is stored)."
    )


def estimate_calls(resolved: ResolvedRequest) -> CallEstimate:
    """The estimate for a resolved request (backends, endpoint and candidates filled in)."""
    request = resolved.request
    options = request.options
    per_neuron = 0
    if request.explainer == "openai":
        candidates = request.candidates or 1
        per_neuron += 1
        if candidates > 1:
            per_neuron += candidates * (options.n_explain // CALIBRATION_STRIDE)
    if request.simulator == "openai":
        per_neuron += 2 * options.n_holdout
    neurons = len(resolved.neurons) * len(resolved.layers)  # the neurons of every requested layer
    return CallEstimate(
        neurons=neurons, llm_calls_per_neuron=per_neuron, llm_calls=neurons * per_neuron, scan_passes=1
    )
