"""A real dictionary for the tests and the bench: a TopK SAE trained on minilm-l6 activations of the probe
set, with one latent PLANTED to fire on digit tokens only (issue 21, item 3's ground truth); likewise for
tiny-llava-planted, with a latent aligned to a planted visual neuron.

One forward pass collects the activations of every requested layer at a registry hook point (content tokens
of the first ``n_samples`` samples of the probe set; the bundled MiniLM, loaded as the workers load it).
Each layer's SAE is then trained with a real loop: TopK (SAELens's rule: the k largest pre-activations,
relu'd), decoder rows kept at unit norm, Adam, seeded minibatches. Then latent ``planted_latent`` is
replaced: its encoder row is the unit direction that separates digit tokens from the others in those
activations, its bias puts the threshold midway between the highest non-digit projection and the lowest
digit projection (so it is ≥ 0 only on digit tokens), and a gain makes it the largest latent wherever it
fires, so top-k always keeps it; its decoder row is the same direction, divided by the gain (it adds the
token's excess along that direction back, nothing more).

The difference of the two means alone does not separate them (MiniLM's mlp_act is dominated by a few
high-variance directions: at layer 2, some non-digit tokens project 13× higher than the lowest digit), so
the direction is the shrinkage-regularised Fisher direction, Σ⁻¹(μ_digit − μ_other) with Σ the pooled
within-class covariance plus 1% of its mean variance on the diagonal.

With ``planted_neuron`` set (VL_RECIPE: tiny-llava-planted, layer 2, planted visual neuron 11, blue image
regions), the planted latent's encoder and decoder rows are that neuron's one-hot instead, and it fires
where the neuron is above the widest (log-scale) gap of its positive values.

Each layer is saved in SAELens's format (``<folder>/sae-lens/layer_<L>/``) and sparsify's
(``<folder>/sparsify/layer_<L>/``), same weights. `train_test_dictionaries` does it all;
`cached_test_dictionaries` reuses a finished folder of the same recipe.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from filelock import FileLock

from service.contract import ModelSpec, load_registry
from tests.dictionary_writers import sparsify_tensors, write_sae_lens, write_sparsify
from workers.data.loader import load_probe_set
from workers.models.hooks import capture_activations, run_forward
from workers.models.loader import ModelCache
from workers.models.planted_text import PLANTED_TEXT_CONCEPTS
from workers.scan.store import FsspecArtifactStore

DIGITS = PLANTED_TEXT_CONCEPTS[10][1]
"""Digit tokens (`7`, `##42`): the planted latent's concept, as the planted-text model's digit neuron."""
RECIPE_VERSION = "1"
"""Part of the cached folder's recipe: bump when training or planting changes."""
DONE_FILE = "trained.json"


@dataclass(frozen=True)
class TrainingRecipe:
    """Everything that determines the trained dictionaries (the cache key)."""

    model: str = "minilm-l6"
    hook: str = "mlp_act"
    dataset: str = "text-probe-v2"
    layers: tuple[int, ...] = (2, 5)
    n_samples: int = 1024
    expansion: int = 2
    k: int = 32
    steps: int = 160
    batch_size: int = 512
    learning_rate: float = 1e-3
    seed: int = 0
    planted_latent: int = 1000
    planted_neuron: int | None = None
    """None: the planted latent fires on digit tokens; a neuron index: where that hook neuron fires (above
    the widest gap of its positive values, on a log scale), e.g. a planted neuron of tiny-llava-planted."""
    version: str = RECIPE_VERSION


VL_RECIPE = TrainingRecipe(
    model="tiny-llava-planted",
    dataset="vl-probe-v2",
    layers=(2,),
    n_samples=128,
    steps=400,
    batch_size=256,
    planted_latent=100,
    planted_neuron=11,
)
"""tiny-llava-planted: a latent of layer 2 aligned to planted visual neuron 11 (blue image regions)."""


@dataclass(frozen=True)
class LayerDictionary:
    """One layer's trained SAE and what was measured of it on the activations it was trained on."""

    layer: int
    sae_lens_folder: str
    sparsify_folder: str
    d_in: int
    d_sae: int
    concept_tokens: int
    """Collected tokens of the planted latent's concept (digits, or where the planted neuron fires)."""
    fvu: float
    """Fraction of variance unexplained, sum ‖x − x̂‖² / sum ‖x − mean‖², over the collected tokens."""
    dead_latents: int
    """Latents active on none of the collected tokens (the planted one included if it never fired)."""
    planted_recall: float
    """Fraction of the concept's tokens (digits, or where the planted neuron fires) on which the planted
    latent is > 0 (after top-k)."""
    planted_false_fires: int
    """Other tokens on which the planted latent is > 0 (0 by construction on these tokens)."""
    train_seconds: float


