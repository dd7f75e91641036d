"""Reports to files and tables: JSONL, CSV and a pandas DataFrame of one summary row per neuron.

pandas is optional (`pip install 'neuronlens-client[pandas]'`); nothing else here needs it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from neuronlens._contract import SUMMARY_COLUMNS, NeuronReport, csv_cell, option_labels
from neuronlens._contract import summary_row as contract_summary_row

if TYPE_CHECKING:
    import pandas


def summary_row(report: NeuronReport) -> dict[str, Any]:
    """The summary of one report as a flat dict with the keys of `SUMMARY_COLUMNS`, in order: the row the
    API's CSV and Parquet exports have for it (the contract builds both; `correlation` is the simulation
    score, None when undefined)."""
    return contract_summary_row(report.model_dump(mode="json"))


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise ImportError(
            "to_dataframe needs pandas: pip install 'neuronlens-client[pandas]' (or pandas itself)"
        ) from exc
    return pandas


def to_dataframe(reports: Iterable[NeuronReport] | bytes) -> pandas.DataFrame:
    """A pandas DataFrame with one `summary_row` per report (columns `SUMMARY_COLUMNS`), from reports or
    from the bytes of a Parquet export (`Client.export(job_id, "parquet")`), which is much faster for many
    reports: `Client.to_dataframe(job_id)` and `Client.layer_to_dataframe(model, layer)` read it."""
    pandas = _pandas()
    if isinstance(reports, bytes):
        return parquet_dataframe(reports)
    return pandas.DataFrame([summary_row(report) for report in reports], columns=list(SUMMARY_COLUMNS))


def parquet_dataframe(data: bytes) -> pandas.DataFrame:
    """The DataFrame of a Parquet export (summary columns; `fields=full` adds `report`, JSON text). List
    columns (`domain_specific`, `non_default_options`) hold Python lists, as `to_dataframe` of reports."""
    pandas = _pandas()
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(
            "reading a Parquet export needs pyarrow: pip install 'neuronlens-client[pandas]'"
        ) from exc
    table = pq.read_table(io.BytesIO(data))
    frame = table.to_pandas()
    for name in ("domain_specific", "non_default_options"):
        if name in frame:
            frame[name] = [None if cell is None else list(cell) for cell in frame[name]]
    return pandas.DataFrame(frame)


def write_jsonl(reports: Iterable[NeuronReport], target: str | Path | IO[str]) -> int:
    """Write one full report per line (JSON, as the API serves it) to a path or a text stream; the count."""
    if isinstance(target, str | Path):
        with Path(target).open("w", encoding="utf-8") as stream:
            return write_jsonl(reports, stream)
    count = 0
    for report in reports:
        target.write(report.model_dump_json() + "\n")
        count += 1
    return count


def read_jsonl(source: str | Path) -> list[NeuronReport]:
    """Reports written by `write_jsonl` (or `neuronlens explain --format jsonl`)."""
    with Path(source).open(encoding="utf-8") as stream:
        return [NeuronReport.model_validate_json(line) for line in stream if line.strip()]


def write_csv(reports: Iterable[NeuronReport], stream: IO[str]) -> int:
    """Summary rows as CSV with a header, cells as the API's CSV export writes them (`domain_specific` and
    `non_default_options` joined by `;`, booleans `true` / `false`). Returns the row count."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    count = 0
    for report in reports:
        writer.writerow([csv_cell(name, value) for name, value in summary_row(report).items()])
        count += 1
    return count


def _score(report: NeuronReport) -> str:
    simulation = report.simulation
    if simulation.correlation is None:
        return f"undefined ({simulation.null_reason or 'no reason given'})"
    text = f"{simulation.correlation:.3f}"
    if simulation.ci95:
        text += f" (95% CI {simulation.ci95[0]:.3f} to {simulation.ci95[1]:.3f})"
    return text


def _chance(report: NeuronReport) -> str | None:
    """The score against chance in words (None when the report has no chance level)."""
    chance = report.simulation.chance
    if chance is None or chance.p_value is None or chance.beyond_chance is None:
        return None
    verdict = "beyond chance" if chance.beyond_chance else "not beyond chance"
    return (
        f"{verdict} (p {chance.p_value:.2g} against {chance.k} explanations of other neurons of the "
        f"layer, alpha {chance.alpha:g})"
    )


def summary_line(report: NeuronReport) -> str:
    """One tab-separated line: layer, neuron, type, score, explanation."""
    score = report.simulation.correlation
    shown = "nan" if score is None else f"{score:.3f}"
    return f"L{report.layer}\tN{report.neuron}\t{report.neuron_type}\t{shown}\t{report.explanation.text}"


def describe(report: NeuronReport, page_url: str | None = None) -> str:
    """A short human summary of one report (a few lines)."""
    evidence = report.type_evidence
    shares = ", ".join(
        f"{name} {getattr(evidence, 'p_' + name):.0%}" for name in ("visual", "text", "multimodal", "unknown")
    )
    confidence = "high confidence" if evidence.high_confidence else "low confidence"
    lines = [
        f"{report.model} layer {report.layer} neuron {report.neuron} (hook {report.hook})",
        f"  type:        {report.neuron_type} ({confidence}; top {evidence.n_samples} samples: {shares})",
        f"  explanation: {report.explanation.text}",
        f"  score:       {_score(report)}, simulated by {report.simulation.backend}",
        f"  max activation {report.max_activation:.3f}",
    ]
    chance = _chance(report)
    if chance:
        lines.insert(4, f"  chance:      {chance}")
    changed = option_labels(report.provenance.options_changed())
    if changed:
        lines.append(f"  options:     {', '.join(changed)} (not the defaults)")
    if page_url:
        lines.append(f"  page:        {page_url}")
    return "\n".join(lines)


def json_text(reports: list[NeuronReport], single: bool) -> str:
    """Indented JSON: one object when ``single``, else an array."""
    if single:
        return reports[0].model_dump_json(indent=2)
    return json.dumps([report.model_dump(mode="json") for report in reports], indent=2)
