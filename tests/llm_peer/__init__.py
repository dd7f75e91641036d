"""An OpenAI-compatible HTTP peer that the tests and benchmarks talk to with the real `openai` client.

`server.LLMPeer` serves it on loopback (``with LLMPeer(latency_ms=5) as peer: ... peer.base_url``);
`rules` is its rule-based "model", `replies` builds its answers, `faults` the faults it injects. Run it by
hand from the repository root: ``python -m tests.llm_peer --port 8089 --latency-ms 50``.
"""

from tests.llm_peer.faults import FAULT_KINDS, Fault, FaultKind, parse_fault
from tests.llm_peer.server import LLMPeer, RecordedRequest

__all__ = ["FAULT_KINDS", "Fault", "FaultKind", "LLMPeer", "RecordedRequest", "parse_fault"]