@dataclass(frozen=True)
class TrainedDictionaries:
    """What the tests need: where the folders are, the planted latent, and the training figures."""

    folder: str
    recipe: TrainingRecipe
    tokens: int
    """Content tokens the activations were collected on."""
    collect_seconds: float
    layers: dict[int, LayerDictionary] = field(default_factory=dict)

    @property
    def planted_latent(self) -> int:
        return self.recipe.planted_latent

    @property
    def d_sae(self) -> int:
        return next(iter(self.layers.values())).d_sae

    def sae_lens_folder(self, layer: int) -> str:
        return self.layers[layer].sae_lens_folder


def collect_activations(
    spec: ModelSpec, recipe: TrainingRecipe, weights_store: str
) -> tuple[dict[int, torch.Tensor], list[str]]:
    """Float32 activations [tokens, width] of the content tokens at ``recipe.hook`` of each layer, and the
    token strings, in one forward pass per batch over the first ``recipe.n_samples`` probe samples; the
    model is loaded as a worker loads it (generated models are built once into ``weights_store``)."""
    registry = load_registry()
    dataset = registry.dataset(recipe.dataset).model_copy(update={"n_samples": recipe.n_samples})
    adapter = ModelCache(FsspecArtifactStore(weights_store), "cpu").get(spec)
    samples = list(load_probe_set(dataset).samples)
    tokenized = adapter.tokenize(samples)
    collected: dict[int, list[torch.Tensor]] = {layer: [] for layer in recipe.layers}
    tokens: list[str] = []
    point = spec.hook(recipe.hook)
    with torch.inference_mode():
        for start in range(0, len(samples), 64):
            batch = tokenized[start : start + 64]
            inputs = adapter.make_batch(samples[start : start + 64], batch)
            rows = torch.cat(
                [torch.full((len(item.content_positions),), row) for row, item in enumerate(batch)]
            )
            columns = torch.cat([torch.from_numpy(item.content_positions) for item in batch])
            sink = partial(_keep_content, collected, rows, columns)
            with capture_activations(adapter.module, point, recipe.layers, stop_after_last=True, sink=sink):
                run_forward(partial(adapter.forward, inputs))
            tokens.extend(token for item in batch for token in item.tokens)
    return {layer: torch.cat(parts) for layer, parts in collected.items()}, tokens


def _keep_content(
    collected: dict[int, list[torch.Tensor]],
    rows: torch.Tensor,
    columns: torch.Tensor,
    layer: int,
    values: torch.Tensor,
) -> None:
    """A capture sink: keep the content tokens' rows of a [batch, seq, width] activation tensor."""
    collected[layer].append(values[rows, columns].float())


def train_topk_sae(x: torch.Tensor, d_sae: int, recipe: TrainingRecipe) -> dict[str, torch.Tensor]:
    """SAELens-named tensors of a TopK SAE trained on ``x`` [tokens, d_in]: W_enc starts as W_decᵀ (rows of
    W_dec random unit vectors), b_dec as the mean; loss ‖x − x̂‖² / variance; Adam; W_dec rows renormalised
    after each step."""
    generator = torch.Generator().manual_seed(recipe.seed)
    d_in = x.shape[1]
    decoder = torch.randn(d_sae, d_in, generator=generator)
    decoder = (decoder / decoder.norm(dim=1, keepdim=True)).requires_grad_()
    encoder = decoder.detach().T.clone().requires_grad_()
    encoder_bias = torch.zeros(d_sae, requires_grad=True)
    decoder_bias = x.mean(0).clone().requires_grad_()
    optimizer = torch.optim.Adam([encoder, encoder_bias, decoder, decoder_bias], lr=recipe.learning_rate)
    variance = (x - x.mean(0)).pow(2).sum(1).mean()
    for _ in range(recipe.steps):
        batch = x[torch.randint(len(x), (recipe.batch_size,), generator=generator)]
        values, indices = ((batch - decoder_bias) @ encoder + encoder_bias).topk(recipe.k, dim=-1)
        # the decoder reads only the k chosen rows per token (embedding_bag), not a dense [tokens, d_sae]
        reconstruction = F.embedding_bag(indices, decoder, per_sample_weights=values.relu(), mode="sum")
        loss = (batch - reconstruction - decoder_bias).pow(2).sum(1).mean() / variance
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            decoder /= decoder.norm(dim=1, keepdim=True)
    return {
        "W_enc": encoder.detach(),
        "b_enc": encoder_bias.detach(),
        "W_dec": decoder.detach(),
        "b_dec": decoder_bias.detach(),
    }


