"""Latents of a vision-language model's dictionary through the real API and RQ workers (in this process):
tiny-llava-planted with a TopK SAE trained on its own layer-2 `mlp_act` activations
(tests/dictionary_training.py, VL_RECIPE), latent 100 planted on visual neuron 11 (blue image regions). The
latent's report is typed like the neuron, its image exemplars are served as PNGs shaded by the latent's
activation, and its page renders."""

from __future__ import annotations

import html
import io
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis
from PIL import Image

from service.contract import JobStatus, NeuronReport
from service.contract.dictionary_files import read_dictionary_header
from service.settings import Settings
from tests.dictionary_training import VL_RECIPE, TrainedDictionaries, shared_test_dictionaries
from tests.service.dictionary_helpers import (
    dictionary_entry,
    post_and_work,
    registry_with_dictionaries,
)

pytestmark = pytest.mark.timeout(300)

MODEL, SAE, LAYER = VL_RECIPE.model, "llava-sae", VL_RECIPE.layers[0]
PLANTED_NEURON = VL_RECIPE.planted_neuron
OTHER = 3
"""A trained latent explained beside the planted one."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedDictionaries:
    return shared_test_dictionaries(tmp_path_factory, VL_RECIPE)


@pytest.fixture(scope="module")
def registry_file(trained: TrainedDictionaries, tmp_path_factory: pytest.TempPathFactory) -> Path:
    entry = dictionary_entry(
        SAE, {LAYER: trained.sae_lens_folder(LAYER)}, trained.d_sae, "vl-test-1", VL_RECIPE.hook
    )
    # the probe set cut to the samples the SAE was trained on
    return registry_with_dictionaries(
        tmp_path_factory.mktemp("vl-registry"), MODEL, [entry], VL_RECIPE.n_samples
    )


def _explain(http: httpx.Client, conn: redis.Redis, settings: Settings, body: dict[str, object]) -> JobStatus:
    status = post_and_work(http, conn, settings, dict(body))
    assert status.status == "finished", status.error
    return status


def test_the_planted_visual_latent_is_typed_visual_with_shaded_image_exemplars(
    latents_api: tuple[httpx.Client, Settings], redis_conn: redis.Redis, trained: TrainedDictionaries
) -> None:
    from workers.data.vl_probe_v2 import draw_v2, sample_spec_v2
    from workers.vocabulary.shading import model_view, shaded_png

    http, settings = latents_api
    planted = trained.planted_latent
    body = {"model": MODEL, "units": SAE, "layer": LAYER, "neurons": [OTHER, planted]}
    reports = {report.neuron: report for report in _explain(http, redis_conn, settings, body).reports or []}
    found = reports[planted]
    assert found.neuron_type == "visual" and found.type_evidence.p_visual > 0.8
    assert found.dictionary is not None
    header = read_dictionary_header(trained.sae_lens_folder(LAYER))
    assert (found.dictionary.id, found.dictionary.digest, found.dictionary.format) == (
        SAE,
        header.digest,
        "sae-lens",
    )

    # The planted neuron itself, explained as a neuron: the latent reads it, so their top samples agree.
    (neuron,) = (
        _explain(
            http, redis_conn, settings, {**body, "units": "neurons", "neurons": [PLANTED_NEURON]}
        ).reports
        or []
    )
    assert neuron.neuron_type == "visual" and neuron.dictionary is None
    top = len(found.exemplars) // 2
    assert [e.sample_id for e in found.exemplars[:top]] == [e.sample_id for e in neuron.exemplars[:top]]

    for exemplar in found.exemplars[:3]:
        assert exemplar.image_url is not None and exemplar.original_image_url is not None
        url = urlsplit(exemplar.image_url)
        assert url.path == f"/v1/neurons/{MODEL}/{LAYER}/{planted}/exemplars/{exemplar.rank}.png"
        assert parse_qs(url.query)["units"] == [SAE]
        shown = http.get(exemplar.image_url)
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/png"
        seen = model_view(draw_v2(sample_spec_v2(exemplar.sample_id)))
        assert exemplar.patch_grid is not None and exemplar.patch_activations is not None
        grid = (exemplar.patch_grid[0], exemplar.patch_grid[1])
        expected = shaded_png(seen, exemplar.patch_activations, grid, found.max_activation)
        assert Image.open(io.BytesIO(shown.content)).tobytes() == Image.open(io.BytesIO(expected)).tobytes()
        assert http.get(exemplar.original_image_url).status_code == 200
    # the neuron's images are its own: the same rank of the same sample, shaded by another activation
    assert neuron.exemplars[0].image_url != found.exemplars[0].image_url

    query = {"units": SAE}
    stored = http.get(f"/v1/neurons/{MODEL}/{LAYER}/{planted}", params=query)
    assert (
        stored.status_code == 200 and NeuronReport.model_validate(stored.json()).exemplars == found.exemplars
    )
    page = http.get(f"/v1/neurons/{MODEL}/{LAYER}/{planted}/page", params=query)
    assert page.status_code == 200 and f"latent {planted} of {SAE}" in page.text
    assert '<span class="badge visual">visual</span>' in page.text and 'id="dictionary"' in page.text
    for exemplar in found.exemplars:
        assert f'<img src="{html.escape(exemplar.image_url or "")}"' in page.text
    assert "&lt;patch" not in page.text
