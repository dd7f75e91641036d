"""Latents in comparisons and pins, through the real API and RQ workers (in this process): one dictionary id
attached to the planted BERT and to its changed checkpoint (known layer-0 neuron changes), each with its own
folder and revision. Its encoder rows are one-hots of chosen neurons (latent = relu(neuron)), so each
latent's verdict is known: a latent reading a `dead` neuron is `dead`, one reading an untouched neuron
`unchanged`, and so on; the digit latent's explanation loses its score on the target, and a pin on it fails
there through `POST /v1/checks`, the SDK and `neuronlens check`."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import torch

from neuronlens import Client
from neuronlens.cli.main import main as neuronlens_main
from neuronlens.pins import dump_pin_file, pins_from_reports
from service.contract import CheckStatus, PinFile
from service.http.app import create_app
from service.settings import Settings
from tests.dictionary_writers import write_sae_lens
from tests.service.comparisons_helpers import (
    BASE,
    COPY,
    TARGET,
    comparison_registry,
    post_and_run,
    set_worker_env,
)
from tests.service.helpers import run_workers, serve
from workers.models.changed_checkpoint import DIGIT_NEURON

pytestmark = pytest.mark.timeout(300)

SAE = "bert-onehot"
READS = (3, DIGIT_NEURON, 20, 30, 70, 71, 50, 5)
"""The neuron each latent reads (latent i reads READS[i])."""
TRUTH = ("unchanged", "changed", "rescaled", "changed", "dead", "dead", "rescaled", "unchanged")
"""Each latent's verdict, from its neuron's change (tests/service/comparisons_helpers.CHANGES)."""
DIGIT_LATENT = READS.index(DIGIT_NEURON)
NEURONS = 128
"""The planted BERT's mlp_act width (`d_in`)."""


def _one_hot_sae(folder: Path, reads: tuple[int, ...]) -> str:
    """A standard SAE whose latent i is relu(neuron reads[i]) (its decoder puts the neuron back)."""
    w_enc = torch.zeros(NEURONS, len(reads))
    for latent, neuron in enumerate(reads):
        w_enc[neuron, latent] = 1.0
    tensors = {"W_enc": w_enc, "b_enc": torch.zeros(len(reads)), "W_dec": w_enc.T.clone()}
    tensors["b_dec"] = torch.zeros(NEURONS)
    return str(write_sae_lens(folder, tensors, hook_name="blocks.0.mlp.hook_post"))


