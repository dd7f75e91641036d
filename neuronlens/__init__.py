"""NeuronLens SDK: explain neurons through a NeuronLens API and get typed reports back.

    from neuronlens import Client, to_dataframe
    client = Client("http://127.0.0.1:8000")
    reports = client.explain("minilm-l6", layer=3, neurons=range(0, 64))
    to_dataframe(reports)["correlation"].plot.hist()

Installs without the server: `pip install ./clients/python` (distribution `neuronlens-client`).
"""

from neuronlens._contract import (
    CheckAccepted,
    CheckEstimate,
    CheckRequest,
    CheckStatus,
    CostEstimate,
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
)
from neuronlens.aio import AsyncClient
from neuronlens.client import Client
from neuronlens.errors import (
    ApiUnavailable,
    ClientError,
    JobFailed,
    JobNotFinished,
    NotFound,
    RequestRejected,
    WaitTimeout,
)
from neuronlens.export import SUMMARY_COLUMNS, read_jsonl, summary_row, to_dataframe, write_csv, write_jsonl
from neuronlens.pins import PinFileError, dump_pin_file, pins_from_reports, read_pin_file

ComparisonAccepted = comparisons.ComparisonAccepted
ComparisonEstimate = comparisons.ComparisonEstimate
ComparisonRequest = comparisons.ComparisonRequest
ComparisonStatus = comparisons.ComparisonStatus
NeuronComparison = comparisons.NeuronComparison
VerdictRule = comparisons.VerdictRule

__all__ = [
    "SUMMARY_COLUMNS",
    "ApiUnavailable",
    "AsyncClient",
    "Client",
    "ClientError",
    "ComparisonAccepted",
    "ComparisonEstimate",
    "ComparisonRequest",
    "ComparisonStatus",
    "CheckAccepted",
    "CheckEstimate",
    "CheckRequest",
    "CheckStatus",
    "Pin",
    "PinFile",
    "PinResult",
    "PinFileError",
    "dump_pin_file",
    "pins_from_reports",
    "read_pin_file",
    "ExplanationAccepted",
    "ExplanationRequest",
    "JobError",
    "JobList",
    "JobFailed",
    "JobNotFinished",
    "CostEstimate",
    "JobStatus",
    "JobSummary",
    "ModelSpec",
    "NeuronComparison",
    "NeuronRange",
    "NeuronReport",
    "NotFound",
    "PipelineOptions",
    "RequestRejected",
    "VerdictRule",
    "WaitTimeout",
    "read_jsonl",
    "summary_row",
    "to_dataframe",
    "write_csv",
    "write_jsonl",
]
