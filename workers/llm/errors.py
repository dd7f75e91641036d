"""Named errors of the LLM layer. Messages name the endpoint (never its key) and what went wrong."""

from __future__ import annotations

from workers.errors import NeuronLensError


class LLMError(NeuronLensError):
    """Base class of every LLM-layer error; RQ tasks report its class name and message as the job error."""


class UnknownLLMEndpoint(LLMError):
    """A request named an endpoint that settings do not list (or none is configured at all)."""


class LLMEndpointError(LLMError):
    """The endpoint kept failing (or refused the request) after every retry.

    The message names the endpoint by its configured name (never its URL: job errors reach API clients)
    and what it last answered: an HTTP status with the
    start of the body, a timeout, or a connection error.
    """

    def __init__(self, endpoint: str, answer: str, attempts: int) -> None:
        self.endpoint = endpoint
        self.answer = answer
        self.attempts = attempts
        plural = "s" if attempts != 1 else ""
        super().__init__(f"LLM endpoint {endpoint} failed after {attempts} attempt{plural}: {answer}")
