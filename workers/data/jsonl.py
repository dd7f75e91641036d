"""User text probe sets: a JSONL file, one `{"text": ..., "domain"?: ...}` object per line."""

from __future__ import annotations

import json

import fsspec

from workers.data.base import ListProbeSet, ProbeSample
from workers.errors import DatasetUnavailable


def parse_jsonl_line(line: str, line_no: int, where: str) -> tuple[str, str | None]:
    """(text, domain) of one line; DatasetUnavailable naming the file and line when it is malformed."""
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetUnavailable(f"{where} line {line_no} is not JSON ({exc.msg})") from None
    if not isinstance(item, dict) or not isinstance(item.get("text"), str) or not item["text"].strip():
        raise DatasetUnavailable(f'{where} line {line_no}: expected {{"text": "<non-empty string>"}}')
    domain = item.get("domain")
    if domain is not None and not isinstance(domain, str):
        raise DatasetUnavailable(f"{where} line {line_no}: `domain` must be a string when given")
    return item["text"], domain


def load_jsonl_probe_set(
    url: str, dataset_id: str, revision: str, n_samples: int | None = None
) -> ListProbeSet:
    """Read a JSONL probe set from a local path or fsspec URL; blank lines are skipped.

    With `n_samples`, exactly the first `n_samples` samples are used (the file must have that many).
    """
    try:
        with fsspec.open(url, "rt", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (FileNotFoundError, OSError) as exc:
        raise DatasetUnavailable(f"probe set {dataset_id!r}: cannot read {url} ({exc})") from None
    samples: list[ProbeSample] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        text, domain = parse_jsonl_line(line, line_no, url)
        samples.append(ProbeSample(id=len(samples), text=text, domain=domain))
        if n_samples is not None and len(samples) == n_samples:
            break
    if not samples or (n_samples is not None and len(samples) < n_samples):
        raise DatasetUnavailable(
            f"probe set {dataset_id!r}: {url} has {len(samples)} samples, the registry says {n_samples}"
        )
    return ListProbeSet(id=dataset_id, revision=revision, modality="text", samples=samples)
