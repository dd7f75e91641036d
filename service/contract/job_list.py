"""The job listing (`GET /v1/jobs`): one row per explanation job, and a page of them with its cursor.

Re-exported by `service.contract`: the SDK returns them, and the client wheel's copy of the contract is
read through the package's namespace.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from service.contract.base import ContractModel
from service.contract.jobs import JobError, JobState, LLMUsage, Progress

MAX_JOBS_PAGE = 1000
"""Most jobs one page of the listing holds."""


class JobSummary(ContractModel):
    """One explanation job as the listing shows it: what it asked for and where it stands."""

    job_id: str = Field(description="Job id (`exp-` and 24 hex digits); `GET /v1/jobs/{job_id}` follows it.")
    model: str = Field(description="Registry id of the model the job explains.")
    layers: list[int] = Field(description="Layers the job explains, ascending.")
    neurons: int = Field(ge=0, description="Neurons requested per layer.")
    status: JobState = Field(description="Where the job stands (the states of `GET /v1/jobs/{job_id}`).")
    progress: Progress = Field(description="Neurons done out of requested, over every layer.")
    created_at: datetime | None = Field(default=None, description="When the job was first posted (UTC).")
    started_at: datetime | None = Field(default=None, description="When a worker first started it (UTC).")
    ended_at: datetime | None = Field(default=None, description="When it finished, failed or was cancelled.")
    error: JobError | None = Field(default=None, description="Why it failed; only when status is `failed`.")
    usage: LLMUsage | None = Field(default=None, description="LLM calls, tokens and cost it spent.")
    budget_exhausted: bool = Field(default=False, description="True when its budget stopped it.")


class JobList(ContractModel):
    """A page of the job listing, newest first (by `created_at`, then job id)."""

    jobs: list[JobSummary] = Field(description="The page's jobs, newest first.")
    next_cursor: str | None = Field(
        default=None,
        description="Opaque cursor of the next page (pass it as `cursor`); null on the last page. The "
        '`Link` header carries the same as a `rel="next"` URL.',
    )
