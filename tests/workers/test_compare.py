"""Comparisons of two checkpoints (workers/analysis/compare.py) on real scans of the planted BERT and of its
changed checkpoint, whose layer-0 truth is exact: the verdicts find the changed set with precision and
recall ≥ 0.9, call rescaled neurons `rescaled` and dead ones `dead`, and an identical checkpoint is all
`unchanged`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.contract import PipelineOptions, load_registry
from service.contract.comparisons import VerdictRule
from service.settings import load_settings
from workers.analysis.compare import Agreement, agreement, jaccard, overlap_by_value, pearson, verdict
from workers.models.changed_checkpoint import CheckpointChanges, build_changed_checkpoint
from workers.models.loader import weights_path
from workers.models.planted_text import build_planted_bert

pytestmark = pytest.mark.timeout(300)
CHANGES = CheckpointChanges(
    changed=tuple(range(30, 42)),
    rescaled=tuple(range(50, 58)),
    dead=tuple(range(70, 76)),
    replant_digits=True,
)


def test_verdicts_recover_the_planted_changes(tmp_path: Path) -> None:
    from workers.process.scan_job import open_context, scan_layers
    from workers.process.worker import build_runtime

    registry = load_registry()
    minilm = registry.model("minilm-l6")
    base = build_planted_bert(minilm, weights_path(minilm), tmp_path / "base")
    target = build_changed_checkpoint(base, "tiny-bert-changed", tmp_path / "target", CHANGES)
    dataset = registry.dataset("text-probe-v2").model_copy(update={"n_samples": 600})
    runtime = build_runtime(load_settings(artifact_url=str(tmp_path / "store"), device="cpu"))
    options, rule = PipelineOptions(), VerdictRule()
    scans = {}
    for spec in (base, target):
        point = spec.hook("mlp_act")
        scan_layers(runtime, spec, dataset, point, [0], options)
        scans[spec.id] = open_context(runtime, spec, dataset, point.id, 0, options)
    lengths = scans[base.id].probe.lengths
    found = {
        n: verdict(agreement(scans[base.id].scan, scans[target.id].scan, n, lengths), rule)
        for n in range(base.neurons_per_layer)
    }
    truth = CHANGES.truth()
    changed = {n for n, v in found.items() if v == "changed"}
    true_changed = {n for n, v in truth.items() if v == "changed"}
    hits = len(changed & true_changed)
    assert hits / len(changed) >= 0.9 and hits / len(true_changed) >= 0.9, (changed, true_changed)
    assert all(found[n] == "rescaled" for n in CHANGES.rescaled), {n: found[n] for n in CHANGES.rescaled}
    assert all(found[n] == "dead" for n in CHANGES.dead), {n: found[n] for n in CHANGES.dead}
    untouched = [n for n in found if n not in truth]
    assert sum(found[n] == "unchanged" for n in untouched) >= 0.9 * len(untouched)
    # the same scan on both sides: every neuron unchanged
    same = scans[base.id].scan
    assert {verdict(agreement(same, same, n, lengths), rule) for n in range(base.neurons_per_layer)} == {
        "unchanged"
    }


def _numbers(**changes: float | bool | None) -> Agreement:
    fields: dict = dict(
        pearson_max=0.99,
        pearson_tokens=0.99,
        n_tokens=100,
        jaccard_top=0.9,
        top_overlap=0.9,
        base_max=5.0,
        target_max=5.2,
        identical=False,
        base_layer_max=1.0,
        target_layer_max=1.0,
    )
    return Agreement(**(fields | changes))


def test_the_verdict_rule_in_order() -> None:
    rule = VerdictRule()
    assert verdict(_numbers(), rule) == "unchanged"
    assert verdict(_numbers(target_max=10.0), rule) == "rescaled"
    assert verdict(_numbers(target_max=10.0, top_overlap=0.2), rule) == "changed"
    # the rule reads the overlap by value: top-N ids reshuffled within a plateau are no change
    assert verdict(_numbers(jaccard_top=0.2), rule) == "unchanged"
    assert verdict(_numbers(pearson_max=0.5), rule) == "changed"
    assert verdict(_numbers(pearson_max=None), rule) == "changed"
    assert verdict(_numbers(target_max=0.0), rule) == "dead"
    assert verdict(_numbers(target_max=0.04), rule) == "dead"  # ≤ 5% of the layer's median max
    assert verdict(_numbers(base_max=-0.1), rule) == "born"
    assert verdict(_numbers(base_max=0.0, target_max=0.0, pearson_max=None), rule) == "unchanged"
    assert verdict(_numbers(identical=True, pearson_max=None), rule) == "unchanged"
    assert verdict(_numbers(target_max=10.0), VerdictRule(ratio_high=3.0)) == "unchanged"


def test_pearson_and_jaccard() -> None:
    assert pearson(np.arange(5.0), 2 * np.arange(5.0) + 1) == pytest.approx(1.0)
    assert pearson(np.ones(4), np.arange(4.0)) is None and pearson(np.ones(1), np.ones(1)) is None
    assert (
        jaccard(np.array([1, 2, 3]), np.array([2, 3, 4])) == 0.5
        and jaccard(np.array([]), np.array([])) == 1.0
    )


def test_the_overlap_by_value_counts_near_ties_on_both_sides() -> None:
    # a plateau of 6 samples near 3.0 and a top set of 3: plain top-3 ids can share nothing
    base = np.array([3.00, 2.99, 2.98, 2.97, 2.96, 2.95, 0.1, 0.0, -np.inf])
    target = np.array([2.95, 2.96, 2.97, 2.98, 2.99, 3.00, 0.1, 0.0, -np.inf])
    assert jaccard(np.argsort(-base)[:3], np.argsort(-target)[:3]) == 0.0
    assert overlap_by_value(base, target, 3, 0.25) == 1.0  # the whole plateau on both sides
    assert overlap_by_value(base, target, 3, 0.0) == 0.0  # no tolerance: the plain sets
    moved = np.array([0.0, 0.1, 0.0, 0.1, 0.0, 0.1, 3.0, 2.9, 2.8])  # other samples drive it now
    assert overlap_by_value(base, moved, 3, 0.25) == 0.0
    assert overlap_by_value(np.full(3, -np.inf), np.full(3, -np.inf), 3, 0.25) == 1.0