def digit_direction(x: torch.Tensor, is_digit: torch.Tensor) -> torch.Tensor:
    """The unit direction separating digit tokens from the others: Σ⁻¹(μ_digit − μ_other), Σ the pooled
    within-class covariance shrunk towards 1% of its mean variance (float64)."""
    exact = x.double()
    means = torch.stack([exact[~is_digit].mean(0), exact[is_digit].mean(0)])
    centred = exact - means[is_digit.long()]
    covariance = centred.T @ centred / len(exact)
    shrink = 0.01 * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=torch.float64)
    direction = torch.linalg.solve(covariance + shrink, means[1] - means[0])
    return direction / direction.norm()


def plant_digit_latent(
    tensors: dict[str, torch.Tensor], x: torch.Tensor, is_digit: torch.Tensor, index: int
) -> dict[str, torch.Tensor]:
    """``tensors`` with latent ``index`` inserted: it is ≥ 0 exactly on the digit tokens of ``x`` and, where
    it fires, larger than every other latent's pre-activation on ``x`` (so top-k keeps it)."""
    direction = digit_direction(x, is_digit)
    projection = x.double() @ direction
    lowest_digit, highest_other = projection[is_digit].min(), projection[~is_digit].max()
    assert lowest_digit > highest_other, "no threshold separates digit tokens from the others"
    return insert_latent(tensors, x, direction, (lowest_digit + highest_other) / 2, lowest_digit, index)


