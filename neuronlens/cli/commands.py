"""The client side of the `neuronlens` command: `explain` and `models` through the SDK (neuronlens.Client).

Output formats of `explain` (stdout, or ``--output FILE``):

json      one report as an object when the request names a single neuron (one --neuron); an array of
          reports whenever it names several neurons or a --range (even a range of one)
jsonl     one report per line
summary   one tab-separated line per neuron: layer, neuron, type, score, explanation
ndjson    the finished job's table from the API (`GET /v1/jobs/{id}/reports`), one JSON row per line;
csv       the same as CSV with a header; parquet: as Parquet (needs --output). `--fields summary` (default)
          or `full` (whole reports); `neuronlens export` fetches the table of a job or a layer later
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from typing import IO, Any

from pydantic import ValidationError

from neuronlens import (
    Client,
    ClientError,
    JobStatus,
    NeuronReport,
    NotFound,
    PipelineOptions,
    RequestRejected,
)
from neuronlens._core import DEFAULT_RETRIES
from neuronlens.cli.dry_run import describe_estimate, rescan_notice
from neuronlens.export import json_text, summary_line, write_jsonl

TABLE_FORMATS = ("ndjson", "csv", "parquet")
"""Formats the API writes (the table export of the finished job)."""
FORMATS = ("json", "jsonl", "summary", *TABLE_FORMATS)
BAR_WIDTH = 24


class Interrupted(ClientError):
    """Ctrl-C or SIGTERM while following a job (the job itself keeps running on the server)."""

    exit_code = 130


class ProgressBar:
    """Job progress on stderr: redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, stream: IO[str] = sys.stderr, quiet: bool = False):
        self.stream = stream
        self.quiet = quiet
        self.is_tty = stream.isatty()
        self.last = ""

    def __call__(self, status: Any) -> None:
        """Show ``status`` (a `JobStatus`, or what a subclass's `render` reads)."""
        if self.quiet:
            return
        line = self.render(status)
        if line == self.last:
            return
        self.last = line
        self.stream.write("\r\x1b[2K" + line if self.is_tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.is_tty and self.last and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()

    @staticmethod
    def render(status: JobStatus) -> str:
        """While the scan runs: samples scanned over every planned pass; then neurons done."""
        done, total, unit = status.progress_counts()
        filled = BAR_WIDTH * done // total if total else 0
        line = f"{status.status:<10} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} {unit}"
        if status.layers is not None and len(status.layers) > 1:
            finished = sum(layer.status == "finished" for layer in status.layers)
            line += f"  layers {finished}/{len(status.layers)} done"
        if status.queue_position is not None:
            line += f"  queue position {status.queue_position}"
        return line


def show_sdk_warnings(stream: IO[str] = sys.stderr) -> None:
    """The SDK's warnings (retries, a job no worker runs) on stderr, one line each."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("neuronlens: warning: %(message)s"))
    sdk_log = logging.getLogger("neuronlens")
    sdk_log.addHandler(handler)
    sdk_log.setLevel(logging.WARNING)


def _option_value(text: str) -> Any:
    """A value as JSON reads it (`5`, `2.5`, `["detection"]`), else the text itself (`quantile`): options
    are validated strictly, as the API does, so a number must arrive as a number."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``--option NAME=VALUE`` pairs as request options, typed by PipelineOptions (exit 2 when wrong)."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise RequestRejected(f"--option {pair!r}: write NAME=VALUE, e.g. --option seed=1")
        if name not in PipelineOptions.model_fields:
            allowed = ", ".join(PipelineOptions.model_fields)
            raise RequestRejected(f"--option {name}: unknown option; choose one of {allowed}")
        options[name] = _option_value(value.strip())
    try:
        return PipelineOptions.model_validate(options).model_dump(mode="json", include=set(options))
    except ValidationError as exc:
        named = [f"--option {'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in exc.errors()]
        raise RequestRejected("; ".join(named).replace("Value error, ", "")) from exc


def write_reports(reports: list[NeuronReport], fmt: str, single: bool, out: IO[str]) -> None:
    if fmt == "json":
        out.write(json_text(reports, single) + "\n")
    elif fmt == "jsonl":
        write_jsonl(reports, out)
    else:
        out.writelines(summary_line(report) + "\n" for report in reports)
    out.flush()


def explain_fields(args: argparse.Namespace) -> dict[str, Any]:
    names = ("hook", "units", "dataset", "explainer", "simulator", "endpoint", "candidates")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def submit_and_wait(
    client: Client,
    request: dict[str, Any],
    quiet: bool,
    timeout_s: float | None,
    stopping: threading.Event,
    command: str = "explain",
) -> JobStatus:
    """Submit ``request`` (model, layer or layers, neurons, options, fields), say its job id and viewer
    page on stderr at once, and wait until it finished (progress on stderr); its last status (with the
    first page of reports when every report was stored already)."""
    bar = ProgressBar(quiet=quiet)

    def progress(status: JobStatus) -> None:
        bar(status)
        if stopping.is_set():
            raise Interrupted(f"interrupted; job {status.job_id} goes on in the service")

    try:
        notice = rescan_notice(client, request)
        if notice is not None:
            print(f"neuronlens {command}: {notice}", file=sys.stderr, flush=True)
        answer = client.submit(**request)
        stored = isinstance(answer, JobStatus)
        note = " (every report was stored already)" if stored else ""
        job_id = answer.job_id
        print(
            f"neuronlens {command}: job {job_id}{note}; viewer: {client.url}/view/jobs/{job_id}",
            file=sys.stderr,
            flush=True,
        )
        if isinstance(answer, JobStatus):
            progress(answer)
            return answer
        return client.wait(answer.job_id, progress=progress, timeout_s=timeout_s)
    finally:
        bar.close()


def follow(
    client: Client,
    request: dict[str, Any],
    quiet: bool,
    timeout_s: float | None,
    stopping: threading.Event,
    command: str = "explain",
) -> list[NeuronReport]:
    """Submit ``request``, wait (see `submit_and_wait`) and read its reports, by (layer, neuron)."""
    status = submit_and_wait(client, request, quiet, timeout_s, stopping, command)
    if status.reports is not None and len(status.reports) >= (status.reports_total or 0):
        return list(status.reports)
    return list(client.iter_reports(status.job_id))


def write_table(data: bytes, output: str | None, what: str, command: str) -> None:
    """An export's bytes to ``output``, or to stdout."""
    if output:
        with open(output, "wb") as out:
            out.write(data)
        print(f"neuronlens {command}: {what} written to {output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def check_table_output(fmt: str, output: str | None) -> None:
    """Parquet is binary: it goes to a file. (Errors carry no `neuronlens <command>:` prefix; `failed`
    adds it once.)"""
    if fmt == "parquet" and not output:
        raise RequestRejected("--format parquet writes a binary file: give --output FILE")


def failed(command: str, error: ClientError) -> int:
    """Print ``error`` on stderr with one `neuronlens <command>:` prefix; its exit code."""
    print(f"neuronlens {command}: {error}", file=sys.stderr)
    return error.exit_code


def run_table(args: argparse.Namespace, request: dict[str, Any], stopping: threading.Event) -> int:
    """`neuronlens explain --format ndjson|csv|parquet`: the finished job's table, as the API exports it."""
    with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
        job_id = submit_and_wait(client, request, args.quiet, args.timeout, stopping).job_id
        try:
            data = client.export(job_id, format=args.format, fields=args.fields)
        except NotFound as exc:
            # All reports were stored before and this job's record has expired: the layer still has them.
            raise NotFound(
                f"{exc}; its reports are stored: `neuronlens export --model {request['model']} --layer "
                f"{request.get('layer')} --format {args.format}` exports the layer's table"
            ) from exc
        total = client.job(job_id, limit=1).reports_total or 0
    write_table(data, args.output, f"{total} report(s)", "explain")
    return 0


def run_explain(args: argparse.Namespace, stopping: threading.Event) -> int:
    """`neuronlens explain`: reports in ``args.format`` on stdout or in ``args.output``."""
    try:
        neurons: Any = args.range if args.range is not None else (args.neuron or args.neurons)
        layer = {"layer": args.layer} if args.layer is not None else {"layers": args.layers}
        request = {"model": args.model, **layer, "neurons": neurons, **explain_fields(args)}
        options = parse_options(args.option)
        if options:
            request["options"] = options
        budget = {"max_llm_calls": args.budget_calls, "max_cost_usd": args.budget_usd}
        if any(value is not None for value in budget.values()):
            request["budget"] = {k: v for k, v in budget.items() if v is not None}
        if args.format in TABLE_FORMATS and not args.dry_run:
            check_table_output(args.format, args.output)
            return run_table(args, request, stopping)
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            if args.dry_run:
                print(describe_estimate(client.estimate(**request)))
                return 0
            reports = follow(client, request, args.quiet, args.timeout, stopping)
    except ClientError as exc:
        return failed("explain", exc)
    single = args.layer is not None and args.neuron is not None and len(set(args.neuron)) == 1
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            write_reports(reports, args.format, single, out)
        print(f"neuronlens explain: {len(reports)} report(s) written to {args.output}", file=sys.stderr)
    else:
        write_reports(reports, args.format, single, sys.stdout)
    return 0


def run_export(args: argparse.Namespace) -> int:
    """`neuronlens export JOB_ID` or `neuronlens export --model M --layer L`: a table from the API."""
    try:
        check_table_output(args.format, args.output)
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            if args.job_id is not None:
                data = client.export(args.job_id, format=args.format, fields=args.fields)
                what = f"job {args.job_id}"
            else:
                names = ("hook", "units", "dataset", "explainer", "simulator")
                query = {name: getattr(args, name) for name in names}
                data = client.export_layer(args.model, args.layer, args.format, args.fields, **query)
                what = f"{args.model} layer {args.layer}"
    except ClientError as exc:
        return failed("export", exc)
    write_table(data, args.output, what, "export")
    return 0


def run_models(args: argparse.Namespace) -> int:
    """`neuronlens models`: the served models, as a table or JSON."""
    try:
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            models = client.models()
    except ClientError as exc:
        return failed("models", exc)
    if args.format == "json":
        print(json_text_models(models))
        return 0
    print("model\tmodality\tlayers\tneurons/layer\thooks\tdatasets")
    for model in models:
        hooks = ",".join(point.id for point in model.hook_points)
        print(
            f"{model.id}\t{model.modality}\t{model.layers}\t{model.neurons_per_layer}\t{hooks}\t"
            + ",".join(model.datasets)
        )
    return 0


def json_text_models(models: list[Any]) -> str:
    return json.dumps([model.model_dump(mode="json") for model in models], indent=2)


def add_client_arguments(parser: argparse.ArgumentParser, default_url: str) -> None:
    """--url, --api-key and --retries, shared by the client commands."""
    parser.add_argument(
        "--url",
        default=os.environ.get("NEURONLENS_API_URL", default_url),
        help=f"API base URL (default $NEURONLENS_API_URL or {default_url})",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="API key sent as `Authorization: Bearer` (default $NEURONLENS_API_KEY)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help=f"retries of a request after a 429, 502, 503, 504 or a connection error (default "
        f"{DEFAULT_RETRIES}: rides out a 15 s API restart; exponential backoff with jitter, honours "
        "Retry-After)",
    )


FIELDS_HELP = "table columns: summary (one row per neuron, default) or full (whole reports too)"


def add_export_parser(commands: Any, default_url: str) -> None:
    """`neuronlens export`: the table of a finished job, or of every stored report of a layer."""
    export = commands.add_parser(
        "export",
        help="a finished job's reports, or a layer's, as NDJSON, CSV or Parquet from a running API",
        epilog="Writes stdout unless --output FILE (parquet needs --output). Exit 0 done, 1 job not finished "
        "or API unreachable, 2 invalid request or unknown job.",
    )
    export.add_argument("job_id", nargs="?", help="job id (exp-…) from `neuronlens explain` or the API")
    export.add_argument("--model", help="with --layer instead of a job id: every stored report of a layer")
    export.add_argument("--layer", type=int, help="layer index (with --model)")
    for name in ("hook", "units", "dataset", "explainer", "simulator"):
        export.add_argument(
            f"--{name}", help=f"{name} of the layer's report variant (default as in a request)"
        )
    export.add_argument("--format", choices=TABLE_FORMATS, default="csv", help="table format (default csv)")
    export.add_argument("--fields", choices=("summary", "full"), default="summary", help=FIELDS_HELP)
    export.add_argument("--output", metavar="FILE", help="write the table to FILE instead of stdout")
    add_client_arguments(export, default_url)
    export.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    if (args.job_id is None) == (args.model is None or args.layer is None):
        print("neuronlens export: give a job id, or --model and --layer (not both)", file=sys.stderr)
        return 2
    return run_export(args)
