"""The scan's dictionary taps (workers/scan/dictionary_taps.py), through `scan_model_layers` on the bundled
minilm-l6: what a scan of latents records and measures equals an independent float64 computation from the
raw safetensors weights and the hooks' activations, collected in a separate pass of the same model.

- a transcoder (SAELens `transcoder` and `skip_transcoder`) reading `mlp_act` (1536) and predicting
  `resid_post` (384), its decoder fitted by least squares: the manifest's `output_fvu` and the recorded
  latents (top samples, their max, the global max);
- an SAE (SAELens `standard`) with latents made dead, sparse and dense on purpose: its `fvu`, `dead`,
  `dense` and density quantiles;
- a copy of the SAE with one NaN in W_enc: the scan refuses it, naming the tensor.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load as load_arrays
from safetensors.torch import load_file, save_file

from service.contract import DatasetSpec, DictionarySpec, ModelSpec, PipelineOptions, load_registry
from tests.dictionary_writers import write_sae_lens
from workers.errors import InvalidDictionary
from workers.models.hooks import capture_activations, run_forward
from workers.models.loader import ModelCache
from workers.scan.artifacts import ACTIVATIONS_FILE
from workers.scan.run import ScanSetup, scan_model_layers
from workers.scan.store import FsspecArtifactStore
from workers.scan.token_keys import scan_key

MODEL = "minilm-l6"
SAMPLES = 240
"""The default probe set cut to this many samples (about 4,000 content tokens)."""
LAYERS = (1, 4)
"""Two layers, so the taps are checked for several layers of one pass (a transcoder's output hook of
layer 1 fires before layer 4's input hook)."""
BATCH = 32
LATENTS = 256
OPTIONS = PipelineOptions(n_top=20, n_explain=10, n_holdout=5)
CHECKED = (0, 7, 100, 255)
"""Latents whose recorded top samples are compared with the brute-force ones."""
DENSITIES = (0.0, 0.02, 0.08, 0.12, 0.5)
"""Activation densities planted in the SAE's latents (a fifth each: dead, sparse, just under and just
over the dense cut 0.1, dense); float noise between passes moves a density by a token or two (~0.0005)."""
GROUP = LATENTS // len(DENSITIES)
"""Latents per planted density (the last group takes the remainder)."""

Activations = dict[tuple[str, int], list[torch.Tensor]]
"""(hook, layer) → per sample, its content tokens' float64 activations [tokens, width]."""


@dataclass(frozen=True)
class Minilm:
    spec: ModelSpec
    dataset: DatasetSpec
    models: ModelCache
    acts: Activations


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> Minilm:
    """The model (one ModelCache for every scan of the module), the cut probe set, and both hooks'
    activations per sample from a plain pass over it in probe-set order (batches unlike the scan's)."""
    from workers.data.loader import load_probe_set

    registry = load_registry()
    spec = registry.model(MODEL)
    dataset = registry.dataset(spec.datasets[0]).model_copy(update={"n_samples": SAMPLES})
    models = ModelCache(FsspecArtifactStore(str(tmp_path_factory.mktemp("weights"))), "cpu")
    adapter = models.get(spec)
    samples = list(load_probe_set(dataset).samples)
    tokenized = adapter.tokenize(samples)
    acts: Activations = {(hook, layer): [] for hook in ("mlp_act", "resid_post") for layer in LAYERS}

    def keep(hook: str, batch: list[Any], layer: int, values: torch.Tensor) -> None:
        for row, item in enumerate(batch):
            acts[hook, layer].append(values[row, torch.from_numpy(item.content_positions)].double())

    with torch.inference_mode():
        for start in range(0, len(samples), 48):
            batch = tokenized[start : start + 48]
            inputs = adapter.make_batch(samples[start : start + 48], batch)
            with (
                capture_activations(
                    adapter.module, spec.hook("mlp_act"), LAYERS, sink=partial(keep, "mlp_act", batch)
                ),
                capture_activations(
                    adapter.module, spec.hook("resid_post"), LAYERS, True, partial(keep, "resid_post", batch)
                ),
            ):
                run_forward(partial(adapter.forward, inputs))
    return Minilm(spec, dataset, models, acts)


def _tokens(acts: Activations, hook: str, layer: int) -> torch.Tensor:
    return torch.cat(acts[hook, layer])


# --------------------------------------------------------------------------- reference computation


def _reference_latents(
    weights: dict[str, torch.Tensor], x: torch.Tensor, subtract_b_dec: bool
) -> torch.Tensor:
    """float64 relu((x − b_dec·apply) @ W_enc + b_enc) from the raw tensors (SAELens's standard rule)."""
    w = {name: tensor.double() for name, tensor in weights.items()}
    shifted = x - w["b_dec"] if subtract_b_dec else x
    return (shifted @ w["W_enc"] + w["b_enc"]).relu()


def _reference_output(
    weights: dict[str, torch.Tensor], latents: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    w = {name: tensor.double() for name, tensor in weights.items()}
    out = latents @ w["W_dec"] + w["b_dec"]
    return out + x @ w["W_skip"].T if "W_skip" in w else out


def _fvu(target: torch.Tensor, estimate: torch.Tensor) -> float:
    return float((target - estimate).square().sum() / (target - target.mean(0)).square().sum())


def _top_samples(per_sample: list[torch.Tensor], latent: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(sample ids, their max) of the ``count`` samples with the highest max of ``latent`` (ties by id)."""
    maxima = np.array([float(s[:, latent].max()) if len(s) else -np.inf for s in per_sample])
    order = sorted(range(len(maxima)), key=lambda i: (-maxima[i], i))[:count]
    return np.array(order), maxima[order]


def _set_apart(maxima: np.ndarray, n_top: int) -> np.ndarray:
    """Ranks (of the first ``n_top``) whose max differs clearly from both neighbours' (``maxima`` holds
    n_top + 1 values): float noise between two passes cannot swap them."""
    gaps = -np.diff(maxima)  # gaps[r]: rank r's max minus rank r + 1's
    tolerance = 1e-4 * abs(maxima[0]) + 1e-5
    before = np.concatenate([[np.inf], gaps[: n_top - 1]])
    return np.flatnonzero((gaps[:n_top] > tolerance) & (before > tolerance))


# --------------------------------------------------------------------------- dictionaries


def _random_encoder(d_in: int, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "W_enc": torch.randn(d_in, LATENTS, generator=generator) / d_in**0.5,
        "b_enc": torch.zeros(LATENTS),
    }


def _least_squares(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Ridge-regularised least squares (float64): the weights mapping ``features`` [n, f] to ``target``."""
    gram = features.T @ features
    ridge = 1e-6 * gram.diagonal().mean() * torch.eye(len(gram), dtype=torch.float64)
    return torch.linalg.solve(gram + ridge, features.T @ target)


def _transcoder(x: torch.Tensor, y: torch.Tensor, skip: bool, seed: int) -> dict[str, torch.Tensor]:
    """A transcoder x → y: a seeded random encoder, its decoder (and skip) fitted to y by least squares."""
    weights = _random_encoder(x.shape[1], seed)
    latents = _reference_latents({**weights, "b_dec": torch.zeros(y.shape[1])}, x, subtract_b_dec=False)
    ones = torch.ones(len(x), 1, dtype=torch.float64)
    fitted = _least_squares(torch.cat([latents, ones] + ([x] if skip else []), 1), y)
    weights.update(W_dec=fitted[:LATENTS].float(), b_dec=fitted[LATENTS].float())
    if skip:
        weights["W_skip"] = fitted[LATENTS + 1 :].T.float()
    return weights


def _sae(x: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """An SAE of x whose latents have the DENSITIES on x, a group each (biases set at quantiles of their
    pre-activations); decoder fitted by least squares; b_dec the mean of x (subtracted first)."""
    weights = _random_encoder(x.shape[1], seed)
    mean = x.mean(0)
    pre = (x - mean) @ weights["W_enc"].double()
    bias = torch.empty(LATENTS, dtype=torch.float64)
    for group, density in enumerate(DENSITIES):
        columns = slice(group * GROUP, (group + 1) * GROUP if group < len(DENSITIES) - 1 else LATENTS)
        if density == 0:
            bias[columns] = -1e3
        else:
            bias[columns] = -pre[:, columns].quantile(1 - density, dim=0)
    latents = (pre + bias).relu()
    fitted = _least_squares(torch.cat([latents, torch.ones(len(x), 1, dtype=torch.float64)], 1), x - mean)
    return {
        "W_enc": weights["W_enc"],
        "b_enc": bias.float(),
        "W_dec": fitted[:LATENTS].float(),
        "b_dec": mean.float(),
    }


def _attached(spec: ModelSpec, entry: dict[str, Any]) -> ModelSpec:
    """The registry model with dictionary ``entry`` attached, seen through it."""
    dictionary = DictionarySpec.model_validate(entry)
    return spec.model_copy(update={"dictionaries": [dictionary]}).through(dictionary.id)


def _entry(dictionary_id: str, kind: str, folders: dict[int, Path], **extra: Any) -> dict[str, Any]:
    return {
        "id": dictionary_id,
        "kind": kind,
        "hook": "mlp_act",
        "latents": LATENTS,
        "layers": [{"layer": layer, "path": str(folder)} for layer, folder in folders.items()],
        "revision": "test-1",
        **extra,
    }


def _scan(
    minilm: Minilm, model: ModelSpec, store: Path
) -> dict[int, tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """Scan LAYERS of ``model`` (seen through a dictionary) into a fresh store: per layer, the scan's
    manifest and arrays."""
    artifacts = FsspecArtifactStore(str(store))
    setup = ScanSetup(artifacts, minilm.models, BATCH)
    infos = scan_model_layers(setup, model, minilm.dataset, model.hook("mlp_act"), list(LAYERS), OPTIONS)
    return {
        layer: (
            artifacts.read_manifest(scan_key(info.scan_id)),
            load_arrays(artifacts.read_bytes(scan_key(info.scan_id), ACTIVATIONS_FILE)),
        )
        for layer, info in infos.items()
    }


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("skip", [False, True], ids=["transcoder", "skip_transcoder"])
def test_a_transcoder_scan_records_its_latents_and_its_prediction_of_the_output_hook(
    minilm: Minilm, tmp_path: Path, skip: bool
) -> None:
    architecture = "skip_transcoder" if skip else "transcoder"
    weights, folders = {}, {}
    for layer in LAYERS:
        x, y = _tokens(minilm.acts, "mlp_act", layer), _tokens(minilm.acts, "resid_post", layer)
        weights[layer] = _transcoder(x, y, skip, seed=layer)
        folders[layer] = write_sae_lens(tmp_path / f"layer_{layer}", weights[layer], architecture)
    model = _attached(minilm.spec, _entry("tc", "transcoder", folders, output_hook="resid_post"))
    scans = _scan(minilm, model, tmp_path / "store")

    for layer in LAYERS:
        manifest, arrays = scans[layer]
        inputs = minilm.acts["mlp_act", layer]
        latents = [_reference_latents(weights[layer], x, subtract_b_dec=False) for x in inputs]
        x, y = torch.cat(inputs), _tokens(minilm.acts, "resid_post", layer)
        expected = _fvu(y, _reference_output(weights[layer], torch.cat(latents), x))
        assert 0.01 < expected < 0.9  # a fitted decoder: better than the mean, not perfect
        recorded = manifest["dictionary"]
        assert recorded["output_fvu"] == pytest.approx(expected, rel=1e-4)
        assert "fvu" not in recorded and recorded["tokens"] == len(x)
        assert (recorded["kind"], recorded["architecture"], recorded["d_out"]) == (
            "transcoder",
            "standard",
            384,
        )
        assert arrays["top_ids"].shape == (LATENTS, OPTIONS.n_top)
        np.testing.assert_allclose(
            arrays["global_max"], torch.cat(latents).max(0).values.numpy(), rtol=1e-4, atol=1e-5
        )
        for latent in CHECKED:
            ids, maxima = _top_samples(latents, latent, OPTIONS.n_top + 1)
            np.testing.assert_allclose(arrays["top_max"][latent], maxima[:-1], rtol=1e-4, atol=1e-5)
            apart = _set_apart(maxima, OPTIONS.n_top)
            assert len(apart) >= OPTIONS.n_top // 2
            assert arrays["top_ids"][latent][apart].tolist() == ids[apart].tolist()


def test_an_sae_scan_measures_reconstruction_and_density_over_the_probe_set(
    minilm: Minilm, tmp_path: Path
) -> None:
    weights, folders = {}, {}
    for layer in LAYERS:
        weights[layer] = _sae(_tokens(minilm.acts, "mlp_act", layer), seed=10 + layer)
        folders[layer] = write_sae_lens(tmp_path / f"layer_{layer}", weights[layer], "standard")
    model = _attached(minilm.spec, _entry("sae", "sae", folders))
    scans = _scan(minilm, model, tmp_path / "store")

    for layer in LAYERS:
        manifest, arrays = scans[layer]
        x = _tokens(minilm.acts, "mlp_act", layer)
        latents = _reference_latents(weights[layer], x, subtract_b_dec=True)
        density = (latents > 0).double().mean(0).numpy()
        recorded = manifest["dictionary"]
        assert recorded["fvu"] == pytest.approx(
            _fvu(x, _reference_output(weights[layer], latents, x)), rel=1e-4
        )
        assert recorded["tokens"] == len(x)
        expected_dead, expected_dense = int((density == 0).sum()), int((density > 0.1).sum())
        assert (expected_dead, expected_dense) == (GROUP, LATENTS - 3 * GROUP)  # as planted
        assert (recorded["dead"], recorded["dense"]) == (expected_dead, expected_dense)
        for quantile, value in recorded["density_quantiles"].items():
            assert value == pytest.approx(np.quantile(density, float(quantile)), abs=2 / len(x))
        # a dead latent's recorded maxima are never above 0
        assert float(arrays["global_max"][:GROUP].max()) <= 0


def test_a_nan_in_the_weights_is_refused_naming_the_tensor(minilm: Minilm, tmp_path: Path) -> None:
    x = _tokens(minilm.acts, "mlp_act", LAYERS[0])
    good = write_sae_lens(tmp_path / "good", _sae(x, seed=1), "standard")
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    tensors = load_file(broken / "sae_weights.safetensors")
    tensors["W_enc"][3, 7] = float("nan")
    save_file(tensors, broken / "sae_weights.safetensors")
    cfg = json.loads((broken / "cfg.json").read_text())
    assert cfg["architecture"] == "standard"
    model = _attached(minilm.spec, _entry("nan-sae", "sae", {LAYERS[0]: broken}))
    setup = ScanSetup(FsspecArtifactStore(str(tmp_path / "store")), minilm.models, BATCH)
    with pytest.raises(InvalidDictionary, match=r"sae_weights\.safetensors W_enc has 1 non-finite values"):
        scan_model_layers(setup, model, minilm.dataset, model.hook("mlp_act"), [LAYERS[0]], OPTIONS)
    assert not (tmp_path / "store" / "scans").exists()
