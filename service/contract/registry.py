"""The registry: which models and probe sets a deployment serves (a JSON data file, read by both sides)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from service.contract.base import ContractModel, Modality, NeuronType

SUPPORTED_ARCHITECTURES: frozenset[str] = frozenset({"bert", "gpt2", "llama", "llava", "qwen2-vl"})
"""Registry `architecture` values the workers can load (each has a loader in workers/models/loader.py).
A registry model with any other architecture cannot be scanned: the API refuses requests for it."""

BUNDLED_REGISTRY = Path(__file__).with_name("registry.json")
"""The registry shipped with the package (used when ``NEURONLENS_REGISTRY_PATH`` is unset)."""


class HookPoint(ContractModel):
    """Where a neuron's activation is read inside one layer."""

    id: str = Field(description="Hook point id used in requests, e.g. `mlp_act`.")
    module: str = Field(
        description="Dotted module path with a `{layer}` placeholder, e.g. "
        "`encoder.layer.{layer}.intermediate`."
    )
    capture: Literal["output", "input"] = Field(description="Record the module's output or its first input.")
    description: str = Field(description="What this point is, in words.")


class ModelSource(ContractModel):
    """Where the weights come from. Nothing is ever downloaded for a model the registry does not list."""

    kind: Literal["python-package", "hub-or-path", "generated"] = Field(
        description="`python-package`: files shipped inside an installed package; "
        "`hub-or-path`: a local path or a hub id already in the local cache; "
        "`generated`: built locally from a config and a seed."
    )
    package: str | None = Field(default=None, description="Import name of the package (python-package).")
    subdir: str | None = Field(default=None, description="Folder inside the package holding the model files.")
    path: str | None = Field(default=None, description="Hub id or local path (hub-or-path).")


class PlantedNeuronSpec(ContractModel):
    """A neuron edited to respond to known inputs: ground truth of a test model (tiny-llava-planted)."""

    layer: int = Field(ge=0, description="Layer index of the planted neuron.")
    neuron: int = Field(ge=0, description="Neuron index within the layer.")
    type: NeuronType = Field(description="The type the classifier should find (docs/method.md#neuron-types).")
    concept: str = Field(description="What fires it, in words.")


class ModelSpec(ContractModel):
    """One served model, as listed by `GET /v1/models`."""

    id: str = Field(description="Model id used in requests.")
    architecture: str = Field(
        description="Architecture family (`bert`, `llava`, …): selects loader and layout."
    )
    modality: Modality = Field(description="`text` or `vision-language`.")
    layers: int = Field(ge=1, description="Number of layers; valid layer indices are 0 … layers-1.")
    neurons_per_layer: int = Field(ge=1, description="MLP neurons per layer; valid indices 0 … n-1.")
    hook_points: list[HookPoint] = Field(
        min_length=1, description="Hook points offered; the first is default."
    )
    revision: str = Field(
        description="Weights revision (package version, commit or seed); part of every key."
    )
    source: ModelSource = Field(description="Where the weights come from.")
    datasets: list[str] = Field(
        min_length=1, description="Probe sets this model can be scanned on; first is default."
    )
    description: str = Field(default="", description="Free text for humans.")
    tokenizer: str | None = Field(
        default=None,
        description="Tokenizer id: models naming the same one tokenise alike and can be compared "
        "(`POST /v1/comparisons`); null: the model's own weights source identifies its tokenizer.",
    )
    planted: list[PlantedNeuronSpec] | None = Field(
        default=None,
        description="Neurons with known ground truth (planted by editing the weights): where they are, their "
        "type and concept, so users can check the pipeline on them; null for ordinary models.",
    )

    @property
    def default_hook(self) -> str:
        return self.hook_points[0].id

    def layer_error(self, layer: int) -> str | None:
        """Why ``layer`` is not a layer of this model, in words; None when it is one. The API and the
        workers both phrase a bad layer with it."""
        if 0 <= layer < self.layers:
            return None
        return f"layer {layer} is out of range: {self.id} has layers 0–{self.layers - 1}"

    def neuron_error(self, neuron: int) -> str | None:
        """Why ``neuron`` is not a neuron index of this model's layers, in words; None when it is one."""
        if 0 <= neuron < self.neurons_per_layer:
            return None
        return (
            f"neuron {neuron} is out of range: {self.id} has neurons 0–{self.neurons_per_layer - 1} per layer"
        )

    @property
    def tokenizer_id(self) -> str:
        """What identifies this model's tokenizer: `tokenizer`, else its weights source."""
        if self.tokenizer is not None:
            return self.tokenizer
        source = self.source
        return ":".join(str(part) for part in (source.kind, source.package, source.subdir, source.path))

    def hook(self, hook_id: str) -> HookPoint:
        for point in self.hook_points:
            if point.id == hook_id:
                return point
        raise KeyError(hook_id)


class DatasetSpec(ContractModel):
    """One probe set: a list of text or image+text samples."""

    id: str = Field(description="Dataset id used in requests.")
    modality: Modality = Field(description="`text` samples or `vision-language` (image + caption) samples.")
    revision: str = Field(description="Generator version or content hash; part of every scan key.")
    n_samples: int = Field(ge=1, description="Number of samples.")
    description: str = Field(default="", description="What the samples cover.")
    path: str | None = Field(
        default=None,
        description="User probe set file (local path or fsspec URL): JSONL of "
        '`{"text", "domain"?}` objects for text sets; for vision-language sets a COCO + LLaVA detail_23k '
        'JSON list of `{"id", "image", "conversations"}` with image paths relative to its folder. Null for '
        "the generated sets.",
    )


class Registry(ContractModel):
    """The models and probe sets this deployment serves (a JSON data file)."""

    models: list[ModelSpec]
    datasets: list[DatasetSpec]

    def model(self, model_id: str) -> ModelSpec:
        for spec in self.models:
            if spec.id == model_id:
                return spec
        raise KeyError(model_id)

    def dataset(self, dataset_id: str) -> DatasetSpec:
        for spec in self.datasets:
            if spec.id == dataset_id:
                return spec
        raise KeyError(dataset_id)


def load_registry(path: Path | None = None) -> Registry:
    """Read the registry JSON (the bundled one when ``path`` is None)."""
    return Registry.model_validate(json.loads((path or BUNDLED_REGISTRY).read_text()))
