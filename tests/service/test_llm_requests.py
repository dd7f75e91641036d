"""The `openai` backend in requests: defaults resolved from settings before hashing, endpoints by name only,
candidates, 422s that say what is allowed; the same for GET /v1/neurons. No worker runs here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from service.contract import ExplanationRequest, LLMModels, load_registry, report_variant
from service.estimates.validate import resolve_request
from service.settings import LLMEndpointConfig, Settings
from tests.service.helpers import PROBLEM_JSON, explain_parts, store_reports
from workers.process.report_writer import ReportObjects

VALID = {"model": "minilm-l6", "layer": 3, "neurons": [42, 7]}
UNREACHABLE = "http://127.0.0.1:9/v1"
"""Nothing is called in these tests; the URL only has to be configured."""


def llm_settings(settings: Settings, **overrides: Any) -> Settings:
    """`settings` with the flat endpoint (`default`) and a named one (`local`) configured."""
    fields: dict[str, Any] = {
        "llm_base_url": UNREACHABLE,
        "explainer_model": "explainer-a",
        "simulator_model": "simulator-a",
        "llm_endpoints": {"local": LLMEndpointConfig(base_url=UNREACHABLE, explainer_model="local-model")},
        **overrides,
    }
    return settings.model_copy(update=fields)


@pytest.fixture()
def llm_http(
    settings: Settings, start_api: Callable[[Settings], AbstractContextManager[str]]
) -> Iterator[httpx.Client]:
    with start_api(llm_settings(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def _job_kwargs(conn: redis.Redis, job_id: str) -> dict[str, Any]:
    """The payload (`ExplainJobPayload` as JSON) of the request's one explain job."""
    (part_id,) = explain_parts(conn, job_id)
    payload: dict[str, Any] = Job.fetch(part_id, connection=conn, serializer=JSONSerializer).kwargs["payload"]
    return payload


def _problem(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    (error,) = response.json()["errors"]
    assert error["field"] == field
    return str(error["message"])


# --------------------------------------------------------------------------- without an LLM endpoint


def test_without_an_endpoint_the_default_is_the_baseline(http: httpx.Client, redis_conn: redis.Redis) -> None:
    job_id = http.post("/v1/explanations", json=VALID).json()["job_id"]
    kwargs = _job_kwargs(redis_conn, job_id)
    assert kwargs["request"]["explainer"] == kwargs["request"]["simulator"] == "baseline"
    assert kwargs["request"]["endpoint"] is None and kwargs["request"]["candidates"] is None
    assert kwargs["llm_models"] is None
    explicit = {**VALID, "explainer": "baseline", "simulator": "baseline"}
    assert http.post("/v1/explanations", json=explicit).json()["job_id"] == job_id


@pytest.mark.parametrize("field", ["explainer", "simulator"])
def test_openai_without_an_endpoint_says_how_to_configure_one(
    http: httpx.Client, redis_conn: redis.Redis, field: str
) -> None:
    message = _problem(http.post("/v1/explanations", json={**VALID, field: "openai"}), field)
    assert message.startswith("the openai backend needs an LLM endpoint and none is configured")
    assert "NEURONLENS_LLM_BASE_URL" in message and "NEURONLENS_EXPLAINER_MODEL" in message
    assert "NEURONLENS_LLM_ENDPOINTS" in message
    assert redis_conn.keys("rq:*") == []


def test_an_endpoint_name_without_any_configured_is_rejected(http: httpx.Client) -> None:
    message = _problem(http.post("/v1/explanations", json={**VALID, "endpoint": "default"}), "endpoint")
    assert message.startswith("LLM endpoint 'default' is not configured: this deployment has none")


# --------------------------------------------------------------------------- with LLM endpoints


def test_with_an_endpoint_the_default_is_openai_resolved_before_hashing(
    llm_http: httpx.Client, redis_conn: redis.Redis
) -> None:
    answer = llm_http.post("/v1/explanations", json=VALID)
    assert answer.status_code == 202
    job_id = answer.json()["job_id"]
    kwargs = _job_kwargs(redis_conn, job_id)
    request = kwargs["request"]
    assert (request["explainer"], request["simulator"], request["endpoint"], request["candidates"]) == (
        "openai",
        "openai",
        "default",
        1,
    )
    assert kwargs["llm_models"] == {"explainer": "explainer-a", "simulator": "simulator-a"}
    assert isinstance(kwargs["variant"], str) and len(kwargs["variant"]) == 16

    spelled_out = {
        **VALID,
        "explainer": "openai",
        "simulator": "openai",
        "endpoint": "default",
        "candidates": 1,
    }
    assert llm_http.post("/v1/explanations", json=spelled_out).json()["job_id"] == job_id
    baseline = {**VALID, "explainer": "baseline", "simulator": "baseline"}
    assert llm_http.post("/v1/explanations", json=baseline).json()["job_id"] != job_id


def test_a_named_endpoint_uses_its_models(llm_http: httpx.Client, redis_conn: redis.Redis) -> None:
    job_id = llm_http.post("/v1/explanations", json={**VALID, "endpoint": "local"}).json()["job_id"]
    kwargs = _job_kwargs(redis_conn, job_id)
    assert kwargs["request"]["endpoint"] == "local"
    # No simulator model configured for `local`: its explainer model simulates too.
    assert kwargs["llm_models"] == {"explainer": "local-model", "simulator": "local-model"}


def test_job_ids_follow_models_and_candidates(
    settings: Settings,
    start_api: Callable[[Settings], AbstractContextManager[str]],
    redis_conn: redis.Redis,
) -> None:
    """A model change or another k is another job and another report variant: nothing stale is served."""
    ids = set()
    for overrides in ({}, {"simulator_model": "simulator-b"}, {"explainer_model": "explainer-b"}):
        with start_api(llm_settings(settings, **overrides)) as url:
            ids.add(httpx.post(f"{url}/v1/explanations", json=VALID, timeout=30).json()["job_id"])
    with start_api(llm_settings(settings)) as url:
        ids.add(
            httpx.post(f"{url}/v1/explanations", json={**VALID, "candidates": 3}, timeout=30).json()["job_id"]
        )
    assert len(ids) == 4
    with start_api(llm_settings(settings, llm_candidates=3)) as url:
        assert httpx.post(f"{url}/v1/explanations", json=VALID, timeout=30).json()["job_id"] in ids


BAD_LLM_INPUT: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown endpoint",
        {"endpoint": "nope"},
        "endpoint",
        "LLM endpoint 'nope' is not configured: choose one of default, local",
    ),
    ("a URL as endpoint", {"endpoint": "http://evil.example/v1"}, "endpoint", "should match pattern"),
    ("too many candidates", {"candidates": 11}, "candidates", "less than or equal to 10"),
    ("zero candidates", {"candidates": 0}, "candidates", "greater than or equal to 1"),
    (
        "candidates for the baseline",
        {"explainer": "baseline", "candidates": 3},
        "candidates",
        "candidates apply to the openai explainer only: the baseline writes one explanation",
    ),
    (
        "endpoint for the baseline",
        {"explainer": "baseline", "simulator": "baseline", "endpoint": "local"},
        "endpoint",
        "an endpoint applies to the openai backends only: this request uses the baseline",
    ),
    ("unknown backend", {"explainer": "gpt"}, "explainer", "'baseline' or 'openai'"),
]


