"""The server's `neuronlens` command: `up` (the whole stack in the foreground), `demo`, `keys`, and the
client commands `explain`, `export` and `models` (the client wheel's `neuronlens` has only those; their
parsers come from neuronlens/cli/main.py).

No torch and no `workers` import here: the API and workers run as child processes (service/commands/stack.py),
and the client commands talk HTTP through the SDK (neuronlens.Client; neuronlens/cli/commands.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from neuronlens import Client, ClientError
from neuronlens.cli.commands import follow
from neuronlens.cli.main import add_client_commands, run, stop_on_signals
from neuronlens.export import describe
from service.commands.embedded_redis import free_port
from service.commands.manage_keys import add_keys_parser
from service.commands.stack import (
    DEFAULT_GRACE_S,
    Stack,
    StackError,
    external_redis_url,
    redact_url,
)
from service.settings import default_data_dir
from service.viewer.saved_page import save_page

DEMO_REQUEST: dict[str, Any] = {"model": "minilm-l6", "layer": 3, "neurons": [42]}
DEMO_OUTPUT = "neuronlens-demo-report.json"


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
    stop_on_signals(stopping)
    return supervise(up_stack(args, os.environ, stopping), stopping)


def up_stack(args: argparse.Namespace, env: Mapping[str, str], stopping: threading.Event) -> Stack:
    """The stack of `neuronlens up`: Redis data in the data folder (--data-dir, else the default one), and
    the artifact store in its `artifacts/` unless NEURONLENS_ARTIFACT_URL names one; the default data
    folder's `artifacts/` is the settings' default store, the one `neuronlens demo` uses."""
    return Stack(
        host=args.host,
        port=args.port,
        n_workers=args.workers,
        redis_url=external_redis_url(env),
        env=dict(env),
        grace_s=args.grace,
        stopping=stopping,
        data_dir=(args.data_dir or default_data_dir(env)).resolve(),
    )


def demo_stack(
    args: argparse.Namespace, env: Mapping[str, str], output: IO[bytes], stopping: threading.Event
) -> Stack:
    """The stack of `neuronlens demo`: a temporary Redis, one worker, and the default artifact store
    (NEURONLENS_ARTIFACT_URL, else the settings' default: the store `neuronlens up` uses by default), so
    the demo's scan is reused by `up` and the other way round."""
    return Stack(
        port=args.port or free_port(),
        n_workers=1,
        redis_url=external_redis_url(env),
        env=dict(env),
        output=output,
        stopping=stopping,
    )


def demo_explain(args: argparse.Namespace, stack: Stack, stopping: threading.Event) -> int:
    """Explain DEMO_REQUEST on the demo stack: a short summary on stdout, the report as JSON in a file."""
    try:
        with Client(stack.api_url) as client:
            (report,) = follow(client, dict(DEMO_REQUEST), args.quiet, args.timeout, stopping, "demo")
            page = client.page_url(report.model, report.layer, report.neuron)
            with httpx.Client(timeout=30) as http:
                html = save_page(page, http)
    except (ClientError, httpx.HTTPError) as exc:
        print(f"neuronlens demo: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, ClientError) else 1
    output = Path(args.output)
    output.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    # The stack stops when the demo ends: the neuron's page is kept as a file that works offline (no links
    # to the stopped API, images inlined).
    saved_page = output.with_suffix(".html")
    saved_page.write_text(html, encoding="utf-8")
    if args.serve:
        print(describe(report, page_url=page))
        print(f"  report JSON: {output.resolve()}")
        print(f"serving {stack.api_url} until Ctrl-C (the page above, GET /v1/models, ...)", flush=True)
        stopping.wait()
    else:
        print(describe(report, page_url=saved_page.resolve().as_uri()))
        print(f"  report JSON: {output.resolve()}")
        print(f"  (saved from {page}; `neuronlens demo --serve` keeps the stack and its viewer up)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Embedded stack (a free port unless --port), one explanation, everything stopped again (at once, or
    on Ctrl-C with --serve); the stack's logs go to a file."""
    stopping = threading.Event()
    stop_on_signals(stopping)
    log_dir = Path(tempfile.mkdtemp(prefix="neuronlens-demo-"))
    log_path = log_dir / "stack.log"
    with log_path.open("wb") as log_file:
        stack = demo_stack(args, os.environ, log_file, stopping)
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
                code = demo_explain(args, stack, stopping)
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
        "the artifact store (default $XDG_DATA_HOME/neuronlens or ~/.local/share/neuronlens, whose "
        "artifacts/ is also the store of `neuronlens demo`)",
    )
    up.set_defaults(handler=cmd_up)

    add_client_commands(commands)

    demo = commands.add_parser(
        "demo", help="start the embedded stack, explain minilm-l6 layer 3 neuron 42, print a summary, stop"
    )
    demo.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument(
        "--output", default=DEMO_OUTPUT, help=f"where the report JSON goes (default ./{DEMO_OUTPUT})"
    )
    demo.add_argument("--serve", action="store_true", help="keep the stack up after the summary until Ctrl-C")
    demo.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    demo.set_defaults(handler=cmd_demo)
    add_keys_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
