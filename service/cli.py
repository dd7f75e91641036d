"""The `neuronlens` command: `up` (the whole stack in the foreground), `explain` (a client), `demo`.

No torch and no `workers` import here: the API and workers run as child processes (service/stack.py),
and `explain` talks HTTP (service/client.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

from service.client import ClientError, NeuronLensClient
from service.embedded_redis import free_port
from service.stack import (
    DEFAULT_GRACE_S,
    Stack,
    StackError,
    default_data_dir,
    external_redis_url,
    redact_url,
)

DEFAULT_URL = "http://127.0.0.1:8000"
DEMO_REQUEST: dict[str, Any] = {"model": "minilm-l6", "layer": 3, "neurons": [42]}
BAR_WIDTH = 24


def _stop_on_signals(stopping: threading.Event) -> None:
    """SIGINT and SIGTERM set ``stopping``; the caller stops its processes in order."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            print(f"neuronlens: {signal.Signals(signum).name} again; still stopping", file=sys.stderr)
        stopping.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


class ProgressBar:
    """Job progress on stderr: redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, stream: IO[str] = sys.stderr):
        self.stream = stream
        self.is_tty = stream.isatty()
        self.last = ""

    def __call__(self, status: dict[str, Any]) -> None:
        line = self.render(status)
        if line == self.last:
            return
        self.last = line
        if self.is_tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.is_tty and self.last:
            self.stream.write("\n")
            self.stream.flush()

    @staticmethod
    def render(status: dict[str, Any]) -> str:
        progress = status.get("progress") or {}
        done, total = int(progress.get("done", 0)), int(progress.get("total", 0))
        filled = BAR_WIDTH * done // total if total else 0
        line = f"{status.get('status', '?'):<10} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"
        if status.get("queue_position") is not None:
            line += f"  queue position {status['queue_position']}"
        if status.get("workers") == 0:
            line += "  no worker is listening: start one (neuronlens up --workers N, or neuronlens-worker)"
        return line


def explanation_body(args: argparse.Namespace) -> dict[str, Any]:
    neurons: Any = args.neuron
    if args.range is not None:
        neurons = args.range
    body: dict[str, Any] = {"model": args.model, "layer": args.layer, "neurons": neurons}
    for name in ("hook", "dataset", "explainer", "simulator", "endpoint", "candidates"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    return body


class Interrupted(ClientError):
    """Ctrl-C or SIGTERM while following a job (the job itself keeps running on the server)."""

    exit_code = 130


def run_explain(
    url: str,
    body: dict[str, Any],
    quiet: bool,
    timeout_s: float | None,
    out: IO[str],
    stopping: threading.Event,
) -> int:
    """Submit, follow and print: one report as a JSON object, several as a JSON array."""
    bar = None if quiet else ProgressBar()

    def progress(status: dict[str, Any]) -> None:
        if bar is not None:
            bar(status)
        if stopping.is_set():
            raise Interrupted(f"interrupted; job {status.get('job_id')} goes on in the service")

    try:
        with NeuronLensClient(url) as client:
            reports = client.explain(body, progress=progress, timeout_s=timeout_s)
    except ClientError as exc:
        if bar is not None:
            bar.close()
        print(f"neuronlens explain: {exc}", file=sys.stderr)
        return exc.exit_code
    if bar is not None:
        bar.close()
    single = isinstance(body["neurons"], list) and len(set(body["neurons"])) == 1 and len(reports) == 1
    json.dump(reports[0] if single else reports, out, indent=2)
    out.write("\n")
    out.flush()
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    if args.neuron is None and args.range is None:
        print(
            "neuronlens explain: name the neurons with --neuron N (repeatable) or --range START:STOP",
            file=sys.stderr,
        )
        return 2
    stopping = threading.Event()
    _stop_on_signals(stopping)
    return run_explain(args.url, explanation_body(args), args.quiet, args.timeout, sys.stdout, stopping)


def _describe_stack(stack: Stack) -> str:
    redis = redact_url(stack.effective_redis_url) + (" (embedded)" if stack.redis is not None else "")
    data = f"; data in {stack.data_dir}" if stack.data_dir is not None and stack.redis is not None else ""
    return f"NeuronLens API on {stack.api_url}  (redis {redis}; {stack.n_workers} worker(s){data})"


def supervise(stack: Stack, stopping: threading.Event) -> int:
    """Run until a signal (exit 0) or until the embedded Redis dies (reported; exit 1); a worker or the API
    that dies is started again (Stack.heal). Always stops the stack."""
    try:
        stack.start()
        if stopping.is_set():
            return 0
        print(_describe_stack(stack), flush=True)
        print("Ctrl-C stops every process started here.", file=sys.stderr, flush=True)
        while not stopping.wait(0.2):
            dead = stack.dead_redis()
            if dead is not None:
                print(
                    f"neuronlens: {dead.name} (pid {dead.pid}) {dead.describe_exit()} unexpectedly; "
                    "stopping the stack",
                    file=sys.stderr,
                )
                return 1
            stack.heal()
        return 0
    except StackError as exc:
        print(f"neuronlens up: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        print("neuronlens: stopped", file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    if args.workers < 0:
        print("neuronlens up: --workers must be 0 or more", file=sys.stderr)
        return 2
    stopping = threading.Event()
    _stop_on_signals(stopping)
    stack = Stack(
        host=args.host,
        port=args.port,
        n_workers=args.workers,
        redis_url=external_redis_url(os.environ),
        grace_s=args.grace,
        stopping=stopping,
        data_dir=(args.data_dir or default_data_dir(os.environ)).resolve(),
    )
    return supervise(stack, stopping)


def cmd_demo(args: argparse.Namespace) -> int:
    """Embedded stack on a free port, one explanation, everything stopped again; logs go to a file."""
    stopping = threading.Event()
    _stop_on_signals(stopping)
    log_dir = Path(tempfile.mkdtemp(prefix="neuronlens-demo-"))
    log_path = log_dir / "stack.log"
    with log_path.open("wb") as log_file:
        stack = Stack(
            port=free_port(),
            n_workers=1,
            redis_url=external_redis_url(os.environ),
            output=log_file,
            stopping=stopping,
        )
        code = 1
        try:
            print("neuronlens demo: starting Redis, the API and a worker ...", file=sys.stderr, flush=True)
            stack.start()
            print(_describe_stack(stack), file=sys.stderr, flush=True)
            print(
                f"explaining {DEMO_REQUEST} (the first run scans the layer; later runs reuse the scan)",
                file=sys.stderr,
                flush=True,
            )
            if not stopping.is_set():
                code = run_explain(
                    stack.api_url, DEMO_REQUEST, args.quiet, args.timeout, sys.stdout, stopping
                )
        except StackError as exc:
            print(f"neuronlens demo: {exc}", file=sys.stderr)
        finally:
            stack.stop()
    if code == 0:
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        tail = log_path.read_text(errors="replace")[-3000:]
        print(f"neuronlens demo: failed; the stack's log is {log_path}; its end:\n{tail}", file=sys.stderr)
    return code


def _neuron_range(text: str) -> dict[str, int]:
    start, sep, stop = text.partition(":")
    if not sep or not start.isdigit() or not stop.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a range: write START:STOP, e.g. 0:64 (STOP exclusive)"
        )
    return {"start": int(start), "stop": int(stop)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neuronlens", description="Neuron explanation as a service.")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run Redis (unless REDIS_URL is set), the API and workers")
    up.add_argument("--host", default="127.0.0.1", help="address the API binds (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    up.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    up.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        help=f"seconds a process gets to stop before it is killed (default {DEFAULT_GRACE_S:g})",
    )
    up.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder for the embedded Redis's append-only file and, unless NEURONLENS_ARTIFACT_URL is set, "
        "the artifact store (default $XDG_DATA_HOME/neuronlens or ~/.local/share/neuronlens)",
    )
    up.set_defaults(handler=cmd_up)

    explain = commands.add_parser("explain", help="explain neurons through a running API; prints JSON")
    explain.add_argument(
        "--model", required=True, help="model id, e.g. minilm-l6 (GET /v1/models lists them)"
    )
    explain.add_argument("--layer", type=int, required=True, help="layer index")
    explain.add_argument("--neuron", type=int, action="append", help="neuron index (repeat for several)")
    explain.add_argument("--range", type=_neuron_range, help="neuron range START:STOP (STOP exclusive)")
    explain.add_argument("--hook", help="hook point id (default: the model's first)")
    explain.add_argument("--dataset", help="probe set id (default: the model's first)")
    explain.add_argument("--explainer", help="explainer backend (default: the API's default)")
    explain.add_argument("--simulator", help="simulator backend (default: the API's default)")
    explain.add_argument("--endpoint", help="named LLM endpoint of the deployment, for the openai backends")
    explain.add_argument("--candidates", type=int, help="candidate explanations k for the openai explainer")
    explain.add_argument(
        "--url",
        default=os.environ.get("NEURONLENS_API_URL", DEFAULT_URL),
        help=f"API base URL (default $NEURONLENS_API_URL or {DEFAULT_URL})",
    )
    explain.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    explain.add_argument("--quiet", action="store_true", help="no progress bar")
    explain.set_defaults(handler=cmd_explain)

    demo = commands.add_parser(
        "demo", help="start the embedded stack, explain minilm-l6 layer 3 neuron 42, stop"
    )
    demo.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
