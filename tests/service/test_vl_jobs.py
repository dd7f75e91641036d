"""Vision-language models through the API and a real RQ worker (in this process): tiny-llava-planted reports
with their planted types, image URLs the API serves as PNGs shaded exactly as docs/method.md#exemplar-images
says, and real-checkpoint entries that fail at once, naming the missing weights."""

from __future__ import annotations

import html
import io
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis
from PIL import Image

from service.contract import JobStatus, NeuronReport
from service.http.app import create_app
from service.settings import Settings
from tests.service.helpers import PROBLEM_JSON, run_workers, serve

PLANTED = "tiny-llava-planted"
LAYER = 2
RED, BLUE = 200, 11
UNEXPLAINED = 7
"""A neuron no test explains, so no image of it is ever stored."""


@pytest.fixture()
def vl_stack(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[httpx.Client, str]]:
    """The API on the bundled registry; workers (run in-process) read the same settings from the env."""
    for name, value in {
        "NEURONLENS_ARTIFACT_URL": settings.artifact_url,
        "NEURONLENS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http, url


def _run(http: httpx.Client, conn: redis.Redis, settings: Settings, body: dict[str, object]) -> JobStatus:
    response = http.post("/v1/explanations", json=body)
    assert response.status_code == 202, response.text
    run_workers(conn, settings)
    status = http.get(f"/v1/jobs/{response.json()['job_id']}")
    assert status.status_code == 200
    assert "Traceback" not in status.text
    return JobStatus.model_validate(status.json())


@pytest.mark.parametrize(
    ("model", "hub_id"),
    [("llava-1.5-7b", "llava-hf/llava-1.5-7b-hf"), ("qwen2-vl-2b", "Qwen/Qwen2-VL-2B-Instruct")],
)
def test_real_checkpoints_without_weights_fail_at_once_saying_how_to_provide_them(
    vl_stack: tuple[httpx.Client, str], redis_conn: redis.Redis, settings: Settings, model: str, hub_id: str
) -> None:
    http, _ = vl_stack
    status = _run(http, redis_conn, settings, {"model": model, "layer": 0, "neurons": [0]})
    assert status.status == "failed" and status.error is not None
    assert status.error.type == "ModelWeightsMissing"
    message = status.error.message
    assert hub_id in message and "never downloads" in message
    assert f"huggingface-cli download {hub_id}" in message and "source.path" in message


def test_planted_neurons_get_their_type_and_viewable_shaded_images(
    vl_stack: tuple[httpx.Client, str], redis_conn: redis.Redis, settings: Settings
) -> None:
    from workers.data.vl_probe_v2 import draw_v2, sample_spec_v2
    from workers.vocabulary.shading import model_view, shaded_png

    http, _ = vl_stack
    status = _run(http, redis_conn, settings, {"model": PLANTED, "layer": LAYER, "neurons": [RED, BLUE]})
    assert status.status == "finished", status.error
    assert status.reports is not None
    red, blue = sorted(status.reports, key=lambda r: r.neuron, reverse=True)
    assert (red.neuron_type, blue.neuron_type) == ("multimodal", "visual")
    assert red.type_evidence.p_multimodal > 0.8 and blue.type_evidence.p_visual > 0.8
    assert red.simulation.correlation is not None and red.simulation.correlation > 0.5

    for exemplar in red.exemplars[:3]:
        assert exemplar.image_url is not None
        url = urlsplit(exemplar.image_url)
        assert url.path == f"/v1/neurons/{PLANTED}/{LAYER}/{RED}/exemplars/{exemplar.rank}.png"
        assert parse_qs(url.query) == {
            "hook": ["mlp_act"],
            "dataset": ["vl-probe-v2"],  # the default probe set
            "explainer": ["baseline"],
            "simulator": ["baseline"],
        }
        response = http.get(exemplar.image_url)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        seen = model_view(draw_v2(sample_spec_v2(exemplar.sample_id)))
        assert exemplar.patch_grid is not None and exemplar.patch_activations is not None
        grid = (exemplar.patch_grid[0], exemplar.patch_grid[1])
        expected = shaded_png(seen, exemplar.patch_activations, grid, red.max_activation)
        shown = Image.open(io.BytesIO(response.content))
        assert shown.size == seen.size
        assert shown.tobytes() == Image.open(io.BytesIO(expected)).tobytes()
        # the unshaded image beside it is exactly what the model saw
        assert exemplar.original_image_url is not None
        assert urlsplit(exemplar.original_image_url).path.endswith(f"/exemplars/{exemplar.rank}-original.png")
        original = http.get(exemplar.original_image_url)
        assert original.status_code == 200 and original.headers["content-type"] == "image/png"
        assert (
            Image.open(io.BytesIO(original.content)).convert("RGB").tobytes() == seen.convert("RGB").tobytes()
        )

    # random exemplars: held-out random records with the simulator's predictions and their own images
    assert red.random_exemplars
    for exemplar in red.random_exemplars:
        assert exemplar.simulated is not None and len(exemplar.simulated) == len(exemplar.tokens)
        assert exemplar.image_url is not None and exemplar.original_image_url is not None
        assert urlsplit(exemplar.image_url).path.endswith(f"/exemplars/random-{exemplar.rank}.png")
        assert http.get(exemplar.image_url).status_code == 200
    held_top = [exemplar for exemplar in red.exemplars if exemplar.simulated is not None]
    assert held_top and len(held_top) < len(red.exemplars)  # records shown to the explainer have none

    stored = http.get(f"/v1/neurons/{PLANTED}/{LAYER}/{RED}")
    assert stored.status_code == 200
    assert NeuronReport.model_validate_json(stored.content).exemplars == red.exemplars

    page = http.get(f"/v1/neurons/{PLANTED}/{LAYER}/{RED}/page")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<h2>Type <span class="badge multimodal">multimodal</span></h2>' in page.text
    assert html.escape(red.explanation.text) in page.text
    for exemplar in [*red.exemplars, *red.random_exemplars]:
        assert f'<img src="{html.escape(exemplar.image_url or "")}"' in page.text
        assert f'<img src="{html.escape(exemplar.original_image_url or "")}"' in page.text
    assert "&lt;patch" not in page.text  # patches are shown as the image, not as tokens
    assert http.get(f"/v1/neurons/{PLANTED}/{LAYER}/{UNEXPLAINED}/page").status_code == 404


def test_exemplar_image_lookups_that_find_nothing_are_404(vl_stack: tuple[httpx.Client, str]) -> None:
    http, _ = vl_stack
    base = f"/v1/neurons/{PLANTED}/{LAYER}/{UNEXPLAINED}/exemplars"
    for path in (f"{base}/0.png", f"{base}/zero.png", f"{base}/0.png?variant=0123456789abcdef"):
        response = http.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert http.get(f"/v1/neurons/{PLANTED}/{LAYER}/999/exemplars/0.png").status_code == 404
    assert http.get(f"{base}/0.png?variant=nothex").status_code == 422
