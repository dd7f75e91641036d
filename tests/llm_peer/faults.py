"""The faults the test peer injects (kind, how many requests, which role) and the command line's
``--fault kind[:times[:role]]`` flag; server.LLMPeer answers them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal[
    "rate_limit", "server_error", "hang", "malformed", "wrong_length", "bad_body", "unauthorized"
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "rate_limit",
    "server_error",
    "hang",
    "malformed",
    "wrong_length",
    "bad_body",
    "unauthorized",
)


@dataclass
class Fault:
    """Answer the next `times` matching requests with this fault instead of a normal reply."""

    kind: FaultKind
    times: int = 1
    role: Literal["any", "explainer", "simulator"] = "any"
    """Only requests of this role (as the peer reads the prompt) consume the fault."""
    retry_after: str | None = "1"
    """Retry-After header of a rate_limit answer (seconds or an HTTP date); None sends none."""


def parse_fault(text: str) -> Fault:
    """`kind[:times[:role]]`, e.g. `rate_limit:2` or `wrong_length:1:simulator`."""
    kind, _, rest = text.partition(":")
    times, _, role = rest.partition(":")
    if kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"unknown fault '{kind}': choose one of {', '.join(FAULT_KINDS)}")
    if role not in ("", "any", "explainer", "simulator"):
        raise argparse.ArgumentTypeError(f"unknown role '{role}': choose any, explainer or simulator")
    return Fault(kind, int(times or 1), role or "any")  # type: ignore[arg-type]
