"""The `openai` backend through the API and a real RQ worker (in this process) against the HTTP LLM peer.

The four NEURONLENS_ variables point at the peer on loopback, as a user would set them; the worker reads
them from the environment. The real `openai` client makes every call. Each injected fault ends in a
successful retry or a `failed` job that names the endpoint and what it answered; pytest-timeout bounds
every test, so a hang fails it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service.contract import BUNDLED_REGISTRY, ExplanationRequest, JobStatus, load_registry
from service.estimates.estimate import estimate_calls
from service.estimates.validate import resolve_request
from service.http.app import create_app
from service.settings import Settings, load_settings
from tests.llm_peer import Fault, LLMPeer, rules
from tests.service.helpers import run_workers, serve
from workers.explain.prompts import parse_explanation

pytestmark = pytest.mark.timeout(180)

SAMPLES = 600
"""The probe-set slice the other pipeline tests scan too (artifacts are shared in the session)."""
LAYER = 2
EXPLAINER_MODEL, SIMULATOR_MODEL = "peer-explainer", "peer-simulator"
SMALL = {"n_holdout": 2, "chance_explanations": 0}
"""Two held-out top records and two random ones: five LLM calls per neuron when nothing fails (no chance
null: tests/service/test_llm_cost.py checks its calls against the dry run)."""
NO_NULL = {"chance_explanations": 0}
"""The default options without the chance null (k more simulations per neuron)."""


class LLMStack:
    """An API (settings read from the environment, as deployed) and the peer the workers call."""

    def __init__(self, settings: Settings, peer: LLMPeer, redis_conn: redis.Redis) -> None:
        self.settings = settings
        self.peer = peer
        self.redis_conn = redis_conn

    def run(self, body: dict[str, Any]) -> tuple[JobStatus, str]:
        """POST, work the queues until empty, and return the job status and the /metrics text."""
        with serve(create_app(self.settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
            answer = http.post("/v1/explanations", json=body)
            assert answer.status_code == 202, answer.text
            run_workers(self.redis_conn, self.settings)
            status = JobStatus.model_validate(http.get(answer.headers["Location"]).json())
            return status, http.get("/metrics").text


@pytest.fixture()
def llm_env(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[pytest.MonkeyPatch, Settings]]:
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    registry["datasets"][0]["n_samples"] = SAMPLES
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(registry))
    for name, value in {
        "NEURONLENS_REGISTRY_PATH": str(path),
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_REDIS_URL": settings.redis_url or "",
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "NEURONLENS_LLM_API_KEY": "test-key",
        "NEURONLENS_EXPLAINER_MODEL": EXPLAINER_MODEL,
        "NEURONLENS_SIMULATOR_MODEL": SIMULATOR_MODEL,
        # Two retries after a short backoff, one call in flight so the order of calls (and which one meets
        # a fault) is fixed. The timeout is far above any answer's time on a loaded machine (at 1 s, an
        # explainer request with 20 images timed out under load and was retried): only a hang meets it.
        "NEURONLENS_LLM_TIMEOUT_S": "10",
        "NEURONLENS_LLM_MAX_RETRIES": "2",
        "NEURONLENS_LLM_BACKOFF_S": "0.01",
        "NEURONLENS_LLM_CONCURRENCY": "1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    yield monkeypatch, settings


def _stack(llm_env: tuple[pytest.MonkeyPatch, Settings], redis_conn: redis.Redis, peer: LLMPeer) -> LLMStack:
    monkeypatch, _ = llm_env
    monkeypatch.setenv("NEURONLENS_LLM_BASE_URL", peer.base_url)
    return LLMStack(load_settings(), peer, redis_conn)


def _estimated_calls_per_neuron(body: dict[str, Any], settings: Settings) -> int:
    """What quotas charge per neuron for ``body`` (service/estimates/estimate.py), to compare with the real
    calls."""
    resolved = resolve_request(load_registry(), ExplanationRequest.model_validate(body), 4096, settings)
    return estimate_calls(resolved).llm_calls_per_neuron


def _metric(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, flags=re.MULTILINE)
    assert match is not None, f"{series} not exported:\n{text}"
    return float(match.group(1))


def _rule_explanations(peer: LLMPeer) -> set[str | None]:
    """What the peer's rule answered to each explainer request it recorded, as the pipeline parses it."""
    return {
        parse_explanation(" " + rules.explain(rules.read_prompt(r.body["messages"]), 0))
        for r in peer.requests
        if r.role == "explainer" and r.status == 200
    }


