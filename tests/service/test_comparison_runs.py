"""How a comparison runs, through the real API and RQ workers (in this process): one budget over the whole
comparison that ends it cleanly (through the loopback LLM peer), failing scans, a scan gone missing, and
progress counted in neurons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.contract import JobStatus, LayerNeurons
from service.http.app import create_app
from service.settings import Settings, load_settings
from tests.llm_peer import LLMPeer
from tests.service.comparisons_helpers import (
    BASE,
    COPY,
    comparison_registry,
    post_and_run,
    set_peer_env,
    set_worker_env,
)
from tests.service.helpers import serve
from workers.models.changed_checkpoint import DIGIT_NEURON

pytestmark = pytest.mark.timeout(300)
BASE_CALLS = 81
"""LLM calls of the base's explanations of three layer-0 neurons with `n_holdout` 2 at the loopback peer
(explanations, the chance null's donors, simulations); re-scoring one neuron on the target takes 4."""


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return comparison_registry(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture()
def stack(registry_file: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    set_worker_env(monkeypatch, registry_file, settings)
    yield settings.model_copy(update={"registry_path": registry_file})


def test_one_budget_covers_the_whole_comparison_and_ends_it_cleanly(
    stack: Settings, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    neurons = [DIGIT_NEURON, 20, 3]
    budget = BASE_CALLS + 4  # the base's explanations, then one neuron's re-scoring
    body = {
        "base": BASE,
        "target": COPY,
        "layers": [0],
        "neurons": neurons,
        "options": {"n_holdout": 2},
        "budget": {"max_llm_calls": budget},
    }
    with LLMPeer() as peer:
        set_peer_env(monkeypatch, peer.base_url)
        settings = load_settings().model_copy(update={"redis_url": stack.redis_url})
        with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
            status = post_and_run(http, "", redis_conn, settings, body)
            base = JobStatus.model_validate(http.get(f"/v1/jobs/{status.base_job_id}").json())
            spent = len(peer.requests)
            # posting it again: a fresh budget, and only what the budget left is done
            again = post_and_run(http, "", redis_conn, settings, body)
        second = peer.requests[spent:]
    # one pool: the base's explanations and the re-scoring together stay within the budget
    assert base.status == "finished" and not base.budget_exhausted and base.usage is not None
    assert status.usage is not None and base.usage.calls + status.usage.calls == spent <= budget
    assert status.status == "finished" and status.error is None, status
    assert status.budget_exhausted and status.progress.done == status.progress.total == 3
    assert status.comparisons is not None and status.verdicts == {"unchanged": 3}
    scored = [item.neuron for item in status.comparisons if not item.budget_exhausted]
    refused = [item.neuron for item in status.comparisons if item.budget_exhausted]
    assert len(scored) == 1 and sorted(scored + refused) == sorted(neurons), status.comparisons
    assert status.not_done == [LayerNeurons(layer=0, neurons=sorted(refused))]
    assert all(item.base_explanation for item in status.comparisons)  # the base was explained in full
    # the second run re-scores the two neurons left (8 simulator calls), keeps the one done
    assert [r.role for r in second] == ["simulator"] * 8
    assert again.status == "finished" and not again.budget_exhausted and again.not_done is None
    assert again.comparisons is not None and not any(item.budget_exhausted for item in again.comparisons)
    for item in again.comparisons:  # identical checkpoints: the same score (null where the peer's is)
        assert item.base_score_on_target == pytest.approx(item.base_score), item
    assert any(item.base_score is not None for item in again.comparisons)
