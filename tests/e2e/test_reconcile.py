"""End to end: `receipt-agent reconcile` over SAF-T exports written here (CONTRACT §1, §7)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from saft_exports import DAY, REGISTER, saft, saft_source
from saft_exports import sale as _tx
from saft_exports import z_report as _z
from support import SHARED_SAMPLES, cli

from receipt_agent.api import open_client
from receipt_agent.config import load_config
from receipt_agent.reconcile import Reconciler
from receipt_agent.sandbox import Sandbox
from receipt_agent.statedb import StateDB

pytestmark = pytest.mark.e2e


@pytest.fixture
def saft_config(make_agent_config: Callable[..., Path], spool_dir: Path) -> Callable[..., Path]:
    """A factory: one saft-cashregister source `till` on the spool, sending to the sandbox."""

    def make(**reconcile: Any) -> Path:
        source = saft_source(spool_dir)
        extra = {"reconcile": reconcile} if reconcile else {}
        return make_agent_config(sources=[source], **extra)

    return make


def _take_in(config: Path, spool_dir: Path, name: str, data: bytes) -> None:
    (spool_dir / name).write_bytes(data)
    result = cli("run", "--once", "-c", str(config))
    assert result.returncode == 0, result.stderr


def _reconcile(config: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = cli("reconcile", "-c", str(config), "--date", DAY, "--json", *extra)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, orjson.loads(result.stdout)


def test_reconcile_with_consecutive_numbers_and_matching_z_report_is_complete(
    saft_config: Callable[..., Path], spool_dir: Path
) -> None:
    """A day whose numbers run 1–4 (a training receipt among them) and whose Z report matches
    the receipts is `complete` with exit 0.

    1. Take in a SAF-T export: sales 1, 2, 4, training receipt 3, and a Z report of 375.00.
    2. `reconcile --date`.
    Result: exit 0; register K1 numbered 1–4 without gaps; every compared Z total matches.
    """
    config = saft_config()
    txs = [_tx(1), _tx(2), _tx(3, training=True), _tx(4)]
    _take_in(config, spool_dir, "day.xml", saft(txs, [_z(DAY, 37500)]))

    code, answer = _reconcile(config)

    assert code == 0
    (day,) = answer["days"]
    assert (day["register"], day["result"], day["gaps"]) == (REGISTER, "complete", 0)
    assert (day["numbering"]["first"], day["numbering"]["last"]) == ("1", "4")
    assert day["counts"]["training"] == 1
    compared = day["control"]["compared"]
    assert compared["cash_sales"] == {"till": 37500, "receipts": 37500, "difference": 0}
    assert compared["vat 25%"]["difference"] == compared["payment CARD"]["difference"] == 0


def test_reconcile_names_a_missing_number_until_it_arrives_in_another_file(
    saft_config: Callable[..., Path], spool_dir: Path
) -> None:
    """A number that never reached the agent is named (exit 1); once a later file brings it,
    the same day is complete (exit 0).

    1. Take in numbers 1, 2, 4 and 5 (no Z report).
    2. `reconcile`: exit 1, gap "3".
    3. Take in a second file holding number 3 of the same day; `reconcile` again.
    Result: exit 0, no gaps.
    """
    config = saft_config()
    _take_in(config, spool_dir, "part-1.xml", saft([_tx(1), _tx(2), _tx(4), _tx(5)]))

    code, answer = _reconcile(config)
    assert code == 1
    (day,) = answer["days"]
    assert (day["result"], day["gaps"], day["numbering"]["missing"]) == ("mismatch", 1, ["3"])
    assert any("missing: 3" in line for line in day["differences"])

    _take_in(config, spool_dir, "part-2.xml", saft([_tx(3)]))
    code, answer = _reconcile(config)
    assert code == 0
    assert answer["days"][0]["gaps"] == 0


def test_reconcile_names_a_z_total_that_differs_by_one_receipt_with_the_difference(
    saft_config: Callable[..., Path], spool_dir: Path
) -> None:
    """A Z report counting one receipt more than the export holds is a mismatch whose sales,
    VAT and payment lines each show the difference of that one receipt.

    1. Take in receipts 1–3 of 125.00 each with a Z report of 500.00 (four receipts).
    2. `reconcile`.
    Result: exit 1; cash_sales till 50000, receipts 37500, difference -12500; VAT -2500.
    """
    config = saft_config()
    _take_in(config, spool_dir, "day.xml", saft([_tx(1), _tx(2), _tx(3)], [_z(DAY, 50000)]))

    code, answer = _reconcile(config)

    assert code == 1
    (day,) = answer["days"]
    compared = day["control"]["compared"]
    assert compared["cash_sales"] == {"till": 50000, "receipts": 37500, "difference": -12500}
    assert compared["vat 25%"]["difference"] == -2500
    assert compared["payment CARD"]["difference"] == -12500
    assert "cash_sales: till 50000, receipts 37500, difference -12500" in day["differences"]


def test_reconcile_remote_all_names_the_receipt_the_sandbox_lost(
    saft_config: Callable[..., Path], spool_dir: Path, sandbox: Sandbox
) -> None:
    """`--remote all` asks Dintero for every sent receipt and names the one it does not hold.

    1. The sandbox "loses" receipt sc029-K1-2 (accepts it, search never finds it).
    2. Take in and send receipts 1–3; `reconcile --remote all`.
    Result: exit 1; remote checked 3, missing ["sc029-K1-2"]; three searches reached the
    sandbox.
    """
    sandbox.faults.lose_receipt_id = r"-K1-2$"
    config = saft_config()
    _take_in(config, spool_dir, "day.xml", saft([_tx(1), _tx(2), _tx(3)]))

    code, answer = _reconcile(config, "--remote", "all")

    assert code == 1
    (day,) = answer["days"]
    assert day["remote"] == {"checked": 3, "missing": ["sc029-K1-2"]}
    assert "not held by Dintero: sc029-K1-2" in day["differences"]
    searches = [r for r in sandbox.state.requests() if r.path.endswith("/receipts/search")]
    assert len(searches) == 3


def test_reconcile_with_a_bad_date_is_a_usage_error(saft_config: Callable[..., Path]) -> None:
    """`reconcile --date 2026-13-01` exits 2 and says how to write the date."""
    result = cli("reconcile", "-c", str(saft_config()), "--date", "2026-13-01")

    assert result.returncode == 2
    assert "YYYY-MM-DD" in result.stderr


@pytest.mark.parametrize(
    ("name", "sample", "day"),
    [
        ("no", "saft-cashregister-no/ExampleFile_SAF-T_Cash_Register_999999999_20210330104000.xml",
         "2020-01-01"),
    ],
)  # fmt: skip
def test_reconcile_of_the_2021_norwegian_example_matches_its_z_report(
    saft_config: Callable[..., Path], spool_dir: Path, name: str, sample: str, day: str
) -> None:
    """The official 2021 Norwegian example (4 receipts, 1 Z report) reconciles complete: every
    Z field compared (sales, returns, grand totals, VAT 15 %/25 %, CASH/DEBCARD) matches."""
    path = SHARED_SAMPLES / sample
    if not path.is_file():
        pytest.skip(f"{path} is not available on this machine")
    config = saft_config()
    _take_in(config, spool_dir, f"{name}.xml", path.read_bytes())

    result = cli("reconcile", "-c", str(config), "--date", day, "--json")

    assert result.returncode == 0, result.stdout
    (found,) = orjson.loads(result.stdout)["days"]
    assert (found["numbering"]["first"], found["numbering"]["last"]) == ("1000", "1003")
    compared = found["control"]["compared"]
    assert compared["payment CASH"] == {"till": 29500, "receipts": 29500, "difference": 0}
    assert compared["returns"]["till"] == 1640
    assert all(value["difference"] == 0 for value in compared.values())


def test_reconcile_of_the_danish_export_checks_numbers_and_skips_its_x_reports(
    make_agent_config: Callable[..., Path], spool_dir: Path
) -> None:
    """The Danish test export numbers 2025-10-25 without a gap (two rejected receipts and a
    cancelled one fill their numbers) and has X reports only, which are named, not compared."""
    path = SHARED_SAMPLES / "saft-cashregister-dk" / "lendiron-kasseapparatet-test-export.xml"
    if not path.is_file():
        pytest.skip(f"{path} is not available on this machine")
    source = saft_source(spool_dir, currency="DKK", timezone="Europe/Copenhagen")
    config = make_agent_config(sources=[source])
    (spool_dir / "dk.xml").write_bytes(path.read_bytes())
    assert cli("run", "--once", "-c", str(config)).returncode in (0, 3)  # 3: rejected receipts

    result = cli("reconcile", "-c", str(config), "--date", "2025-10-25", "--json")

    assert result.returncode == 0, result.stdout
    (day,) = orjson.loads(result.stdout)["days"]
    assert (day["numbering"]["first"], day["numbering"]["last"]) == (
        "25102501030001", "25102501030013",
    )  # fmt: skip
    assert (day["counts"]["receipt"], day["counts"]["rejected"]) == (11, 2)
    assert day["control"] == {}
    assert any("31 X reports" in line for line in day["unchecked"])


class _ShutdownDuringWait(threading.Event):
    """A stop event that a shutdown sets while the reconciler waits (the daemon's SIGTERM)."""

    def wait(self, timeout: float | None = None) -> bool:
        self.set()
        return True


def test_reconcile_remote_stops_retrying_when_shutdown_comes_during_a_backoff(
    saft_config: Callable[..., Path], spool_dir: Path, sandbox: Sandbox
) -> None:
    """A shutdown that arrives while a failed search waits for its retry ends the checks:
    the remaining tries are not run back to back.

    1. Take in and send receipts 1–3; the sandbox then answers every search with 503.
    2. Reconcile with `remote: all` in the daemon's way (a stop event), the shutdown
       arriving during the first wait.
    Result: one search reached the sandbox (not the five tries of a retry); the day says
    the remote check was interrupted by shutdown and checked nothing.
    """
    config_path = saft_config()
    _take_in(config_path, spool_dir, "day.xml", saft([_tx(1), _tx(2), _tx(3)]))
    sandbox.set_faults(error_rate=1.0, error_status=503, endpoints=["search"])
    config = load_config(config_path)
    db = StateDB(config.db_path)
    client = open_client(config.dintero)
    try:
        runner = Reconciler(config, db, client, stop=_ShutdownDuringWait())
        (day,) = runner.run(date=DAY, remote="all")
    finally:
        client.close()
        db.close()

    searches = [r for r in sandbox.state.requests() if r.path.endswith("/receipts/search")]
    assert len(searches) == 1
    assert "remote: interrupted by shutdown" in day["unchecked"]
    assert day["remote"] == {"checked": 0, "missing": []}
