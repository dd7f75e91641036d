"""Run the test peer by hand: ``python -m tests.llm_peer --port 8089 --latency-ms 50 --fault rate_limit:2``
(from the repository root); it prints where it listens and serves until interrupted."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tests.llm_peer.faults import parse_fault
from tests.llm_peer.server import LLMPeer


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenAI-compatible test peer for NeuronLens.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of every answer")
    parser.add_argument(
        "--fault", type=parse_fault, action="append", default=[], help="kind[:times[:role]], repeatable"
    )
    parser.add_argument("--retry-after", default="1", help="Retry-After of rate_limit faults")
    parser.add_argument("--hang-s", type=float, default=3600.0, help="how long a hang fault hangs")
    parser.add_argument("--unsupported", action="append", default=[], help="request parameter to reject")
    args = parser.parse_args(argv)
    for fault in args.fault:
        fault.retry_after = args.retry_after
    peer = LLMPeer(
        latency_ms=args.latency_ms,
        faults=args.fault,
        hang_s=args.hang_s,
        unsupported_params=args.unsupported,
        host=args.host,
        port=args.port,
    )
    print(f"LLM peer listening on {peer.base_url}", flush=True)
    peer.serve_forever()


if __name__ == "__main__":
    main()
