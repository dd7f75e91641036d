"""A new user's path to LLM explanations: `neuronlens up` started with the four NEURONLENS_ variables pointing
at an OpenAI-compatible server (the test peer on loopback), then `neuronlens explain` with no backend named.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.contract import BUNDLED_REGISTRY, NeuronReport
from tests.e2e.helpers import Processes, process_env, running_up
from tests.llm_peer import Fault, LLMPeer

pytestmark = pytest.mark.timeout(300)

LAYER = 2
SAMPLES = 600
"""The probe-set slice the service tests scan too (the artifact is shared within a session)."""
EXPLAINER_MODEL, SIMULATOR_MODEL, API_KEY = "peer-explainer", "peer-simulator", "e2e-key"


class LLMStack:
    def __init__(self, url: str, peer: LLMPeer) -> None:
        self.url = url
        self.peer = peer


@pytest.fixture(scope="module")
def llm_stack(tmp_path_factory: pytest.TempPathFactory, shared_artifact_dir: Path) -> Iterator[LLMStack]:
    registry = json.loads(BUNDLED_REGISTRY.read_text())
    registry["datasets"][0]["n_samples"] = SAMPLES
    registry_path = tmp_path_factory.mktemp("llm-registry") / "registry.json"
    registry_path.write_text(json.dumps(registry))
    processes = Processes(tmp_path_factory.mktemp("llm-stack-logs"))
    with LLMPeer() as peer:
        env = process_env(
            NEURONLENS_ARTIFACT_URL=str(shared_artifact_dir),
            NEURONLENS_REGISTRY_PATH=str(registry_path),
            NEURONLENS_LLM_BASE_URL=peer.base_url,
            NEURONLENS_LLM_API_KEY=API_KEY,
            NEURONLENS_EXPLAINER_MODEL=EXPLAINER_MODEL,
            NEURONLENS_SIMULATOR_MODEL=SIMULATOR_MODEL,
            NEURONLENS_LLM_MAX_RETRIES="1",
            NEURONLENS_LLM_BACKOFF_S="0.01",
        )
        with running_up(processes, env, workers=1) as url:
            yield LLMStack(url, peer)


def explain(url: str, neuron: int, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["explain", "--url", url, "--model", "minilm-l6", "--layer", str(LAYER), "--neuron", str(neuron)]
    args += extra
    return subprocess.run(
        [sys.executable, "-m", "service.commands.main", *args, "--timeout", "150"],
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_explain_returns_a_report_written_by_the_configured_endpoint(llm_stack: LLMStack) -> None:
    before = len(llm_stack.peer.requests)
    result = explain(llm_stack.url, 5)
    assert result.returncode == 0, result.stderr
    report = NeuronReport.model_validate_json(result.stdout)
    assert (report.explanation.backend, report.explanation.model) == ("openai", EXPLAINER_MODEL)
    assert (report.simulation.backend, report.simulation.model) == ("openai", SIMULATOR_MODEL)
    assert report.explanation.prompt_version == "text-explainer-bills-1"
    assert report.provenance.llm_tokens["prompt"] > 0 and report.provenance.llm_tokens["completion"] > 0

    calls = llm_stack.peer.requests[before:]
    # 1 explanation and its 20 held-out simulations, 5 × 20 simulations of the chance null's donor
    # explanations, and the 6 donors of layer 2 (neuron 5 is none of them) explained first by the job.
    assert report.provenance.llm_calls == {"explainer": 1, "simulator": 20, "chance": 100}
    assert len(calls) == 6 + 121 and {c.status for c in calls} == {200}
    donors = calls[:6]
    assert {c.role for c in donors} == {"explainer"}
    assert {(c.role, c.body["model"]) for c in calls} == {
        ("explainer", EXPLAINER_MODEL),
        ("simulator", SIMULATOR_MODEL),
    }
    assert {c.authorization for c in calls} == {f"Bearer {API_KEY}"}
    assert sum(c.prompt_tokens for c in calls[6:]) == report.provenance.llm_tokens["prompt"]
    stored = httpx.get(f"{llm_stack.url}/v1/neurons/minilm-l6/{LAYER}/5", timeout=10)
    assert NeuronReport.model_validate_json(stored.content) == report


def test_an_endpoint_that_keeps_failing_fails_the_command_with_its_answer(llm_stack: LLMStack) -> None:
    llm_stack.peer.add_faults(Fault("server_error", 2))
    # No chance null: the job's first request is the neuron's explanation, the one both faults hit (the
    # donors' explanations would run concurrently and share them out).
    result = explain(llm_stack.url, 6, "--option", "chance_explanations=0")
    assert result.returncode == 1
    assert "LLM endpoint 'default' failed after 2 attempts: HTTP 500" in result.stderr
    assert result.stdout == ""
