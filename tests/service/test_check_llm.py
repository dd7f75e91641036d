"""Pin checks with the `openai` simulator, through the API and a real RQ worker against the HTTP LLM peer
(tests/llm_peer): the dry run's call count is what the peer then bills, and a call budget stops the
re-scoring cleanly (the pins not scored fail, saying why)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service.contract import CheckEstimate, CheckStatus
from service.http.app import create_app
from service.settings import Settings, load_settings
from tests.llm_peer import LLMPeer
from tests.service.checks_helpers import BASE, DIGIT_PIN, planted_registry
from tests.service.helpers import run_workers, serve

pytestmark = pytest.mark.timeout(180)
PLAY_PIN = {"layer": 0, "neuron": 20, "explanation": 'words starting with "play"', "min_score": 0.6}
BODY = {"model": BASE, "simulator": "openai", "options": {"n_holdout": 2}, "pins": [DIGIT_PIN, PLAY_PIN]}
"""Two pins, each simulated on 2 held-out top and 2 random records: 4 LLM calls per pin."""


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return planted_registry(tmp_path_factory.mktemp("planted"))


@pytest.fixture()
def peer_settings(
    registry_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LLMPeer, Settings]]:
    """The peer, and settings read from the environment (as the API and the workers read them)."""
    with LLMPeer() as peer:
        for name, value in {
            "NEURONLENS_REGISTRY_PATH": str(registry_path),
            "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
            "NEURONLENS_REDIS_URL": settings.redis_url or "",
            "NEURONLENS_DEVICE": "cpu",
            "HF_HUB_OFFLINE": "1",
            "NEURONLENS_LLM_BASE_URL": peer.base_url,
            "NEURONLENS_LLM_API_KEY": "test-key",
            "NEURONLENS_EXPLAINER_MODEL": "peer-explainer",
            "NEURONLENS_SIMULATOR_MODEL": "peer-simulator",
            "NEURONLENS_LLM_MAX_RETRIES": "0",
            "NEURONLENS_LLM_CONCURRENCY": "1",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        yield peer, load_settings()


def _check(http: httpx.Client, conn: redis.Redis, settings: Settings, body: dict[str, Any]) -> CheckStatus:
    answer = http.post("/v1/checks", json=body)
    assert answer.status_code == 202, answer.text
    run_workers(conn, settings)
    return CheckStatus.model_validate(http.get(answer.headers["Location"]).json())


def test_the_dry_run_counts_the_calls_the_peer_then_bills(
    peer_settings: tuple[LLMPeer, Settings], redis_conn: redis.Redis
) -> None:
    peer, settings = peer_settings
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        dry = http.post("/v1/checks", json={**BODY, "dry_run": True})
        assert dry.status_code == 200, dry.text
        estimate = CheckEstimate.model_validate(dry.json())
        assert (estimate.llm_calls, estimate.simulator, estimate.endpoint) == (8, "openai", "default")
        assert peer.calls == 0
        status = _check(http, redis_conn, settings, BODY)
    assert status.status == "finished" and status.results is not None, status
    assert peer.calls == estimate.llm_calls == 8
    assert status.usage is not None and status.usage.calls == 8
    assert [r.llm_calls for r in status.results] == [4, 4]
    assert all(r.score is not None or r.failures for r in status.results)


def test_a_call_budget_stops_the_check_and_fails_the_pins_it_did_not_score(
    peer_settings: tuple[LLMPeer, Settings], redis_conn: redis.Redis
) -> None:
    peer, settings = peer_settings
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        status = _check(http, redis_conn, settings, {**BODY, "budget": {"max_llm_calls": 5}})
    assert status.status == "finished" and status.budget_exhausted and status.passed is False, status
    assert status.results is not None
    first, second = status.results
    assert first.llm_calls == 4 and not any("not scored" in f for f in first.failures)
    assert not second.passed and second.failures == ["not scored: the check's budget ran out before this pin"]
    assert peer.calls <= 5 and status.usage is not None and status.usage.calls == peer.calls
