"""An OpenAI-compatible HTTP peer for tests and benchmarks: POST /v1/chat/completions, GET /v1/models
(and GET /peer/stats: calls and most requests in flight).

It answers both roles from the prompt itself (tests/llm_peer/rules.py), with a settable latency and
injected faults (429 with Retry-After, 500, hangs past the client's timeout, malformed or wrong-length
replies, non-JSON bodies, rejected parameters). It counts calls, records every request and the most
requests it ever had in flight, so tests can check what the client really did.

Start it in a test: ``with LLMPeer(latency_ms=5) as peer: ... peer.base_url``; or by hand:
``python -m tests.llm_peer --port 8089 --latency-ms 50 --fault rate_limit:2`` from the repository root.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.llm_peer import rules
from tests.llm_peer.faults import Fault
from tests.llm_peer.replies import completion, error, usage_of


@dataclass(frozen=True)
class RecordedRequest:
    """One chat completion request as the peer saw it."""

    arrived_s: float
    """time.monotonic() when it arrived."""
    body: dict[str, Any]
    role: str
    """`explainer` or `simulator`, as the peer reads the prompt."""
    fault: str | None
    """The injected fault it got, if any."""
    authorization: str | None
    status: int
    """HTTP status of the answer."""
    prompt_tokens: int
    """`usage.prompt_tokens` of the answer (0 when it was not a completion)."""
    completion_tokens: int
    """`usage.completion_tokens` of the answer (0 when it was not a completion)."""


@dataclass
class _State:
    faults: list[Fault]
    calls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LLMPeer:
    """The peer server on a loopback port (0 = a free one), in a background thread."""

    def __init__(
        self,
        *,
        latency_ms: float = 0.0,
        faults: Sequence[Fault] = (),
        hang_s: float = 3600.0,
        unsupported_params: Sequence[str] = (),
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency_s = latency_ms / 1000
        self.hang_s = hang_s
        self.unsupported_params = tuple(unsupported_params)
        self.api_key = api_key
        self._state = _State(faults=[Fault(f.kind, f.times, f.role, f.retry_after) for f in faults])
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._server.peer = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def calls(self) -> int:
        """Chat completion requests received."""
        return self._state.calls

    @property
    def max_in_flight(self) -> int:
        """Most chat completion requests that were being answered at the same time."""
        return self._state.max_in_flight

    @property
    def requests(self) -> list[RecordedRequest]:
        """Answered requests, in the order their answers were sent."""
        with self._state.lock:
            return list(self._state.requests)

    def add_faults(self, *faults: Fault) -> None:
        with self._state.lock:
            self._state.faults.extend(faults)

    def start(self) -> LLMPeer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="llm-peer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LLMPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the command line's way to run it)."""
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._stopping.set()
            self._server.server_close()

    # ------------------------------------------------------------------ request handling

    def _take_fault(self, role: str) -> Fault | None:
        with self._state.lock:
            for fault in self._state.faults:
                if fault.times > 0 and fault.role in ("any", role):
                    fault.times -= 1
                    return fault
        return None

    def handle_chat(
        self, body: dict[str, Any], authorization: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for one chat completion request."""
        state = self._state
        with state.lock:
            state.calls += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            prompt = rules.read_prompt(body.get("messages") or [])
            role = rules.role_of(prompt)
            fault = self._take_fault(role)
            arrived_s = time.monotonic()
            if self.latency_s:
                time.sleep(self.latency_s)
            status, headers, payload = self._answer(body, prompt, role, fault, authorization)
            usage = usage_of(payload) if status == 200 else (0, 0)
            record = RecordedRequest(
                arrived_s, body, role, fault.kind if fault else None, authorization, status, *usage
            )
            with state.lock:
                state.requests.append(record)
            return status, headers, payload
        finally:
            with state.lock:
                state.in_flight -= 1

    def _answer(
        self, body: dict[str, Any], prompt: rules.Prompt, role: str, fault: Fault | None, auth: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return error(401, "Incorrect API key provided.", "invalid_request_error")
        rejected = [name for name in self.unsupported_params if name in body]
        if rejected:
            return error(
                400, f"Unsupported parameter: '{rejected[0]}' is not supported.", "invalid_request_error"
            )
        if fault is not None:
            faulty = self._fault_answer(fault)
            if faulty is not None:
                return faulty
        answer = completion(body, prompt, role, fault.kind if fault else None)
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    def _fault_answer(self, fault: Fault) -> tuple[int, dict[str, str], bytes] | None:
        if fault.kind == "rate_limit":
            status, headers, payload = error(
                429, "Rate limit reached (injected by the test peer).", "rate_limit"
            )
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            return status, headers, payload
        if fault.kind == "server_error":
            return error(500, "The server had an error (injected by the test peer).", "server_error")
        if fault.kind == "unauthorized":
            return error(
                401, "Incorrect API key provided (injected by the test peer).", "invalid_request_error"
            )
        if fault.kind == "bad_body":
            return 200, {"Content-Type": "application/json"}, b'{"choices": [ this is not json'
        if fault.kind == "hang":
            self._stopping.wait(self.hang_s)
        return None  # hang (after waiting), malformed and wrong_length answer through replies.completion


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do: the client reuses connections
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (delayed ACK)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (timed out) before the answer: nothing to tell it

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        peer: LLMPeer = self.server.peer  # type: ignore[attr-defined]
        if self.path.rstrip("/") == "/peer/stats":  # for benchmarks that run the peer as a process
            stats = {"calls": peer.calls, "max_in_flight": peer.max_in_flight}
            self._send(200, {"Content-Type": "application/json"}, json.dumps(stats).encode())
            return
        if self.path.rstrip("/") != "/v1/models":
            self._send(*error(404, f"no route {self.path}", "not_found"))
            return
        models = {
            "object": "list",
            "data": [{"id": "neuronlens-peer", "object": "model", "owned_by": "peer"}],
        }
        self._send(200, {"Content-Type": "application/json"}, json.dumps(models).encode())

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(*error(404, f"no route {self.path}", "not_found"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(*error(HTTPStatus.BAD_REQUEST, "We could not parse the JSON body.", "invalid_request"))
            return
        if not isinstance(body, dict) or not body.get("messages") or not body.get("model"):
            self._send(*error(400, "`model` and `messages` are required.", "invalid_request_error"))
            return
        peer: LLMPeer = self.server.peer  # type: ignore[attr-defined]
        self._send(*peer.handle_chat(body, self.headers.get("Authorization")))
