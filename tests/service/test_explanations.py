"""POST /v1/explanations over real HTTP: validation, enqueueing, idempotency, dedupe, stored reports."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import Queue
from rq.registry import DeferredJobRegistry
from rq.serializers import JSONSerializer

from service.contract import (
    BUNDLED_REGISTRY,
    ExplainJobPayload,
    ExplanationRequest,
    JobStatus,
    ScanJobPayload,
    redis_keys,
)
from service.http.app import create_app
from service.settings import Settings
from tests.service.helpers import PROBLEM_JSON, explain_parts, rq_jobs, serve, store_reports
from workers.process.report_writer import ReportObjects

VALID = {"model": "minilm-l6", "layer": 3, "neurons": [42, 7]}

BAD_INPUT: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown model",
        {**VALID, "model": "gpt-9"},
        "model",
        "model 'gpt-9' is not served: choose one of minilm-l6",
    ),
    ("layer too high", {**VALID, "layer": 40}, "layer", "layer 40 is out of range: minilm-l6 has layers 0–5"),
    ("negative layer", {**VALID, "layer": -1}, "layer", "greater than or equal to 0"),
    (
        "unknown hook",
        {**VALID, "hook": "attn"},
        "hook",
        "hook 'attn' is not offered by minilm-l6: choose one of mlp_act",
    ),
    (
        "unknown dataset",
        {**VALID, "dataset": "imagenet"},
        "dataset",
        "dataset 'imagenet' is not available for minilm-l6: choose one of text-probe-v2, text-probe-v1",
    ),
    (
        "neuron out of range",
        {**VALID, "neurons": [1, 1536]},
        "neurons.1",
        "neuron 1536 is out of range: minilm-l6 has neurons 0–1535 per layer",
    ),
    ("negative neuron", {**VALID, "neurons": [-3]}, "neurons.0", "greater than or equal to 0"),
    (
        "range past the layer",
        {**VALID, "neurons": {"start": 1500, "stop": 1600}},
        "neurons.stop",
        "stop 1600 is out of range: minilm-l6 has neurons 0–1535 per layer, so stop may be at most 1536",
    ),
    ("empty list", {**VALID, "neurons": []}, "neurons", "at least 1 item"),
    (
        "permutation typing on a text model",
        {**VALID, "options": {"type_method": "permutation"}},
        "options.type_method",
        "minilm-l6 is a text-only model, so the test cannot say anything: use type_method 'threshold'",
    ),
    (
        "empty range",
        {**VALID, "neurons": {"start": 5, "stop": 5}},
        "neurons",
        "stop (5) must be greater than start (5)",
    ),
    (
        "neurons of the wrong type",
        {**VALID, "neurons": "some"},
        "neurons",
        'a list of integers, a {start, stop} object or "all"',
    ),
    ("missing model", {"layer": 3, "neurons": [1]}, "model", "Field required"),
    ("unknown field", {**VALID, "colour": "red"}, "colour", "Extra inputs are not permitted"),
    ("unknown explainer", {**VALID, "explainer": "oracle"}, "explainer", "'baseline'"),
    (
        "options that do not fit",
        {**VALID, "options": {"n_top": 20, "n_explain": 15, "n_holdout": 10}},
        "options",
        "n_explain + n_holdout (15 + 10) must not exceed n_top (20)",
    ),
    (
        "delphi without its scorers",
        {**VALID, "options": {"protocol": "delphi", "scorers": ["simulation"]}},
        "options",
        "protocol delphi needs the detection or fuzzing scorer",
    ),
    (
        "bills-2023 with other splits",
        {**VALID, "options": {"protocol": "bills-2023", "n_explain": 20}},
        "options",
        "protocol bills-2023 fixes n_explain = n_holdout = 5",
    ),
]


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["type"] and body["title"] and body["detail"]
    assert body["instance"] == "/v1/explanations"
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(("case", "payload", "field", "message"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_a_422_naming_the_field_and_enqueues_nothing(
    http: httpx.Client, redis_conn: redis.Redis, case: str, payload: dict[str, Any], field: str, message: str
) -> None:
    body = _assert_problem(http.post("/v1/explanations", json=payload), 422)
    fields = {error["field"]: error["message"] for error in body["errors"]}
    assert field in fields, body
    assert message in fields[field], body
    assert rq_jobs(redis_conn) == []


@pytest.mark.parametrize(
    ("payload", "cap", "count"),
    [([*range(0, 40, 2), 99], 20, 21), ({"start": 100, "stop": 130}, 20, 30)],
    ids=["list", "range"],
)
def test_oversized_requests_name_the_cap(
    redis_conn: redis.Redis,
    settings: Settings,
    start_api: Callable[[Settings], AbstractContextManager[str]],
    payload: object,
    cap: int,
    count: int,
) -> None:
    with start_api(settings.model_copy(update={"max_neurons_per_request": cap})) as url:
        response = httpx.post(f"{url}/v1/explanations", json={**VALID, "neurons": payload})
    body = _assert_problem(response, 422)
    assert body["errors"] == [
        {
            "field": "neurons",
            "message": f"{count} neurons per layer requested: at most {cap} per layer are allowed in one "
            "request",
        }
    ]
    assert rq_jobs(redis_conn) == []


@pytest.mark.parametrize(
    ("content", "detail"),
    [(b'{"model": "minilm-l6",', "not valid JSON"), (b"", "body is missing")],
    ids=["malformed JSON", "no body"],
)
def test_unparseable_bodies_are_400(
    http: httpx.Client, redis_conn: redis.Redis, content: bytes, detail: str
) -> None:
    response = http.post("/v1/explanations", content=content, headers={"content-type": "application/json"})
    assert detail in _assert_problem(response, 400)["detail"]
    assert rq_jobs(redis_conn) == []


def test_a_valid_request_enqueues_a_scan_and_a_dependent_explain_job(
    http: httpx.Client, redis_conn: redis.Redis
) -> None:
    response = http.post("/v1/explanations", json=VALID)
    assert response.status_code == 202, response.text
    body = response.json()
    job_id = body["job_id"]
    assert job_id.startswith("exp-") and len(job_id) == 4 + 24
    assert body["status_url"] == f"/v1/jobs/{job_id}"
    assert response.headers["location"] == body["status_url"]

    scan_queue = Queue("scan", connection=redis_conn, serializer=JSONSerializer)
    (scan_id,) = scan_queue.job_ids
    scan = scan_queue.fetch_job(scan_id)
    assert scan is not None and scan.func_name == "workers.process.tasks.run_scan_job"
    scanned = ScanJobPayload.model_validate(scan.kwargs["payload"])
    assert scanned.model == "minilm-l6" and scanned.layers == [3] and scanned.hook == "mlp_act"
    assert scan.retries_left == 2 and scan.timeout == 3600

    deferred = DeferredJobRegistry("explain", connection=redis_conn, serializer=JSONSerializer)
    (part_id,) = explain_parts(redis_conn, job_id)  # two neurons of one layer: one part
    assert part_id.startswith("part-") and deferred.get_job_ids() == [part_id]
    explain = Queue("explain", connection=redis_conn, serializer=JSONSerializer).fetch_job(part_id)
    assert explain is not None and explain.func_name == "workers.process.tasks.run_explain_job"
    payload = ExplainJobPayload.model_validate(explain.kwargs["payload"])
    assert payload.group == job_id and payload.budget is None
    sent = payload.request
    assert sent.neurons == [7, 42] and sent.hook == "mlp_act" and sent.dataset == "text-probe-v2"
    assert explain.dependency_ids == [scan_id]

    status = JobStatus.model_validate(http.get(body["status_url"]).json())
    assert status.status == "queued" and status.queue_position == 0
    assert status.progress.done == 0 and status.progress.total == 2
    assert status.created_at is not None and status.started_at is None and status.error is None


def test_a_repeat_joins_the_same_job(http: httpx.Client, redis_conn: redis.Redis) -> None:
    first = http.post("/v1/explanations", json={**VALID, "neurons": [8, 9, 10]}).json()["job_id"]
    # The same neurons as a range, in another order of fields, with the defaults spelled out.
    again = {
        "dataset": "text-probe-v2",
        "neurons": {"start": 8, "stop": 11},
        "layer": 3,
        "hook": "mlp_act",
        "model": "minilm-l6",
        "options": {"n_top": 50},
    }
    response = http.post("/v1/explanations", json=again)
    assert response.status_code == 202
    assert response.json()["job_id"] == first
    assert redis_conn.llen("rq:queue:scan") == 1
    assert DeferredJobRegistry("explain", connection=redis_conn).count == 1


def test_jobs_of_another_job_format_are_never_joined(
    http: httpx.Client, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs queued by a deployment whose job form differs (other task paths or payloads, which this
    version's workers cannot run) have other ids: the same request makes new jobs beside them rather than
    joining them, and reuses nothing of theirs but stored reports and scans."""
    monkeypatch.setattr(redis_keys, "JOB_FORMAT_VERSION", "1")
    older = http.post("/v1/explanations", json=VALID).json()["job_id"]
    monkeypatch.undo()
    current = http.post("/v1/explanations", json=VALID).json()["job_id"]
    assert current != older
    assert redis_conn.llen("rq:queue:scan") == 2
    assert DeferredJobRegistry("explain", connection=redis_conn).count == 2


