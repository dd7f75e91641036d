"""GET /v1/neurons/{model}/{layer}: a layer's stored reports (one variant) as summary rows, paged; and the
one function behind it, service.reports.listing.list_layer_reports, over a real Redis and a real artifact
store."""

from __future__ import annotations

import httpx
import redis

from service.contract import ExplanationRequest, NeuronListing, PipelineOptions, RedisKeys, report_key
from service.contract.objects import ObjectStore
from service.reports.listing import list_layer_reports
from service.settings import Settings
from tests.service.helpers import PROBLEM_JSON, build_report, store_reports
from workers.process.report_writer import ReportObjects, store_report


def _store(
    conn: redis.Redis, objects: ReportObjects, revision: str, layer: int, neurons: list[int], seed: int = 0
) -> None:
    request = ExplanationRequest(
        model="minilm-l6",
        layer=layer,
        neurons=neurons,
        hook="mlp_act",
        dataset="text-probe-v2",
        options=PipelineOptions(seed=seed),
    )
    store_reports(conn, objects, request, revision)


def test_a_layer_lists_its_stored_neurons_of_one_variant_in_order(
    http: httpx.Client, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    _store(redis_conn, report_objects, minilm_revision, 3, [300, 5, 42, 7])
    _store(redis_conn, report_objects, minilm_revision, 4, [6])  # another layer
    _store(redis_conn, report_objects, minilm_revision, 3, [8], seed=1)  # another variant of the same layer
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


def _put(conn: redis.Redis, objects: ReportObjects, model: str, neuron: int, variant: str) -> bytes:
    report = build_report(model, "r1", 0, neuron, "mlp_act", "text-probe-v2")
    store_report(conn, RedisKeys(), objects, report_key(model, 0, neuron, variant), variant, report, None)
    return report.model_dump_json().encode()


def test_listing_matches_the_model_name_literally(
    redis_conn: redis.Redis, report_objects: ReportObjects, settings: Settings
) -> None:
    """Model ids become folder names: ids that one replacement character would merge stay apart."""
    variant = "0123456789abcdef"
    body = _put(redis_conn, report_objects, "m*[1]", 1, variant)
    for model, neuron in [("m_1_", 2), ("m[1]", 3), ("m*[1]x", 4)]:  # m_1_ if unsafe runs became _
        _put(redis_conn, report_objects, model, neuron, variant)
    _put(redis_conn, report_objects, "m*[1]", 5, "fedcba9876543210")
    store = ObjectStore(settings.artifact_url)
    for flushed in (False, True):  # from the Redis index, then from the store's folders
        if flushed:
            redis_conn.flushall()
        found = list_layer_reports(redis_conn, RedisKeys(), store, "m*[1]", 0, variant, limit=10)
        assert found.neurons == [1] and found.reports == [body]


def test_after_a_flush_the_index_is_rebuilt_from_the_store_and_keeps_new_reports(
    redis_conn: redis.Redis, report_objects: ReportObjects, settings: Settings
) -> None:
    variant = "0123456789abcdef"
    for neuron in (3, 1, 2):
        _put(redis_conn, report_objects, "m", neuron, variant)
    redis_conn.flushall()
    _put(redis_conn, report_objects, "m", 7, variant)  # a worker stores one more before anyone lists
    store = ObjectStore(settings.artifact_url)
    assert list_layer_reports(redis_conn, RedisKeys(), store, "m", 0, variant).neurons == [1, 2, 3, 7]
    index = RedisKeys().report_index("m", 0, variant)
    assert sorted(int(m) for m in redis_conn.smembers(index)) == [-1, 1, 2, 3, 7]  # type: ignore[union-attr]
    _put(redis_conn, report_objects, "m", 0, variant)
    assert list_layer_reports(redis_conn, RedisKeys(), store, "m", 0, variant).neurons == [0, 1, 2, 3, 7]
