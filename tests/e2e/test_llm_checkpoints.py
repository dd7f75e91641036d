"""Per-neuron checkpoints: a worker SIGKILLed mid-job with LLM backends repays only the neurons it had in
flight. Real processes (the API under `neuronlens up --workers 0`, worker processes) and the LLM peer on
loopback; the peer counts every chat completion it answered."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import pytest

from service.contract import BUNDLED_REGISTRY, PipelineOptions
from tests.e2e.helpers import Processes, launch_up, process_env, wait_for, wait_ready
from tests.llm_peer import LLMPeer

pytestmark = pytest.mark.timeout(300)

LAYER, SAMPLES, NEURONS = 2, 600, 16
"""The probe-set slice the LLM tests scan too (the artifact is shared within a session)."""
IN_FLIGHT = 4
"""NEURONLENS_LLM_CONCURRENCY: LLM requests, and so neurons, in flight at once."""
CALLS_PER_NEURON = 1 + 2 * PipelineOptions().n_holdout
"""One explainer call and one simulator call per held-out record (top and random), k = 1."""


def test_a_killed_worker_repays_at_most_its_neurons_in_flight(
    processes: Processes, tmp_path: Path, shared_artifact_dir: Path, redis_url: str
) -> None:
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    registry["datasets"][0]["n_samples"] = SAMPLES
    (tmp_path / "registry.json").write_text(json.dumps(registry))
    with LLMPeer(latency_ms=40) as peer:
        env = process_env(
            NEURONLENS_REDIS_URL=redis_url,
            NEURONLENS_ARTIFACT_URL=str(shared_artifact_dir),
            NEURONLENS_REGISTRY_PATH=str(tmp_path / "registry.json"),
            NEURONLENS_LLM_BASE_URL=peer.base_url,
            NEURONLENS_LLM_API_KEY="key",
            NEURONLENS_EXPLAINER_MODEL="peer-explainer",
            NEURONLENS_LLM_CONCURRENCY=str(IN_FLIGHT),
            NEURONLENS_WORKER_HEARTBEAT_S="1",
            NEURONLENS_PROGRESS_INTERVAL_S="0",
        )
        api, url = launch_up(processes, env, "--workers", "0", name="api")
        wait_ready(processes, api, url, "the API")
        first = processes.start_worker(env, "first")
        posted = httpx.post(
            f"{url}/v1/explanations",
            json={
                "model": "minilm-l6",
                "layer": LAYER,
                "neurons": {"start": 0, "stop": NEURONS},
                "options": {"chance_explanations": 0},  # checkpoints per neuron; no chance null
            },
        )
        job_id = posted.json()["job_id"]
        ideal = NEURONS * CALLS_PER_NEURON

        # About half the job's calls made and reports stored (with chunk-wide stages none would be yet);
        # progress is written after every neuron, so the status counts what is stored when it is read.
        def half_done() -> bool:
            done = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()["progress"]["done"]
            return peer.calls >= ideal // 2 and done > 0

        wait_for(half_done, 240, "half of the job's LLM calls and a stored report", interval_s=0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        calls_at_kill = peer.calls
        done_at_kill = httpx.get(f"{url}/v1/jobs/{job_id}").json()["progress"]["done"]
        processes.start_worker(env, "second")

        final: dict = {}

        def finished() -> bool:
            final.update(httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10).json())
            assert final["status"] != "failed", final
            return bool(final["status"] == "finished")

        wait_for(finished, 240, "the retried job to finish", interval_s=0.2)
        calls = peer.calls
    assert 0 < done_at_kill < NEURONS and calls_at_kill < ideal  # killed mid-job, reports stored before
    assert ideal <= calls <= ideal + IN_FLIGHT * CALLS_PER_NEURON, (calls, ideal, done_at_kill)
    # The job's usage has every call the peer received, the killed worker's among them (metered when
    # reserved, so at most the calls it had reserved but not yet sent are extra); those it never saw
    # answered stay open.
    usage = final["usage"]
    assert calls <= usage["calls"] <= calls + IN_FLIGHT, (usage, calls)
    assert 0 <= usage["calls_unanswered"] <= IN_FLIGHT, usage
