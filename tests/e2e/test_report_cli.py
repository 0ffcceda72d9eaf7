"""End to end: `receipt-agent report generate` and `settlement test-report` (issue 7).

Drives the installed console script as a subprocess against the sandbox on 127.0.0.1:0,
with a config written in tmp_path and the client secret in $RECEIPT_AGENT_CLIENT_SECRET
(the contract's second place to look). Asserts what an operator sees: exit codes, the
printed lines, the files in output_dir, the JSON log, and the requests Dintero received.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import support
from support import ACCOUNT, CLIENT_ID, SECRET, cli, events, start_agent, stop_agent, wait_until

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.e2e

GENERATION = "/reports/generation"
TEST_REPORT = "/settlements/reports/generate-test-report"


@pytest.fixture
def report_config(
    tmp_path: Path, sandbox: Sandbox, write_config: Callable[[dict[str, Any]], Path]
) -> Callable[[str], Path]:
    """Return make(account) → a written config with one monthly PDF report, no secret file."""

    def make(account: str) -> Path:
        return write_config(
            {
                "dintero": {
                    "base_url": sandbox.base_url,
                    "account_id": account,
                    "client_id": CLIENT_ID,
                    "timeout": "5s",
                },
                "state_dir": str(tmp_path / "state"),
                "log": {"file": str(tmp_path / "agent.log"), "format": "json"},
                "retry": {"initial": "0.05s", "max": "0.2s"},
                "reports": [support.report_entry(name="monthly-settlement-pdf")],
            }
        )

    return make


@pytest.fixture
def report_cli(report_config: Callable[[str], Path]) -> Callable[..., Any]:
    """Return run(*args, account=…) → the finished `receipt-agent … -c CONFIG` process."""

    def run(*args: str, account: str = ACCOUNT) -> Any:
        env = {**os.environ, "RECEIPT_AGENT_CLIENT_SECRET": SECRET}
        return cli(*args, "-c", str(report_config(account)), env=env)

    return run


def _requests(sandbox: Sandbox, endpoint: str) -> list[Any]:
    return [r for r in sandbox.requests if r.path.endswith(endpoint)]


def test_report_generate_writes_the_march_pdf_once(
    tmp_path: Path, sandbox: Sandbox, report_cli: Callable[..., Any]
) -> None:
    """An operator fetches March's report on demand and cannot fetch it twice by mistake.

    1. `report generate monthly-settlement-pdf --period-start 2026-03-01`.
    2. The same command again.
    Result: exit 0 both times; one PDF `monthly-settlement-pdf-2026-03-01.pdf` for the DST
    month (data_from +01:00, data_to +02:00); one request; one `report.generated` line
    without the secret; the second run says the period was already written.
    """
    first = report_cli(
        "report", "generate", "monthly-settlement-pdf", "--period-start", "2026-03-01"
    )
    assert first.returncode == 0, first.stderr
    pdf = tmp_path / "reports" / "monthly-settlement-pdf-2026-03-01.pdf"
    size = pdf.stat().st_size
    assert first.stdout == f"report monthly-settlement-pdf: wrote {pdf} ({size} bytes, HTTP 200)\n"
    assert pdf.read_bytes().startswith(b"%PDF-")

    second = report_cli(
        "report", "generate", "monthly-settlement-pdf", "--period-start", "2026-03-01"
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout == (
        f"report monthly-settlement-pdf: period 2026-03-01 was already written to {pdf}; "
        "nothing to do\n"
    )

    (request,) = _requests(sandbox, GENERATION)
    query = {name: values[0] for name, values in parse_qs(request.query).items()}
    assert query["data_from"] == "2026-03-01T00:00:00+01:00"
    assert query["data_to"] == "2026-04-01T00:00:00+02:00"
    assert sorted(p.name for p in pdf.parent.iterdir()) == [pdf.name]
    log = tmp_path / "agent.log"
    (generated,) = events(log, "report.generated")
    assert generated["name"] == "monthly-settlement-pdf"
    assert generated["file"] == str(pdf)
    assert generated["bytes"] == pdf.stat().st_size
    assert SECRET not in log.read_text()


def test_report_generate_after_a_503_writes_the_previous_month(
    tmp_path: Path, sandbox: Sandbox, report_cli: Callable[..., Any]
) -> None:
    """Without --period-start the last full month is fetched; a 503 on the way is retried."""
    sandbox.set_faults(fail_next=1, fail_next_status=503)
    result = report_cli("report", "generate", "monthly-settlement-pdf")
    assert result.returncode == 0, result.stderr
    assert [r.status for r in _requests(sandbox, GENERATION)] == [503, 200]
    assert len(list((tmp_path / "reports").iterdir())) == 1


def test_report_generate_refused_by_dintero_exits_1_with_its_message(
    tmp_path: Path, sandbox: Sandbox, report_cli: Callable[..., Any]
) -> None:
    """A 403 fails the command (exit 1) with Dintero's message on stderr and no file."""
    sandbox.set_faults(forbidden=True, endpoints="reports")
    result = report_cli("report", "generate", "monthly-settlement-pdf")
    assert result.returncode == 1
    assert "Access forbidden" in result.stderr
    assert not (tmp_path / "reports").exists()
    (failed,) = events(tmp_path / "agent.log", "report.failed")
    assert failed["status"] == 403


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("monthly-settlement-pdf", "--period-start", "2026-03-04"), "--period-start"),
        (("monthly-settlement-pdf", "--period-start", "1.3.2026"), "--period-start"),
        (("no-such-report",), "no report named"),
    ],
)
def test_report_generate_with_bad_input_exits_2_without_a_request(
    sandbox: Sandbox, report_cli: Callable[..., Any], args: tuple[str, ...], words: str
) -> None:
    """A mid-month start, a malformed date or an unknown name is a usage error; nothing is sent."""
    result = report_cli("report", "generate", *args)
    assert result.returncode == 2
    assert words in result.stderr
    assert sandbox.requests == []


