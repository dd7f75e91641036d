"""A score against chance (workers/analysis/chance.py, service/contract/chance.py): the null of k donor
explanations, its t-prediction p, undefined nulls counted, and the donors every job of a layer shares."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.contract import (
    DatasetSpec,
    ExplanationRequest,
    ModelSpec,
    NeuronReport,
    PipelineOptions,
    chance_donors,
    neuron_summary,
    null_donors,
    summary_row,
)
from service.viewer.chance import chance_counts, chance_line
from workers.analysis.chance import chance_level, null_correlation, sd_floor


def test_a_score_far_above_its_null_is_beyond_chance() -> None:
    nulls = [0.02, -0.05, 0.04, 0.0, -0.01]
    level = chance_level(0.9, nulls, [3, 7, 11, 12, 40], n_tokens=400, alpha=0.01)
    assert level.k == 5 and level.donors == [3, 7, 11, 12, 40] and level.n_undefined == 0
    assert level.sd == pytest.approx(sd_floor(400))  # the nulls' own sd (0.035) is below the 1/√n floor
    assert level.z is not None and level.z > 15
    assert level.p_value is not None and level.p_value < 1e-4
    assert level.beyond_chance is True


def test_a_score_like_its_donors_is_not_beyond_chance() -> None:
    nulls = [0.25, 0.31, 0.18, 0.28, 0.22]
    level = chance_level(float(np.mean(nulls)), nulls, list(range(5)), n_tokens=400, alpha=0.01)
    assert level.z == pytest.approx(0.0, abs=1e-12)
    assert level.p_value == pytest.approx(0.5)
    assert level.beyond_chance is False


def test_undefined_nulls_count_as_zero_and_are_counted() -> None:
    level = chance_level(0.3, [None, 0.1, None, 0.2], [1, 2, 3, 4], n_tokens=10_000, alpha=0.01)
    assert level.n_undefined == 2
    assert level.null_correlations == [None, 0.1, None, 0.2]
    assert level.mean == pytest.approx(0.075)
    assert level.sd == pytest.approx(float(np.std([0, 0.1, 0, 0.2], ddof=1)))


def test_an_all_undefined_null_is_floored_so_p_cannot_vanish() -> None:
    level = chance_level(0.2, [None] * 5, [1, 2, 3, 4, 5], n_tokens=400, alpha=0.01)
    assert level.n_undefined == 5 and level.mean == 0.0
    assert level.sd == pytest.approx(0.05)  # 1/√400
    assert level.p_value is not None and 0.01 < level.p_value < 0.05
    assert level.beyond_chance is False


def test_an_undefined_score_or_too_few_donors_has_no_verdict() -> None:
    undefined = chance_level(None, [0.1, 0.0, 0.2], [1, 2, 3], n_tokens=100, alpha=0.01)
    assert undefined.z is None and undefined.p_value is None and undefined.beyond_chance is None
    assert undefined.mean == pytest.approx(0.1)  # the null is still reported
    one = chance_level(0.9, [0.0], [1], n_tokens=100, alpha=0.01)
    assert one.k == 1 and one.p_value is None and one.beyond_chance is None


def test_the_p_value_is_calibrated_when_the_score_is_another_draw_of_the_null() -> None:
    """On data with no structure (the explanation no better than the donors') about alpha of the scores
    are beyond chance."""
    rng = np.random.default_rng(0)
    draws = rng.normal(0.05, 0.1, size=(20_000, 6))
    beyond = [
        chance_level(float(row[0]), list(row[1:]), list(range(5)), 10**8, 0.01).beyond_chance for row in draws
    ]
    assert 0.008 <= float(np.mean(beyond)) <= 0.012


def test_null_correlation_pools_the_records_it_could_predict() -> None:
    real = [np.array([0.0, 5.0, 1.0]), np.array([2.0, 0.0]), np.array([0.0, 0.0, 4.0])]
    predicted = [np.array([0.0, 4.0, 1.0]), None, np.array([1.0, 0.0, 3.0])]
    expected = np.corrcoef([0.0, 5.0, 1.0, 0.0, 0.0, 4.0], [0.0, 4.0, 1.0, 1.0, 0.0, 3.0])[0, 1]
    assert null_correlation(real, predicted) == pytest.approx(expected)
    constant = [np.zeros(3), None, np.zeros(3)]
    assert null_correlation(real, constant) is None
    assert null_correlation(real, [None, None, None]) is None


def test_donors_are_seeded_nested_and_shared_by_the_layer() -> None:
    donors = chance_donors(1536, 5, seed=0, layer=3)
    assert len(donors) == len(set(donors)) == 6 and all(0 <= d < 1536 for d in donors)
    assert chance_donors(1536, 5, seed=0, layer=3) == donors
    assert chance_donors(1536, 20, seed=0, layer=3)[:6] == donors  # a larger k adds donors
    assert chance_donors(1536, 5, seed=1, layer=3) != donors
    assert chance_donors(1536, 5, seed=0, layer=4) != donors
    assert sorted(chance_donors(4, 5, seed=0, layer=0)) == [0, 1, 2, 3]
    assert chance_donors(1536, 0, seed=0, layer=3) == []
    # A donor's own null is the other k donors; any other neuron's the first k.
    assert null_donors(donors, donors[0], 5) == donors[1:]
    assert null_donors(donors, donors[3], 5) == donors[:3] + donors[4:]
    assert null_donors(donors, 99999, 5) == donors[:5]


# --------------------------------------------------------------------------- a whole layer, end to end


@pytest.fixture(scope="module")
def minilm_l3_reports(worker_runtime: Any, minilm: ModelSpec, small_probe: DatasetSpec) -> list[NeuronReport]:
    """Every neuron of minilm-l6 layer 3 over the small probe set, baseline explainer and simulator, the
    default chance null (k = 5)."""
    from workers.process.explain_job import explain_neurons
    from workers.process.scan_job import scan_layers

    point = minilm.hook("mlp_act")
    scan_layers(worker_runtime, minilm, small_probe, point, [3], PipelineOptions())
    neurons = list(range(minilm.neurons_per_layer))
    request = ExplanationRequest(
        model=minilm.id,
        layer=3,
        neurons=neurons,
        hook="mlp_act",
        dataset=small_probe.id,
        explainer="baseline",
        simulator="baseline",
    )
    return list(explain_neurons(worker_runtime, minilm, small_probe, point, request, neurons))


def test_a_layer_reports_its_share_of_neurons_beyond_chance(minilm_l3_reports: list[NeuronReport]) -> None:
    reports = minilm_l3_reports
    donors = chance_donors(1536, 5, seed=0, layer=3)
    defined = [r for r in reports if r.simulation.correlation is not None]
    for report in reports:
        chance = report.simulation.chance
        assert chance is not None and chance.k == 5 and chance.donors == null_donors(donors, report.neuron, 5)
        assert (chance.beyond_chance is None) == (report.simulation.correlation is None)
        assert chance.n_undefined == sum(r is None for r in chance.null_correlations)
        assert report.provenance.llm_calls is not None and report.provenance.llm_calls["chance"] == 0
    summaries = [neuron_summary(r.model_dump(mode="json")) for r in reports]
    beyond, judged, total = chance_counts(summaries)
    assert total == 1536 and judged == len(defined)
    assert 0 < beyond < judged
    assert f"{beyond} of 1536 neurons beyond chance" in chance_line(summaries)
    rows = [summary_row(r.model_dump(mode="json")) for r in reports]
    assert sum(row["beyond_chance"] is True for row in rows) == beyond
    assert all((row["chance_p_value"] is None) == (row["correlation"] is None) for row in rows)
