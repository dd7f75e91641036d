"""GET /v1/neurons/{model}/{layer}/{neuron}: stored reports pass through; absent ones are 404 problems."""

from __future__ import annotations

import json

import httpx
import pytest
import redis

from service.contract import ExplanationRequest, NeuronReport, load_registry
from tests.service.helpers import PROBLEM_JSON, store_reports
from workers.process.report_writer import ReportObjects


def _store(conn: redis.Redis, objects: ReportObjects, revision: str, layer: int, neuron: int) -> NeuronReport:
    request = ExplanationRequest(
        model="minilm-l6", layer=layer, neurons=[neuron], hook="mlp_act", dataset="text-probe-v2"
    )
    return store_reports(conn, objects, request, revision)[0]


def test_a_stored_report_is_returned(
    http: httpx.Client, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    stored = _store(redis_conn, report_objects, minilm_revision, 3, 42)
    response = http.get("/v1/neurons/minilm-l6/3/42")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert NeuronReport.model_validate_json(response.content) == stored
    explicit = http.get(
        "/v1/neurons/minilm-l6/3/42",
        params={
            "hook": "mlp_act",
            "dataset": "text-probe-v2",
            "explainer": "baseline",
            "simulator": "baseline",
        },
    )
    assert json.loads(explicit.content) == json.loads(response.content)


def test_no_stored_report_is_a_404_that_says_how_to_make_one(
    http: httpx.Client, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    _store(redis_conn, report_objects, minilm_revision, 3, 42)
    response = http.get("/v1/neurons/minilm-l6/3/43")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["instance"] == "/v1/neurons/minilm-l6/3/43"
    assert "no report stored for minilm-l6 layer 3 neuron 43" in body["detail"]
    assert "POST /v1/explanations" in body["detail"]


SERVED = ", ".join(model.id for model in load_registry().models)


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/v1/neurons/gpt-9/3/42", f"model 'gpt-9' is not served: choose one of {SERVED}"),
        ("/v1/neurons/minilm-l6/6/42", "layer 6 is out of range: minilm-l6 has layers 0–5"),
        ("/v1/neurons/minilm-l6/-1/42", "layer -1 is out of range: minilm-l6 has layers 0–5"),
        (
            "/v1/neurons/minilm-l6/3/1536",
            "neuron 1536 is out of range: minilm-l6 has neurons 0–1535 per layer",
        ),
    ],
)
def test_names_that_do_not_exist_are_404s(http: httpx.Client, path: str, detail: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    assert response.json()["detail"] == detail


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"hook": "attn"}, "hook", "hook 'attn' is not offered by minilm-l6: choose one of mlp_act"),
        ({"dataset": "imagenet"}, "dataset", "choose one of text-probe-v2, text-probe-v1"),
        ({"explainer": "oracle"}, "explainer", "'baseline'"),
    ],
)
def test_unknown_query_values_are_422s(
    http: httpx.Client, params: dict[str, str], field: str, message: str
) -> None:
    response = http.get("/v1/neurons/minilm-l6/3/42", params=params)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == field and message in error["message"]
