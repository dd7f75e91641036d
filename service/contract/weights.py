"""Whether the workers have a registered model's weights: workers check their own host and publish the
result to Redis; the API (which never loads a model and may run on another host) reads it.

One Redis hash per model (``RedisKeys.weights``), one field per worker host holding a :class:`WeightsCheck`
as JSON. Workers write it when they start and again every :data:`WEIGHTS_REPUBLISH_S`; readers ignore
checks older than :data:`WEIGHTS_CHECK_MAX_AGE_S` (a host whose workers stopped), and the hash expires
when no worker has written it for that long.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from service.contract.base import ContractModel

WEIGHTS_REPUBLISH_S = 600
"""How often a running worker checks and publishes again, seconds."""
WEIGHTS_CHECK_MAX_AGE_S = 3600
"""Checks older than this are ignored by readers (and the hash expires after it), seconds."""


class WeightsCheck(ContractModel):
    """One worker host's answer to "are this model's weights here?"."""

    present: bool = Field(description="True when the worker can load the model without downloading.")
    detail: str = Field(description="Where the weights are, or, when missing, how to provide them.")
    host: str = Field(description="Host name of the worker that checked.")
    checked_at: datetime = Field(description="When it checked (UTC).")
