"""Requests for latents beyond the first explanation, through the real API and RQ workers (in this process):
dry runs count latents and the scan passes of the dictionary's layers, `layers: "all"` means the layers
the dictionary covers, a repeat of a finished request answers its stored reports, a budget stops a job of
latents like one of neurons, and weights that are not finite fail the job naming the tensor.

The dictionary is a seeded random SAELens `standard` SAE (its latents need no meaning here) on minilm-l6's
`mlp_act` of layers 1 and 3."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis
import torch
from safetensors.torch import load_file, save_file

from service.contract import CostEstimate, JobStatus
from service.http.app import create_app
from service.settings import Settings, load_settings
from tests.dictionary_writers import write_sae_lens
from tests.llm_peer import LLMPeer
from tests.service.comparisons_helpers import set_worker_env
from tests.service.dictionary_helpers import (
    dictionary_entry,
    post_and_work,
    registry_with_dictionaries,
)
from tests.service.helpers import rq_jobs, serve

pytestmark = pytest.mark.timeout(300)

MODEL, SAE, BROKEN = "minilm-l6", "requests-sae", "requests-nan-sae"
LAYERS = [1, 3]
LATENTS = 512
SAMPLES = 160
"""The default probe set cut to this many samples: scans of two layers take seconds."""
BASELINE = {"explainer": "baseline", "simulator": "baseline"}


def _random_sae(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    encoder = torch.randn(1536, LATENTS, generator=generator) / 1536**0.5
    return {"W_enc": encoder, "b_enc": torch.zeros(LATENTS), "W_dec": encoder.T, "b_dec": torch.zeros(1536)}


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dictionaries")
    good = {layer: write_sae_lens(folder / f"layer_{layer}", _random_sae(layer)) for layer in LAYERS}
    broken = folder / "broken"  # the layer 1 files with one NaN in W_enc: the header is fine
    shutil.copytree(good[1], broken)
    tensors = load_file(broken / "sae_weights.safetensors")
    tensors["W_enc"][5, 9] = float("nan")
    save_file(tensors, broken / "sae_weights.safetensors")
    entries = [
        dictionary_entry(SAE, good, LATENTS, "requests-1"),
        dictionary_entry(BROKEN, {1: broken}, LATENTS, "requests-1"),
    ]
    return registry_with_dictionaries(folder, MODEL, entries, SAMPLES)


def _dry_run(http: httpx.Client, body: dict[str, Any]) -> CostEstimate:
    answer = http.post("/v1/explanations", json={**body, "dry_run": True})
    assert answer.status_code == 200, answer.text
    return CostEstimate.model_validate(answer.json())


def _run(http: httpx.Client, conn: redis.Redis, settings: Settings, body: dict[str, Any]) -> JobStatus:
    return post_and_work(http, conn, settings, body)


def test_dry_run_all_layers_and_a_repeat_of_latents(
    latents_api: tuple[httpx.Client, Settings], redis_conn: redis.Redis
) -> None:
    http, settings = latents_api
    body = {"model": MODEL, "units": SAE, "layers": "all", "neurons": {"start": 0, "stop": 6}, **BASELINE}

    # A dry run: the dictionary's layers, its latents counted as neurons, one scan pass; nothing enqueued.
    keys_before = set(redis_conn.keys("*"))
    estimate = _dry_run(http, body)
    assert set(redis_conn.keys("*")) == keys_before
    assert (estimate.layers, estimate.neurons, estimate.neurons_to_explain) == (LAYERS, 12, 12)
    assert (estimate.scan.layers_to_scan, estimate.scan.passes, estimate.scan.samples) == (LAYERS, 1, SAMPLES)
    every = _dry_run(http, {**body, "neurons": "all"})
    assert (every.layers, every.neurons) == (LAYERS, LATENTS * len(LAYERS))
    neurons = _dry_run(http, {**body, "units": "neurons"})
    assert neurons.layers == list(range(6))  # the model's own layers without a dictionary

    # The run: reports of the dictionary's layers only, each naming the dictionary.
    status = _run(http, redis_conn, settings, body)
    assert status.status == "finished", status.error
    reports = status.reports or []
    assert sorted((r.layer, r.neuron) for r in reports) == [(layer, n) for layer in LAYERS for n in range(6)]
    assert {(r.dictionary.id if r.dictionary else None) for r in reports} == {SAE}
    # The job's page links each latent's page with `units`, and the link opens it.
    job_page = http.get(f"/view/jobs/{status.job_id}")
    assert job_page.status_code == 200
    link = re.search(rf'href="(/v1/neurons/{MODEL}/1/0/page\?[^"]*)"', job_page.text)
    assert link is not None and parse_qs(urlsplit(html.unescape(link.group(1))).query)["units"] == [SAE]
    latent_page = http.get(html.unescape(link.group(1)))
    assert latent_page.status_code == 200 and f"latent 0 of {SAE}" in latent_page.text

    # Now stored: the dry run reuses every report and scans nothing; the same indices as neurons do not.
    stored = _dry_run(http, body)
    assert (stored.reports_stored, stored.neurons_to_explain, stored.scan.passes) == (12, 0, 0)
    assert stored.scan.layers_to_scan == []
    as_neurons = _dry_run(http, {**body, "units": "neurons", "layers": LAYERS})
    assert (as_neurons.reports_stored, as_neurons.scan.layers_to_scan) == (0, LAYERS)

    # A repeat answers 200 with the finished job and its stored reports; nothing is enqueued again.
    jobs_before = rq_jobs(redis_conn)
    repeat = http.post("/v1/explanations", json=body)
    assert repeat.status_code == 200, repeat.text
    again = JobStatus.model_validate(repeat.json())
    assert again.status == "finished" and again.job_id == status.job_id
    assert [r.model_dump() for r in again.reports or []] == [r.model_dump() for r in reports]
    assert rq_jobs(redis_conn) == jobs_before


def test_non_finite_weights_fail_the_job_naming_the_tensor(
    latents_api: tuple[httpx.Client, Settings], redis_conn: redis.Redis
) -> None:
    http, settings = latents_api
    body = {"model": MODEL, "units": BROKEN, "layer": 1, "neurons": [0], **BASELINE}
    status = _run(http, redis_conn, settings, body)  # the header is fine: accepted, then the worker refuses
    assert status.status == "failed" and status.error is not None
    assert status.error.type == "InvalidDictionary"
    assert "sae_weights.safetensors W_enc has 1 non-finite values" in status.error.message
    assert not status.reports


def test_a_call_budget_stops_a_job_of_latents_cleanly(
    registry_file: Path, settings: Settings, redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_worker_env(monkeypatch, registry_file, settings)
    options = {"n_holdout": 2, "chance_explanations": 0}
    """1 explanation and 4 simulations per latent."""
    body = {"model": MODEL, "units": SAE, "layer": 1, "neurons": [3, 5, 7, 9, 11, 13], "options": options}
    with LLMPeer() as peer:
        for name, value in {
            "NEURONLENS_LLM_API_KEY": "test-key",
            "NEURONLENS_EXPLAINER_MODEL": "peer-explainer",
            "NEURONLENS_SIMULATOR_MODEL": "peer-simulator",
            "NEURONLENS_LLM_CONCURRENCY": "1",
            "NEURONLENS_LLM_BASE_URL": peer.base_url,
        }.items():
            monkeypatch.setenv(name, value)
        llm_settings = load_settings()
        with serve(create_app(llm_settings)) as url, httpx.Client(base_url=url, timeout=120) as http:
            # An LLM request on another latent: the layer's scan, then its prompt profile for dry runs.
            first = _run(http, redis_conn, llm_settings, {**body, "neurons": [0]})
            assert first.status == "finished", first.error
            estimate = _dry_run(http, body)
            assert (estimate.neurons, estimate.llm.calls, estimate.token_basis) == (6, 30, "records")
            before = peer.calls
            status = _run(http, redis_conn, llm_settings, {**body, "budget": {"max_llm_calls": 12}})
    assert status.status == "finished" and status.error is None and status.budget_exhausted
    done = sorted(r.neuron for r in status.reports or [])
    assert len(done) == 2 and peer.calls - before == 12  # two whole latents, the third abandoned after two
    assert all(r.dictionary is not None and r.dictionary.id == SAE for r in status.reports or [])
    assert status.not_done is not None and sorted(status.not_done[0].neurons + done) == body["neurons"]
