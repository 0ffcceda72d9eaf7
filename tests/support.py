"""Helpers the tests share: constants, receipt builders, the installed CLI, log readers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

ACCOUNT = "T12345678"
CLIENT_ID = "test-client"
SECRET = "canary-secret-s3cr3t-value"  # a canary: must never appear in any log
BIN = Path(sys.executable).parent
SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


def base_config(
    *,
    base_url: str,
    spool_dir: Path,
    state_dir: Path,
    secret_file: Path,
    log_file: Path,
    **overrides: Any,
) -> dict[str, Any]:
    """Return a config dict for one dintero-json source with test-sized timings."""
    config: dict[str, Any] = {
        "dintero": {
            "base_url": base_url,
            "account_id": ACCOUNT,
            "client_id": CLIENT_ID,
            "client_secret_file": str(secret_file),
            "timeout": "5s",
        },
        "state_dir": str(state_dir),
        "log": {"file": str(log_file), "format": "json", "level": "info"},
        "sources": [
            {
                "name": "till-1",
                "path": str(spool_dir),
                "format": "dintero-json",
                "settle": "0.1s",
                "store": {"id": "sc029", "name": "SC Oslo"},
            }
        ],
        "batch": {"max_receipts": 100, "flush_interval": "0.2s"},
        "retry": {"initial": "0.1s", "max": "1s"},
    }
    config.update(overrides)
    return config


def cli(*args: str, timeout: float = 60, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed console script and return the finished process."""
    return subprocess.run(
        [str(BIN / "receipt-agent"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


# Every agent process start_agent started; conftest's autouse `no_agent_leaks` kills the
# ones a failed test left running (a daemon outliving its test loads the machine for the
# rest of the run: one was found 13 minutes later in a fresh-clone .ci/run).
STARTED_AGENTS: list[subprocess.Popen[str]] = []


def start_agent(config: Path, *extra: str) -> subprocess.Popen[str]:
    """Start `receipt-agent run` as a subprocess (for signals and kill -9); stop with stop_agent."""
    process = subprocess.Popen(
        [str(BIN / "receipt-agent"), "run", "-c", str(config), *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    STARTED_AGENTS.append(process)
    return process


def stop_agent(
    process: subprocess.Popen[str], *, sig: int = signal.SIGTERM, timeout: float = 40
) -> tuple[int, str]:
    """Send `sig` (SIGTERM by default), wait, close the pipes; return (exit code, stderr)."""
    if process.poll() is None:
        process.send_signal(sig)
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


def report_entry(**changes: Any) -> dict[str, Any]:
    """A `reports[]` entry: the monthly settlement PDF of config/examples/reports.yaml."""
    report: dict[str, Any] = {
        "name": "monthly",
        "cron": "15 6 1 * *",
        "timezone": "Europe/Oslo",
        "template_id": "checkout_transaction_order",
        "template_data_path": "/checkout/v1/transactions/{transaction.id}",
        "accept": "application/pdf",
        "language": "no",
        "period": "previous_month",
        "schedule": "monthly",
        "save": False,
        "body": [
            {
                "key": "transaction",
                "path": "/checkout/v1/transactions/{transaction.id}",
                "data": {"id": "T12345678.abc", "amount": 10000},
            }
        ],
        "output_dir": "reports",
    }
    report.update(changes)
    return report


def free_port() -> int:
    """A loopback port that nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05
) -> Any:
    """Poll `predicate` until it is truthy; fail the test at the deadline.

    The default deadline is generous on purpose: it costs nothing when the condition comes
    true, and on a loaded 2-core machine starting the CLI alone took 8 s (10 s was a flake).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def make_receipt(
    number: int, *, store_id: str = "sc029", amount: int = 12500, **extra: Any
) -> dict[str, Any]:
    """A valid Dintero receipt with one item, one payment and VAT 25 %, obeying the totals rule.

    Amounts are VAT-inclusive (formats.md §1.3): `net_amount` is after discounts (none
    here), so it equals `gross_amount` and the payment; the tax line splits out the VAT.
    """
    basis = amount * 4 // 5  # the amount before VAT
    receipt: dict[str, Any] = {
        "store": {"id": store_id},
        "receipt_id": f"R{number:06d}",
        "purchase_at": "2026-11-20T10:15:00+01:00",
        "currency": "NOK",
        "gross_amount": amount,
        "net_amount": amount,
        "items": [
            {
                "id": "A1",
                "line_id": 1,
                "description": "Kaffe",
                "quantity": 1,
                "gross_amount": amount,
                "net_amount": amount,
                "tax_percent": 25,
                "tax_lines": [{"amount": amount - basis, "percentage": 25, "tax_basis": basis}],
            }
        ],
        "payments": [{"amount": amount, "type_id": "CARD", "line_id": 1}],
    }
    receipt.update(extra)
    return receipt


def drop(folder: Path, name: str, receipts: list[dict[str, Any]] | dict[str, Any] | bytes) -> Path:
    """Write a file into a spool the way a careful till does: tmp name, then rename."""
    data = receipts if isinstance(receipts, bytes) else orjson.dumps(receipts)
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    target = folder / name
    tmp.rename(target)
    return target


def read_log(path: Path) -> list[dict[str, Any]]:
    """Parse the JSON-lines log file; every line must be a JSON object."""
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events(path: Path, name: str) -> list[dict[str, Any]]:
    return [line for line in read_log(path) if line.get("event") == name]


def queue_receipts(db: Any, count: int, *, start: int = 0) -> None:
    """Queue `count` pending receipts (make_receipt numbers from `start`) in a real StateDB."""
    from receipt_agent import statedb

    with db.transaction() as tx:
        for number in range(start, start + count):
            receipt = make_receipt(number)
            statedb.insert_receipt(
                tx, source="till-1", store_id="sc029", receipt_id=receipt["receipt_id"],
                payload=orjson.dumps(receipt), file="f.json", now=time.time(),
            )  # fmt: skip
