"""`receipt-agent demo` from the installed package: bundled samples of every format."""

from __future__ import annotations

import pytest
from support import cli

pytestmark = pytest.mark.e2e


def test_demo_runs_every_format_through_the_sandbox_and_exits_0() -> None:
    """The demo (installed package data included) sends, quarantines and reports as promised.

    Result: exit 0; a row per format; the broken sample quarantined; a report file and a
    test settlement report from the sandbox.
    """
    result = cli("demo", timeout=120)
    assert result.returncode == 0, result.stderr
    for source in ("demo-dintero-json", "demo-csv", "demo-saft", "demo-poslog"):
        assert source in result.stdout
    assert "report demo-daily: demo-daily-" in result.stdout
    assert "test settlement report: 201" in result.stdout


def test_demo_prints_the_reconciliation_with_the_gap_of_its_saft_sample() -> None:
    """The demo's reconciliation names the receipt missing from its second SAF-T export, the
    Z total that counts it (one 45.00 receipt), and the receipt the sandbox lost."""
    result = cli("demo", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "demo-saft demo-saft register K1: 1 missing: 5009" in result.stdout
    assert "cash_sales: till 18000, receipts 13500, difference -4500" in result.stdout
    assert "not held by Dintero: demo-saft-K2-102" in result.stdout
