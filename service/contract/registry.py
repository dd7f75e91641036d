"""The registry: which models and probe sets a deployment serves (a JSON data file, read by both sides)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, model_validator

from service.contract.base import ContractModel, Modality, NeuronType
from service.contract.dictionaries import NEURONS, DictionarySpec

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
    width: int | None = Field(
        default=None,
        ge=1,
        description="Values per token at this point; null: the model's `neurons_per_layer` (MLP points). "
        "A dictionary attached here must read this many (`d_in`).",
    )


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
    dictionaries: list[DictionarySpec] = Field(
        default_factory=list,
        description="Sparse autoencoders and transcoders attached to this model's hook points: their latents "
        "are units a request names with `units` (docs/dictionaries.md).",
    )
    units: DictionarySpec | None = Field(
        default=None,
        description="Null in the registry. Set only on the model as a request with `units` sees it: the "
        "dictionary whose latents are then its units (`neurons_per_layer` is its latent count).",
    )

    _registry_model: ModelSpec | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _dictionaries_attach(self) -> ModelSpec:
        offered = {point.id for point in self.hook_points}
        ids = [d.id for d in self.dictionaries]
        if len(set(ids)) != len(ids) or NEURONS in ids:
            raise ValueError(f"{self.id}: dictionary ids must be unique and not {NEURONS!r}")
        for dictionary in self.dictionaries:
            for hook in filter(None, (dictionary.hook, dictionary.output_hook)):
                if hook not in offered:
                    raise ValueError(
                        f"dictionary {dictionary.id}: hook {hook!r} is not a hook point of {self.id}"
                    )
            outside = [layer for layer in dictionary.layer_ids if layer >= self.layers]
            if outside:
                raise ValueError(f"dictionary {dictionary.id}: layers {outside} are not layers of {self.id}")
        return self

    @property
    def default_hook(self) -> str:
        return self.hook_points[0].id

    @property
    def units_id(self) -> str:
        """What this model's units are: `neurons`, or the id of the dictionary whose latents they are."""
        return NEURONS if self.units is None else self.units.id

    @property
    def key_revision(self) -> str:
        """The revision as artifact and job keys see it: the weights revision, plus the dictionary and its
        revision when the units are latents (so latents and neurons of one layer never share a key)."""
        if self.units is None:
            return self.revision
        return f"{self.revision}+{self.units.id}@{self.units.revision}"

    def dictionary(self, dictionary_id: str) -> DictionarySpec:
        for dictionary in self.dictionaries:
            if dictionary.id == dictionary_id:
                return dictionary
        raise KeyError(dictionary_id)

    def through(self, units: str | None) -> ModelSpec:
        """This model as a request naming ``units`` sees it: itself for `neurons` (or None); for a
        dictionary id, a copy whose units are that dictionary's latents at its hook point (KeyError for an
        unknown id)."""
        if units is None or units == NEURONS:
            return self
        dictionary = self.dictionary(units)
        seen = self.model_copy(
            update={
                "neurons_per_layer": dictionary.latents,
                "hook_points": [
                    self.hook(dictionary.hook).model_copy(update={"width": self.hook_width(dictionary.hook)})
                ],
                "units": dictionary,
            }
        )
        seen._registry_model = self.registry_model
        return seen

    @property
    def registry_model(self) -> ModelSpec:
        """The model as the registry lists it (itself, unless this is a model seen `through` a dictionary):
        what loads the weights."""
        return self._registry_model or self

    @property
    def layer_ids(self) -> list[int]:
        """Every layer a request may name (`layers: "all"`): all of them, or those of the dictionary."""
        return list(range(self.layers)) if self.units is None else self.units.layer_ids

    def layer_error(self, layer: int) -> str | None:
        """Why ``layer`` is not a layer of this model, in words; None when it is one. The API and the
        workers both phrase a bad layer with it."""
        if not 0 <= layer < self.layers:
            return f"layer {layer} is out of range: {self.id} has layers 0–{self.layers - 1}"
        if self.units is not None and layer not in self.units.layer_ids:
            covered = ", ".join(str(n) for n in self.units.layer_ids)
            return f"layer {layer} has no dictionary {self.units.id}: it covers layers {covered} of {self.id}"
        return None

    def neuron_error(self, neuron: int) -> str | None:
        """Why ``neuron`` is not a unit index of this model's layers, in words; None when it is one."""
        if 0 <= neuron < self.neurons_per_layer:
            return None
        if self.units is not None:
            return (
                f"latent {neuron} is out of range: dictionary {self.units.id} of {self.id} has latents "
                f"0–{self.neurons_per_layer - 1} per layer"
            )
        return (
            f"neuron {neuron} is out of range: {self.id} has neurons 0–{self.neurons_per_layer - 1} per layer"
        )

    def hook_width(self, hook_id: str) -> int:
        """Values per token at hook point ``hook_id`` (its `width`, else `neurons_per_layer`; on a registry
        model, not on one seen `through` a dictionary, whose hook point carries its width)."""
        return self.hook(hook_id).width or self.neurons_per_layer

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