@pytest.mark.parametrize(
    ("nothing", "message"),
    [(False, "Settlement report created"), (True, "No transactions to generate report")],
)
def test_settlement_test_report_201_and_200_exit_0_with_the_message(
    sandbox: Sandbox, report_cli: Callable[..., Any], nothing: bool, message: str
) -> None:
    """Created and nothing-to-report both exit 0 and print Dintero's message."""
    sandbox.set_faults(test_report_nothing=nothing)
    result = report_cli(
        "settlement", "test-report", "--count", "10", "--from", "2026-03-01", "--to", "2026-03-07"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{message}\n"
    assert len(_requests(sandbox, TEST_REPORT)) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--count", "0"), "--count"),
        (("--transaction-id", "T1.a", "--count", "3"), "--transaction-id"),
        (("--from", "2026-03-07", "--to", "2026-03-01"), "--from"),
        (("--from", "2026-03-01"), "--to"),
    ],
)
def test_settlement_test_report_breaking_a_rule_exits_2_without_a_request(
    sandbox: Sandbox, report_cli: Callable[..., Any], args: tuple[str, ...], words: str
) -> None:
    """Rules of the spec are checked locally: exit 2, the option named, nothing sent."""
    result = report_cli("settlement", "test-report", *args)
    assert result.returncode == 2
    assert words in result.stderr
    assert sandbox.requests == []


def test_settlement_test_report_on_a_production_account_exits_2_without_a_request(
    sandbox: Sandbox, report_cli: Callable[..., Any]
) -> None:
    """A P… account never reaches Dintero for a test report."""
    result = report_cli("settlement", "test-report", account="P12345678")
    assert result.returncode == 2
    assert "dintero.account_id" in result.stderr
    assert sandbox.requests == []


def test_settlement_test_report_forbidden_exits_1_with_the_api_message(
    sandbox: Sandbox, report_cli: Callable[..., Any]
) -> None:
    """A 403 from Dintero exits 1 and shows its error message."""
    sandbox.set_faults(forbidden=True, endpoints="test_report")
    result = report_cli("settlement", "test-report", "--transaction-id", "T12345678.abc")
    assert result.returncode == 1
    assert "Access forbidden" in result.stderr


def test_daemon_start_catches_up_the_missed_month(
    tmp_path: Path,
    sandbox: Sandbox,
    report_config: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`receipt-agent run` fetches, at start, the report it missed while it was down.

    1. Start the daemon; the report's cron (06:15 on the 1st) last fired before now.
    2. Wait for the PDF of the month before that fire; stop with SIGTERM.
    Result: exit 0, one file, one generation request, one `report.generated` line.
    (That a recorded period is not fetched again is shown in tests/test_reports.py.)
    """
    config = report_config(ACCOUNT)
    monkeypatch.setenv("RECEIPT_AGENT_CLIENT_SECRET", SECRET)
    folder = tmp_path / "reports"
    log = tmp_path / "agent.log"
    process = start_agent(config)
    try:
        wait_until(lambda: events(log, "report.generated"), timeout=20)
    finally:
        code, stderr = stop_agent(process)
    assert code == 0, stderr
    (generated,) = events(log, "report.generated")
    assert [p.name for p in folder.iterdir()] == [Path(generated["file"]).name]
    assert len(_requests(sandbox, GENERATION)) == 1
