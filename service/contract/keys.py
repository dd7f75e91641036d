"""Storage keys shared by the API and the workers: the report variant hash, report keys in Redis and
the artifact-store keys of shaded exemplar images. Both sides compute them with these functions only."""

from __future__ import annotations

import hashlib
import json
import re

from service.contract.registry import DatasetSpec
from service.contract.requests import ExplanationRequest, LLMModels
from service.contract.versions import PIPELINE_VERSION

REPORT_KEY_PREFIX = "nl:report:"
"""Every Redis key of a stored NeuronReport starts with this."""

EXEMPLAR_IMAGE_ROOT = "images"
"""Artifact-store folder of shaded exemplar images (written by explain workers, read by the API)."""

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def canonical_json(obj: object) -> str:
    """JSON with sorted keys and no spaces: the form that is hashed for ids."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def dataset_identity(dataset: DatasetSpec) -> dict[str, object]:
    """Everything of a probe set that changes what is recorded from it (the description does not)."""
    return dataset.model_dump(mode="json", exclude={"description"})


def _backend_identity(request: ExplanationRequest, models: LLMModels | None) -> dict[str, object]:
    """Which explainer and simulator, on which endpoint and models, with how many candidates."""
    if models is None and "openai" in (request.explainer, request.simulator):
        raise ValueError("an `openai` backend needs the endpoint's model names to compute the report variant")
    explainer: dict[str, object] = {"backend": request.explainer}
    simulator: dict[str, object] = {"backend": request.simulator}
    if request.explainer == "openai" and models is not None:
        explainer.update(endpoint=request.endpoint, model=models.explainer, candidates=request.candidates)
        if (request.candidates or 1) > 1:
            explainer["calibration_model"] = models.simulator
    if request.simulator == "openai" and models is not None:
        simulator.update(endpoint=request.endpoint, model=models.simulator)
    return {"explainer": explainer, "simulator": simulator}


def report_variant(
    request: ExplanationRequest, *, revision: str, dataset: DatasetSpec, models: LLMModels | None
) -> str:
    """Short hash (16 hex digits) of everything besides (model, layer, neuron) that changes a report:
    weights revision, hook, probe set (id, revision, size), backends with their endpoint, model names
    and k, options and pipeline version. ``request`` must be resolved (hook, dataset, explainer,
    simulator set)."""
    if None in (request.hook, request.dataset, request.explainer, request.simulator):
        raise ValueError(
            "resolve the request (hook, dataset, explainer, simulator) before its report variant"
        )
    if request.dataset != dataset.id:
        raise ValueError(f"request names probe set {request.dataset!r} but {dataset.id!r} was given")
    payload = {
        "revision": revision,
        "hook": request.hook,
        "dataset": dataset_identity(dataset),
        **_backend_identity(request, models),
        "options": request.options.model_dump(mode="json"),
        "pipeline": PIPELINE_VERSION,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def report_key(model: str, layer: int, neuron: int, variant: str) -> str:
    """Redis key under which the explain worker stores a NeuronReport as JSON."""
    return f"{REPORT_KEY_PREFIX}{model}:{layer}:{neuron}:{variant}"


def exemplar_images_key(model: str, layer: int, neuron: int, variant: str) -> str:
    """Artifact-store key (a folder with a manifest) of one report's shaded exemplar images."""
    return f"{EXEMPLAR_IMAGE_ROOT}/{_KEY_UNSAFE.sub('_', model)}/L{layer}/N{neuron}/{variant}"


def exemplar_image_name(rank: int, *, random: bool = False, original: bool = False) -> str:
    """File name of an exemplar's image inside its `exemplar_images_key` folder: `<rank>.png` for a top
    exemplar shaded by activation, `random-<slot>.png` for a random one; `-original` before `.png` for the
    unshaded image."""
    stem = f"random-{rank}" if random else str(rank)
    return f"{stem}-original.png" if original else f"{stem}.png"
