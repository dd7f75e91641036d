"""Chat completions against an OpenAI-compatible endpoint: timeouts, retries, bounded concurrency, usage.

The `openai` client is built with ``max_retries=0``: retrying happens here, so the policy (which answers
are retried, how long to wait, Retry-After, the per-endpoint concurrency bound, the error a user sees) is
one piece of code that the tests exercise against a real HTTP peer.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from workers.llm.call_estimate import estimated_cost_usd
from workers.llm.endpoints import LLMEndpoint, LLMEndpoints
from workers.llm.errors import LLMEndpointError
from workers.llm.usage import current_meter

log = logging.getLogger("neuronlens.llm")

Message = dict[str, Any]
"""One chat message as the OpenAI API takes it: {"role": …, "content": str | [parts]}."""

RETRYABLE_STATUS = frozenset({408, 409, 429})
"""Statuses retried besides every 5xx: request timeout, conflict, rate limit."""

OPTIONAL_PARAMS = ("response_format", "logprobs", "top_logprobs", "temperature", "max_tokens")
"""Parameters some servers or models reject (json mode, logprobs; newer OpenAI models refuse a temperature
other than 1 and `max_tokens`). A 400/422 naming one of them repeats the request without it (`max_tokens`
becomes `max_completion_tokens`), remembered per endpoint and model, instead of failing the job."""

BODY_CHARS = 200
"""How much of a failing response body goes into the error message."""


class LLMCallState:
    """What the callers of one worker process share: the bound on requests in flight per endpoint, and the
    optional parameters each (endpoint, model) rejected. Owned by the WorkerRuntime (one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._semaphores: dict[tuple[str, str, int], threading.BoundedSemaphore] = {}
        self._unsupported: dict[tuple[str, str], set[str]] = {}

    def semaphore(self, endpoint: LLMEndpoint) -> threading.BoundedSemaphore:
        """The bound on requests in flight to this endpoint, shared by every caller of this state."""
        key = (endpoint.name, endpoint.base_url, endpoint.concurrency)
        with self._lock:
            if key not in self._semaphores:
                self._semaphores[key] = threading.BoundedSemaphore(endpoint.concurrency)
            return self._semaphores[key]

    def unsupported(self, endpoint: LLMEndpoint, model: str) -> set[str]:
        """A copy of the optional parameters this endpoint's `model` rejected so far."""
        with self._lock:
            return set(self._unsupported.get((endpoint.base_url, model), ()))

    def reject(self, endpoint: LLMEndpoint, model: str, params: frozenset[str]) -> None:
        """Remember that this endpoint's `model` rejects `params`."""
        with self._lock:
            self._unsupported.setdefault((endpoint.base_url, model), set()).update(params)


@dataclass(frozen=True)
class TokenUsage:
    """Tokens an endpoint billed, and how many HTTP requests it took."""

    prompt: int = 0
    """Prompt tokens, as reported in `usage.prompt_tokens`."""
    completion: int = 0
    """Completion tokens, as reported in `usage.completion_tokens`."""
    calls: int = 0
    """HTTP requests made, retries included."""

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt + other.prompt, self.completion + other.completion, self.calls + other.calls
        )


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token with its log-probability and the alternatives the endpoint reported."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...]
    """(token, logprob) of the most likely alternatives at this position, the token itself included."""


@dataclass(frozen=True)
class ChatReply:
    """The choices of one chat completion."""

    texts: list[str]
    """Message content of each choice (empty string when a choice had none)."""
    logprobs: list[list[TokenLogprob] | None]
    """Per choice, the content tokens with logprobs; None when the endpoint returned none."""
    usage: TokenUsage
    """Tokens and requests this reply cost, retries included."""
    model: str
    """Model name the endpoint answered with."""


