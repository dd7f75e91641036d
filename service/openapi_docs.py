"""What Litestar cannot say per route in OpenAPI: response headers, examples, and the answers every /v1
route may give (401/403/429 with keys on, 406, 304 on conditional GETs).

Every route handler sets ``operation_class=DocumentedOperation``; Litestar builds the operation, and
:meth:`DocumentedOperation.__post_init__` completes it from the tables here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.openapi.spec import (
    Example,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

from service.errors import PROBLEM_MEDIA_TYPE
from service.openapi_examples import EXPLANATION_REQUESTS, problem_example, response_examples

_STRING = Schema(type=OpenAPIType.STRING)
_INTEGER = Schema(type=OpenAPIType.INTEGER)
REQUEST_ID = OpenAPIHeader(
    schema=_STRING,
    description="The client's `X-Request-ID` when well-formed, else a generated id.",
)
ETAG = OpenAPIHeader(
    schema=_STRING, description="Strong entity tag of the bytes; send it as `If-None-Match`."
)
CACHE_CONTROL = OpenAPIHeader(
    schema=_STRING, description="`no-cache` for reports (revalidate), `max-age=86400` for images."
)
LOCATION = OpenAPIHeader(
    schema=_STRING, description="The job to poll (`/v1/jobs/{job_id}`), as `status_url`."
)
RETRY_AFTER = OpenAPIHeader(schema=_INTEGER, description="Seconds until the key's window or quota resets.")
WWW_AUTHENTICATE = OpenAPIHeader(schema=_STRING, description='`Bearer realm="neuronlens"`.')

CONDITIONAL = {"getNeuronReport", "getExemplarImage"}
"""Operations answering with a strong ETag, and 304 to a matching If-None-Match."""
SUCCESS_HEADERS: dict[tuple[str, str], dict[str, OpenAPIHeader]] = {
    ("createExplanation", "202"): {"Location": LOCATION},
    **{(op, "200"): {"ETag": ETAG, "Cache-Control": CACHE_CONTROL} for op in CONDITIONAL},
}
KEYED_PROBLEMS = {
    "401": "No API key, or an unknown or revoked one (only when the deployment sets `NEURONLENS_AUTH=keys`).",
    "403": "The key lacks the scope this route needs, or the request exceeds its whole daily quota.",
    "429": "The key used up its requests per minute or its daily quota (the problem names the estimate).",
}
_PROBLEM_SCHEMA = Reference(ref="#/components/schemas/Problem")


def _problem(status: str, description: str, path: str) -> OpenAPIResponse:
    example = Example(summary=description.split(".")[0], value=problem_example(status, path))
    headers: dict[str, OpenAPIHeader | Reference] = {"X-Request-ID": REQUEST_ID}
    if status == "429":
        headers["Retry-After"] = RETRY_AFTER
    if status == "401":
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    media = OpenAPIMediaType(schema=_PROBLEM_SCHEMA, examples={"problem": example})
    return OpenAPIResponse(description=description, headers=headers, content={PROBLEM_MEDIA_TYPE: media})


@dataclass
class DocumentedOperation(Operation):
    """An Operation completed with headers, examples and the shared problem answers (see module doc)."""

    def __post_init__(self) -> None:
        op = self.operation_id or ""
        responses = self.responses if self.responses is not None else {}
        if self.security:
            for status, description in KEYED_PROBLEMS.items():
                responses.setdefault(status, _problem(status, description, "/v1/…"))
            if self.request_body is None:
                responses.setdefault("406", _problem("406", "`Accept` admits no representation.", "/v1/…"))
        if op in CONDITIONAL:
            responses["304"] = OpenAPIResponse(
                description="Not modified: `If-None-Match` names the current ETag (no body).",
                headers={"ETag": ETAG, "Cache-Control": CACHE_CONTROL, "X-Request-ID": REQUEST_ID},
            )
        examples = response_examples()
        for status, response in responses.items():
            if not isinstance(response, OpenAPIResponse):
                continue
            response.headers = {**(response.headers or {}), **SUCCESS_HEADERS.get((op, status), {})}
            response.headers.setdefault("X-Request-ID", REQUEST_ID)
            self._add_examples(response, status, examples.get((op, status)))
        self.responses = dict(sorted(responses.items()))
        if isinstance(self.request_body, RequestBody) and op == "createExplanation":
            for media in self.request_body.content.values():
                media.examples = _examples(EXPLANATION_REQUESTS)

    def _add_examples(self, response: OpenAPIResponse, status: str, examples: dict[str, Any] | None) -> None:
        for media_type, media in (response.content or {}).items():
            if media.examples:
                continue
            if media_type == PROBLEM_MEDIA_TYPE:
                media.examples = {"problem": Example(value=problem_example(status, "/v1/…"))}
            elif examples is not None:
                media.examples = _examples(examples)


def _examples(values: dict[str, Any]) -> dict[str, Example | Reference]:
    return {name.replace(" ", "-"): Example(summary=name, value=value) for name, value in values.items()}
