"""Pin checks through the API (`POST /v1/checks`, `GET /v1/checks/{id}`), run by the project's
NeuronLensWorker in this process over real scans of the planted BERT and its changed checkpoint: the pin
on the digit neuron passes on the base and fails on the target whose digit neuron was re-planted."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import redis
import yaml

from neuronlens.junit import junit_xml
from neuronlens.pins import pin_file_schema
from service.contract import CheckAccepted, CheckEstimate, CheckStatus
from service.http.app import create_app
from service.settings import Settings
from tests.service.checks_helpers import BASE, DIGIT_PIN, MISSING, TARGET, planted_registry
from tests.service.helpers import rq_jobs, run_workers, serve

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[2]
PLAY_PIN = {"layer": 0, "neuron": 20, "explanation": 'words starting with "play"', "min_score": 0.6}


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return planted_registry(tmp_path_factory.mktemp("planted"))


@pytest.fixture()
def stack(
    registry_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[httpx.Client, str, Settings]]:
    """The API over HTTP and in-process workers that agree on the planted registry."""
    for name, value in {
        "NEURONLENS_REGISTRY_PATH": str(registry_path),
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    settings = settings.model_copy(update={"registry_path": registry_path})
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http, url, settings


def _check(http: httpx.Client, conn: redis.Redis, settings: Settings, body: dict[str, Any]) -> CheckStatus:
    answer = http.post("/v1/checks", json=body)
    assert answer.status_code == 202, answer.text
    accepted = CheckAccepted.model_validate(answer.json())
    assert answer.headers["location"] == accepted.status_url
    run_workers(conn, settings)
    status = http.get(accepted.status_url)
    assert status.status_code == 200, status.text
    return CheckStatus.model_validate(status.json())


def test_a_digit_pin_passes_on_the_base_and_fails_on_the_re_planted_target(
    stack: tuple[httpx.Client, str, Settings], redis_conn: redis.Redis
) -> None:
    http, _, settings = stack
    pins = [DIGIT_PIN, PLAY_PIN]
    base = _check(http, redis_conn, settings, {"model": BASE, "pins": pins})
    assert base.status == "finished" and base.passed is True and base.pins_failed == 0, base
    assert base.results is not None and [r.passed for r in base.results] == [True, True]
    digits = base.results[0]
    assert digits.name == f"{BASE} L0 N10" and digits.neuron_type == "text" and digits.failures == []
    assert digits.score is not None and digits.score > 0.8

    target = _check(http, redis_conn, settings, {"model": TARGET, "pins": pins})
    assert target.status == "finished" and target.passed is False and target.pins_failed == 1, target
    assert target.results is not None
    moved, kept = target.results
    assert not moved.passed and (moved.score is None or moved.score < 0.3), moved
    assert moved.failures and "minimum 0.6" in moved.failures[0], moved.failures
    assert kept.passed and kept.score is not None and kept.score > 0.6, kept  # neuron 20 is untouched

    # A repeat answers the finished check: same id, nothing enqueued.
    jobs_before = rq_jobs(redis_conn)
    again = http.post("/v1/checks", json={"model": TARGET, "pins": pins})
    assert again.status_code == 202 and again.json()["check_id"] == target.check_id
    assert rq_jobs(redis_conn) == jobs_before

    drop = dict(DIGIT_PIN, min_score=None, type=None, base_score=digits.score, max_score_drop=0.2)
    dropped = _check(http, redis_conn, settings, {"model": TARGET, "pins": [drop]})
    assert dropped.passed is False and dropped.results is not None
    result = dropped.results[0]
    assert result.score_drop is not None and result.score_drop > 0.5, result
    assert "more than the maximum 0.2" in result.failures[0] or "undefined" in result.failures[0]


def test_a_check_that_cannot_run_fails_with_the_reason_and_an_errored_junit_case(
    stack: tuple[httpx.Client, str, Settings], redis_conn: redis.Redis
) -> None:
    http, _, settings = stack
    status = _check(http, redis_conn, settings, {"model": MISSING, "pins": [DIGIT_PIN]})
    assert status.status == "failed" and status.passed is None and status.results is None, status
    assert status.error is not None and status.error.type == "ModelWeightsMissing", status.error
    root = ET.fromstring(junit_xml(status))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "1")
    (case,) = root.iter("testcase")
    error = case.find("error")
    assert error is not None and error.get("message", "").startswith("ModelWeightsMissing: ")
    # Posting it again re-runs its failed scan (the check waits for it again).
    again = http.post("/v1/checks", json={"model": MISSING, "pins": [DIGIT_PIN]})
    assert again.status_code == 202 and again.json()["check_id"] == status.check_id
    assert http.get(again.json()["status_url"]).json()["status"] == "queued"


def test_a_dry_run_prices_the_check_and_enqueues_nothing(
    stack: tuple[httpx.Client, str, Settings], redis_conn: redis.Redis
) -> None:
    http, _, _ = stack
    answer = http.post("/v1/checks", json={"model": BASE, "pins": [DIGIT_PIN], "dry_run": True})
    assert answer.status_code == 200, answer.text
    estimate = CheckEstimate.model_validate(answer.json())
    assert (estimate.pins, estimate.layers, estimate.llm_calls, estimate.simulator) == (1, [0], 0, "baseline")
    assert rq_jobs(redis_conn) == []


@pytest.mark.parametrize(
    ("pins", "field", "words"),
    [
        ([dict(DIGIT_PIN, neuron=99_999)], "pins.0.neuron", "out of range"),
        ([DIGIT_PIN, dict(DIGIT_PIN, layer=7)], "pins.1.layer", "layer"),
        ([dict(DIGIT_PIN, max_score_drop=0.1)], "pins.0", "needs base_score"),
        ([{"layer": 0, "neuron": 1, "explanation": "x"}], "pins.0", "checks something"),
        ([], "pins", "at least 1"),
    ],
)
def test_bad_pins_are_refused_naming_the_field(
    stack: tuple[httpx.Client, str, Settings],
    redis_conn: redis.Redis,
    pins: list[dict[str, Any]],
    field: str,
    words: str,
) -> None:
    http, _, _ = stack
    answer = http.post("/v1/checks", json={"model": BASE, "pins": pins})
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    fields = {item["field"]: item["message"] for item in problem.get("errors", [])}
    assert any(name.startswith(field) for name in fields), problem
    assert words in answer.text, problem
    assert rq_jobs(redis_conn) == []


def test_an_unknown_check_is_a_404(stack: tuple[httpx.Client, str, Settings]) -> None:
    http, _, _ = stack
    assert http.get("/v1/checks/chk-" + "0" * 24).status_code == 404
    assert http.get("/v1/checks/exp-" + "0" * 24).status_code == 404


def test_the_published_pin_file_schema_is_the_contracts() -> None:
    """docs/pin-file.schema.json is the pin file's JSON Schema (docs/pins.md#the-pin-file says how to
    regenerate it), and it accepts the pin file of the worked example."""
    published = (REPO / "docs/pin-file.schema.json").read_text()
    assert published == pin_file_schema(), "regenerate docs/pin-file.schema.json (docs/pins.md#the-pin-file)"
    example = (REPO / "docs/pins.md").read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    jsonschema.validate(yaml.safe_load(example), json.loads(published))
