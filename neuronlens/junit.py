"""A check's results as JUnit XML, the report format CI systems display (GitLab, Jenkins, GitHub Actions
through a reporter action, Azure Pipelines, CircleCI).

One `<testsuite>` per check, one `<testcase>` per pin, named as the pin is (its `name`, else
"<model> L<layer> N<neuron>"), in the pin file's order. A failed pin carries `<failure message=…>`: the
reasons, and in its text the numbers (score, drop, type, what was expected). A check that could not run
at all (its scan failed, a worker misconfigured) is one `<testcase>` named by the check id with an
`<error>`. Written with the standard library's ElementTree: the format is four elements and their
attributes, and the client wheel stays pydantic + httpx (+ PyYAML for pin files).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from neuronlens._contract import CheckStatus, PinResult

SUITE = "neuronlens check"


def _numbers(result: PinResult) -> str:
    """The numbers of one pin, one `name: value` per line."""
    pin = result.pin
    lines = [
        f"layer: {pin.layer}",
        f"neuron: {pin.neuron}",
        f"explanation: {pin.explanation}",
        f"score: {result.score}",
        f"type: {result.neuron_type}",
    ]
    if pin.type is not None:
        lines.append(f"expected type: {pin.type}")
    if pin.min_score is not None:
        lines.append(f"min_score: {pin.min_score}")
    if pin.base_score is not None:
        lines.append(f"base_score: {pin.base_score}")
    if pin.max_score_drop is not None:
        lines += [f"score_drop: {result.score_drop}", f"max_score_drop: {pin.max_score_drop}"]
    return "\n".join(lines) + "\n"


def junit_xml(status: CheckStatus) -> str:
    """The JUnit XML document of a finished (or failed) check."""
    results = status.results or []
    errored = status.status == "failed"
    failures = 0 if errored else sum(not r.passed for r in results)
    total = 1 if errored else len(results)  # a check that could not run is one errored test case
    root = ET.Element("testsuites", name=SUITE, tests=str(total), failures=str(failures))
    root.set("errors", str(total if errored else 0))
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"{SUITE} {status.model}",
        tests=str(total),
        failures=str(failures),
        errors=str(total if errored else 0),
        skipped="0",
    )
    if status.ended_at is not None:
        suite.set("timestamp", status.ended_at.replace(tzinfo=None).isoformat(timespec="seconds"))
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("check_id", status.check_id),
        ("model", status.model),
        ("revision", status.model_revision),
    ):
        if value is not None:
            ET.SubElement(properties, "property", name=name, value=value)
    classname = f"neuronlens.pins.{status.model}"
    if errored:
        message = f"{status.error.type}: {status.error.message}" if status.error else "the check failed"
        error = ET.SubElement(
            ET.SubElement(suite, "testcase", name=status.check_id, classname=classname), "error"
        )
        error.set("message", message)
        error.set("type", status.error.type if status.error else "CheckFailed")
    for result in results:
        case = ET.SubElement(suite, "testcase", name=result.name, classname=classname, time="0")
        if result.passed:
            ET.SubElement(case, "system-out").text = _numbers(result)
        else:
            failure = ET.SubElement(case, "failure", message="; ".join(result.failures), type="PinFailed")
            failure.text = _numbers(result)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
