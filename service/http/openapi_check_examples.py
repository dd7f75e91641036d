"""Examples of `POST /v1/checks` and `GET /v1/checks/{id}` in the OpenAPI document, built from the
contract's own models (so they always validate)."""

from __future__ import annotations

from typing import Any

from service.contract import (
    CheckAccepted,
    CheckEstimate,
    CheckStatus,
    LLMUsage,
    Pin,
    PinResult,
)

CHECK_ID = "chk-9a8b7c6d5e4f30211f2e3d4c"
DIGITS = Pin(layer=0, neuron=10, type="text", explanation="numbers (digit tokens)", min_score=0.6)
PLAY = Pin(
    layer=0,
    neuron=20,
    name="play words",
    explanation='words starting with "play"',
    base_score=0.97,
    max_score_drop=0.1,
)

CHECK_REQUESTS: dict[str, dict[str, Any]] = {
    "two pins": {
        "model": "minilm-l6",
        "pins": [p.model_dump(mode="json", exclude_none=True) for p in (DIGITS, PLAY)],
    },
}
"""Request bodies of `POST /v1/checks`."""


def check_examples() -> dict[tuple[str, str], dict[str, Any]]:
    """(operationId, status) → {example name: JSON value} of the checks' success answers."""
    finished = CheckStatus(
        check_id=CHECK_ID,
        status="finished",
        model="minilm-l6",
        model_revision="c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
        passed=False,
        pins_total=2,
        pins_failed=1,
        results=[
            PinResult(
                name="minilm-l6 L0 N10",
                pin=DIGITS,
                passed=False,
                score=0.0412,
                neuron_type="text",
                failures=["score 0.0412 is below the minimum 0.6"],
            ),
            PinResult(
                name="play words", pin=PLAY, passed=True, score=0.9655, score_drop=0.0045, neuron_type="text"
            ),
        ],
        usage=LLMUsage(),
    )
    queued = CheckStatus(check_id=CHECK_ID, status="scanning", model="minilm-l6", pins_total=2)
    estimate = CheckEstimate(
        model="minilm-l6", pins=2, layers=[0], layers_to_scan=[], llm_calls=40, simulator="openai",
        endpoint="default",
    )  # fmt: skip
    accepted = CheckAccepted(check_id=CHECK_ID, status_url=f"/v1/checks/{CHECK_ID}")
    dump = _dump
    return {
        ("createCheck", "202"): {"check queued": dump(accepted)},
        ("createCheck", "200"): {"dry run": dump(estimate)},
        ("getCheck", "200"): {"scanning": dump(queued), "a pin failed": dump(finished)},
    }


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", exclude_none=True)
