"""Shared by tests/deploy: the repository root, Dockerfile stages, settings that deploy/ may name early."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_stage(target: str) -> str:
    """The text of the Dockerfile stage ``FROM … AS target`` (without its FROM keyword)."""
    text = (ROOT / "Dockerfile").read_text()
    for stage in re.split(r"^FROM ", text, flags=re.MULTILINE):
        if re.match(rf"\S+ AS {target}\b", stage):
            return stage
    raise AssertionError(f"no stage {target!r} in the Dockerfile")
