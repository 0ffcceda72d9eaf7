"""Report endpoints of the sandbox: request checks and tiny generated documents.

Owns the rules of `POST /reports/generation` (seed 000: required query parameters,
`schedule` enum, `save`, date-times, the `[{key, path, data}]` body; API-NOTES §4.1)
and of `POST /settlements/reports/generate-test-report` (the billing spec's
TestReportOptions; API-NOTES §4.2). Each check returns the list of problems as
`{"path", "message"}` dicts, empty when the request is fine. Rendering produces a
small but real document per content type (a PDF that opens, CSV, JSON, HTML).
Pure functions: no I/O, no state.
"""

import html
import zoneinfo
from typing import Any

import orjson

from receipt_agent.sandbox.schema import is_date, is_date_time

CONTENT_TYPES = ("application/pdf", "text/csv", "application/json", "text/html")
MAX_TRANSACTION_IDS = 1000  # TestReportOptions.transaction_ids maxItems
MAX_TRANSACTIONS = 10000  # TestReportOptions.number_of_transactions maximum
SCHEDULES = ("monthly", "weekly", "daily", "custom", "none")
_REQUIRED_QUERY = (
    "template_id",
    "template_data_path",
    "template_accept",
    "template_accept_language",
)
_BOOLEANS = {"true": True, "false": False}

Problem = dict[str, str]


def check_generation(query: dict[str, str], body: Any) -> list[Problem]:
    """Return the problems of a report generation request (query and parsed body)."""
    problems = [
        {"path": f"query.{name}", "message": "is required"}
        for name in _REQUIRED_QUERY
        if not query.get(name)
    ]
    accept = query.get("template_accept")
    if accept and accept not in CONTENT_TYPES:
        problems.append(
            {
                "path": "query.template_accept",
                "message": f"unsupported content type; use one of {', '.join(CONTENT_TYPES)}",
            }
        )
    timezone = query.get("template_accept_timezone")
    if timezone is not None and not _is_timezone(timezone):
        problems.append(
            {"path": "query.template_accept_timezone", "message": "is not an IANA timezone"}
        )
    problems += [
        {"path": f"query.{name}", "message": "is not a date-time with an offset"}
        for name in ("data_from", "data_to")
        if name in query and not is_date_time(query[name])
    ]
    if "schedule" in query and query["schedule"] not in SCHEDULES:
        problems.append(
            {"path": "query.schedule", "message": f"must be one of {', '.join(SCHEDULES)}"}
        )
    if "save" in query and query["save"] not in _BOOLEANS:
        problems.append({"path": "query.save", "message": "must be true or false"})
    problems += _check_generation_body(body)
    return problems


def _check_generation_body(body: Any) -> list[Problem]:
    if not isinstance(body, list):
        return [{"path": "body", "message": "must be a JSON array of {key, path, data}"}]
    problems: list[Problem] = []
    for index, entry in enumerate(body):
        where = f"body.{index}"
        if not isinstance(entry, dict):
            problems.append({"path": where, "message": "must be an object"})
            continue
        for name in ("key", "path"):
            if name not in entry:
                problems.append({"path": f"{where}.{name}", "message": "is required"})
            elif not isinstance(entry[name], str):
                problems.append({"path": f"{where}.{name}", "message": "must be a string"})
        if "data" not in entry:
            problems.append({"path": f"{where}.data", "message": "is required"})
        elif not isinstance(entry["data"], dict):
            problems.append({"path": f"{where}.data", "message": "must be an object"})
    return problems


def is_save(query: dict[str, str]) -> bool:
    """Return whether the (already checked) query asks Dintero to keep the report."""
    return _BOOLEANS.get(query.get("save", "false"), False)


def _is_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def render(query: dict[str, str], body: list[dict[str, Any]]) -> bytes:
    """Return a small document of type `template_accept` describing the request."""
    accept = query["template_accept"]
    lines = [
        f"template_id: {query['template_id']}",
        f"template_data_path: {query['template_data_path']}",
        f"language: {query['template_accept_language']}",
        f"timezone: {query.get('template_accept_timezone', 'Europe/Oslo')}",
        f"period: {query.get('data_from', '')} .. {query.get('data_to', '')}",
        f"schedule: {query.get('schedule', 'none')}",
        f"entries: {len(body)}",
    ]
    if accept == "application/json":
        return orjson.dumps(
            {
                "template_id": query["template_id"],
                "template_data_path": query["template_data_path"],
                "language": query["template_accept_language"],
                "data_from": query.get("data_from"),
                "data_to": query.get("data_to"),
                "entries": [{"key": e["key"], "path": e["path"]} for e in body],
            }
        )
    if accept == "text/csv":
        rows = ["key,path"] + [f"{_csv(e['key'])},{_csv(e['path'])}" for e in body]
        return ("\r\n".join(rows) + "\r\n").encode("utf-8")
    if accept == "text/html":
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        title = html.escape(query["template_id"])
        page = f"<!DOCTYPE html><html><head><title>{title}</title></head><body><ul>{items}</ul>"
        return (page + "</body></html>\n").encode("utf-8")
    return pdf(["Sandbox report", *lines])


def _csv(value: str) -> str:
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def pdf(lines: list[str]) -> bytes:
    """Return a one-page PDF 1.4 showing `lines` in Helvetica, with a correct xref table."""
    text = "".join(
        f"({_pdf_text(line)}) Tj 0 -16 Td\n" for line in lines
    )  # one line per Tj, moving down
    stream = f"BT /F1 11 Tf 56 780 Td\n{text}ET\n".encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + content + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _pdf_text(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


# -- test settlement report ------------------------------------------------------------


def check_test_report(body: Any) -> list[Problem]:
    """Return the problems of a TestReportOptions body (None = no body, which is fine)."""
    if body is None:
        return []
    if not isinstance(body, dict):
        return [{"path": "body", "message": "must be a JSON object (TestReportOptions)"}]
    problems: list[Problem] = []
    ids = body.get("transaction_ids")
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            problems.append({"path": "transaction_ids", "message": "must be an array of strings"})
        elif len(ids) > MAX_TRANSACTION_IDS:
            problems.append({"path": "transaction_ids", "message": "must have at most 1000 items"})
    count = body.get("number_of_transactions")
    if "number_of_transactions" in body and (
        type(count) is not int or not 1 <= count <= MAX_TRANSACTIONS
    ):
        problems.append(
            {
                "path": "number_of_transactions",
                "message": "must be an integer from 1 to 10000",
            }
        )
    if "date_range" in body:
        problems += _check_date_range(body["date_range"])
    if ids and ("number_of_transactions" in body or "date_range" in body):
        problems.append(
            {
                "path": "transaction_ids",
                "message": "must not be combined with number_of_transactions or date_range",
            }
        )
    return problems


def _check_date_range(value: Any) -> list[Problem]:
    if not isinstance(value, dict):
        return [{"path": "date_range", "message": "must be an object {start_date, end_date}"}]
    problems = []
    for name in ("start_date", "end_date"):
        if name not in value:
            problems.append({"path": f"date_range.{name}", "message": "is required"})
        elif not is_date(value[name]):
            problems.append({"path": f"date_range.{name}", "message": "must be a date YYYY-MM-DD"})
    if not problems and value["start_date"] >= value["end_date"]:
        problems.append(
            {"path": "date_range.start_date", "message": "must be before date_range.end_date"}
        )
    return problems
