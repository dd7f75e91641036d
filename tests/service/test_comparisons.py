"""Comparisons through the real API and RQ workers (in this process): the planted BERT against its changed
checkpoint (known layer-0 changes), against an identical copy (all `unchanged`, and through the loopback
LLM peer no explanation call), a dry run, exports, and a 422 for models that cannot be compared."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from service.contract.comparisons import ComparisonEstimate, ComparisonStatus
from service.http.app import create_app
from service.settings import Settings, load_settings
from tests.llm_peer import LLMPeer
from tests.service.comparison_registry import (
    BASE,
    CHANGES,
    COPY,
    TARGET,
    use_comparison_registry,
    write_comparison_registry,
)
from tests.service.helpers import run_workers, serve
from workers.models.changed_checkpoint import DIGIT_NEURON

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled registry plus the planted BERT, its changed checkpoint and an identical copy."""
    return write_comparison_registry(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture()
def stack(
    registry_file: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[httpx.Client, Settings]]:
    api_settings = use_comparison_registry(monkeypatch, registry_file, settings)
    with httpx.Client(timeout=60) as http:
        yield http, api_settings


def _compare(
    http: httpx.Client, url: str, conn: redis.Redis, settings: Settings, body: dict[str, Any]
) -> ComparisonStatus:
    answer = http.post(f"{url}/v1/comparisons", json=body)
    assert answer.status_code == 202, answer.text
    run_workers(conn, settings)
    status = ComparisonStatus.model_validate(
        http.get(url + answer.headers["Location"], params={"limit": 1000}).json()
    )
    assert status.status == "finished", status.error
    return status


def test_a_comparison_finds_the_planted_changes(
    stack: tuple[httpx.Client, Settings], redis_conn: redis.Redis
) -> None:
    http, settings = stack
    body = {"base": BASE, "target": TARGET, "layers": [0], "neurons": "all"}
    with serve(create_app(settings)) as url:
        estimate = ComparisonEstimate.model_validate(
            http.post(f"{url}/v1/comparisons", json=body | {"dry_run": True}).json()
        )
        assert estimate.neurons == 128 and estimate.llm_calls_max == 0  # the offline baseline
        status = _compare(http, url, redis_conn, settings, body)
        assert status.comparisons is not None and status.comparisons_total == 128 == status.progress.done
        found = {item.neuron: item for item in status.comparisons}
        truth = CHANGES.truth()
        changed = {n for n, item in found.items() if item.verdict == "changed"}
        true_changed = {n for n, v in truth.items() if v == "changed"}
        hits = len(changed & true_changed)
        assert hits / len(changed) >= 0.9 and hits / len(true_changed) >= 0.9, (changed, true_changed)
        assert all(found[n].verdict == "rescaled" for n in CHANGES.rescaled)
        assert all(found[n].verdict == "dead" for n in CHANGES.dead)
        assert sum(status.verdicts.values()) == 128 and status.verdicts["dead"] == len(CHANGES.dead)
        digits = found[DIGIT_NEURON]  # re-planted onto "?": the old explanation no longer holds
        assert digits.base_score is not None and digits.base_score > 0.8, digits
        assert digits.score_drop is not None and digits.score_drop > 0.5, digits
        rescaled = found[20]  # the planted "play" neuron, doubled: its explanation still holds
        assert rescaled.score_drop is not None and abs(rescaled.score_drop) < 0.1, rescaled
        # reexplain "changed": fresh explanations exactly where the verdict is changed or born
        assert {n for n, item in found.items() if item.target_explanation} == {
            n for n, item in found.items() if item.verdict in ("changed", "born")
        }
        table = http.get(f"{url}/v1/comparisons/{status.comparison_id}/rows", params={"format": "csv"})
        assert table.status_code == 200, table.text
        rows = list(csv.DictReader(io.StringIO(table.text)))
        assert len(rows) == 128 and rows[DIGIT_NEURON]["verdict"] == "changed" and "base_score" in rows[0]
        lines = http.get(f"{url}/v1/comparisons/{status.comparison_id}/rows").text.splitlines()
        assert [json.loads(line)["neuron"] for line in lines] == list(range(128))
        parquet = http.get(f"{url}/v1/comparisons/{status.comparison_id}/rows", params={"format": "parquet"})
        assert parquet.status_code == 200 and parquet.content[:4] == b"PAR1"
        rows_url = f"{url}/v1/comparisons/{status.comparison_id}/rows"
        by_accept = http.get(rows_url, headers={"Accept": "text/csv"})
        assert by_accept.headers["content-type"].startswith("text/csv") and by_accept.text == table.text
        refused = http.get(rows_url, params={"format": "csv"}, headers={"Accept": "application/x-ndjson"})
        assert refused.status_code == 406, refused.text


def test_models_that_tokenise_differently_are_refused(stack: tuple[httpx.Client, Settings]) -> None:
    http, settings = stack
    with serve(create_app(settings)) as url:
        answer = http.post(
            f"{url}/v1/comparisons",
            json={"base": "minilm-l6", "target": "tiny-llama", "layers": [0], "neurons": [1]},
        )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "tokenizer" in detail and "neurons per layer" in detail, detail


def test_an_identical_checkpoint_is_unchanged_with_no_explanation_call(
    stack: tuple[httpx.Client, Settings], redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, api_settings = stack
    for name, value in {
        "NEURONLENS_LLM_API_KEY": "test-key",
        "NEURONLENS_EXPLAINER_MODEL": "peer-explainer",
        "NEURONLENS_SIMULATOR_MODEL": "peer-simulator",
        "NEURONLENS_LLM_CONCURRENCY": "1",
    }.items():
        monkeypatch.setenv(name, value)
    neurons = [DIGIT_NEURON, 20, 3]
    with LLMPeer() as peer:
        monkeypatch.setenv("NEURONLENS_LLM_BASE_URL", peer.base_url)
        settings = load_settings().model_copy(update={"redis_url": api_settings.redis_url})
        options = {"n_holdout": 2}
        with serve(create_app(settings)) as url, httpx.Client(timeout=60) as http:
            first = http.post(
                f"{url}/v1/explanations",
                json={"model": BASE, "layer": 0, "neurons": neurons, "options": options},
            )
            assert first.status_code == 202, first.text
            run_workers(redis_conn, settings)
            before = len(peer.requests)
            body = {"base": BASE, "target": COPY, "layers": [0], "neurons": neurons, "options": options}
            status = _compare(http, url, redis_conn, settings, body)
        during = peer.requests[before:]
    assert status.verdicts == {"unchanged": 3}
    assert [r for r in during if r.role == "explainer"] == []
    assert len([r for r in during if r.role == "simulator"]) == 3 * 4  # the base explanations re-scored
    assert status.comparisons is not None
    for item in status.comparisons:  # the same activations: the same score (null where the peer's is)
        assert item.base_explanation and item.base_score_on_target == pytest.approx(item.base_score)
        assert item.target_explanation is None
    assert any(item.base_score is not None for item in status.comparisons)
