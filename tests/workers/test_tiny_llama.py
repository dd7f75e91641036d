"""The llama family for text models: tiny-llama built offline and scanned, classified, explained and scored
end to end; gpt2 through the text adapter; real checkpoints only from this host; every registry
architecture has a loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from service.contract import (
    SUPPORTED_ARCHITECTURES,
    ExplanationRequest,
    NeuronReport,
    PipelineOptions,
    load_registry,
)
from service.settings import Settings, load_settings
from workers.data.text_probe import generate_text_probe
from workers.errors import ModelWeightsMissing, UnknownModel
from workers.models.hooks import capture_activations, run_forward
from workers.models.loader import ADAPTER_BUILDERS, ModelCache
from workers.models.tiny_llama import build_tiny_llama, build_tiny_llama_tokenizer
from workers.process.explain_job import explain_neurons
from workers.process.runtime import WorkerRuntime
from workers.process.scan_job import scan_layers
from workers.process.worker import build_runtime
from workers.vocabulary.records import MODALITY_TEXT

LAYER = 2
N_SAMPLES = 240


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(artifact_url=str(tmp_path_factory.mktemp("llama")), device="cpu")


@pytest.fixture(scope="module")
def runtime(settings: Settings) -> WorkerRuntime:
    return build_runtime(settings)


def test_every_registry_architecture_has_a_loader() -> None:
    assert set(ADAPTER_BUILDERS) == SUPPORTED_ARCHITECTURES
    for model in load_registry().models:
        assert model.architecture in SUPPORTED_ARCHITECTURES, model.id


def test_tokenizer_has_probe_words_as_tokens_and_prepends_bos() -> None:
    tokenizer = build_tiny_llama_tokenizer()
    text = generate_text_probe(3).samples[1].text
    encoded = tokenizer(text, return_special_tokens_mask=True)
    assert encoded["input_ids"][0] == tokenizer.bos_token_id and encoded["special_tokens_mask"][0] == 1
    assert tokenizer.unk_token_id not in encoded["input_ids"]
    assert "token_type_ids" not in encoded


def test_seeded_build_is_reproducible() -> None:
    first, _ = build_tiny_llama()
    second, _ = build_tiny_llama()
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_hook_points_read_act_fn_output_and_down_proj_input(runtime: WorkerRuntime) -> None:
    spec = load_registry().model("tiny-llama")
    adapter = runtime.models.get(spec)
    samples = generate_text_probe(4).samples
    tokenized = adapter.tokenize(samples)
    assert all(item.content_positions[0] == 1 for item in tokenized)  # BOS is not content
    assert all((item.modality == MODALITY_TEXT).all() for item in tokenized)
    batch = adapter.make_batch(samples, tokenized)
    mlp = adapter.module.get_submodule(f"layers.{LAYER}.mlp")
    ups: list[torch.Tensor] = []
    handle = mlp.up_proj.register_forward_hook(lambda _m, _a, out: ups.append(out))
    try:
        with torch.inference_mode():
            with capture_activations(adapter.module, spec.hook("mlp_act"), [LAYER]) as act:
                run_forward(lambda: adapter.forward(batch))
            with capture_activations(adapter.module, spec.hook("mlp_down_in"), [LAYER]) as down_in:
                run_forward(lambda: adapter.forward(batch))
    finally:
        handle.remove()
    assert act[LAYER].shape[-1] == spec.neurons_per_layer == 256
    torch.testing.assert_close(down_in[LAYER], act[LAYER] * ups[0])


def test_scan_classify_explain_and_score_end_to_end(runtime: WorkerRuntime) -> None:
    registry = load_registry()
    spec = registry.model("tiny-llama")
    dataset = registry.dataset("text-probe-v1").model_copy(update={"n_samples": N_SAMPLES})
    point = spec.hook("mlp_act")
    infos = scan_layers(runtime, spec, dataset, point, [LAYER], PipelineOptions(n_top=30))
    assert infos[LAYER].n_samples == N_SAMPLES and not infos[LAYER].reused
    request = ExplanationRequest(
        model="tiny-llama",
        layer=LAYER,
        neurons=[0, 17, 255],
        hook="mlp_act",
        dataset="text-probe-v1",
        explainer="baseline",
        simulator="baseline",
        options=PipelineOptions(n_top=30),
    )
    reports = list(explain_neurons(runtime, spec, dataset, point, request, [0, 17, 255]))
    assert [r.neuron for r in reports] == [0, 17, 255]
    for report in reports:
        assert NeuronReport.model_validate_json(report.model_dump_json()) == report
        assert (report.model, report.model_revision) == ("tiny-llama", "seed0-v1")
        assert report.neuron_type in ("text", "unknown")
        assert report.explanation.text
        assert report.simulation.correlation is not None or report.simulation.null_reason
        assert report.exemplars and all(e.tokens[0] != "<s>" for e in report.exemplars)


def test_gpt2_scans_through_the_text_adapter(tmp_path: Path, runtime: WorkerRuntime) -> None:
    """A tiny GPT-2 saved to a folder stands in for the hub checkpoint (same classes, same hook path)."""
    tokenizer = build_tiny_llama_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=3,
        n_head=4,
        n_inner=128,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    spec = load_registry().model("gpt2")
    spec = spec.model_copy(
        update={
            "id": "gpt2-tiny-test",
            "layers": 3,
            "neurons_per_layer": 128,
            "source": spec.source.model_copy(update={"path": str(tmp_path)}),
        }
    )
    dataset = load_registry().dataset("text-probe-v1").model_copy(update={"n_samples": 64})
    infos = scan_layers(runtime, spec, dataset, spec.hook("mlp_act"), [0, 2], PipelineOptions(n_top=30))
    assert sorted(infos) == [0, 2]


@pytest.mark.parametrize("model_id", ["llama-3.2-1b", "qwen2.5-0.5b", "gpt2"])
def test_real_checkpoints_absent_from_this_host_are_missing_weights(
    runtime: WorkerRuntime, model_id: str
) -> None:
    spec = load_registry().model(model_id)
    assert spec.source.kind == "hub-or-path" and spec.source.path
    absent = spec.model_copy(
        update={"source": spec.source.model_copy(update={"path": f"neuronlens-absent/{model_id}"})}
    )
    with pytest.raises(ModelWeightsMissing, match="nothing is downloaded"):
        ModelCache(runtime.store, "cpu").get(absent)


def test_generated_llama_revision_must_match(runtime: WorkerRuntime) -> None:
    spec = load_registry().model("tiny-llama").model_copy(update={"revision": "seed1-v9"})
    with pytest.raises(UnknownModel, match="builds 'seed0-v1'"):
        ModelCache(runtime.store, "cpu").get(spec)
