"""The contract's models the SDK returns, re-exported from the service's contract.

In the repository this module re-exports `service.contract` (the server's own classes). The standalone
`neuronlens-client` distribution (clients/python) ships a copy of the contract in its place, built from
the same source, so the SDK installs without the server.

The comparison models live in the contract's `comparisons` module (not re-exported by `service.contract`):
`from neuronlens._contract import comparisons` reads them in either place.
"""

from service.contract import (
    SCAN_OPTIONS,
    SUMMARY_COLUMNS,
    CheckAccepted,
    CheckEstimate,
    CheckRequest,
    CheckStatus,
    CostEstimate,
    DictionaryQuality,
    ExplanationAccepted,
    ExplanationRequest,
    JobError,
    JobList,
    JobStatus,
    JobSummary,
    ModelSpec,
    NeuronRange,
    NeuronReport,
    Pin,
    PinFile,
    PinResult,
    PipelineOptions,
    comparisons,
    csv_cell,
    option_labels,
    summary_row,
)

__all__ = [
    "SCAN_OPTIONS",
    "SUMMARY_COLUMNS",
    "CheckAccepted",
    "CheckEstimate",
    "CheckRequest",
    "CheckStatus",
    "Pin",
    "PinFile",
    "PinResult",
    "CostEstimate",
    "DictionaryQuality",
    "ExplanationAccepted",
    "ExplanationRequest",
    "JobError",
    "JobList",
    "JobSummary",
    "JobStatus",
    "ModelSpec",
    "NeuronRange",
    "NeuronReport",
    "PipelineOptions",
    "comparisons",
    "csv_cell",
    "option_labels",
    "summary_row",
]
