"""Reports (issue 7): periods, report jobs against the sandbox, test settlement reports.

Everything talks to the real sandbox over loopback, writes real files and a real SQLite
state store. The one substitute is the clock: `time-machine` moves wall-clock time so a
cron time and a DST month can be reached without waiting (STYLE §7); where a test needs
a fixed "now" without patching anything, it passes `now=` explicitly.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import orjson
import pytest
import support
import time_machine
import yaml
from pydantic import SecretStr
from structlog.testing import capture_logs
from support import ACCOUNT, CLIENT_ID, SECRET

from receipt_agent import reports, scheduler
from receipt_agent.api import DinteroClient
from receipt_agent.config import AgentConfig, load_config
from receipt_agent.errors import ConfigError, MisconfiguredError, ReportError
from receipt_agent.reports import periods, settlement
from receipt_agent.reports.periods import (
    extension_for,
    last_fire_time,
    local_midnight,
    parse_date,
    period_starting,
)
from receipt_agent.sandbox import Sandbox
from receipt_agent.statedb import StateDB

OSLO = ZoneInfo("Europe/Oslo")
GENERATION = "/reports/generation"
TEST_REPORT = "/settlements/reports/generate-test-report"


# One polling helper for the whole suite (support.wait_until), with this file's deadline.
wait_until = functools.partial(support.wait_until, timeout=5.0)


_report = support.report_entry


@pytest.fixture
def report_config(tmp_path: Path, sandbox: Sandbox) -> Callable[..., AgentConfig]:
    """Write a real YAML config with these reports, pointing at the sandbox; load it as cli does."""

    def write(*report_list: dict[str, Any], account: str = ACCOUNT) -> AgentConfig:
        secret = tmp_path / "client_secret"
        secret.write_text(SECRET)
        secret.chmod(0o600)
        raw = {
            "dintero": {
                "base_url": sandbox.base_url,
                "account_id": account,
                "client_id": CLIENT_ID,
                "client_secret_file": "client_secret",
                "timeout": "5s",
            },
            "state_dir": "state",
            "log": {"file": "-", "format": "json"},
            "retry": {"initial": 0.01, "max": 0.05},
            "reports": list(report_list),
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return load_config(path)

    return write


@pytest.fixture
def open_runner() -> Iterator[Callable[[AgentConfig], reports.ReportRunner]]:
    """Build ReportRunners on a real client and state store; close them all afterwards."""
    opened: list[tuple[DinteroClient, StateDB]] = []

    def build(config: AgentConfig) -> reports.ReportRunner:
        client = DinteroClient(config.dintero, SecretStr(SECRET))
        db = StateDB(config.db_path)
        opened.append((client, db))
        return reports.ReportRunner(config, client, db)

    yield build
    for client, db in opened:
        client.close()
        db.close()


def _requests(sandbox: Sandbox, endpoint: str) -> list[Any]:
    return [r for r in sandbox.requests if r.path.endswith(endpoint)]


def _query(request: Any) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(request.query).items()}


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- period math (pure) ---------------------------------------------------------------------


# (period, now, data_from, data_to, hours between them): Oslo local midnights on both
# sides, whatever DST did in between.
PERIOD_CASES = [
    pytest.param(
        "previous_month", datetime(2026, 4, 1, 6, 15, tzinfo=OSLO),
        "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00", 743,
        id="march-spans-spring-dst",
    ),
    pytest.param(
        "previous_month", datetime(2026, 11, 1, 6, 15, tzinfo=OSLO),
        "2026-10-01T00:00:00+02:00", "2026-11-01T00:00:00+01:00", 745,
        id="october-spans-autumn-dst",
    ),
    pytest.param(
        "previous_day", datetime(2026, 3, 30, 6, 0, tzinfo=OSLO),
        "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 23,
        id="the-spring-dst-day-is-23-hours",
    ),
    pytest.param(
        "previous_week", datetime(2026, 4, 1, 8, 0, tzinfo=OSLO),
        "2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 167,
        id="the-iso-week-before-across-dst",
    ),
    pytest.param(
        "previous_month", datetime(2026, 1, 1, 7, 0, tzinfo=OSLO),
        "2025-12-01T00:00:00+01:00", "2026-01-01T00:00:00+01:00", 744,
        id="new-year-month-rolls-back-the-year",
    ),
    pytest.param(
        "previous_week", datetime(2026, 1, 1, 7, 0, tzinfo=OSLO),
        "2025-12-22T00:00:00+01:00", "2025-12-29T00:00:00+01:00", 168,
        id="new-year-week-starts-in-2025",
    ),
    pytest.param(
        "previous_month", datetime(2026, 3, 31, 23, 30, tzinfo=UTC),
        "2026-03-01T00:00:00+01:00", "2026-04-01T00:00:00+02:00", 743,
        id="a-utc-now-is-taken-at-its-oslo-date",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("period", "now", "data_from", "data_to", "hours"), PERIOD_CASES)
def test_period_bounds_are_local_midnights_whatever_dst_does(
    period: str, now: datetime, data_from: str, data_to: str, hours: int
) -> None:
    """The previous period runs between Oslo midnights (with their own offsets) for its hours."""
    found = periods.previous_period(period, "Europe/Oslo", now)
    assert found.query() == {"data_from": data_from, "data_to": data_to}
    assert found.data_from is not None
    assert found.data_to is not None
    # Same-zone subtraction in Python is wall-clock; elapsed time needs UTC.
    elapsed = found.data_to.astimezone(UTC) - found.data_from.astimezone(UTC)
    assert elapsed == timedelta(hours=hours)


def test_period_bounds_for_none_send_no_interval() -> None:
    """`period: none` sends no data_from/data_to and is named by the local date."""
    now = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    assert periods.previous_period("none", "Europe/Oslo", now).query() == {}
    assert periods.previous_period("none", "Europe/Oslo", now).key == "2026-04-01"


def test_local_midnight_where_dst_skips_midnight_is_the_first_real_instant() -> None:
    """Havana moves 00:00 → 01:00 on 8 March 2026; that day starts at 01:00 -04:00."""
    start = local_midnight(date(2026, 3, 8), ZoneInfo("America/Havana"))
    assert start.isoformat() == "2026-03-08T01:00:00-04:00"


def test_period_starting_a_monday_gives_that_iso_week() -> None:
    """`--period-start 2026-03-23` of a weekly report is that Monday's week."""
    found = period_starting("previous_week", "Europe/Oslo", date(2026, 3, 23))
    assert found.query() == {
        "data_from": "2026-03-23T00:00:00+01:00",
        "data_to": "2026-03-30T00:00:00+02:00",
    }


