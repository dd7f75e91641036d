"""The contract of NeuronLens: the only package of ``service/`` that ``workers/`` imports.

Pure pydantic and constants (no Redis, RQ, Litestar or torch), split by concept:

- :mod:`~service.contract.base`      strict base model; neuron types and modalities
- :mod:`~service.contract.registry`  served models and probe sets (``registry.json``)
- :mod:`~service.contract.requests`  `POST /v1/explanations` and its limits
- :mod:`~service.contract.report`    the NeuronReport workers store and the API serves
- :mod:`~service.contract.jobs`      queues, task paths, job ids, typed job metadata, error types
- :mod:`~service.contract.keys`      report variant hash, report and exemplar-image storage keys
- :mod:`~service.contract.metrics`   the worker metrics hash and its series names
- :mod:`~service.contract.versions`  pipeline and scan versions

Every public name is re-exported here: ``from service.contract import NeuronReport``.
"""

from service.contract.base import ContractModel, Modality, NeuronType
from service.contract.jobs import (
    ERROR_INVALID_REQUEST,
    ERROR_JOB_CANCELED,
    ERROR_JOB_FAILED,
    ERROR_JOB_STOPPED,
    ERROR_JOB_TIMEOUT,
    ERROR_SCAN_LOST,
    ERROR_SCAN_MISSING,
    ERROR_WORKER_DIED,
    EXPLAIN_JOB_PREFIX,
    EXPLAIN_QUEUE,
    EXPLAIN_TASK,
    QUEUE_NAMES,
    SCAN_JOB_PREFIX,
    SCAN_QUEUE,
    SCAN_TASK,
    WORKER_DIED_MESSAGE,
    JobError,
    JobMeta,
    JobStage,
    JobState,
    JobStatus,
    Progress,
)
from service.contract.keys import (
    EXEMPLAR_IMAGE_ROOT,
    REPORT_KEY_PREFIX,
    canonical_json,
    dataset_identity,
    exemplar_image_name,
    exemplar_images_key,
    report_key,
    report_variant,
)
from service.contract.metrics import METRICS_KEY, parse_series, series_name
from service.contract.registry import (
    BUNDLED_REGISTRY,
    SUPPORTED_ARCHITECTURES,
    DatasetSpec,
    HookPoint,
    ModelSource,
    ModelSpec,
    PlantedNeuronSpec,
    Registry,
    load_registry,
)
from service.contract.report import (
    DatasetRef,
    Exemplar,
    Explanation,
    ExplanationCandidate,
    NeuronReport,
    Provenance,
    Simulation,
    TypeEvidence,
)
from service.contract.requests import (
    ENDPOINT_NAME_PATTERN,
    MAX_CANDIDATES,
    Backend,
    ExplanationAccepted,
    ExplanationRequest,
    LLMModels,
    NeuronRange,
    PipelineOptions,
)
from service.contract.versions import PIPELINE_VERSION, SCAN_VERSION

__all__ = [
    "BUNDLED_REGISTRY",
    "ENDPOINT_NAME_PATTERN",
    "ERROR_INVALID_REQUEST",
    "ERROR_JOB_CANCELED",
    "ERROR_JOB_FAILED",
    "ERROR_JOB_STOPPED",
    "ERROR_JOB_TIMEOUT",
    "ERROR_SCAN_LOST",
    "ERROR_SCAN_MISSING",
    "ERROR_WORKER_DIED",
    "EXEMPLAR_IMAGE_ROOT",
    "EXPLAIN_JOB_PREFIX",
    "EXPLAIN_QUEUE",
    "EXPLAIN_TASK",
    "MAX_CANDIDATES",
    "METRICS_KEY",
    "PIPELINE_VERSION",
    "QUEUE_NAMES",
    "REPORT_KEY_PREFIX",
    "SCAN_JOB_PREFIX",
    "SCAN_QUEUE",
    "SCAN_TASK",
    "SCAN_VERSION",
    "WORKER_DIED_MESSAGE",
    "Backend",
    "ContractModel",
    "DatasetRef",
    "DatasetSpec",
    "Exemplar",
    "Explanation",
    "ExplanationAccepted",
    "ExplanationCandidate",
    "ExplanationRequest",
    "HookPoint",
    "JobError",
    "JobMeta",
    "JobStage",
    "JobState",
    "JobStatus",
    "LLMModels",
    "Modality",
    "ModelSource",
    "ModelSpec",
    "NeuronRange",
    "NeuronReport",
    "NeuronType",
    "PipelineOptions",
    "PlantedNeuronSpec",
    "Progress",
    "Provenance",
    "Registry",
    "Simulation",
    "TypeEvidence",
    "canonical_json",
    "dataset_identity",
    "exemplar_image_name",
    "exemplar_images_key",
    "load_registry",
    "SUPPORTED_ARCHITECTURES",
    "parse_series",
    "report_key",
    "report_variant",
    "series_name",
]
