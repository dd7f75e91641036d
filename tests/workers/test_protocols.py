"""The authors' protocols by name (issue 18): `bills-2023` and `delphi` give the records, discretised values
and scores the authors' own code gives on the same records (tests/workers/authors_pins.py says how those
numbers were produced), and every report names its protocol."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from service.contract import DatasetSpec, ExplanationRequest, ModelSpec, NeuronReport, PipelineOptions
from tests.llm_peer import LLMPeer
from tests.workers.authors_pins import BILLS, DELPHI, DELPHI_EXPLANATION
from tests.workers.protocol_records import bills_predictions, bills_records, delphi_records
from workers.analysis.assemble import prepare_neuron
from workers.explain.bills import RawRecord, discretise, format_records, shown_max
from workers.llm.caller import LLMCaller
from workers.llm.endpoints import LLMEndpoint
from workers.process.explain_job import explain_neurons
from workers.process.scan_job import open_context
from workers.simulate.binary import OpenAIJudge
from workers.simulate.delphi import delphi_items, delphi_score, n_incorrect, true_marks
from workers.simulate.scoring import score_simulation
from workers.vocabulary.protocols import bills_split, delphi_split, protocol_split, quantile_sample
from workers.vocabulary.records import MODALITY_TEXT, ActivationRecord, TokenRecord

pytestmark = pytest.mark.timeout(120)

LAYER = 2


def _record(sample_id: int, tokens: list[str], acts: np.ndarray) -> ActivationRecord:
    modality = np.full(len(tokens), MODALITY_TEXT, dtype=np.uint8)
    return ActivationRecord(
        TokenRecord(sample_id, tuple(tokens), modality), np.asarray(acts, dtype=np.float32)
    )


def _padded(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(row) for row in rows)
    acts = np.zeros((len(rows), width), dtype=np.float32)
    for index, row in enumerate(rows):
        acts[index, : len(row)] = row
    return acts, np.array([len(row) for row in rows])


def test_bills_records_discretised_values_and_score_are_theirs() -> None:
    top_tokens, top_acts, random_tokens, random_acts = bills_records()
    split = protocol_split(
        PipelineOptions(protocol="bills-2023"),
        np.arange(50),
        np.arange(100, 150),
        _padded(random_acts),
        lambda sample: sample,
    )
    assert split == bills_split(50, 50, 5)
    assert split.explain_ranks == BILLS["train_ranks"]
    assert split.holdout_top_ranks == BILLS["valid_top_ranks"]
    assert split.holdout_random_slots == BILLS["valid_random_slots"]
    # What the explainer is shown: their discretisation on the shown records' max, their format.
    shown = [RawRecord(top_tokens[rank], top_acts[rank].tolist()) for rank in split.explain_ranks]
    top = shown_max(shown)
    assert top == pytest.approx(BILLS["train_max"], abs=0)
    assert [discretise(record.activations, top) for record in shown] == BILLS["discretised"]
    assert hashlib.sha256(format_records(shown, top).encode()).hexdigest() == BILLS["format_sha256"]
    # Their score: one correlation over the flattened held-out records (top, then random).
    real = [top_acts[rank] for rank in split.holdout_top_ranks]
    real += [random_acts[slot] for slot in split.holdout_random_slots]
    tokens = [top_tokens[r] for r in split.holdout_top_ranks] + [
        random_tokens[s] for s in split.holdout_random_slots
    ]
    predicted = [bills_predictions(t, seed=i) for i, t in enumerate(tokens)]
    score = score_simulation(real, predicted, [True] * 5 + [False] * 5, seed=0)
    assert score.correlation == pytest.approx(BILLS["ev_correlation_score"], abs=1e-12)


def _delphi_heldout() -> tuple[list[ActivationRecord], list[ActivationRecord]]:
    top_tokens, top_acts, random_tokens, random_acts = delphi_records()
    split = protocol_split(
        PipelineOptions(protocol="delphi"),
        np.arange(50),
        np.arange(100, 150),
        _padded(random_acts),
        lambda sample: sample,
    )
    assert split == delphi_split(
        np.arange(50), np.arange(100, 150), np.array([a.max() for a in random_acts]), 20, 10, 10
    )
    assert split.holdout_top_ranks == sorted(DELPHI["positions"])  # their split_quantiles draw
    assert split.holdout_random_slots == DELPHI["non_activating_slots"]
    assert all(float(random_acts[slot].max()) <= 0 for slot in split.holdout_random_slots)
    assert not set(split.explain_ranks) & set(split.holdout_top_ranks) and len(split.explain_ranks) == 20
    activating = [_record(rank, top_tokens[rank], top_acts[rank]) for rank in split.holdout_top_ranks]
    silent = [_record(100 + s, random_tokens[s], random_acts[s]) for s in split.holdout_random_slots]
    return activating, silent


def test_delphi_examples_marks_and_texts_are_theirs() -> None:
    activating, silent = _delphi_heldout()
    assert n_incorrect(activating) == DELPHI["n_incorrect"]
    for kind in ("detection", "fuzzing"):
        items = delphi_items(kind, activating, silent)
        assert sorted(item.text or "" for item in items) == DELPHI[kind]["texts"], kind
        assert [item.positive for item in items] == [False] * 10 + [True] * 10
    fuzz = delphi_items("fuzzing", activating, silent)
    assert any(len(item.marks) > (item.text or "").count("<<") for item in fuzz)  # adjacent marks merged
    # Their FuzzingScorer threshold (0.3) and test (activation >= 0.3 × the record's own max).
    assert true_marks(np.array([10.0, 3.0, 2.9, 0.0, 4.0])) == {0, 1, 4}


def _caller(peer: LLMPeer) -> LLMCaller:
    endpoint = LLMEndpoint(
        name="peer",
        base_url=peer.base_url,
        api_key="k",
        explainer_model="e",
        simulator_model="s",
        timeout_s=10.0,
        max_retries=1,
        backoff_s=0.01,
        concurrency=4,
    )
    return LLMCaller(endpoint)


def test_delphi_scores_over_the_peer_are_theirs() -> None:
    """The same examples, the peer's answers and logprobs: Delphi's balanced accuracy, precision, recall,
    F1 and AUC, as their result_analysis computed them."""
    activating, silent = _delphi_heldout()
    with LLMPeer() as peer:
        judge = OpenAIJudge(_caller(peer), batch=5)
        scores = {
            kind: delphi_score(kind, judge, DELPHI_EXPLANATION, activating, silent, "v")
            for kind in ("detection", "fuzzing")
        }
        assert all(request.body.get("top_logprobs") == 5 for request in peer.requests)
    for kind, score in scores.items():
        pinned = DELPHI[kind]
        assert (score.n_positive, score.n_negative, score.parse_failures, score.llm_calls) == (10, 10, 0, 4)
        assert score.balanced_accuracy == pytest.approx(pinned["accuracy"], abs=1e-12), kind
        assert score.precision == pytest.approx(pinned["precision"], abs=1e-12), kind
        assert score.recall == pytest.approx(pinned["recall"], abs=1e-12), kind
        assert score.f1 == pytest.approx(pinned["f1_score"], abs=1e-12), kind
        assert score.auc == pytest.approx(pinned["auc"], abs=1e-12), kind


@pytest.mark.parametrize("protocol", ["neuronlens", "bills-2023", "delphi"])
def test_reports_name_their_protocol_and_follow_its_split(
    protocol: str,
    small_scan: dict[int, Any],
    worker_runtime: Any,
    minilm: ModelSpec,
    small_probe: DatasetSpec,
) -> None:
    options = PipelineOptions.model_validate({"protocol": protocol} if protocol != "neuronlens" else {})
    request = ExplanationRequest(
        model=minilm.id,
        layer=LAYER,
        neurons=[0, 1],
        hook="mlp_act",
        dataset=small_probe.id,
        explainer="baseline",
        simulator="baseline",
        options=options,
    )
    point = minilm.hook("mlp_act")
    reports = list(explain_neurons(worker_runtime, minilm, small_probe, point, request, [0, 1]))
    context = open_context(worker_runtime, minilm, small_probe, "mlp_act", LAYER, options)
    for report in reports:
        assert report.protocol == protocol
        prepared = prepare_neuron(context, report.neuron)
        if protocol == "bills-2023":
            assert prepared.split == bills_split(50, len(context.scan.random_ids), 5)
            assert (report.simulation.n_top, report.simulation.n_random) == (5, 5)
        if protocol == "delphi":
            assert report.detection is not None and report.fuzzing is not None
            assert report.detection.f1 is not None and report.detection.auc is None  # baseline: no logprobs
            assert prepared.split.holdout_top_ranks == sorted(quantile_sample(50, 10, 10))
        else:
            assert report.detection is None or report.detection.f1 is None
    assert (
        NeuronReport.model_validate(
            {k: v for k, v in reports[0].model_dump(mode="json").items() if k != "protocol"}
        ).protocol
        == "neuronlens"
    )  # stored reports without the field parse as the project's own