# --------------------------------------------------------------------------- the default path


def test_without_backends_named_the_reports_come_from_the_endpoint(
    llm_env: tuple[pytest.MonkeyPatch, Settings], redis_conn: redis.Redis
) -> None:
    with LLMPeer() as peer:
        stack = _stack(llm_env, redis_conn, peer)
        body = {"model": "minilm-l6", "layer": LAYER, "neurons": [3, 17], "options": NO_NULL}
        status, metrics = stack.run(body)
    assert status.status == "finished", status.error
    assert status.reports is not None and len(status.reports) == 2
    for report in status.reports:
        explanation, simulation = report.explanation, report.simulation
        assert (explanation.backend, explanation.model) == ("openai", EXPLAINER_MODEL)
        assert explanation.prompt_version == "text-explainer-bills-1" and explanation.candidates is None
        assert (simulation.backend, simulation.model) == ("openai", SIMULATOR_MODEL)
        assert simulation.prompt_version == "text-simulator-1" and simulation.parse_failures == 0
        assert simulation.n_top == simulation.n_random == 10
        assert report.provenance.llm_tokens["prompt"] > 0 and report.provenance.llm_tokens["completion"] > 0
        assert report.provenance.llm_calls == {"explainer": 1, "simulator": 20}
    assert _estimated_calls_per_neuron(body, stack.settings) == 1 + 20  # the quota estimate is exact
    assert {r.explanation.text for r in status.reports} == _rule_explanations(peer)

    requests = peer.requests
    assert [r.status for r in requests] == [200] * 42
    assert sum(r.body["model"] == EXPLAINER_MODEL for r in requests if r.role == "explainer") == 2
    assert sum(r.body["model"] == SIMULATOR_MODEL for r in requests if r.role == "simulator") == 40
    assert {r.authorization for r in requests} == {"Bearer test-key"}
    for kind in ("prompt", "completion"):
        billed = sum(getattr(r, f"{kind}_tokens") for r in requests)
        assert sum(r.provenance.llm_tokens[kind] for r in status.reports) == billed
        assert _metric(metrics, f'neuronlens_llm_tokens_total{{endpoint="default",kind="{kind}"}}') == billed
    assert _metric(metrics, 'neuronlens_llm_calls_total{endpoint="default",role="explainer"}') == 2
    assert _metric(metrics, 'neuronlens_llm_calls_total{endpoint="default",role="simulator"}') == 40
    assert "neuronlens_llm_parse_failures_total{" not in metrics
    assert "neuronlens_llm_endpoint_errors_total{" not in metrics


def test_candidates_are_scored_on_calibration_and_the_best_returned(
    llm_env: tuple[pytest.MonkeyPatch, Settings], redis_conn: redis.Redis
) -> None:
    with LLMPeer() as peer:
        stack = _stack(llm_env, redis_conn, peer)
        body = {"model": "minilm-l6", "layer": LAYER, "neurons": [3], "candidates": 3, "options": SMALL}
        status, _ = stack.run(body)
    assert status.status == "finished", status.error
    assert status.reports is not None
    (report,) = status.reports
    candidates = report.explanation.candidates
    assert candidates is not None and len(candidates) == 3
    assert report.explanation.text in [c.text for c in candidates]
    scores = [c.calibration_correlation for c in candidates]
    best = max((s for s in scores if isinstance(s, float)), default=None)
    chosen = candidates[[c.text for c in candidates].index(report.explanation.text)]
    assert chosen.calibration_correlation == best
    (draw,) = [r for r in peer.requests if r.role == "explainer"]
    assert draw.body["n"] == 3 and draw.body["temperature"] == 1.0
    # One draw of 3, 5 calibration records per candidate, then 4 held-out records for the winner.
    assert report.provenance.llm_calls == {"explainer": 1 + 3 * 5, "simulator": 4}
    assert _estimated_calls_per_neuron(body, stack.settings) == 1 + 3 * 5 + 4  # the quota estimate is exact


