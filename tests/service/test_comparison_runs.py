"""How a comparison runs, through the real API and RQ workers (in this process): one budget over the whole
comparison that ends it cleanly (through the loopback LLM peer), failing scans, a scan gone missing, a
cancelled base, and progress counted in neurons."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.contract import SCAN_QUEUE, JobStatus, LayerNeurons
from service.contract.comparisons import ComparisonStatus
from service.http.app import create_app
from service.settings import Settings, load_settings
from tests.llm_peer import LLMPeer
from tests.service.comparisons_helpers import (
    BASE,
    COPY,
    MISSING,
    TARGET,
    comparison_registry,
    post_and_run,
    set_peer_env,
    set_worker_env,
)
from tests.service.helpers import run_workers, serve, worker_runtime
from workers.models.changed_checkpoint import DIGIT_NEURON
from workers.process.worker import build_worker

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


def test_a_budget_the_base_spends_leaves_the_rest_not_compared_but_judged(
    stack: Settings, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = 30  # less than the base's explanations need: some neurons never get one
    body = {
        "base": BASE,
        "target": COPY,
        "layers": [0],
        "neurons": [DIGIT_NEURON, 20, 3],
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
    assert spent <= budget and base.status == "finished" and base.budget_exhausted, base
    assert status.status == "finished" and status.budget_exhausted, status
    assert status.comparisons is not None and status.verdicts == {"unchanged": 3}  # judged all the same
    unexplained = [item for item in status.comparisons if not item.base_explanation]
    assert unexplained and all(item.budget_exhausted for item in unexplained), status.comparisons
    assert status.usage is not None and status.usage.calls == 0  # the pool was spent before the re-scoring
    assert status.not_done == [LayerNeurons(layer=0, neurons=sorted([DIGIT_NEURON, 20, 3]))]


def test_a_failing_scan_fails_the_comparison_with_its_error(stack: Settings, redis_conn: redis.Redis) -> None:
    settings = stack
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        for base, target in ((BASE, MISSING), (MISSING, BASE)):  # the target's scan, then the base's
            body = {"base": base, "target": target, "layers": [0], "neurons": [1, 2]}
            status = post_and_run(http, "", redis_conn, settings, body)
            assert status.status == "failed" and status.error is not None, status
            assert status.error.type == "ModelWeightsMissing" and MISSING in status.error.message, (
                status.error
            )
            assert status.comparisons is None
        # posting it again re-runs the failed scan: the comparison waits for it again
        again = http.post("/v1/comparisons", json=body)
        assert again.status_code == 202 and again.json()["comparison_id"] == status.comparison_id
        assert http.get(again.headers["Location"]).json()["status"] in ("queued", "scanning")


@pytest.mark.parametrize("base_stored", [True, False], ids=["base-stored", "base-explained-with-it"])
def test_a_comparison_that_finds_a_scan_missing_runs_again_when_posted_again(
    base_stored: bool,
    stack: Settings,
    redis_conn: redis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compare job finds the target's scan gone (base reports stored: it waits for scans only), or
    the base's explain part finds the base's scan gone first (the compare job waits for that part)."""
    store = tmp_path / "own-artifacts"  # a store (and so a worker runtime) of its own: its scans go
    monkeypatch.setenv("NEURONLENS_ARTIFACT_URL", str(store))
    settings = stack.model_copy(update={"artifact_url": str(store)})
    body = {"base": BASE, "target": TARGET, "layers": [0], "neurons": [DIGIT_NEURON, 20]}
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        if base_stored:
            explain = {"model": BASE, "layer": 0, "neurons": [DIGIT_NEURON, 20]}
            assert http.post("/v1/explanations", json=explain).status_code == 202
            run_workers(redis_conn, settings)
        posted = http.post("/v1/comparisons", json=body)
        assert posted.status_code == 202, posted.text
        build_worker(settings, [SCAN_QUEUE], connection=redis_conn, runtime=worker_runtime()).work(burst=True)
        shutil.rmtree(store / "scans")  # e.g. an explain node that sees another store than the scan node
        run_workers(redis_conn, settings)
        failed = ComparisonStatus.model_validate(http.get(posted.headers["Location"]).json())
        assert failed.status == "failed" and failed.error is not None and failed.error.type == "ScanMissing"
        status = post_and_run(http, "", redis_conn, settings, body)
    assert status.comparison_id == failed.comparison_id
    assert status.status == "finished" and status.comparisons is not None, status.error
    assert {item.neuron: item.verdict for item in status.comparisons} == {
        DIGIT_NEURON: "changed",
        20: "rescaled",
    }


def test_progress_counts_neurons_while_comparing(
    stack: Settings, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    neurons = [DIGIT_NEURON, 20, 3]
    options = {"n_holdout": 2}
    seen: list[tuple[str, int, int]] = []
    with LLMPeer() as peer:
        set_peer_env(monkeypatch, peer.base_url)
        settings = load_settings().model_copy(update={"redis_url": stack.redis_url})
        with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
            first = http.post(
                "/v1/explanations", json={"model": BASE, "layer": 0, "neurons": neurons, "options": options}
            )
            assert first.status_code == 202, first.text
            run_workers(redis_conn, settings)  # the base's reports first, at full speed
            peer.latency_s = 0.1  # then each re-scoring call takes 0.1 s: 0.4 s a neuron
            body = {"base": BASE, "target": COPY, "layers": [0], "neurons": neurons, "options": options}
            posted = http.post("/v1/comparisons", json=body)
            assert posted.status_code == 202, posted.text
            stop = threading.Event()

            def poll() -> None:
                with httpx.Client(base_url=url, timeout=60) as poller:
                    while not stop.is_set():
                        status = ComparisonStatus.model_validate(
                            poller.get(posted.headers["Location"]).json()
                        )
                        seen.append((status.status, status.progress.done, status.progress.total))
                        stop.wait(0.02)

            watcher = threading.Thread(target=poll)
            watcher.start()
            try:
                run_workers(redis_conn, settings)  # one compare job: 3 neurons in one chunk
            finally:
                stop.set()
                watcher.join()
            final = ComparisonStatus.model_validate(http.get(posted.headers["Location"]).json())
    assert final.status == "finished" and (final.progress.done, final.progress.total) == (3, 3)
    during = {done for state, done, total in seen if state == "comparing" and total == 3}
    assert during & {1, 2}, seen  # counted neuron by neuron, not only when the chunk finished


def test_a_cancelled_base_fails_the_comparison_and_a_repost_finishes_it(
    stack: Settings, redis_conn: redis.Redis
) -> None:
    settings = stack
    body = {"base": BASE, "target": TARGET, "layers": [0], "neurons": [DIGIT_NEURON, 20]}
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        posted = http.post("/v1/comparisons", json=body)
        assert posted.status_code == 202, posted.text
        base_job = http.get(posted.headers["Location"]).json()["base_job_id"]
        assert http.delete(f"/v1/jobs/{base_job}").status_code in (200, 202, 204)
        run_workers(redis_conn, settings)
        cancelled = ComparisonStatus.model_validate(http.get(posted.headers["Location"]).json())
        assert cancelled.status == "failed" and cancelled.error is not None, cancelled
        assert cancelled.error.type == "JobCanceled" and base_job in cancelled.error.message
        status = post_and_run(http, "", redis_conn, settings, body)
    assert status.status == "finished" and status.comparisons is not None, status.error
    assert {item.neuron: item.verdict for item in status.comparisons} == {
        DIGIT_NEURON: "changed",
        20: "rescaled",
    }
