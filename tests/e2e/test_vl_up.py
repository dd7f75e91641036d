"""A vision-language neuron as a new user explains it: `neuronlens up`, then
`neuronlens explain --model tiny-llava-planted --layer 2 --neuron 200` prints a report with the planted
type, its p_* evidence, a correlation, and exemplar image URLs that the API serves as PNGs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from service.contract import NeuronReport
from tests.e2e.helpers import Processes, process_env, running_up

MODEL, LAYER, NEURON = "tiny-llava-planted", 2, 200
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory, shared_artifact_dir: Path) -> Iterator[str]:
    """`neuronlens up` on the bundled registry with one worker; artifacts in the session's store."""
    processes = Processes(tmp_path_factory.mktemp("vl-stack-logs"))
    env = process_env(NEURONLENS_ARTIFACT_URL=str(shared_artifact_dir))
    with running_up(processes, env, workers=1) as url:
        yield url


def test_cli_explains_a_planted_neuron_with_viewable_images(api_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.commands.main", "explain", "--url", api_url, "--model", MODEL]
        + ["--layer", str(LAYER), "--neuron", str(NEURON)],
        env=process_env(),
        capture_output=True,
        text=True,
        timeout=240,  # inside the test's own limit (300 s), so a stuck CLI fails with its output
    )
    assert result.returncode == 0, result.stderr
    report = NeuronReport.model_validate(json.loads(result.stdout))
    assert (report.model, report.layer, report.neuron) == (MODEL, LAYER, NEURON)
    assert report.neuron_type == "multimodal"  # planted: red image regions and the word "red"
    evidence = report.type_evidence
    assert evidence.p_multimodal > 0.8 and evidence.high_confidence and evidence.n_samples == 50
    assert evidence.p_visual + evidence.p_text + evidence.p_multimodal + evidence.p_unknown == pytest.approx(
        1
    )
    assert report.simulation.correlation is not None and report.simulation.correlation > 0.5
    assert '"red"' in report.explanation.text and "image regions that are red" in report.explanation.text

    from workers.data.vl_probe import draw, sample_spec
    from workers.vocabulary.shading import model_view

    kept_red, faded, other = 0, 0, 0
    with httpx.Client(base_url=api_url, timeout=10) as client:
        for exemplar in report.exemplars:
            assert exemplar.kind == "image+text" and exemplar.image_url is not None
            response = client.get(exemplar.image_url)
            assert response.status_code == 200 and response.headers["content-type"] == "image/png"
            assert response.content.startswith(PNG_SIGNATURE)
            shaded = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB")).astype(int)
            seen = np.asarray(model_view(draw(sample_spec(exemplar.sample_id)))).astype(int)
            assert shaded.shape == seen.shape
            is_red = (seen[..., 0] > 180) & (seen[..., 1] < 80) & (seen[..., 2] < 80)
            kept_red += int((np.abs(shaded[is_red] - seen[is_red]) <= 10).all(axis=1).sum())
            is_other = ~is_red & (seen.min(axis=2) < 200)  # coloured, not red: grass, sky, digits …
            other += int(is_other.sum())
            faded += int((shaded[is_other] == 255).all(axis=1).sum())
    # Planted red regions keep their pixels (near the neuron's maximum); other coloured regions fade to white.
    assert kept_red > 0
    assert other == 0 or faded > 0.5 * other