@pytest.mark.parametrize(
    ("case", "extra", "field", "message"), BAD_LLM_INPUT, ids=[c[0] for c in BAD_LLM_INPUT]
)
def test_bad_llm_input_is_a_422_naming_what_is_allowed(
    llm_http: httpx.Client,
    redis_conn: redis.Redis,
    case: str,
    extra: dict[str, Any],
    field: str,
    message: str,
) -> None:
    assert message in _problem(llm_http.post("/v1/explanations", json={**VALID, **extra}), field)
    assert redis_conn.keys("rq:*") == []


# --------------------------------------------------------------------------- GET /v1/neurons


def test_neuron_lookup_resolves_backends_like_a_request(
    settings: Settings,
    start_api: Callable[[Settings], AbstractContextManager[str]],
    redis_conn: redis.Redis,
    report_objects: ReportObjects,
    minilm_revision: str,
) -> None:
    configured = llm_settings(settings)
    one = ExplanationRequest(model="minilm-l6", layer=3, neurons=[42])
    stored = store_reports(redis_conn, report_objects, one, minilm_revision, configured)[0]
    with start_api(configured) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/v1/neurons/minilm-l6/3/42").json() == stored.model_dump(mode="json")
        explicit = {"explainer": "openai", "simulator": "openai", "endpoint": "default", "candidates": 1}
        assert client.get("/v1/neurons/minilm-l6/3/42", params=explicit).status_code == 200
        other = client.get("/v1/neurons/minilm-l6/3/42", params={"endpoint": "local"})
        assert other.status_code == 404
        assert "endpoint local, candidates 1" in other.json()["detail"]
        unknown = client.get("/v1/neurons/minilm-l6/3/42", params={"endpoint": "nope"})
        assert "choose one of default, local" in _problem(unknown, "endpoint")
    with start_api(llm_settings(settings, explainer_model="explainer-b")) as url:
        assert httpx.get(f"{url}/v1/neurons/minilm-l6/3/42", timeout=30).status_code == 404


def test_neuron_lookup_of_openai_without_an_endpoint_is_a_422(http: httpx.Client) -> None:
    answer = http.get("/v1/neurons/minilm-l6/3/42", params={"explainer": "openai"})
    assert "none is configured" in _problem(answer, "explainer")


# --------------------------------------------------------------------------- the variant itself


def test_the_report_variant_covers_the_probe_set_and_models(settings: Settings) -> None:
    registry = load_registry()
    resolved = resolve_request(
        registry, ExplanationRequest(**VALID), max_neurons=10, settings=llm_settings(settings)
    )
    assert resolved.llm_models == LLMModels(explainer="explainer-a", simulator="simulator-a")

    def variant(**changes: Any) -> str:
        dataset = resolved.dataset.model_copy(update=changes.pop("dataset", {}))
        models = changes.pop("models", resolved.llm_models)
        request = resolved.request.model_copy(update=changes)
        return report_variant(request, revision=resolved.model.revision, dataset=dataset, models=models)

    base = variant()
    assert base == resolved.variant
    others = [
        variant(dataset={"revision": "2"}),
        variant(dataset={"n_samples": 100}),
        variant(models=LLMModels(explainer="explainer-a", simulator="simulator-b")),
        variant(models=LLMModels(explainer="explainer-b", simulator="simulator-a")),
        variant(candidates=2),
        variant(endpoint="local"),
    ]
    assert len({base, *others}) == len(others) + 1
    # k = 1 never calls the simulator model for calibration: a baseline simulator ignores it entirely.
    baseline_sim = {"simulator": "baseline"}
    assert variant(**baseline_sim) == variant(
        **baseline_sim, models=LLMModels(explainer="explainer-a", simulator="simulator-b")
    )
    with pytest.raises(ValueError, match="needs the endpoint's model names"):
        variant(models=None)
