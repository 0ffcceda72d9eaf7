"""Test settlement reports: `settlement test-report` (CONTRACT §1, API-NOTES §4.2).

Every rule is checked before any request: the billing spec's TestReportOptions rules
(at most 1000 ids, 1 ≤ count ≤ 10000, ids not combined with count or dates, both dates
given as valid YYYY-MM-DD, from before to) and the test-account rule (Dintero generates
test settlement reports only on test accounts, `T…`). All broken rules are reported
together, as ConfigError problems named by their option.

Writes nothing and prints nothing (cli shows the message); never logs or raises with a
token, a header or a request body.
"""

from __future__ import annotations

from typing import Any

from receipt_agent.api import DinteroClient, error_message, open_client
from receipt_agent.config import AgentConfig
from receipt_agent.errors import ConfigError, ReportError
from receipt_agent.reports.periods import parse_date

MAX_TRANSACTION_IDS = 1000
MAX_TRANSACTIONS = 10_000


def build_test_report_options(
    transaction_ids: list[str] | None,
    count: int | None,
    date_from: str | None,
    date_to: str | None,
) -> dict[str, Any]:
    """Given the command-line options, return the TestReportOptions body.

    Raise ConfigError listing every rule of the spec that is broken (at most 1000 ids,
    1 ≤ count ≤ 10000, ids not combined with count or dates, both dates given as valid
    YYYY-MM-DD, from before to). An empty id list counts as none, as the API ignores it.
    """
    problems: list[tuple[str, str]] = []
    ids = list(transaction_ids or [])
    if len(ids) > MAX_TRANSACTION_IDS:
        problems.append(
            (
                "--transaction-id",
                f"at most {MAX_TRANSACTION_IDS} transaction ids per request, got {len(ids)}; "
                "split them over several requests",
            )
        )
    if any(not item.strip() for item in ids):
        problems.append(("--transaction-id", "an empty transaction id was given"))
    if ids and (count is not None or date_from is not None or date_to is not None):
        problems.append(
            (
                "--transaction-id",
                "cannot be combined with --count or --from/--to; give either ids, "
                "or a count and/or a date range",
            )
        )
    if count is not None and not 1 <= count <= MAX_TRANSACTIONS:
        problems.append(("--count", f"must be from 1 to {MAX_TRANSACTIONS}, got {count}"))
    start = end = None
    if (date_from is None) != (date_to is None):
        missing, given = ("--to", "--from") if date_to is None else ("--from", "--to")
        problems.append((missing, f"is required with {given}; give both dates of the range"))
    for where, value in (("--from", date_from), ("--to", date_to)):
        if value is None:
            continue
        try:
            parsed = parse_date(value, where)
        except ConfigError as error:
            problems.extend(error.problems)
            continue
        if where == "--from":
            start = parsed
        else:
            end = parsed
    if start is not None and end is not None and start >= end:
        problems.append(("--from", f"{start} must be before --to {end}"))
    if problems:
        raise ConfigError(problems)
    options: dict[str, Any] = {}
    if ids:
        options["transaction_ids"] = ids
    if count is not None:
        options["number_of_transactions"] = count
    if start is not None and end is not None:
        options["date_range"] = {"start_date": start.isoformat(), "end_date": end.isoformat()}
    return options


def _production_problem(account_id: str) -> tuple[str, str]:
    return (
        "dintero.account_id",
        f"{account_id} is a production account; test settlement reports exist only on "
        "test accounts (T…), so use a test account's config",
    )


def request_test_settlement_report(
    client: DinteroClient, account_id: str, options: dict[str, Any]
) -> tuple[int, str]:
    """Given a client, its account and TestReportOptions, return (status, message).

    The message is the API's `message` for 200 and 201, its error message otherwise.
    Raise ConfigError for a production account (before any request), SendError when the
    request cannot be made (timeout, unreachable, 401 after a fresh token).
    """
    if account_id.startswith("P") or account_id != client.config.account_id:
        problem = _production_problem(account_id)
        if account_id != client.config.account_id:
            problem = ("dintero.account_id", f"the client is for {client.config.account_id}")
        raise ConfigError([problem])
    response = client.request("POST", "/settlements/reports/generate-test-report", json=options)
    status = response.status_code
    if status in (200, 201):
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        return status, str(message or f"HTTP {status}")
    return status, error_message(response)


def run_test_report(
    config: AgentConfig,
    *,
    transaction_ids: list[str] | None,
    count: int | None,
    date_from: str | None,
    date_to: str | None,
) -> str:
    """`settlement test-report`: check every rule, ask Dintero; return its message.

    Created (201) and nothing to report (200) both succeed. Raise ConfigError (nothing
    sent) for a production account or broken option rules, ReportError with the API's
    message for 400/401/403/500, SendError when the request cannot be made.
    """
    problems: list[tuple[str, str]] = []
    if not config.dintero.is_test_account:
        problems.append(_production_problem(config.dintero.account_id))
    options: dict[str, Any] = {}
    try:
        options = build_test_report_options(transaction_ids, count, date_from, date_to)
    except ConfigError as error:
        problems.extend(error.problems)
    if problems:
        raise ConfigError(problems)
    client = open_client(config.dintero)
    try:
        status, message = request_test_settlement_report(client, config.dintero.account_id, options)
    finally:
        client.close()
    if status in (200, 201):
        return message
    raise ReportError(
        f"settlement test-report: Dintero answered {status}: {message}", status=status
    )