def test_other_neurons_of_the_same_layer_share_the_scan_job(
    http: httpx.Client, redis_conn: redis.Redis
) -> None:
    a = http.post("/v1/explanations", json={**VALID, "neurons": [1]}).json()["job_id"]
    b = http.post("/v1/explanations", json={**VALID, "neurons": [2]}).json()["job_id"]
    c = http.post("/v1/explanations", json={**VALID, "layer": 4}).json()["job_id"]
    assert len({a, b, c}) == 3
    assert redis_conn.llen("rq:queue:scan") == 2  # layer 3 once, layer 4 once
    positions = [http.get(f"/v1/jobs/{job}").json()["queue_position"] for job in (a, b, c)]
    assert positions == [0, 0, 1]


def test_concurrent_identical_posts_on_two_replicas_create_one_job(
    settings: Settings,
    redis_conn: redis.Redis,
    api_url: str,
    start_api: Callable[[Settings], AbstractContextManager[str]],
) -> None:
    payload = {**VALID, "neurons": {"start": 0, "stop": 64}}
    with start_api(settings) as second_url:
        barrier = threading.Barrier(12)
        answers: list[httpx.Response] = []

        def post(url: str) -> None:
            barrier.wait()
            answers.append(httpx.post(f"{url}/v1/explanations", json=payload, timeout=30))

        threads = [threading.Thread(target=post, args=(url,)) for url in [api_url, second_url] * 6]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [r.status_code for r in answers] == [202] * 12
    assert len({r.json()["job_id"] for r in answers}) == 1
    assert redis_conn.lrange("rq:queue:scan", 0, -1).__len__() == 1
    assert DeferredJobRegistry("explain", connection=redis_conn).count == 1
    assert redis_conn.llen("rq:queue:explain") == 0


