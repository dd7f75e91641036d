"""Storage keys shared by the API and the workers: the report variant hash, where reports live in the
artifact store and their index in Redis, and the artifact-store keys of shaded exemplar images. Both sides
compute them with these functions only.

Report layout in the artifact store (one small JSON object per neuron, written as soon as that neuron is
done, never rewritten)::

    reports/<model>/L<layer>/<variant>/<neuron>.json

``<model>`` is the model id percent-encoded (`report_model_dir`), so distinct ids never share a folder.
A layer's folder of one variant is a bulk export as it stands (`ls`, `cat`, `aws s3 sync`). Redis holds
only an index (``RedisKeys.report_index``): per (model, layer, variant) a set of the neuron ids whose
object is stored, added after the object is written, plus the member `REPORT_INDEX_SYNCED` once the set
was rebuilt from the store (a set without it, e.g. after a Redis flush, is incomplete and readers list the
store's folder instead)."""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import quote

from service.contract.registry import DatasetSpec, ModelSpec
from service.contract.requests import ExplanationRequest, LLMModels
from service.contract.versions import PIPELINE_VERSION, SCAN_VERSION

JOB_RECORD_ROOT = "jobs"
"""Artifact-store folder of the durable job records, one `<job id>.json` each."""
REPORT_ROOT = "reports"
"""Artifact-store folder of stored NeuronReports (written by explain workers, read by the API)."""

REPORT_INDEX_SYNCED = -1
"""Member of a report index set meaning "rebuilt from the store's folder": without it the set may lack
reports stored before Redis lost it, and readers list the folder instead."""

_REPORT_NAME = re.compile(r"^(0|[1-9][0-9]{0,8})\.json$")

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
        # Latents only: a neuron's variant stays what it was before dictionaries existed.
        **({"units": request.units} if request.units is not None else {}),
        "dataset": dataset_identity(dataset),
        **_backend_identity(request, models),
        "options": request.options.model_dump(mode="json"),
        "pipeline": PIPELINE_VERSION,
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def report_model_dir(model: str) -> str:
    """A model id as one path segment: percent-encoded (letters, digits and ``_.-~`` kept), so no two ids
    share a folder and none leaves it."""
    encoded = quote(model, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def report_folder_key(model: str, layer: int, variant: str) -> str:
    """Artifact-store folder holding the reports of one layer and variant, one `<neuron>.json` each."""
    return f"{REPORT_ROOT}/{report_model_dir(model)}/L{layer}/{variant}"


def report_object_name(neuron: int) -> str:
    """File name of one neuron's report inside its `report_folder_key` folder."""
    return f"{neuron}.json"


def report_object_neuron(name: str) -> int | None:
    """The neuron a file name in a report folder holds, or None for anything else (temporary files)."""
    match = _REPORT_NAME.match(name.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def report_key(model: str, layer: int, neuron: int, variant: str) -> str:
    """Artifact-store key (path under the store's root) of one stored NeuronReport's JSON."""
    return f"{report_folder_key(model, layer, variant)}/{report_object_name(neuron)}"


def job_record_key(job_id: str) -> str:
    """Artifact-store key of a request's durable job record (its parts, owners and last derived state)."""
    return f"{JOB_RECORD_ROOT}/{job_id}.json"


def exemplar_images_key(model: str, layer: int, neuron: int, variant: str) -> str:
    """Artifact-store key (a folder with a manifest) of one report's shaded exemplar images."""
    return f"{EXEMPLAR_IMAGE_ROOT}/{_KEY_UNSAFE.sub('_', model)}/L{layer}/N{neuron}/{variant}"


def exemplar_image_name(rank: int, *, random: bool = False, original: bool = False) -> str:
    """File name of an exemplar's image inside its `exemplar_images_key` folder: `<rank>.png` for a top
    exemplar shaded by activation, `random-<slot>.png` for a random one; `-original` before `.png` for the
    unshaded image."""
    stem = f"random-{rank}" if random else str(rank)
    return f"{stem}-original.png" if original else f"{stem}.png"


# --------------------------------------------------------------------------- scans

SCAN_MANIFEST = "manifest.json"
"""The file a complete scan artifact has (written last): the scan is stored when it exists."""


def artifact_digest(payload: dict[str, object]) -> str:
    """16 hex digits of the SHA-256 of ``payload``'s canonical JSON: the hash part of artifact keys."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def scan_dataset_payload(dataset: DatasetSpec) -> dict[str, object]:
    """What of a probe set goes into scan and token artifact keys."""
    return {
        "id": dataset.id,
        "revision": dataset.revision,
        "n_samples": dataset.n_samples,
        "path": dataset.path,
    }


def scan_id(model: ModelSpec, dataset: DatasetSpec, hook: str, layer: int, n_top: int, seed: int) -> str:
    """The scan id of one layer (readable prefix + hash of everything that changes the numbers: model and
    revision, hook, layer, probe set, the scan options `n_top` and `seed`, the artifact layout version).
    The API computes it too, to tell whether a request's scan is stored (dry runs, the CLI's notice)."""
    digest = artifact_digest(
        {
            "model": model.id,
            "revision": model.key_revision,
            "hook": hook,
            "layer": layer,
            "dataset": scan_dataset_payload(dataset),
            "n_top": n_top,
            "seed": seed,
            "scan_version": SCAN_VERSION,
        }
    )
    site = hook if model.units is None else f"{hook}-{model.units.id}"
    return f"{_KEY_UNSAFE.sub('_', model.id)}-{_KEY_UNSAFE.sub('_', site)}-L{layer}-{digest}"


def scan_key(scan: str) -> str:
    """Artifact key of a scan id."""
    return f"scans/{scan}"


def scan_manifest_key(scan: str) -> str:
    """Artifact key of a scan's manifest: stored once the scan is complete."""
    return f"{scan_key(scan)}/{SCAN_MANIFEST}"
