"""Named errors of the worker domain. Every message is meant for users: it says what was wrong and
what is allowed, never a traceback. RQ tasks put ``type(exc).__name__`` and ``str(exc)`` into the job."""

from __future__ import annotations


class NeuronLensError(Exception):
    """Base class of every worker-domain error."""


class InvalidRequest(NeuronLensError):
    """A layer, neuron, hook point or option that the model or scan does not have."""


class InvalidDictionary(InvalidRequest):
    """A dictionary (SAE or transcoder) whose files are missing, malformed, unsupported, of the wrong width
    for its hook, or hold non-finite weights; the message names the file and field."""


class UnknownModel(NeuronLensError):
    """A model id, architecture or source kind this deployment cannot load."""


class ModelWeightsMissing(NeuronLensError):
    """The registry lists the model but its weights are not on this host (nothing is ever downloaded)."""


class DatasetUnavailable(NeuronLensError):
    """A probe set id without a generator, or a user data file that is missing or malformed."""


class UnknownBackend(NeuronLensError):
    """An explainer or simulator backend name that is not registered."""


class ScanMissing(NeuronLensError):
    """No complete scan artifact for (model, revision, hook, layer, dataset, n_top, seed)."""


class ArtifactCorrupt(NeuronLensError):
    """An artifact's manifest exists but its data files are missing or do not match it."""


class DeploymentMismatch(NeuronLensError):
    """This worker is configured unlike the API that enqueued the job (registry entries, LLM endpoint
    models): a deployment fault, not a bad request; give both the same settings and registry."""


class DeviceUnavailable(NeuronLensError):
    """The configured torch device does not exist on this host (e.g. `cuda` without a GPU)."""
