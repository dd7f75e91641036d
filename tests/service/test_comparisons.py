"""Comparisons through the real API and RQ workers (in this process): the planted BERT against its changed
checkpoint (known layer-0 changes), against real fine-tunes (no exact truth: what must hold), against an
identical copy (all `unchanged`, and through the loopback LLM peer no explanation call), a dry run,
exports, and a 422 for models that cannot be compared."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from service.contract.comparisons import ComparisonEstimate, ComparisonStatus, NeuronComparison, VerdictRule
from service.http.app import create_app
from service.settings import Settings, load_settings
from tests.llm_peer import LLMPeer
from tests.service.comparisons_helpers import (
    BASE,
    CHANGES,
    COPY,
    TARGET,
    comparison_registry,
    post_and_run,
    set_peer_env,
    set_worker_env,
)
from tests.service.helpers import run_workers, serve
from workers.models.changed_checkpoint import DIGIT_NEURON
from workers.models.finetuned_checkpoint import FineTuning
from workers.models.planted_text import PLANTED_TEXT_CONCEPTS

pytestmark = pytest.mark.timeout(300)
TUNINGS = {  # a light and a stronger fine-tune: more steps at a higher learning rate
    "tiny-bert-tuned-light": FineTuning(steps=3, learning_rate=1e-4),
    "tiny-bert-tuned": FineTuning(steps=6, learning_rate=1e-3),
}


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return comparison_registry(tmp_path_factory.mktemp("checkpoints"), TUNINGS)


@pytest.fixture()
def stack(
    registry_file: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[httpx.Client, Settings]]:
    set_worker_env(monkeypatch, registry_file, settings)
    with httpx.Client(timeout=60) as http:
        yield http, settings.model_copy(update={"registry_path": registry_file})


def _compare(
    http: httpx.Client, url: str, conn: redis.Redis, settings: Settings, body: dict[str, Any]
) -> ComparisonStatus:
    status = post_and_run(http, url, conn, settings, body)
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
    neurons = [DIGIT_NEURON, 20, 3]
    with LLMPeer() as peer:
        set_peer_env(monkeypatch, peer.base_url)
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


def _rule(item: NeuronComparison, base_median: float, target_median: float) -> str:
    """The verdict rule with its default thresholds, applied to a row's numbers."""
    rule = VerdictRule()
    base_silent = item.base_max <= 0 or item.base_max <= rule.silent_share * base_median
    target_silent = item.target_max <= 0 or item.target_max <= rule.silent_share * target_median
    if base_silent and target_silent:
        return "unchanged"
    if base_silent != target_silent:
        return "dead" if target_silent else "born"
    r = item.pearson_max  # (a fine-tune moves every weight: no identical maxima)
    assert item.top_overlap is not None
    if r is None or r < rule.min_pearson or item.top_overlap < rule.min_jaccard:
        return "changed"
    assert item.max_ratio is not None
    return "unchanged" if rule.ratio_low <= item.max_ratio <= rule.ratio_high else "rescaled"


def test_a_real_fine_tune_keeps_the_planted_concepts_and_changes_more_with_more_training(
    stack: tuple[httpx.Client, Settings], redis_conn: redis.Redis
) -> None:
    """No exact truth: what must hold. The planted concept neurons (rows reading a reserved dimension with
    a large weight) survive a few steps: `unchanged` or `rescaled`, their explanation still scores; the
    share of `changed` grows with the training; every verdict is the rule applied to its numbers."""
    http, settings = stack
    shares = {}
    with serve(create_app(settings)) as url:
        for name in TUNINGS:
            body = {"base": BASE, "target": name, "layers": [0, 1], "neurons": "all"}
            status = _compare(http, url, redis_conn, settings, body)
            assert status.comparisons is not None and status.comparisons_total == 256
            found = {(item.layer, item.neuron): item for item in status.comparisons}
            for neuron in PLANTED_TEXT_CONCEPTS:
                item = found[(0, neuron)]
                assert item.verdict in ("unchanged", "rescaled"), item
                assert item.score_drop is not None and abs(item.score_drop) < 0.1, item
            for item in status.comparisons:  # every neuron of a layer: its rows give the layer's median
                layer = [row for row in status.comparisons if row.layer == item.layer]
                medians = (np.median([r.base_max for r in layer]), np.median([r.target_max for r in layer]))
                assert item.verdict == _rule(item, *medians), item
            shares[name] = status.verdicts.get("changed", 0) / 256
    light, strong = (shares[name] for name in TUNINGS)
    assert light < strong, shares