def test_all_reports_stored_answers_200_at_once(
    http: httpx.Client, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    resolved = ExplanationRequest(
        model="minilm-l6", layer=2, neurons=[5, 6, 7], hook="mlp_act", dataset="text-probe-v2"
    )
    stored = store_reports(redis_conn, report_objects, resolved, minilm_revision)
    response = http.post(
        "/v1/explanations", json={"model": "minilm-l6", "layer": 2, "neurons": {"start": 5, "stop": 8}}
    )
    assert response.status_code == 200, response.text
    status = JobStatus.model_validate(response.json())
    assert status.status == "finished" and status.reports_total == 3
    assert status.progress.done == status.progress.total == 3
    assert status.reports == stored
    assert rq_jobs(redis_conn) == []


def test_some_reports_stored_still_enqueues(
    http: httpx.Client, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    store_reports(
        redis_conn,
        report_objects,
        ExplanationRequest(model="minilm-l6", layer=2, neurons=[5], hook="mlp_act", dataset="text-probe-v2"),
        minilm_revision,
    )
    response = http.post("/v1/explanations", json={"model": "minilm-l6", "layer": 2, "neurons": [5, 6]})
    assert response.status_code == 202
    assert redis_conn.llen("rq:queue:scan") == 1


def test_stored_reports_are_of_the_requested_variant(
    http: httpx.Client, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    store_reports(
        redis_conn,
        report_objects,
        ExplanationRequest(model="minilm-l6", layer=2, neurons=[5], hook="mlp_act", dataset="text-probe-v2"),
        minilm_revision,
    )
    other_options = {"model": "minilm-l6", "layer": 2, "neurons": [5], "options": {"seed": 3}}
    assert http.post("/v1/explanations", json=other_options).status_code == 202


def test_a_model_no_worker_can_load_is_a_422_not_a_failed_job(
    settings: Settings, redis_conn: redis.Redis, tmp_path: Path
) -> None:
    """A deployment's own registry may list an architecture the workers have no loader for: the API
    refuses it naming the model and the architectures the workers load, and enqueues nothing."""
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    mamba = {**registry["models"][0], "id": "tiny-mamba", "architecture": "mamba"}
    registry["models"].append(mamba)
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry))
    with serve(create_app(settings.model_copy(update={"registry_path": path}))) as url:
        refused = httpx.post(
            f"{url}/v1/explanations", json={"model": "tiny-mamba", "layer": 0, "neurons": [1]}
        )
        enqueued_after_refusal = rq_jobs(redis_conn)
        served = httpx.post(f"{url}/v1/explanations", json={"model": "minilm-l6", "layer": 0, "neurons": [1]})
    body = _assert_problem(refused, 422)
    (error,) = body["errors"]
    assert error["field"] == "model"
    assert "architecture 'mamba', which no worker can load" in error["message"] and "bert" in error["message"]
    assert enqueued_after_refusal == []
    assert served.status_code == 202, "the models the workers load are still served"
