"""`neuronlens jobs` and `neuronlens cancel ID`: the explanation jobs of a running API, through the SDK.

`jobs` lists them newest first (every page of `GET /v1/jobs`, or ``--limit`` of them) as a table (job id,
status, model, layers, neurons done/requested, created) or as JSON (an array of the listing's objects);
`cancel` cancels one (`DELETE /v1/jobs/{id}`) and prints its status line. Exit 0 done, 1 API unreachable,
2 an unknown job (404) or filters the API refuses.
"""

from __future__ import annotations

import argparse
import itertools
import json
from typing import Any

from neuronlens import Client, ClientError
from neuronlens._contract import JobSummary
from neuronlens.cli.commands import add_client_arguments, failed

STATES = ("queued", "running", "finished", "failed", "cancelled")


def _row(job: JobSummary) -> str:
    layers = ",".join(map(str, job.layers))
    created = job.created_at.isoformat(timespec="seconds") if job.created_at else "-"
    progress = f"{job.progress.done}/{job.progress.total}"
    return f"{job.job_id}\t{job.status}\t{job.model}\t{layers}\t{progress}\t{created}"


def run_jobs(args: argparse.Namespace) -> int:
    """`neuronlens jobs`: the jobs, filtered, as a table or JSON."""
    try:
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            listed = client.jobs(
                status=args.status,
                model=args.model,
                created_after=args.created_after,
                created_before=args.created_before,
                page_size=min(args.limit or 100, 100),
            )
            jobs = list(itertools.islice(listed, args.limit))
    except ClientError as exc:
        return failed("jobs", exc)
    if args.format == "json":
        print(json.dumps([job.model_dump(mode="json") for job in jobs], indent=2))
        return 0
    print("job\tstatus\tmodel\tlayers\tneurons\tcreated")
    for job in jobs:
        print(_row(job))
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    """`neuronlens cancel ID`: cancel the job; its id and status."""
    try:
        with Client(args.url, api_key=args.api_key, retries=args.retries) as client:
            status = client.cancel(args.job_id)
    except ClientError as exc:
        return failed("cancel", exc)
    left = sum(len(part.neurons) for part in status.not_done or [])
    print(f"{status.job_id}\t{status.status}" + (f"\t{left} neurons not done" if left else ""))
    return 0


def add_jobs_parsers(commands: Any, default_url: str) -> None:
    """`neuronlens jobs` and `neuronlens cancel`."""
    jobs = commands.add_parser(
        "jobs",
        help="list the explanation jobs of a running API, newest first",
        epilog="Table columns: job, status, model, layers, neurons done/requested, created (UTC).",
    )
    jobs.add_argument("--status", choices=STATES, help="only jobs in this state")
    jobs.add_argument("--model", help="only jobs of this model (registry id)")
    jobs.add_argument("--created-after", metavar="ISO8601", help="only jobs created at or after this instant")
    jobs.add_argument("--created-before", metavar="ISO8601", help="only jobs created before this instant")
    jobs.add_argument("--limit", type=int, default=None, help="at most this many jobs (default: all)")
    jobs.add_argument("--format", choices=("table", "json"), default="table", help="(default table)")
    add_client_arguments(jobs, default_url)
    jobs.set_defaults(handler=run_jobs)
    cancel = commands.add_parser(
        "cancel",
        help="cancel an explanation job (stored reports are kept; posting it again runs the rest)",
    )
    cancel.add_argument("job_id", metavar="ID", help="the job id (exp-…)")
    add_client_arguments(cancel, default_url)
    cancel.set_defaults(handler=run_cancel)