def test_a_visual_neuron_is_explained_from_its_shaded_images_and_simulated_per_patch(
    llm_env: tuple[pytest.MonkeyPatch, Settings], redis_conn: redis.Redis
) -> None:
    """tiny-llava-planted neuron 200 fires on red image regions and the word "red" (registry `planted`)."""
    with LLMPeer() as peer:
        stack = _stack(llm_env, redis_conn, peer)
        body = {"model": "tiny-llava-planted", "layer": 2, "neurons": [200], "options": SMALL}
        status, _ = stack.run(body)
    assert status.status == "finished", status.error
    assert status.reports is not None
    (report,) = status.reports
    assert report.neuron_type == "multimodal"
    assert report.explanation.prompt_version == "visual-explainer-1"
    assert 'the colour "red" in the image' in report.explanation.text
    assert report.simulation.prompt_version == "text-simulator-1+visual-simulator-1"
    # 1 explanation, then a text and an image request per held-out record (2 top + 2 random).
    assert report.provenance.llm_calls == {"explainer": 1, "simulator": 8}
    assert report.simulation.parse_failures == 0 and report.simulation.correlation is not None
    (draw,) = [r for r in peer.requests if r.role == "explainer"]
    images = [p for p in draw.body["messages"][1]["content"] if p["type"] == "image_url"]
    assert len(images) == 20  # every explainer record's shaded image went to the explainer
    patch_requests = [
        r for r in peer.requests if r.role == "simulator" and "Patch grid: 8 rows × 8 columns" in str(r.body)
    ]
    assert len(patch_requests) == 4


# --------------------------------------------------------------------------- faults that a retry fixes


RECOVERED: list[tuple[str, Fault, dict[str, int]]] = [
    ("429 with Retry-After", Fault("rate_limit", 1, retry_after="1"), {"explainer": 2, "simulator": 4}),
    ("500 twice", Fault("server_error", 2), {"explainer": 3, "simulator": 4}),
    ("hang past the timeout", Fault("hang", 1), {"explainer": 2, "simulator": 4}),
    ("a body that is not JSON", Fault("bad_body", 1), {"explainer": 2, "simulator": 4}),
    ("reply that is not JSON", Fault("malformed", 1, "simulator"), {"explainer": 1, "simulator": 5}),
    ("wrong-length reply", Fault("wrong_length", 1, "simulator"), {"explainer": 1, "simulator": 5}),
    ("empty explanation", Fault("malformed", 1, "explainer"), {"explainer": 2, "simulator": 4}),
]


@pytest.mark.parametrize(("case", "fault", "calls"), RECOVERED, ids=[c[0] for c in RECOVERED])
def test_a_fault_that_a_retry_fixes_ends_in_a_finished_job(
    llm_env: tuple[pytest.MonkeyPatch, Settings],
    redis_conn: redis.Redis,
    case: str,
    fault: Fault,
    calls: dict[str, int],
) -> None:
    with LLMPeer(faults=[fault]) as peer:  # a hang lasts until the peer stops
        stack = _stack(llm_env, redis_conn, peer)
        status, _ = stack.run({"model": "minilm-l6", "layer": LAYER, "neurons": [3], "options": SMALL})
    assert status.status == "finished", status.error
    assert status.reports is not None
    (report,) = status.reports
    assert report.simulation.parse_failures == 0 and report.provenance.llm_calls == calls
    assert peer.calls == sum(calls.values())
    if fault.kind != "hang":  # a hanging answer is recorded only once the peer lets it go
        faulted = [r for r in peer.requests if r.fault is not None]
        assert [r.fault for r in faulted] == [fault.kind] * fault.times
    assert report.explanation.text in _rule_explanations(peer)


