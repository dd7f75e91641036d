"""Dictionaries in the registry: sparse autoencoders and transcoders attached to a model's hook point,
whose latents are explained like neurons (docs/dictionaries.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from service.contract.base import ContractModel

NEURONS = "neurons"
"""The request's `units` naming the model's own neurons at the hook point (the default)."""

DICTIONARY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""What a dictionary id looks like (it is a path segment of scan keys and a query parameter)."""


class DictionaryLayer(ContractModel):
    """Where one layer's dictionary is stored."""

    layer: int = Field(ge=0, description="Layer index of the model the dictionary reads.")
    path: str = Field(
        min_length=1,
        description="Folder with the dictionary's files (SAELens: `cfg.json` + `sae_weights.safetensors`; "
        "sparsify: `cfg.json` + `sae.safetensors`): a local path or an fsspec URL such as `s3://…` (the "
        "artifact store's). Nothing is downloaded from a hub.",
    )


class DictionarySpec(ContractModel):
    """A sparse autoencoder or transcoder per layer, attached to one hook point of its model: its latents
    are units a request can name (`units`) like neurons."""

    id: str = Field(
        pattern=DICTIONARY_ID_PATTERN,
        description="Dictionary id used in requests (`units`), unique among its model's dictionaries.",
    )
    kind: Literal["sae", "transcoder"] = Field(
        description="`sae`: reconstructs the hook's activations from its latents; `transcoder`: reads the "
        "hook's activations and predicts those at `output_hook`."
    )
    hook: str = Field(description="Hook point id (of the model) whose activations the encoder reads.")
    output_hook: str | None = Field(
        default=None,
        description="Transcoders: the hook point id whose activations the decoder predicts; null for SAEs.",
    )
    latents: int = Field(ge=1, description="Latents per layer (`d_sae`); valid indices 0 … latents-1.")
    layers: list[DictionaryLayer] = Field(min_length=1, description="One dictionary per layer it covers.")
    revision: str = Field(
        min_length=1,
        description="Version of the files (a release tag or a content hash): part of every scan and report "
        "key, so change it when the files change. Each report also records the files' own digest.",
    )
    description: str = Field(default="", description="Free text for humans.")

    @model_validator(mode="after")
    def _consistent(self) -> DictionarySpec:
        if (self.kind == "transcoder") != (self.output_hook is not None):
            raise ValueError("a transcoder names `output_hook`; an SAE does not")
        layers = [entry.layer for entry in self.layers]
        if len(set(layers)) != len(layers):
            raise ValueError(f"dictionary {self.id}: a layer is listed twice in `layers`")
        return self

    @property
    def layer_ids(self) -> list[int]:
        """The layers this dictionary covers, ascending."""
        return sorted(entry.layer for entry in self.layers)

    def path(self, layer: int) -> str:
        """The folder of ``layer``'s dictionary (KeyError when it does not cover ``layer``)."""
        for entry in self.layers:
            if entry.layer == layer:
                return entry.path
        raise KeyError(layer)


class DictionaryRef(ContractModel):
    """Which dictionary a latent's report was made with (null on a neuron's report)."""

    id: str = Field(description="Dictionary id of the registry.")
    kind: Literal["sae", "transcoder"] = Field(description="`sae` or `transcoder`.")
    revision: str = Field(description="The registry's revision of the dictionary's files.")
    digest: str = Field(
        description="BLAKE2b digest (32 hex digits) of the layer's files as the scan read them (`cfg.json` "
        "and the weights): what exactly was encoded."
    )
    format: str = Field(description="On-disk format read: `sae-lens` or `sparsify`.")
    architecture: str = Field(description="Encoder architecture: `standard`, `topk` or `jumprelu`.")
    output_hook: str | None = Field(default=None, description="Transcoders: the hook point predicted.")


class DictionaryLayerQuality(ContractModel):
    """What SAE users check first, for one layer's dictionary over one probe set (from its scan)."""

    layer: int = Field(ge=0, description="Layer index.")
    scanned: bool = Field(
        description="True when the layer's latents have been scanned on the probe set (with the default "
        "`n_top` and `seed`); every other field is null until then."
    )
    digest: str | None = Field(default=None, description="BLAKE2b digest of the files the scan read.")
    format: str | None = Field(default=None, description="On-disk format read: `sae-lens` or `sparsify`.")
    architecture: str | None = Field(default=None, description="`standard`, `topk` or `jumprelu`.")
    fvu: float | None = Field(
        default=None,
        description="SAEs: fraction of variance unexplained, Σ‖x − x̂‖² ÷ Σ‖x − x̄‖² over the probe set's "
        "content tokens (0 = perfect reconstruction, 1 = no better than the mean).",
    )
    output_fvu: float | None = Field(
        default=None,
        description="Transcoders: the same for the prediction of the output hook point's activations.",
    )
    tokens: int | None = Field(default=None, ge=0, description="Content tokens the totals cover.")
    dead: int | None = Field(
        default=None, ge=0, description="Latents never active (> 0) on any content token of the probe set."
    )
    dense: int | None = Field(
        default=None, ge=0, description="Latents active on more than `dense_fraction` of the content tokens."
    )
    dense_fraction: float | None = Field(default=None, description="The dense threshold (0.1).")
    density_quantiles: dict[str, float] | None = Field(
        default=None,
        description="Quantiles (0.1, 0.5, 0.9, 0.99) over the latents of their share of content tokens > 0.",
    )


class DictionaryQuality(ContractModel):
    """`GET /v1/models/{model}/dictionaries/{dictionary}`: the dictionary and its quality per layer."""

    model: str = Field(description="Model id.")
    dataset: str = Field(description="Probe set id the figures are measured on.")
    dictionary: DictionarySpec = Field(description="The registry's entry.")
    layers: list[DictionaryLayerQuality] = Field(description="One entry per layer the dictionary covers.")
