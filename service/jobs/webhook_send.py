"""Sending one webhook event to one URL: signed per the Standard Webhooks spec, retried with backoff.

The body is the event as JSON (`{"type", "timestamp", "data"}`); the headers are `webhook-id` (the event's
id, the same on every retry, for receivers to deduplicate), `webhook-timestamp` (Unix seconds of the
attempt) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` under the
deployment's `whsec_` secret), made by the `standardwebhooks` library, so any Standard Webhooks verifier
checks them. A 2xx answer delivers; anything else (another status, no answer) is retried after
`webhook_backoff_s`, doubling, up to `webhook_retries` times; each attempt is returned for the record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from service.contract import WebhookDelivery
from service.jobs.callback_urls import CallbackRefused, check_callback_url
from service.settings import Settings


def signed_headers(secret: str, event_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` sent at ``at``."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
        "content-type": "application/json",
        "user-agent": "NeuronLens-Webhooks",
    }


def _attempt(
    client: httpx.Client, settings: Settings, url: str, event_id: str, kind: str, body: str, attempt: int
) -> WebhookDelivery:
    at = datetime.now(UTC)
    start = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        check_callback_url(url, settings)  # again: the host may resolve elsewhere by now
        assert settings.webhook_secret is not None  # checked above
        headers = signed_headers(settings.webhook_secret.get_secret_value(), event_id, body, at)
        status_code = client.post(url, content=body.encode(), headers=headers).status_code
    except CallbackRefused as exc:
        error = f"refused: {exc}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return WebhookDelivery(
        event_id=event_id,
        type=kind,
        url=url,
        attempt=attempt,
        at=at,
        status_code=status_code,
        delivered=status_code is not None and 200 <= status_code < 300,
        error=error,
        seconds=round(time.perf_counter() - start, 6),
    )


def send_event(
    settings: Settings,
    url: str,
    event_id: str,
    kind: str,
    body: str,
    record: Callable[[WebhookDelivery], None],
    first_attempt: int = 1,
) -> bool:
    """Send the event to ``url`` until a 2xx or the retries run out (``record`` gets every attempt);
    whether it was delivered. A host no longer allowed is not retried."""
    wait = settings.webhook_backoff_s
    with httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False) as client:
        for attempt in range(first_attempt, first_attempt + settings.webhook_retries + 1):
            delivery = _attempt(client, settings, url, event_id, kind, body, attempt)
            record(delivery)
            if delivery.delivered or (delivery.error or "").startswith("refused"):
                return delivery.delivered
            if attempt < first_attempt + settings.webhook_retries:
                time.sleep(wait)
                wait *= 2
    return False
