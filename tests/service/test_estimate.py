"""The call estimate quotas charge (service/estimates/estimate.py); its exactness against real LLM jobs is
checked in tests/service/test_llm_jobs.py."""

from __future__ import annotations

from service.contract import ExplanationRequest, load_registry
from service.estimates.estimate import estimate_calls
from service.estimates.validate import resolve_request
from service.settings import LLMEndpointConfig, Settings


def _estimate(body: dict[str, object], settings: Settings) -> tuple[int, int, int]:
    resolved = resolve_request(load_registry(), ExplanationRequest.model_validate(body), 4096, settings)
    estimate = estimate_calls(resolved)
    return estimate.neurons, estimate.llm_calls, estimate.scan_passes


def test_estimates_scale_with_neurons_candidates_and_held_out_records(settings: Settings) -> None:
    llm = settings.model_copy(
        update={
            "llm_endpoints": {"e": LLMEndpointConfig(base_url="http://127.0.0.1:9/v1", explainer_model="m")}
        }
    )
    base = {"model": "minilm-l6", "layer": 1, "neurons": {"start": 0, "stop": 100}}
    assert _estimate(base, settings) == (100, 0, 1)  # the offline baseline calls no LLM
    assert _estimate(base, llm) == (100, 100 * (1 + 2 * 10), 1)
    k4 = {**base, "candidates": 4, "options": {"n_explain": 12, "n_holdout": 3}}
    assert _estimate(k4, llm) == (100, 100 * (1 + 4 * 3 + 2 * 3), 1)
    assert _estimate({**base, "simulator": "baseline"}, llm) == (100, 100, 1)


def test_a_request_of_several_layers_counts_the_neurons_of_each(settings: Settings) -> None:
    llm = settings.model_copy(
        update={
            "llm_endpoints": {"e": LLMEndpointConfig(base_url="http://127.0.0.1:9/v1", explainer_model="m")}
        }
    )
    three = {"model": "minilm-l6", "layers": [0, 2, 4], "neurons": {"start": 0, "stop": 100}}
    assert _estimate(three, llm)[:2] == (300, 300 * (1 + 2 * 10))
    every = {"model": "minilm-l6", "layers": "all", "neurons": [5]}
    assert _estimate(every, llm)[:2] == (6, 6 * 21)