def _entry(dictionary_id: str, folder: str, latents: int, revision: str) -> dict[str, Any]:
    layers = [{"layer": 0, "path": folder}]
    entry = {"id": dictionary_id, "kind": "sae", "hook": "mlp_act", "latents": latents, "layers": layers}
    return {**entry, "revision": revision}


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The comparison registry; the base and the target get `bert-onehot` (the same weights in two folders,
    two revisions), the base alone `base-only`, and `narrower` with 8 latents on the base, 4 on the target."""
    folder = tmp_path_factory.mktemp("dict-compare")
    path = comparison_registry(folder / "checkpoints")
    base_sae = _one_hot_sae(folder / "base-sae", READS)
    target_sae = folder / "target-sae"
    shutil.copytree(base_sae, target_sae)
    narrow = _one_hot_sae(folder / "narrow-sae", READS[:4])
    registry = json.loads(path.read_text())
    attached = {
        BASE: [
            _entry(SAE, base_sae, len(READS), "base-1"),
            _entry("base-only", base_sae, len(READS), "1"),
            _entry("narrower", base_sae, len(READS), "1"),
        ],
        TARGET: [_entry(SAE, str(target_sae), len(READS), "target-1"), _entry("narrower", narrow, 4, "1")],
    }
    for model in registry["models"]:
        model["dictionaries"] = attached.get(model["id"], model.get("dictionaries", []))
    path.write_text(json.dumps(registry))
    return path


@pytest.fixture()
def api(
    registry_file: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Settings]]:
    set_worker_env(monkeypatch, registry_file, settings)
    api_settings = settings.model_copy(update={"registry_path": registry_file})
    with serve(create_app(api_settings)) as url:
        yield url, api_settings


def test_latents_get_the_verdicts_of_the_neurons_they_read(
    api: tuple[str, Settings], redis_conn: redis.Redis
) -> None:
    url, settings = api
    body = {"base": BASE, "target": TARGET, "units": SAE, "layers": [0], "neurons": "all"}
    with httpx.Client(timeout=60) as http:
        compared = post_and_run(http, url, redis_conn, settings, body)
    assert compared.status == "finished", compared.error
    assert compared.units == SAE and compared.comparisons is not None
    assert [item.neuron for item in compared.comparisons] == list(range(len(READS)))
    assert {item.units for item in compared.comparisons} == {SAE}
    assert tuple(item.verdict for item in compared.comparisons) == TRUTH
    digits = compared.comparisons[DIGIT_LATENT]  # its neuron re-planted onto "?": the explanation fails
    assert digits.base_explanation is not None and "digit" in digits.base_explanation
    assert digits.base_score is not None and digits.base_score > 0.8, digits
    assert digits.score_drop is not None and digits.score_drop > 0.5, digits
    with httpx.Client(base_url=url, timeout=60) as http:
        table = http.get(f"/v1/comparisons/{compared.comparison_id}/rows", params={"format": "csv"})
        rows = list(csv.DictReader(io.StringIO(table.text)))
        assert [(row["units"], row["verdict"]) for row in rows] == [(SAE, v) for v in TRUTH]
        # The base's latent reports, as the comparison explained them; a neuron of that index has none.
        report = http.get(f"/v1/neurons/{BASE}/0/{DIGIT_LATENT}", params={"units": SAE})
        assert report.status_code == 200 and report.json()["dictionary"]["revision"] == "base-1"
        page = http.get(f"/view/comparisons/{compared.comparison_id}/0/{DIGIT_LATENT}")
        assert page.status_code == 200 and f"latent of {SAE}" in page.text
        assert f"/v1/neurons/{BASE}/0/{DIGIT_LATENT}/page?hook=mlp_act&amp;units={SAE}" in page.text
        overview = http.get(f"/view/comparisons/{compared.comparison_id}")
        assert f'id="units">{SAE}<' in overview.text
        # The same request again joins it; the neurons' comparison is another one.
        again = http.post("/v1/comparisons", json=body)
        assert again.json()["comparison_id"] == compared.comparison_id
        of_neurons = http.post("/v1/comparisons", json={**body, "units": "neurons"})
        assert of_neurons.json()["comparison_id"] != compared.comparison_id


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"target": COPY, "units": SAE}, f"units 'bert-onehot' is not offered by {COPY}"),
        ({"units": "base-only"}, f"units 'base-only' is not offered by {TARGET}"),
        (
            {"units": "narrower"},
            "latents: narrower has 8 per layer on tiny-bert-planted, 4 on tiny-bert-changed",
        ),
        ({"target": BASE, "units": "nope"}, "choose one of neurons, bert-onehot, base-only, narrower"),
    ],
)
def test_units_both_models_cannot_share_are_refused_naming_the_field(
    api: tuple[str, Settings], body: dict[str, Any], words: str
) -> None:
    url, _ = api
    request = {"base": BASE, "target": TARGET, "layers": [0], "neurons": [0], **body}
    answer = httpx.post(f"{url}/v1/comparisons", json=request, timeout=60)
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    assert [error["field"] for error in errors] == ["units"] and words in errors[0]["message"], errors


def _check(url: str, conn: redis.Redis, settings: Settings, pin_file: PinFile, model: str) -> CheckStatus:
    body = {**pin_file.model_dump(mode="json", exclude_none=True, exclude={"version"}), "model": model}
    answer = httpx.post(f"{url}/v1/checks", json=body, timeout=60)
    assert answer.status_code == 202, answer.text
    run_workers(conn, settings)
    status = CheckStatus.model_validate(httpx.get(url + answer.json()["status_url"], timeout=60).json())
    assert status.status == "finished", status.error
    return status


def test_a_pin_on_a_latent_holds_on_the_base_and_fails_on_the_target(
    api: tuple[str, Settings], redis_conn: redis.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, settings = api
    body = {"model": BASE, "units": SAE, "layer": 0, "neurons": [DIGIT_LATENT]}
    answer = httpx.post(f"{url}/v1/explanations", json=body, timeout=60)
    assert answer.status_code == 202, answer.text
    run_workers(redis_conn, settings)
    with Client(url) as client:  # pins written from the latent's report record the units
        reports = list(client.iter_reports(answer.json()["job_id"]))
    pin_file, _ = pins_from_reports(reports, min_score=0.6)
    assert pin_file is not None and pin_file.units == SAE and pin_file.model == BASE
    held = _check(url, redis_conn, settings, pin_file, BASE)
    assert held.passed and held.results is not None
    assert held.results[0].name == f"{BASE} {SAE} L0 N{DIGIT_LATENT}"
    failed = _check(url, redis_conn, settings, pin_file, TARGET)
    assert failed.passed is False and failed.results is not None
    assert failed.results[0].score is not None and failed.results[0].score < 0.6
    # The neuron the latent reads is another unit: without `units`, the same pin is another check.
    as_neuron = pin_file.model_copy(update={"units": None})
    neuron = _check(url, redis_conn, settings, as_neuron, TARGET)
    assert neuron.check_id != failed.check_id and neuron.results is not None
    assert neuron.results[0].name == f"{TARGET} L0 N{DIGIT_LATENT}"
    # `neuronlens check` sends the pin file's units: it joins the finished check on the target (exit 1).
    pins = tmp_path / "pins.yaml"
    pins.write_text(dump_pin_file(pin_file))
    assert f"units: {SAE}" in pins.read_text()
    capsys.readouterr()
    assert neuronlens_main(["check", str(pins), "--model", TARGET, "--url", url, "--format", "json"]) == 1
    assert CheckStatus.model_validate_json(capsys.readouterr().out).check_id == failed.check_id
    out_of_range = {"layer": 0, "neuron": len(READS), "explanation": "x", "min_score": 0.1}
    body = {"model": TARGET, "units": SAE, "pins": [out_of_range]}
    refused = httpx.post(f"{url}/v1/checks", json=body, timeout=60)
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "pins.0.neuron"