@pytest.mark.parametrize(
    ("period", "start", "hint"),
    [
        ("previous_month", date(2026, 3, 4), "2026-03-01"),
        ("previous_week", date(2026, 3, 25), "2026-03-23"),
    ],
)
def test_period_starting_mid_period_is_refused_with_the_real_start(
    period: str, start: date, hint: str
) -> None:
    """A start date inside a period is refused at --period-start, naming the period's start."""
    with pytest.raises(ConfigError) as caught:
        period_starting(period, "Europe/Oslo", start)
    assert caught.value.problems[0][0] == "--period-start"
    assert hint in caught.value.problems[0][1]


@pytest.mark.parametrize("text", ["20260301", "2026-W10-1", "2026-02-30", "2026-3-1", "x", ""])
def test_parse_date_refuses_anything_but_yyyy_mm_dd(text: str) -> None:
    """Only valid extended calendar dates pass; the error names where it came from."""
    with pytest.raises(ConfigError) as caught:
        parse_date(text, "--from")
    assert caught.value.problems[0][0] == "--from"


def test_last_fire_time_finds_the_latest_monthly_fire_before_now() -> None:
    """Before 06:15 on the 1st, the latest fire of `15 6 1 * *` is a month earlier."""
    fire = last_fire_time("15 6 1 * *", "Europe/Oslo", datetime(2026, 4, 1, 5, 0, tzinfo=OSLO))
    assert fire == datetime(2026, 3, 1, 6, 15, tzinfo=OSLO)
    fire = last_fire_time("15 6 1 * *", "Europe/Oslo", datetime(2026, 4, 1, 6, 15, tzinfo=OSLO))
    assert fire == datetime(2026, 4, 1, 6, 15, tzinfo=OSLO)