def neuron_threshold(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(threshold, lowest value above it): the geometric middle of the widest gap between consecutive
    positive values on a log scale, which parts a neuron's clear firing from its near-zero noise."""
    positive = values.double()[values > 0].sort().values
    widest = int((positive[1:].log() - positive[:-1].log()).argmax())
    return (positive[widest] * positive[widest + 1]).sqrt(), positive[widest + 1]


def plant_neuron_latent(
    tensors: dict[str, torch.Tensor], x: torch.Tensor, neuron: int, index: int
) -> dict[str, torch.Tensor]:
    """``tensors`` with latent ``index`` inserted, aligned to hook neuron ``neuron`` (one-hot rows): it is
    ≥ 0 exactly where the neuron is above `neuron_threshold`, and then wins top-k."""
    direction = torch.zeros(x.shape[1], dtype=torch.float64)
    direction[neuron] = 1.0
    threshold, lowest_above = neuron_threshold(x[:, neuron])
    return insert_latent(tensors, x, direction, threshold, lowest_above, index)


def insert_latent(
    tensors: dict[str, torch.Tensor],
    x: torch.Tensor,
    direction: torch.Tensor,
    threshold: torch.Tensor,
    lowest_above: torch.Tensor,
    index: int,
) -> dict[str, torch.Tensor]:
    """Insert at ``index`` a latent reading unit ``direction``: pre = gain·(x·direction − threshold), the
    gain making its smallest firing value on ``x`` (at ``lowest_above``) twice every other latent's largest
    pre-activation; its decoder row is the direction ÷ gain."""
    others = ((x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"]).max()
    gain = float(max(1.0, 2 * others / (lowest_above - threshold)))
    # SAELens subtracts b_dec from x first: the bias adds b_dec·direction back
    bias = gain * (tensors["b_dec"].double() @ direction - threshold)
    row = direction.float()
    return {
        "W_enc": torch.cat(
            [tensors["W_enc"][:, :index], gain * row[:, None], tensors["W_enc"][:, index:]], 1
        ),
        "b_enc": torch.cat([tensors["b_enc"][:index], bias.float()[None], tensors["b_enc"][index:]]),
        "W_dec": torch.cat([tensors["W_dec"][:index], row[None] / gain, tensors["W_dec"][index:]]),
        "b_dec": tensors["b_dec"],
    }


def measure(folder: Path, x: torch.Tensor, concept: torch.Tensor, planted: int) -> dict[str, float | int]:
    """FVU, dead latents and the planted latent's firing, through the workers' own loader and encode."""
    from workers.models.dictionaries import load_dictionary

    dictionary = load_dictionary(str(folder))
    error = torch.zeros((), dtype=torch.float64)
    active = torch.zeros(dictionary.header.d_sae, dtype=torch.bool)
    planted_fires = []
    for chunk in torch.split(torch.arange(len(x)), 4096):
        latents = dictionary.encode(x[chunk])
        error += (x[chunk] - dictionary.decode(latents)).double().pow(2).sum()
        active |= (latents > 0).any(0)
        planted_fires.append(latents[:, planted] > 0)
    fires = torch.cat(planted_fires)
    return {
        "fvu": float(error / (x.double() - x.double().mean(0)).pow(2).sum()),
        "dead_latents": int((~active).sum()),
        "planted_recall": float(fires[concept].double().mean()),
        "planted_false_fires": int(fires[~concept].sum()),
    }


def train_test_dictionaries(
    folder: Path, recipe: TrainingRecipe | None = None, weights_store: str | None = None
) -> TrainedDictionaries:
    """Collect activations once, train and plant one SAE per layer of ``recipe``, save each in SAELens's
    and sparsify's formats under ``folder``, measure them, and record the result in ``trained.json``.
    Generated models (tiny-llava-planted) are built into ``weights_store`` (default: inside ``folder``)."""
    recipe = recipe or TrainingRecipe()
    spec = load_registry().model(recipe.model)
    started = time.perf_counter()
    activations, tokens = collect_activations(spec, recipe, weights_store or str(folder / "weights-store"))
    is_digit = torch.tensor([bool(DIGITS.match(token)) for token in tokens])
    collect_seconds = time.perf_counter() - started
    layers = {}
    for layer, x in activations.items():
        started = time.perf_counter()
        torch.manual_seed(recipe.seed)
        trained = train_topk_sae(x, recipe.expansion * x.shape[1] - 1, recipe)
        if recipe.planted_neuron is None:
            concept = is_digit
            tensors = plant_digit_latent(trained, x, is_digit, recipe.planted_latent)
        else:
            concept = x[:, recipe.planted_neuron] > neuron_threshold(x[:, recipe.planted_neuron])[0]
            tensors = plant_neuron_latent(trained, x, recipe.planted_neuron, recipe.planted_latent)
        train_seconds = time.perf_counter() - started
        hook_name = spec.hook(recipe.hook).module.format(layer=layer)
        sae_lens = write_sae_lens(
            folder / "sae-lens" / f"layer_{layer}", tensors, "topk", hook_name, k=recipe.k
        )
        sparsify = write_sparsify(
            folder / "sparsify" / f"layer_{layer}", sparsify_tensors(tensors), k=recipe.k
        )
        figures = measure(sae_lens, x, concept, recipe.planted_latent)
        layers[layer] = LayerDictionary(
            layer,
            str(sae_lens),
            str(sparsify),
            x.shape[1],
            tensors["b_enc"].shape[0],
            int(concept.sum()),
            train_seconds=train_seconds,
            **figures,
        )
    result = TrainedDictionaries(str(folder), recipe, len(tokens), collect_seconds, layers)
    (folder / DONE_FILE).write_text(json.dumps(asdict(result), indent=1))
    return result


def cached_test_dictionaries(
    folder: Path, recipe: TrainingRecipe | None = None, weights_store: str | None = None
) -> TrainedDictionaries:
    """The dictionaries of ``recipe`` under ``folder``: trained once, then read back from `trained.json` for
    as long as the recipe is the same (a different recipe retrains from scratch)."""
    recipe = recipe or TrainingRecipe()
    done = folder / DONE_FILE
    if done.exists():
        stored = json.loads(done.read_text())
        stored_recipe = TrainingRecipe(**{**stored["recipe"], "layers": tuple(stored["recipe"]["layers"])})
        if stored_recipe == recipe:
            layers = {int(layer): LayerDictionary(**value) for layer, value in stored.pop("layers").items()}
            return TrainedDictionaries(**{**stored, "recipe": recipe, "layers": layers})
    shutil.rmtree(folder, ignore_errors=True)
    return train_test_dictionaries(folder, recipe, weights_store)


TEST_RECIPE = TrainingRecipe(layers=(2,), n_samples=512, steps=60)
"""The minilm-l6 SAE the tests train (shorter than the bench's 160 steps on 1,024 samples: the planted latent
does not depend on it)."""


def shared_test_dictionaries(
    tmp_path_factory: Any, recipe: TrainingRecipe, weights_store: str | None = None
) -> TrainedDictionaries:
    """``recipe``'s dictionaries trained once per test session: the first pytest-xdist worker to ask trains
    them while the others wait on a file lock, then read them back (`cached_test_dictionaries`)."""
    basetemp = Path(tmp_path_factory.getbasetemp())
    root = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp  # the session's folder
    key = hashlib.sha256(repr(recipe).encode()).hexdigest()[:12]
    folder = root / f"dictionaries-{key}"
    with FileLock(f"{folder}.lock"):
        return cached_test_dictionaries(folder, recipe, weights_store)
