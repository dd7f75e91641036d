"""Latents of a user's dictionary as units, through the real API and RQ workers (in this process): a TopK
SAE trained on minilm-l6's own activations (tests/dictionary_training.py) with one latent planted to fire
on digit tokens only, attached to minilm-l6 in the registry like any dictionary a user brings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service.contract import JobStatus, NeuronReport
from service.contract.dictionary_files import read_dictionary_header
from service.settings import Settings
from tests.dictionary_training import TEST_RECIPE, TrainedDictionaries, shared_test_dictionaries
from tests.service.dictionary_helpers import (
    dictionary_entry,
    post_and_work,
    registry_with_dictionaries,
)

pytestmark = pytest.mark.timeout(300)

MODEL, SAE = "minilm-l6", "minilm-sae"
LAYER = 2
RECIPE = TEST_RECIPE
SAMPLES = RECIPE.n_samples
"""The probe set cut to the samples the SAE was trained on, so the scan's FVU is the training figure's."""
WINDOW = 48
"""Latents explained around the planted one: it must rank first among them by score."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedDictionaries:
    return shared_test_dictionaries(tmp_path_factory, RECIPE)


@pytest.fixture(scope="module")
def registry_file(trained: TrainedDictionaries, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("registry")
    good = trained.sae_lens_folder(LAYER)
    narrow = folder / "narrow"  # the same files, its cfg.json claiming another input width
    shutil.copytree(good, narrow)
    cfg = json.loads((narrow / "cfg.json").read_text())
    cfg["d_in"] = 384
    (narrow / "cfg.json").write_text(json.dumps(cfg))
    sparsify = trained.layers[LAYER].sparsify_folder
    entries = [
        dictionary_entry(SAE, {LAYER: good, 5: good}, trained.d_sae, "units-1"),
        dictionary_entry("minilm-sparsify", {LAYER: sparsify}, trained.d_sae, "units-1"),
        dictionary_entry("narrow", {LAYER: narrow}, trained.d_sae, "units-1"),
    ]
    return registry_with_dictionaries(folder, MODEL, entries, SAMPLES)


def _explain(http: httpx.Client, conn: redis.Redis, settings: Settings, body: dict[str, Any]) -> JobStatus:
    status = post_and_work(http, conn, settings, body)
    assert status.status == "finished", status.error
    return status


def test_a_planted_latent_is_typed_explained_beyond_chance_and_ranked_first(
    latents_api: tuple[httpx.Client, Settings], redis_conn: redis.Redis, trained: TrainedDictionaries
) -> None:
    http, settings = latents_api
    planted = trained.planted_latent
    window = {"start": planted - WINDOW // 2, "stop": planted + WINDOW // 2}
    status = _explain(
        http, redis_conn, settings, {"model": MODEL, "units": SAE, "layer": LAYER, "neurons": window}
    )
    reports = {report.neuron: report for report in status.reports or []}
    assert sorted(reports) == list(range(window["start"], window["stop"]))
    found = reports[planted]
    assert found.neuron_type == "text"
    assert "digit" in found.explanation.text.lower() or "number" in found.explanation.text.lower()
    assert found.simulation.chance is not None and found.simulation.chance.beyond_chance
    # Trained TopK latents are mostly single-token detectors that score as high; the planted one is the only
    # latent about digits, scores like them, and tops its dictionary by activation (its gain: top-k keeps it).
    assert found.simulation.correlation is not None and found.simulation.correlation > 0.95
    about_digits = [n for n, r in reports.items() if "digit" in r.explanation.text.lower()]
    assert about_digits == [planted]
    assert max(reports, key=lambda n: reports[n].max_activation) == planted
    header = read_dictionary_header(trained.sae_lens_folder(LAYER))
    assert found.dictionary is not None
    assert (found.dictionary.id, found.dictionary.digest) == (SAE, header.digest)
    assert (found.dictionary.format, found.dictionary.architecture) == ("sae-lens", "topk")
    assert found.hook == "mlp_act"

    # The stored report, its page and the layer's table read it with `units`; a neuron of that index has none.
    query = {"units": SAE}
    stored = http.get(f"/v1/neurons/{MODEL}/{LAYER}/{planted}", params=query)
    assert stored.status_code == 200 and NeuronReport.model_validate(stored.json()) == found
    assert http.get(f"/v1/neurons/{MODEL}/{LAYER}/{planted}").status_code == 404
    page = http.get(f"/v1/neurons/{MODEL}/{LAYER}/{planted}/page", params=query)
    assert page.status_code == 200 and f"latent {planted} of {SAE}" in page.text
    assert 'id="dictionary"' in page.text
    ranked = http.get(f"/view/{MODEL}/{LAYER}", params={**query, "sort": "max_activation", "order": "desc"})
    assert ranked.status_code == 200
    assert ranked.text.index(f"/{LAYER}/{planted}/page") < min(
        ranked.text.index(f"/{LAYER}/{n}/page") for n in reports if n != planted
    )
    table = http.get(f"/v1/neurons/{MODEL}/{LAYER}", params={**query, "format": "csv"})
    assert table.status_code == 200 and len(table.text.strip().splitlines()) == WINDOW + 1

    # A neuron of the layer: its report and its table have the latent's shape.
    neuron = _explain(http, redis_conn, settings, {"model": MODEL, "layer": LAYER, "neurons": [planted]})
    (neuron_report,) = neuron.reports or []
    assert neuron_report.dictionary is None and neuron_report.hook == found.hook
    assert set(neuron_report.model_dump()) == set(found.model_dump())
    neuron_table = http.get(f"/v1/neurons/{MODEL}/{LAYER}", params={"format": "csv"}).text.splitlines()
    assert neuron_table[0] == table.text.splitlines()[0] and len(neuron_table) == 2


def test_the_dictionary_reports_its_reconstruction_and_density(
    latents_api: tuple[httpx.Client, Settings], redis_conn: redis.Redis, trained: TrainedDictionaries
) -> None:
    http, settings = latents_api
    _explain(http, redis_conn, settings, {"model": MODEL, "units": SAE, "layer": LAYER, "neurons": [0]})
    quality = http.get(f"/v1/models/{MODEL}/dictionaries/{SAE}").json()
    first, last = quality["layers"]
    assert (first["layer"], first["scanned"], last["layer"], last["scanned"]) == (LAYER, True, 5, False)
    assert last["fvu"] is None and last["dead"] is None
    figures = trained.layers[LAYER]
    # The scan's totals cover the same content tokens the training measured (float32 sums vs float64).
    assert first["fvu"] == pytest.approx(figures.fvu, rel=1e-3)
    assert first["tokens"] == trained.tokens
    assert first["dead"] == figures.dead_latents
    assert (
        0 <= first["dense"] < trained.d_sae
        and first["digest"] == read_dictionary_header(trained.sae_lens_folder(LAYER)).digest
    )
    missing = http.get(f"/v1/models/{MODEL}/dictionaries/nope")
    assert missing.status_code == 404 and "minilm-sae" in missing.json()["detail"]


def test_the_same_weights_in_sparsify_format_give_the_same_latents(
    latents_api: tuple[httpx.Client, Settings], redis_conn: redis.Redis, trained: TrainedDictionaries
) -> None:
    http, settings = latents_api
    planted = trained.planted_latent
    body = {"layer": LAYER, "neurons": [planted], "model": MODEL}
    sae_lens = _explain(http, redis_conn, settings, {**body, "units": SAE}).reports or []
    sparsify = _explain(http, redis_conn, settings, {**body, "units": "minilm-sparsify"}).reports or []
    assert sparsify[0].dictionary is not None and sparsify[0].dictionary.format == "sparsify"
    assert [e.sample_id for e in sparsify[0].exemplars] == [e.sample_id for e in sae_lens[0].exemplars]
    assert sparsify[0].max_activation == pytest.approx(sae_lens[0].max_activation, rel=1e-5)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"units": "nope", "layer": LAYER}, "units", "choose one of neurons, minilm-sae"),
        ({"units": SAE, "layer": 0}, "layer", "covers layers 2, 5"),
        ({"units": SAE, "layer": LAYER, "neurons": [3072]}, "neurons.0", "latent 3072 is out of range"),
        ({"units": SAE, "layer": LAYER, "shards": 2}, "shards", "scanned by one worker"),
        ({"units": SAE, "layer": LAYER, "hook": "mlp_out"}, "hook", "reads hook point 'mlp_act'"),
        (
            {"units": "narrow", "layer": LAYER},
            "units",
            "d_in is 384 but hook mlp_act of minilm-l6 yields 1536",
        ),
    ],
)
def test_bad_units_are_refused_naming_the_field(
    latents_api: tuple[httpx.Client, Settings], body: dict[str, Any], field: str, words: str
) -> None:
    http, _ = latents_api
    answer = http.post("/v1/explanations", json={"model": MODEL, "neurons": [0], **body})
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert [error["field"] for error in problem["errors"]] == [field]
    assert words in problem["errors"][0]["message"]
