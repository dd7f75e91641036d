"""Shared by tests/deploy: the repository root, Dockerfile stages, settings that deploy/ may name early."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PENDING = {
    "NEURONLENS_AUTH",
    "NEURONLENS_KEY_RATE_PER_MINUTE",
    "NEURONLENS_KEY_LLM_CALLS_PER_DAY",
    "NEURONLENS_KEY_SCAN_PASSES_PER_DAY",
    "NEURONLENS_CORS_ORIGINS",
    "NEURONLENS_LOG_FORMAT",
}
"""Settings of issue 11's API work (keys, quotas, CORS, logs) that deploy/ may name before they land."""


def dockerfile_stage(target: str) -> str:
    """The text of the Dockerfile stage ``FROM … AS target`` (without its FROM keyword)."""
    text = (ROOT / "Dockerfile").read_text()
    for stage in re.split(r"^FROM ", text, flags=re.MULTILINE):
        if re.match(rf"\S+ AS {target}\b", stage):
            return stage
    raise AssertionError(f"no stage {target!r} in the Dockerfile")