def make_llm_client(endpoint: LLMEndpoint) -> openai.OpenAI:
    """The real `openai.OpenAI` client for `endpoint`, without its own retries (the caller retries)."""
    # base_url and api_key are always passed: the client would otherwise read OPENAI_* from the environment.
    return openai.OpenAI(
        base_url=endpoint.base_url, api_key=endpoint.api_key, timeout=endpoint.timeout_s, max_retries=0
    )


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date); None if absent."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class _Failure(Exception):
    """One failed attempt: what the endpoint answered and whether another attempt may help."""

    def __init__(
        self,
        answer: str,
        *,
        retryable: bool,
        retry_after_s: float | None = None,
        rejected: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(answer)
        self.answer = answer
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.rejected = rejected
        """Optional parameters of the request that the endpoint named as unsupported."""


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS or status >= 500


class LLMCaller:
    """Chat completions on one endpoint, thread-safe; share one per endpoint across threads. Callers
    built with the same ``state`` share the endpoint's concurrency bound and what it rejected (None: a
    state of this caller's own)."""

    def __init__(
        self,
        endpoint: LLMEndpoint,
        client: openai.OpenAI | None = None,
        *,
        state: LLMCallState | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._client = client or make_llm_client(endpoint)
        self._state = state or LLMCallState()
        self._semaphore = self._state.semaphore(endpoint)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()

    def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        n: int = 1,
        temperature: float | None = None,
        max_tokens: int | None = None,
        json_mode: bool = False,
        top_logprobs: int | None = None,
    ) -> ChatReply:
        """One chat completion, retried per the endpoint's policy; raises LLMEndpointError at the end."""
        params = self._params(messages, model, n, temperature, max_tokens, json_mode, top_logprobs)
        retries = 0
        calls = 0
        while True:
            calls += 1
            try:
                return _reply(self._create(params), calls)
            except _Failure as failure:
                if failure.rejected:  # each rejection removes a parameter: at most len(OPTIONAL_PARAMS)
                    params = self._without(params, model, failure.rejected)
                    continue
                if not failure.retryable or retries >= self.endpoint.max_retries:
                    # The URL goes to the worker's log only; the error (shown to clients) names the endpoint.
                    log.warning(
                        "LLM endpoint %s at %s failed after %d calls: %s",
                        self.endpoint.describe(),
                        self.endpoint.base_url,
                        calls,
                        failure.answer,
                    )
                    raise LLMEndpointError(self.endpoint.describe(), failure.answer, calls) from failure
                delay = self._delay(retries, failure.retry_after_s)
            retries += 1
            self._sleep(delay)

    def _create(self, params: dict[str, Any]) -> ChatCompletion:
        """One HTTP request; every way it can fail becomes a _Failure that says whether to retry. The
        context's usage meter (workers/llm/usage.py) reserves the call first with its estimated cost
        (workers/llm/call_estimate.py), inside the endpoint's concurrency bound, which may refuse it
        (BudgetExhausted, raised as is), and settles it after, with the tokens the endpoint reported."""
        meter = current_meter()
        with self._semaphore:
            if meter is None:
                return self._send(params)
            estimate = estimated_cost_usd(self.endpoint, params)
            meter.reserve(estimate)
            completion: ChatCompletion | None = None
            try:
                completion = self._send(params)
                return completion
            finally:  # settled before the next caller may reserve, so it sees this call's cost
                prompt, answer = _reported_tokens(completion)
                meter.record(prompt, answer, self.endpoint.cost_usd(prompt, answer), estimate)

    def _send(self, params: dict[str, Any]) -> ChatCompletion:
        """The request itself (the caller holds the endpoint's semaphore)."""
        try:
            completion = self._client.chat.completions.create(**params)
        except openai.APIStatusError as err:
            raise _Failure(
                _describe_status(err),
                retryable=is_retryable_status(err.status_code),
                retry_after_s=parse_retry_after(err.response.headers),
                rejected=_rejected_params(err, params),
            ) from err
        except openai.APITimeoutError as err:
            raise _Failure(f"timed out after {self.endpoint.timeout_s:g}s", retryable=True) from err
        except openai.APIConnectionError as err:
            raise _Failure(f"connection error: {err.__cause__ or err}", retryable=True) from err
        except ValueError as err:  # a JSON content type whose body does not parse
            raise _Failure(f"a body that is not JSON ({err})", retryable=True) from err
        if not isinstance(completion, ChatCompletion) or not completion.choices:
            shown = " ".join(str(completion).split())[:BODY_CHARS]
            raise _Failure(f"a body that is not a chat completion: {shown}", retryable=True)
        return completion

    def _params(
        self,
        messages: Sequence[Message],
        model: str,
        n: int,
        temperature: float | None,
        max_tokens: int | None,
        json_mode: bool,
        top_logprobs: int | None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"model": model, "messages": list(messages)}
        if n != 1:
            params["n"] = n
        if temperature is not None:
            params["temperature"] = temperature
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        if json_mode:
            params["response_format"] = {"type": "json_object"}
        if top_logprobs is not None:
            params["logprobs"] = True
            params["top_logprobs"] = top_logprobs
        return _drop(params, self._state.unsupported(self.endpoint, model))

    def _without(self, params: dict[str, Any], model: str, rejected: frozenset[str]) -> dict[str, Any]:
        # Remembered per (endpoint, model), so later calls do not pay for the rejected attempt again.
        self._state.reject(self.endpoint, model, rejected)
        return _drop(params, rejected)

    def _delay(self, retries: int, retry_after_s: float | None) -> float:
        """Retry-After (capped) plus a little jitter, so calls told the same wait do not return together;
        else exponential backoff from `backoff_s`, jittered down to half."""
        cap = self.endpoint.retry_after_max_s
        with self._rng_lock:
            jitter = self._rng.random()
        if retry_after_s is not None:
            return min(retry_after_s, cap) + 0.1 * self.endpoint.backoff_s * jitter
        return min(cap, self.endpoint.backoff_s * 2**retries) * (0.5 + 0.5 * jitter)


def _rejected_params(err: openai.APIStatusError, params: Mapping[str, Any]) -> frozenset[str]:
    """The optional parameters of this request that a 400/422 answer names (logprobs go together)."""
    if err.status_code not in (400, 422):
        return frozenset()
    text = _body_text(err).lower()
    named = {key for key in OPTIONAL_PARAMS if key in params and key in text}
    if named & {"logprobs", "top_logprobs"}:
        named |= {"logprobs", "top_logprobs"} & set(params)
    return frozenset(named)


def _drop(params: Mapping[str, Any], unsupported: set[str] | frozenset[str]) -> dict[str, Any]:
    kept = {key: value for key, value in params.items() if key not in unsupported}
    if "max_tokens" in unsupported and "max_tokens" in params:
        kept["max_completion_tokens"] = params["max_tokens"]
    return kept


def _body_text(err: openai.APIStatusError) -> str:
    try:
        return err.response.text
    except Exception:  # noqa: BLE001 - a streamed or closed body: fall back to the parsed message
        return str(err.message)


def _describe_status(err: openai.APIStatusError) -> str:
    body = " ".join(_body_text(err).split())
    return f"HTTP {err.status_code}: {body[:BODY_CHARS] or '(empty body)'}"


def _reported_tokens(completion: ChatCompletion | None) -> tuple[int, int]:
    """(prompt, completion) tokens a completion reports; (0, 0) for none (a failed attempt)."""
    usage = completion.usage if completion is not None else None
    return (
        int(getattr(usage, "prompt_tokens", 0) or 0),
        int(getattr(usage, "completion_tokens", 0) or 0),
    )


def _reply(completion: ChatCompletion, calls: int) -> ChatReply:
    texts = [choice.message.content or "" for choice in completion.choices]
    logprobs = [_choice_logprobs(choice) for choice in completion.choices]
    prompt, answer = _reported_tokens(completion)
    tokens = TokenUsage(prompt=prompt, completion=answer, calls=calls)
    return ChatReply(texts=texts, logprobs=logprobs, usage=tokens, model=str(completion.model or ""))


def _choice_logprobs(choice: Any) -> list[TokenLogprob] | None:
    content = getattr(choice.logprobs, "content", None) if choice.logprobs is not None else None
    if not content:
        return None
    return [
        TokenLogprob(
            token=item.token,
            logprob=float(item.logprob),
            top=tuple((alt.token, float(alt.logprob)) for alt in (item.top_logprobs or ())),
        )
        for item in content
    ]


class LLMCallers:
    """One LLMCaller per configured endpoint, made on first use and shared by every job of the process
    (so the per-endpoint bound and the rejected-parameter memory hold process-wide)."""

    def __init__(self, endpoints: LLMEndpoints) -> None:
        self.endpoints = endpoints
        self._state = LLMCallState()
        self._lock = threading.Lock()
        self._callers: dict[str, LLMCaller] = {}

    def caller(self, name: str | None = None) -> LLMCaller:
        """The caller of the endpoint called `name` (None: the default one); UnknownLLMEndpoint if none."""
        endpoint = self.endpoints.resolve(name)
        with self._lock:
            if endpoint.name not in self._callers:
                self._callers[endpoint.name] = LLMCaller(endpoint, state=self._state)
            return self._callers[endpoint.name]