def test_last_fire_time_of_a_minutely_cron_is_the_current_minute() -> None:
    """A minutely cron's latest fire is the start of the current minute."""
    now = datetime(2026, 4, 1, 5, 7, 30, tzinfo=UTC)
    assert last_fire_time("* * * * *", "UTC", now) == datetime(2026, 4, 1, 5, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("content_type", "accept", "extension"),
    [
        ("application/pdf", "application/pdf", "pdf"),
        ("text/csv; charset=utf-8", "application/pdf", "csv"),
        ("application/octet-stream", "text/html", "html"),
        (None, "application/json", "json"),
        (None, "application/x-unknown", "bin"),
    ],
)
def test_extension_for_prefers_the_response_type_then_accept(
    content_type: str | None, accept: str, extension: str
) -> None:
    """The file extension follows what was returned, else what was asked for."""
    assert extension_for(content_type, accept) == extension


# --- report jobs against the sandbox ----------------------------------------------------------


def test_report_job_fires_on_frozen_clock_at_cron_time_and_writes_file_once(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """A real BackgroundScheduler fires the report job at 06:15 on the 1st, once.

    1. The wall clock is moved (time-machine, ticking) to 06:14:58.5 on 1 April 2026
       in Oslo; the agent's `scheduler.add_cron_job` registers the job as agent.py does.
    2. The scheduler waits the real 1.5 s (margin for a loaded machine) and runs the job.
    3. Running the job again for the same period changes nothing.
    Result: one request for March, one file `monthly-2026-03-01.pdf`, recorded.
    """
    config = report_config(_report())
    runner = open_runner(config)
    report = config.reports[0]
    folder = config.report_dir(report)
    sched = scheduler.build_scheduler()
    with time_machine.travel(datetime(2026, 4, 1, 6, 14, 58, 500_000, tzinfo=OSLO), tick=True):
        scheduler.add_cron_job(
            sched, "report:monthly", lambda: runner.run_scheduled(report), report.cron or "",
            report.timezone,
        )  # fmt: skip
        sched.start()
        try:
            assert not (folder / "monthly-2026-03-01.pdf").exists()
            wait_until((folder / "monthly-2026-03-01.pdf").exists)
            runner.run_scheduled(report)
        finally:
            sched.shutdown(wait=True)
    generation = _requests(sandbox, GENERATION)
    assert len(generation) == 1
    assert generation[0].at >= datetime(2026, 4, 1, 6, 15, tzinfo=OSLO)
    assert _query(generation[0])["data_from"] == "2026-03-01T00:00:00+01:00"
    assert _files(folder) == ["monthly-2026-03-01.pdf"]
    assert (folder / "monthly-2026-03-01.pdf").read_bytes().startswith(b"%PDF-")
    assert runner.db.report_done("monthly", "2026-03-01") == str(folder / "monthly-2026-03-01.pdf")


def test_report_request_carries_every_seed_parameter_and_the_body(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """The DST month reaches Dintero as data_from/data_to, with every configured parameter."""
    config = report_config(_report(accept="application/json", timezone="Europe/Oslo"))
    runner = open_runner(config)
    outcome = runner.run(config.reports[0], now=datetime(2026, 4, 2, 9, 0, tzinfo=OSLO))
    (request,) = _requests(sandbox, GENERATION)
    assert request.method == "POST"
    assert _query(request) == {
        "template_id": "checkout_transaction_order",
        "template_data_path": "/checkout/v1/transactions/{transaction.id}",
        "template_accept": "application/json",
        "template_accept_language": "no",
        "template_accept_timezone": "Europe/Oslo",
        "data_from": "2026-03-01T00:00:00+01:00",
        "data_to": "2026-04-01T00:00:00+02:00",
        "schedule": "monthly",
        "save": "false",
    }
    assert outcome.file.name == "monthly-2026-03-01.json"
    document = orjson.loads(outcome.file.read_bytes())
    assert document["entries"] == [
        {"key": "transaction", "path": "/checkout/v1/transactions/{transaction.id}"}
    ]
    assert outcome.bytes == outcome.file.stat().st_size
    assert outcome.file.stat().st_mode & 0o777 == reports.FILE_MODE


def test_report_with_period_none_sends_no_interval(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """`period: none` and no schedule: no data_from/data_to/schedule, file named by today."""
    config = report_config(_report(period="none", schedule=None, accept="text/csv"))
    runner = open_runner(config)
    outcome = runner.run(config.reports[0], now=datetime(2026, 5, 17, 12, 0, tzinfo=OSLO))
    query = _query(_requests(sandbox, GENERATION)[0])
    assert "data_from" not in query
    assert "data_to" not in query
    assert "schedule" not in query
    assert outcome.file.name == "monthly-2026-05-17.csv"


def test_report_after_503_then_200_writes_one_file(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """A 503 is retried with backoff; the 200 that follows gives exactly one file."""
    config = report_config(_report())
    runner = open_runner(config)
    sandbox.set_faults(fail_next=1, fail_next_status=503)
    with capture_logs() as logs:
        outcome = runner.run(config.reports[0], now=datetime(2026, 4, 2, tzinfo=OSLO))
    assert [r.status for r in _requests(sandbox, GENERATION)] == [503, 200]
    assert _files(outcome.file.parent) == ["monthly-2026-03-01.pdf"]
    generated = [entry for entry in logs if entry["event"] == "report.generated"]
    assert len(generated) == 1
    assert generated[0]["name"] == "monthly"
    assert generated[0]["file"] == str(outcome.file)
    assert generated[0]["bytes"] == outcome.file.stat().st_size
    assert generated[0]["log_level"] == "info"
    assert not [entry for entry in logs if entry["event"] == "report.failed"]


def test_report_429_waits_at_least_its_retry_after(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """A 429 with Retry-After: 1 is retried no sooner than a second later (backoff is 10 ms).

    1. Every 2nd report request is rate limited; February's run takes the 1st (passes).
    2. March's first attempt is the 2nd request: 429, Retry-After 1; its retry passes.
    Result: March is written, and its run lasted at least the second it was asked to wait.
    """
    config = report_config(_report())
    runner = open_runner(config)
    sandbox.set_faults(rate_limit_every=2, retry_after_s=1, endpoints="reports")
    runner.run(config.reports[0], period_start=date(2026, 2, 1))
    started = time.monotonic()
    outcome = runner.run(config.reports[0], now=datetime(2026, 4, 2, tzinfo=OSLO))
    elapsed = time.monotonic() - started
    assert [r.status for r in _requests(sandbox, GENERATION)] == [200, 429, 200]
    assert outcome.period_start == "2026-03-01"
    assert elapsed >= 0.95


def test_report_keeps_failing_gives_up_bounded_and_records_nothing(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """After 5 transient failures the run stops: report.failed (warning), no file, no record."""
    config = report_config(_report())
    runner = open_runner(config)
    sandbox.set_faults(fail_next=50, fail_next_status=502)
    with capture_logs() as logs, pytest.raises(ReportError) as caught:
        runner.run(config.reports[0], now=datetime(2026, 4, 2, tzinfo=OSLO))
    assert len(_requests(sandbox, GENERATION)) == reports.REPORT_ATTEMPTS
    assert caught.value.status == 502
    assert "gave up after 5 attempts" in str(caught.value)
    (failed,) = [entry for entry in logs if entry["event"] == "report.failed"]
    assert failed["log_level"] == "warning"
    assert failed["name"] == "monthly"
    assert failed["status"] == 502
    assert _files(config.report_dir(config.reports[0])) == []
    assert runner.db.report_done("monthly", "2026-03-01") is None


def test_report_scheduled_run_that_fails_logs_and_does_not_raise(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """A failing cron run leaves one report.failed line and no traceback for the scheduler."""
    config = report_config(_report())
    runner = open_runner(config)
    sandbox.set_faults(forbidden=True, endpoints="reports")
    with capture_logs() as logs:
        runner.run_scheduled(config.reports[0])
    assert [e["event"] for e in logs if e["event"].startswith(("report.", "job."))] == [
        "report.failed"
    ]


def test_report_retry_wait_ends_when_the_agent_stops(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """A shutdown does not sit out a Retry-After: the run stops after the first attempt."""
    config = report_config(_report())
    stop = threading.Event()
    stop.set()
    runner = open_runner(config)
    runner = reports.ReportRunner(config, runner.client, runner.db, stop_event=stop)
    sandbox.set_faults(rate_limit_every=1, retry_after_s=30, endpoints="reports")
    started = time.monotonic()
    with pytest.raises(ReportError, match="agent stopped"):
        runner.run(config.reports[0], now=datetime(2026, 4, 2, tzinfo=OSLO))
    assert time.monotonic() - started < 5
    assert len(_requests(sandbox, GENERATION)) == 1
    assert runner.db.report_done("monthly", "2026-03-01") is None


def test_report_401_after_a_fresh_token_fails_as_misconfigured(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """A 401 that a token refresh cannot cure is not retried: report.failed at error level."""
    config = report_config(_report())
    runner = open_runner(config)
    sandbox.set_faults(unauthorized_next=2, endpoints="reports")
    with capture_logs() as logs, pytest.raises(ReportError, match="401") as caught:
        runner.run(config.reports[0], now=datetime(2026, 4, 2, tzinfo=OSLO))
    assert caught.value.status == 401
    assert len(_requests(sandbox, GENERATION)) == 2
    (failed,) = [e for e in logs if e["event"] == "report.failed"]
    assert failed["log_level"] == "error"
    assert SECRET not in str(logs)


def test_report_refused_with_400_fails_at_once_with_the_api_message(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """A 400 is not retried; the operator reads Dintero's own explanation."""
    config = report_config(_report(accept="application/xml"))
    runner = open_runner(config)
    with capture_logs() as logs, pytest.raises(ReportError) as caught:
        runner.run(config.reports[0], now=datetime(2026, 4, 2, tzinfo=OSLO))
    assert len(_requests(sandbox, GENERATION)) == 1
    assert caught.value.status == 400
    assert "invalid report generation request" in str(caught.value)
    assert "query.template_accept" in str(caught.value)
    (failed,) = [entry for entry in logs if entry["event"] == "report.failed"]
    assert failed["log_level"] == "error"
    assert "Bearer" not in str(logs)


def test_report_forbidden_names_the_configuration_to_check(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """A 403 fails the run with a hint at account, URL and scopes."""
    config = report_config(_report())
    runner = open_runner(config)
    sandbox.set_faults(forbidden=True, endpoints="reports")
    with pytest.raises(ReportError, match="scopes") as caught:
        runner.run(config.reports[0], now=datetime(2026, 4, 2, tzinfo=OSLO))
    assert caught.value.status == 403


def test_report_period_already_recorded_is_not_requested_or_written_again(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """A second run of the same period, even after a restart, sends nothing and keeps the file.

    1. Run March once: one request, one file.
    2. Change the file on disk, run March again with a fresh runner and state connection.
    Result: still one request; the second run reports `skipped`; the file is untouched.
    """
    config = report_config(_report())
    first = open_runner(config).run(config.reports[0], now=datetime(2026, 4, 2, tzinfo=OSLO))
    first.file.write_bytes(b"operator's copy")
    second = open_runner(config).run(config.reports[0], period_start=date(2026, 3, 1))
    assert second.skipped
    assert second.file == first.file
    assert len(_requests(sandbox, GENERATION)) == 1
    assert first.file.read_bytes() == b"operator's copy"


def test_catch_up_runs_a_missed_period_once(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """The agent was down on 1 April 06:15: the next start fetches March, once.

    1. Start on 3 April: catch_up() writes March.
    2. catch_up() again on the same runner, then on a fresh runner (a restart).
    Result: one request, one file; the report without a cron is never caught up.
    """
    on_demand = _report(name="adhoc", cron=None)
    config = report_config(_report(), on_demand)
    now = datetime(2026, 4, 3, 10, 0, tzinfo=OSLO)
    runner = open_runner(config)
    written = runner.catch_up(now=now)
    assert [(o.name, o.period_start) for o in written] == [("monthly", "2026-03-01")]
    assert runner.catch_up(now=now) == []
    assert open_runner(config).catch_up(now=now) == []
    assert len(_requests(sandbox, GENERATION)) == 1
    assert _files(config.report_dir(config.reports[0])) == ["monthly-2026-03-01.pdf"]


def test_catch_up_before_this_months_fire_fetches_the_month_before(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """At 05:00 on 1 April the due run is 1 March's, so February is caught up, not March."""
    config = report_config(_report())
    written = open_runner(config).catch_up(now=datetime(2026, 4, 1, 5, 0, tzinfo=OSLO))
    assert [o.period_start for o in written] == ["2026-02-01"]
    assert _query(_requests(sandbox, GENERATION)[0])["data_to"] == "2026-03-01T00:00:00+01:00"


def test_catch_up_after_a_failure_goes_on_with_the_other_reports(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """A refused report is logged and left unrecorded; the next report is still written."""
    config = report_config(_report(name="bad", accept="application/xml"), _report(name="good"))
    with capture_logs() as logs:
        written = open_runner(config).catch_up(now=datetime(2026, 4, 3, tzinfo=OSLO))
    assert [o.name for o in written] == ["good"]
    assert [e["name"] for e in logs if e["event"] == "report.failed"] == ["bad"]


@pytest.mark.parametrize("accept", ["application/pdf", "application/json"])
def test_report_saved_by_dintero_201_writes_a_json_receipt(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
    accept: str,
) -> None:
    """`save: true` answers 201 without the document: a `.saved.json` receipt is kept.

    Also for `accept: application/json`, where the 201's JSON note must not pass for the
    report itself.
    """
    config = report_config(_report(save=True, accept=accept))
    runner = open_runner(config)
    outcome = runner.run(config.reports[0], now=datetime(2026, 4, 2, tzinfo=OSLO))
    assert outcome.status == 201
    assert outcome.file.name == "monthly-2026-03-01.saved.json"
    saved = orjson.loads(outcome.file.read_bytes())
    assert saved["saved_by_dintero"] is True
    assert saved["data_from"] == "2026-03-01T00:00:00+01:00"
    assert saved["response"]["message"] == "Report generated and saved"
    assert _query(_requests(sandbox, GENERATION)[0])["save"] == "true"
    assert runner.db.report_done("monthly", "2026-03-01") == str(outcome.file)


def test_report_output_dir_not_writable_fails_and_records_nothing(
    tmp_path: Path,
    report_config: Callable[..., AgentConfig],
    open_runner: Callable[[AgentConfig], reports.ReportRunner],
) -> None:
    """An output_dir that is a file fails the run with a hint; the period stays open."""
    (tmp_path / "blocked").write_text("not a folder")
    config = report_config(_report(output_dir="blocked"))
    runner = open_runner(config)
    with pytest.raises(ReportError, match="output_dir"):
        runner.run(config.reports[0], now=datetime(2026, 4, 2, tzinfo=OSLO))
    assert runner.db.report_done("monthly", "2026-03-01") is None


def test_generate_report_period_not_ended_is_refused_without_a_request(
    sandbox: Sandbox, report_config: Callable[..., AgentConfig]
) -> None:
    """`--period-start` of the current month would give a partial report: refused."""
    config = report_config(_report())
    this_month = datetime.now(OSLO).date().replace(day=1).isoformat()
    with pytest.raises(ConfigError, match="has not ended yet"):
        reports.generate_report(config, "monthly", this_month)
    assert sandbox.requests == []


def test_generate_report_writes_the_file_then_skips_the_same_period(
    sandbox: Sandbox, report_config: Callable[..., AgentConfig]
) -> None:
    """`report generate NAME --period-start` writes once, then finds it already written."""
    config = report_config(_report())
    pdf = config.report_dir(config.reports[0]) / "monthly-2026-03-01.pdf"
    with capture_logs():  # keep structlog's default stdout renderer out of the output
        first = reports.generate_report(config, "monthly", "2026-03-01")
        second = reports.generate_report(config, "monthly", "2026-03-01")
    assert (first.file, first.bytes, first.status, first.skipped) == (
        pdf, pdf.stat().st_size, 200, False
    )  # fmt: skip
    assert (second.file, second.status, second.skipped) == (pdf, None, True)
    assert len(_requests(sandbox, GENERATION)) == 1


# --- test settlement reports -----------------------------------------------------------------


_BAD_OPTIONS = [
    pytest.param(
        {"transaction_ids": [f"T1.{i}" for i in range(1001)]},
        "--transaction-id",
        id="ids-over-1000",
    ),
    pytest.param({"count": 0}, "--count", id="count-zero"),
    pytest.param({"count": 10_001}, "--count", id="count-over-10000"),
    pytest.param({"count": -5}, "--count", id="count-negative"),
    pytest.param(
        {"transaction_ids": ["T1.a"], "count": 5}, "--transaction-id", id="ids-with-count"
    ),
    pytest.param(
        {"transaction_ids": ["T1.a"], "date_from": "2026-03-01", "date_to": "2026-03-07"},
        "--transaction-id",
        id="ids-with-dates",
    ),
    pytest.param({"transaction_ids": [" "]}, "--transaction-id", id="empty-id"),
    pytest.param({"date_from": "2026-03-01"}, "--to", id="from-without-to"),
    pytest.param({"date_to": "2026-03-07"}, "--from", id="to-without-from"),
    pytest.param(
        {"date_from": "2026-03-07", "date_to": "2026-03-01"}, "--from", id="from-after-to"
    ),
    pytest.param(
        {"date_from": "2026-03-07", "date_to": "2026-03-07"}, "--from", id="from-equals-to"
    ),
    pytest.param({"date_from": "2026-02-30", "date_to": "2026-03-07"}, "--from", id="bad-date"),
    pytest.param({"date_from": "2026-03-01", "date_to": "07.03.2026"}, "--to", id="bad-format"),
]


@pytest.mark.parametrize(("options", "path"), _BAD_OPTIONS)
def test_settlement_test_report_rule_broken_is_refused_without_a_request(
    sandbox: Sandbox, report_config: Callable[..., AgentConfig], options: dict[str, Any], path: str
) -> None:
    """Each broken rule of the spec is named at its option; the sandbox sees no request at all."""
    config = report_config()
    arguments: dict[str, Any] = {
        "transaction_ids": None, "count": None, "date_from": None, "date_to": None, **options
    }  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        reports.run_test_report(config, **arguments)
    assert path in [where for where, _ in caught.value.problems]
    assert sandbox.requests == []


def test_settlement_test_report_collects_every_broken_rule() -> None:
    """Several mistakes are reported together, not one per try."""
    with pytest.raises(ConfigError) as caught:
        settlement.build_test_report_options(["T1.a"], 0, "2026-03-07", None)
    assert [where for where, _ in caught.value.problems] == ["--transaction-id", "--count", "--to"]


def test_settlement_test_report_on_production_account_is_refused_before_any_request(
    sandbox: Sandbox, report_config: Callable[..., AgentConfig]
) -> None:
    """A P… account is refused at dintero.account_id: no token, no request."""
    config = report_config(account="P12345678")
    with pytest.raises(ConfigError) as caught:
        reports.run_test_report(config, transaction_ids=None, count=5, date_from=None, date_to=None)
    assert caught.value.problems[0][0] == "dintero.account_id"
    assert "production" in caught.value.problems[0][1]
    client = DinteroClient(config.dintero, SecretStr(SECRET))
    try:
        with pytest.raises(ConfigError):
            reports.request_test_settlement_report(client, "P12345678", {})
    finally:
        client.close()
    assert sandbox.requests == []


@pytest.mark.parametrize(
    ("nothing", "message"),
    [(False, "Settlement report created"), (True, "No transactions to generate report")],
)
def test_settlement_test_report_201_and_200_return_the_message(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    nothing: bool,
    message: str,
) -> None:
    """Created (201) and nothing to report (200) are both success; the API's words come back."""
    config = report_config()
    sandbox.set_faults(test_report_nothing=nothing)
    with capture_logs():
        shown = reports.run_test_report(
            config, transaction_ids=None, count=10, date_from="2026-03-01", date_to="2026-03-07"
        )
    assert shown == message
    (request,) = _requests(sandbox, TEST_REPORT)
    assert request.status == (200 if nothing else 201)


def test_settlement_test_report_sends_the_options_the_spec_names(
    sandbox: Sandbox, report_config: Callable[..., AgentConfig]
) -> None:
    """The body is TestReportOptions; the sandbox validates it against the spec's rules."""
    options = settlement.build_test_report_options(None, 10, "2026-03-01", "2026-03-07")
    assert options == {
        "number_of_transactions": 10,
        "date_range": {"start_date": "2026-03-01", "end_date": "2026-03-07"},
    }
    assert settlement.build_test_report_options(["T1.a", "T1.b"], None, None, None) == {
        "transaction_ids": ["T1.a", "T1.b"]
    }
    assert settlement.build_test_report_options([], None, None, None) == {}
    config = report_config()
    client = DinteroClient(config.dintero, SecretStr(SECRET))
    try:
        status, _ = reports.request_test_settlement_report(client, ACCOUNT, options)
    finally:
        client.close()
    assert status in (200, 201)


def test_settlement_test_report_400_returns_the_api_message(
    sandbox: Sandbox, report_config: Callable[..., AgentConfig]
) -> None:
    """Options the API refuses come back as (400, Dintero's error message with its paths)."""
    config = report_config()
    client = DinteroClient(config.dintero, SecretStr(SECRET))
    try:
        status, message = reports.request_test_settlement_report(
            client, ACCOUNT, {"number_of_transactions": 0}
        )
    finally:
        client.close()
    assert status == 400
    assert "invalid TestReportOptions" in message
    assert "number_of_transactions" in message


@pytest.mark.parametrize(
    ("faults", "status", "words"),
    [
        ({"forbidden": True}, 403, "Access forbidden"),
        ({"fail_next": 1, "fail_next_status": 500}, 500, "Unexpected error"),
    ],
)
def test_settlement_test_report_403_and_500_fail_with_the_api_message(
    sandbox: Sandbox,
    report_config: Callable[..., AgentConfig],
    faults: dict[str, Any],
    status: int,
    words: str,
) -> None:
    """Refusals and server errors fail the command (exit 1 via ReportError) with the API's text."""
    config = report_config()
    sandbox.set_faults(endpoints="test_report", **faults)
    with pytest.raises(ReportError) as caught:
        reports.run_test_report(config, transaction_ids=None, count=3, date_from=None, date_to=None)
    assert caught.value.status == status
    assert words in str(caught.value)
    assert len(_requests(sandbox, TEST_REPORT)) == 1


def test_settlement_test_report_401_after_refresh_is_a_misconfiguration(
    sandbox: Sandbox, report_config: Callable[..., AgentConfig]
) -> None:
    """A 401 that survives a fresh token fails the command with the API's message."""
    config = report_config()
    sandbox.set_faults(unauthorized_next=2, endpoints="test_report")
    with pytest.raises(MisconfiguredError, match="invalid JWT"):
        reports.run_test_report(config, transaction_ids=None, count=3, date_from=None, date_to=None)
