"""Re-scoring an explanation on another checkpoint (workers/analysis/rescore.py), on real scans of the
planted BERT and of its changed checkpoint: the digit explanation holds on the base and fails on the target
whose digit neuron was re-planted onto "?"; a rescaled neuron keeps its score."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.contract import PipelineOptions, load_registry
from service.settings import load_settings
from workers.analysis.rescore import rescore
from workers.models.changed_checkpoint import CheckpointChanges, build_changed_checkpoint
from workers.models.loader import weights_path
from workers.models.planted_text import build_planted_bert
from workers.simulate.baseline import BaselineSimulator

pytestmark = pytest.mark.timeout(300)
DIGITS, PLAY = 10, 20
CHANGES = CheckpointChanges(rescaled=(PLAY,), replant_digits=True)


def test_an_explanation_holds_on_the_base_and_fails_where_the_neuron_changed(tmp_path: Path) -> None:
    from workers.process.scan_job import open_context, scan_layers
    from workers.process.worker import build_runtime

    registry = load_registry()
    minilm = registry.model("minilm-l6")
    base = build_planted_bert(minilm, weights_path(minilm), tmp_path / "base")
    target = build_changed_checkpoint(base, "tiny-bert-changed", tmp_path / "target", CHANGES)
    dataset = registry.dataset("text-probe-v2").model_copy(update={"n_samples": 600})
    runtime = build_runtime(load_settings(artifact_url=str(tmp_path / "store"), device="cpu"))
    options = PipelineOptions()
    texts = ["numbers (digit tokens)", 'words starting with "play"']
    scores = {}
    for spec in (base, target):
        point = spec.hook("mlp_act")
        scan_layers(runtime, spec, dataset, point, [0], options)
        context = open_context(runtime, spec, dataset, point.id, 0, options)
        scores[spec.id] = [
            r.score.correlation for r in rescore(context, [DIGITS, PLAY], texts, BaselineSimulator())
        ]
    base_digits, base_play = scores[base.id]
    target_digits, target_play = scores[target.id]
    assert base_digits is not None and base_digits > 0.8, scores
    assert target_digits is None or target_digits < 0.3, scores
    assert base_play is not None and target_play is not None and abs(base_play - target_play) < 0.1, scores
    with pytest.raises(ValueError, match="2 neurons but 1 explanations"):
        rescore(context, [DIGITS, PLAY], texts[:1], BaselineSimulator())
