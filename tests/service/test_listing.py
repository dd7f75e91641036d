"""GET /v1/neurons/{model}/{layer}: a layer's stored reports (one variant) as summary rows, paged; and the
one function behind it, service.listing.list_layer_reports, over a real Redis."""

from __future__ import annotations

import httpx
import redis

from service.contract import ExplanationRequest, NeuronListing, PipelineOptions, report_key
from service.listing import list_layer_reports
from tests.service.helpers import PROBLEM_JSON, store_reports


def _store(conn: redis.Redis, revision: str, layer: int, neurons: list[int], seed: int = 0) -> None:
    request = ExplanationRequest(
        model="minilm-l6",
        layer=layer,
        neurons=neurons,
        hook="mlp_act",
        dataset="text-probe-v2",
        options=PipelineOptions(seed=seed),
    )
    store_reports(conn, request, revision)


def test_a_layer_lists_its_stored_neurons_of_one_variant_in_order(
    http: httpx.Client, redis_conn: redis.Redis, minilm_revision: str
) -> None:
    _store(redis_conn, minilm_revision, 3, [300, 5, 42, 7])
    _store(redis_conn, minilm_revision, 4, [6])  # another layer
    _store(redis_conn, minilm_revision, 3, [8], seed=1)  # another variant of the same layer
    response = http.get("/v1/neurons/minilm-l6/3")
    assert response.status_code == 200
    listing = NeuronListing.model_validate(response.json())
    assert (listing.model, listing.layer, listing.total, listing.offset) == ("minilm-l6", 3, 4, 0)
    assert [row.neuron for row in listing.neurons] == [5, 7, 42, 300]
    stored = http.get("/v1/neurons/minilm-l6/3/42").json()
    row = listing.neurons[2]
    assert row.neuron_type == stored["neuron_type"] and row.explanation == stored["explanation"]["text"]
    assert row.correlation == stored["simulation"]["correlation"]
    assert row.p_text == stored["type_evidence"]["p_text"]

    page = NeuronListing.model_validate(http.get("/v1/neurons/minilm-l6/3?offset=1&limit=2").json())
    assert ([row.neuron for row in page.neurons], page.total, page.offset) == ([7, 42], 4, 1)
    assert NeuronListing.model_validate(http.get("/v1/neurons/minilm-l6/5").json()).total == 0


def test_listing_bad_paths_and_pages_are_problems(http: httpx.Client) -> None:
    for path, status in [
        ("/v1/neurons/nope/3", 404),
        ("/v1/neurons/minilm-l6/40", 404),
        ("/v1/neurons/minilm-l6/3?limit=0", 422),
        ("/v1/neurons/minilm-l6/3?limit=1001", 422),
    ]:
        response = http.get(path)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"].startswith(PROBLEM_JSON)


def test_listing_matches_the_model_name_literally(redis_conn: redis.Redis) -> None:
    """SCAN patterns are globs: a model id with glob characters must not match other models' keys."""
    variant = "0123456789abcdef"
    for model, neuron in [("m*[1]", 1), ("mx1", 2), ("m*[1]x", 3)]:
        redis_conn.set(report_key(model, 0, neuron, variant), b"{}")
    redis_conn.set(report_key("m*[1]", 0, 4, "fedcba9876543210"), b"{}")
    found = list_layer_reports(redis_conn, "m*[1]", 0, variant, limit=10)
    assert found.neurons == [1] and found.reports == [b"{}"]
