"""The call estimate quotas charge (service/estimates/estimate.py); its exactness against real LLM jobs is
checked in tests/service/test_llm_jobs.py."""

from __future__ import annotations

import httpx

from service.contract import CostEstimate, ExplanationRequest, chance_donors, load_registry
from service.estimates.estimate import estimate_calls
from service.estimates.validate import resolve_request
from service.settings import LLMEndpointConfig, Settings, llm_endpoint_configs


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
    # The chance null (k = 5 by default): 5 more simulations per neuron, and the 6 donors of layer 1
    # that are not among neurons 0-99 explained once by the one explain job.
    outside = len([d for d in chance_donors(1536, 5, 0, 1) if d >= 100])
    assert _estimate(base, llm) == (100, 100 * (1 + 2 * 10 * 6) + outside, 1)
    no_null = {**base, "options": {"chance_explanations": 0}}
    assert _estimate(no_null, llm) == (100, 100 * (1 + 2 * 10), 1)
    k4 = {**base, "candidates": 4, "options": {"n_explain": 12, "n_holdout": 3, "chance_explanations": 0}}
    assert _estimate(k4, llm) == (100, 100 * (1 + 4 * 3 + 2 * 3), 1)
    baseline_simulator = {**no_null, "simulator": "baseline"}
    assert _estimate(baseline_simulator, llm) == (100, 100, 1)


def test_the_chance_null_costs_k_simulations_per_neuron_and_donors_per_explain_job(
    settings: Settings,
) -> None:
    llm = settings.model_copy(
        update={
            "llm_endpoints": {"e": LLMEndpointConfig(base_url="http://127.0.0.1:9/v1", explainer_model="m")}
        }
    )
    donors = chance_donors(1536, 5, 0, 1)
    # Batched simulation: 20 held-out records in ⌈20 / 10⌉ = 2 requests, for the own explanation and 5 nulls.
    body = {
        "model": "minilm-l6",
        "layer": 1,
        "neurons": donors[:2],
        "options": {"scorers": ["simulation-batched"]},
    }
    resolved = resolve_request(load_registry(), ExplanationRequest.model_validate(body), 4096, llm)
    estimate = estimate_calls(resolved)
    assert estimate.llm_calls_per_neuron == 1 + 2 * 6
    assert estimate.donor_explanation_calls == 4  # 2 of the 6 donors are explained as requested neurons
    assert estimate.llm_calls == 2 * 13 + 4
    # Every explain job explains the donors it does not hold: 2 jobs of one neuron each.
    two_jobs = estimate_calls(resolved, chunk_neurons=1)
    assert two_jobs.donor_explanation_calls == 5 + 5
    assert (
        _estimate({**body, "options": {"scorers": ["simulation-batched"], "chance_explanations": 0}}, llm)[1]
        == 2 * 3
    )


def test_a_request_of_several_layers_counts_the_neurons_of_each(settings: Settings) -> None:
    llm = settings.model_copy(
        update={
            "llm_endpoints": {"e": LLMEndpointConfig(base_url="http://127.0.0.1:9/v1", explainer_model="m")}
        }
    )
    three = {"model": "minilm-l6", "layers": [0, 2, 4], "neurons": {"start": 0, "stop": 100}}
    three = {**three, "options": {"chance_explanations": 0}}
    assert _estimate(three, llm)[:2] == (300, 300 * (1 + 2 * 10))
    every = {"model": "minilm-l6", "layers": "all", "neurons": [5], "options": {"chance_explanations": 0}}
    assert _estimate(every, llm)[:2] == (6, 6 * 21)


def test_a_dry_run_counts_the_openai_calls_on_a_stack_with_no_endpoint(
    http: httpx.Client, settings: Settings
) -> None:
    assert not llm_endpoint_configs(settings)
    body = {
        "model": "minilm-l6",
        "layer": 1,
        "neurons": [0, 1, 2],
        "explainer": "openai",
        "simulator": "openai",
    }
    answer = http.post("/v1/explanations", json={**body, "dry_run": True})
    assert answer.status_code == 200, answer.text
    estimate = CostEstimate.model_validate(answer.json())
    llm = settings.model_copy(
        update={
            "llm_endpoints": {"e": LLMEndpointConfig(base_url="http://127.0.0.1:9/v1", explainer_model="m")}
        }
    )
    assert estimate.llm.calls == _estimate(body, llm)[1] > 0
    assert estimate.endpoint is None and estimate.llm.cost_usd is None
    assert estimate.llm.missing is not None and "no LLM endpoint is configured" in estimate.llm.missing
    # Without dry_run the request still needs an endpoint: nothing could run it.
    refused = http.post("/v1/explanations", json=body)
    assert refused.status_code == 422 and "none is configured" in refused.text
