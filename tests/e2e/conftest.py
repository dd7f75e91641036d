"""End-to-end fixtures: real worker and `neuronlens` processes, always cleaned up after the test."""

from __future__ import annotations

from tests.e2e.helpers import processes_fixture  # noqa: F401  (the `processes` fixture)