def test_a_reply_unparseable_twice_is_counted_never_scored_as_zeros(
    llm_env: tuple[pytest.MonkeyPatch, Settings], redis_conn: redis.Redis
) -> None:
    with LLMPeer(faults=[Fault("wrong_length", 2, "simulator")]) as peer:
        stack = _stack(llm_env, redis_conn, peer)
        status, metrics = stack.run({"model": "minilm-l6", "layer": LAYER, "neurons": [3], "options": SMALL})
    assert status.status == "finished", status.error
    assert status.reports is not None
    (report,) = status.reports
    simulation = report.simulation
    assert simulation.parse_failures == 1
    # The first held-out record (a top one) is left out of scoring; the other three are scored.
    assert (simulation.n_top, simulation.n_random) == (1, 2)
    assert report.provenance.llm_calls == {"explainer": 1, "simulator": 5}
    assert _metric(metrics, 'neuronlens_llm_parse_failures_total{endpoint="default"}') == 1


# --------------------------------------------------------------------------- faults that persist


PERSISTENT: list[tuple[str, Fault, str, str]] = [
    ("500", Fault("server_error", 99), "LLMEndpointError", "failed after 3 attempts: HTTP 500: "),
    (
        "429",
        Fault("rate_limit", 99, retry_after="0"),
        "LLMEndpointError",
        "failed after 3 attempts: HTTP 429: ",
    ),
    ("hang", Fault("hang", 99), "LLMEndpointError", "failed after 3 attempts: timed out after 1s"),
    (
        "no explanation",
        Fault("malformed", 99, "explainer"),
        "ExplanationUnusable",
        f"explainer model '{EXPLAINER_MODEL}' at 'default' gave no explanation",
    ),
]


@pytest.mark.parametrize(
    ("case", "fault", "error_type", "message"), PERSISTENT, ids=[c[0] for c in PERSISTENT]
)
def test_a_fault_that_persists_fails_the_job_once_with_a_clear_error(
    llm_env: tuple[pytest.MonkeyPatch, Settings],
    redis_conn: redis.Redis,
    case: str,
    fault: Fault,
    error_type: str,
    message: str,
) -> None:
    if fault.kind == "hang":  # every call hangs: a short timeout times out nothing else
        llm_env[0].setenv("NEURONLENS_LLM_TIMEOUT_S", "1")
    with LLMPeer(faults=[fault]) as peer:
        stack = _stack(llm_env, redis_conn, peer)
        status, metrics = stack.run({"model": "minilm-l6", "layer": LAYER, "neurons": [3], "options": SMALL})
        calls = peer.calls
    assert status.status == "failed" and status.error is not None
    assert status.error.type == error_type
    assert message in status.error.message
    assert "Traceback" not in status.error.message
    assert "127.0.0.1" not in status.error.message  # the endpoint's URL stays in the worker's log
    if error_type == "LLMEndpointError":
        assert status.error.message.startswith("LLM endpoint 'default' failed")
        assert _metric(metrics, 'neuronlens_llm_endpoint_errors_total{endpoint="default"}') == 1
    # The caller retried; RQ did not run the job again (NEURONLENS_JOB_RETRIES is 2 by default).
    expected_calls = 3 if error_type == "LLMEndpointError" else 2
    assert calls == expected_calls
    assert 'neuronlens_jobs_total{outcome="failed",queue="explain"} 1.0' in metrics


def test_a_worker_configured_unlike_the_api_fails_instead_of_storing_mislabelled_reports(
    llm_env: tuple[pytest.MonkeyPatch, Settings], redis_conn: redis.Redis
) -> None:
    monkeypatch, _ = llm_env
    with LLMPeer() as peer:
        stack = _stack(llm_env, redis_conn, peer)
        with serve(create_app(stack.settings)) as url:
            answer = httpx.post(
                f"{url}/v1/explanations",
                json={"model": "minilm-l6", "layer": LAYER, "neurons": [3]},
                timeout=60,
            )
            monkeypatch.setenv("NEURONLENS_SIMULATOR_MODEL", "another-model")  # what the worker reads
            run_workers(redis_conn, stack.settings)
            status = JobStatus.model_validate(httpx.get(url + answer.headers["Location"], timeout=60).json())
        assert peer.calls == 0
    assert status.status == "failed" and status.error is not None
    assert status.error.type == "DeploymentMismatch"
    assert "simulator model 'another-model', but the API resolved 'peer-explainer' and 'peer-simulator'" in (
        status.error.message
    )
