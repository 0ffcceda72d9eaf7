"""Tests of totals.py: the cross-checks the SAF-T, POSLog and CSV parsers run on receipts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import make_receipt

from receipt_agent.totals import check_totals

# formats.md §1.3: the SAF-T worked example (transaction 1001): 295.40 paid as 295.00 cash.
SAFT_1001: dict[str, Any] = {
    "gross_amount": 29540,
    "net_amount": 29540,
    "items": [
        {"line_id": 1, "quantity": 1, "gross_amount": 11600, "net_amount": 11600},
        {"line_id": 2, "quantity": 6, "gross_amount": 17940, "net_amount": 17940},
    ],
    "payments": [{"line_id": 1, "amount": 29500, "type_id": "CASH"}],
    "_rounding": -40,
}


def test_check_totals_saft_worked_example_with_cash_rounding_adds_up() -> None:
    """The SAF-T example (295.40 paid as 295.00 cash, rounding -0.40) passes every cross-check."""
    assert check_totals(SAFT_1001) == []


def test_check_totals_items_not_matching_gross_names_both_numbers() -> None:
    """Lines that do not add up to gross_amount are reported with both sums."""
    data = {"gross_amount": 12500, "items": [{"gross_amount": 12000}, {"gross_amount": 300}]}
    assert check_totals(data) == ["items sum to 12300 but gross_amount is 12500"]


def test_check_totals_items_not_matching_net_names_both_numbers() -> None:
    """Lines whose net amounts do not add up to net_amount are reported with both sums."""
    data = {"net_amount": 900, "items": [{"net_amount": 500}, {"net_amount": 500}]}
    assert check_totals(data) == ["items' net_amount sum to 1000 but net_amount is 900"]


def test_check_totals_payments_compared_with_net_after_discount() -> None:
    """Payments are checked against the total after discounts, not the gross."""
    data = {
        "gross_amount": 10000,
        "net_amount": 8000,
        "items": [{"gross_amount": 10000, "net_amount": 8000}],
        "payments": [{"amount": 8000}],
    }
    assert check_totals(data) == []
    data["payments"] = [{"amount": 10000}]
    assert check_totals(data) == ["payments sum to 10000 but net_amount is 8000"]


def test_check_totals_payment_mismatch_with_rounding_shows_the_arithmetic() -> None:
    """A cash payment that misses the rounded total names the total, the rounding and the sum."""
    data = dict(SAFT_1001, payments=[{"amount": 29400}])
    assert check_totals(data) == [
        "payments sum to 29400 but net_amount 29540 plus rounding -40 is 29500"
    ]


def test_check_totals_round_off_to_coin_is_not_a_rounding_amount() -> None:
    """round_off_to_coin (a granularity such as 100) does not excuse a payment difference."""
    data = {"net_amount": 29540, "round_off_to_coin": 100, "payments": [{"amount": 29500}]}
    assert check_totals(data) == ["payments sum to 29500 but net_amount is 29540"]


def test_check_totals_change_handed_back_is_subtracted() -> None:
    """Tendered cash minus the recorded change must equal the total."""
    data = {"net_amount": 29500, "payments": [{"amount": 30000}], "_change": 500}
    assert check_totals(data) == []
    data["_change"] = 400
    assert check_totals(data) == [
        "payments sum to 30000 minus change 400 = 29600 but net_amount is 29500"
    ]


def test_check_totals_uses_gross_when_net_is_absent() -> None:
    """A receipt without net_amount has its payments checked against gross_amount."""
    data = {"gross_amount": 5000, "payments": [{"amount": 2000}, {"amount": 2000}]}
    assert check_totals(data) == ["payments sum to 4000 but gross_amount is 5000"]


def test_check_totals_counts_voided_lines_and_negative_returns() -> None:
    """A voided line carries its offsetting amount, so every line counts, returns too."""
    data = {
        "gross_amount": 1000,
        "items": [
            {"gross_amount": 1500},
            {"gross_amount": -1500, "voided": True},
            {"gross_amount": 1500},
            {"gross_amount": -500, "is_return_item": True},
        ],
        "payments": [{"amount": 1500}, {"amount": -500}],
    }
    assert check_totals(data) == []


@pytest.mark.parametrize(
    "data",
    [
        {"gross_amount": 100},
        {"gross_amount": 100, "items": []},
        {"gross_amount": 100, "items": [{"gross_amount": 50}, {}]},
        {"gross_amount": 100, "items": [{"gross_amount": 50.0}]},
        {"gross_amount": "100", "items": [{"gross_amount": 50}]},
        {"gross_amount": 100, "items": [{"gross_amount": 50}, "line"]},
        {"gross_amount": 100, "items": [{"gross_amount": True}]},
        {"net_amount": 100, "payments": [{"amount": 50}, {"type_id": "CASH"}]},
        {"payments": [{"amount": 50}]},
    ],
)
def test_check_totals_with_missing_or_malformed_amounts_skips_the_rule(
    data: dict[str, Any],
) -> None:
    """A cross-check whose amounts are absent or not integers is skipped; validation reports."""
    assert check_totals(data) == []


def test_check_totals_tolerance_allows_small_differences() -> None:
    """A caller may allow a difference of a few minor units; larger ones are still reported."""
    data = {"gross_amount": 1001, "items": [{"gross_amount": 1000}]}
    assert check_totals(data, tolerance_minor=1) == []
    assert check_totals(data, tolerance_minor=0) == ["items sum to 1000 but gross_amount is 1001"]


@given(
    lines=st.lists(st.integers(min_value=-(10**9), max_value=10**9), min_size=1, max_size=20),
    rounding=st.integers(min_value=-99, max_value=99),
    error=st.integers(min_value=-(10**6), max_value=10**6).filter(lambda n: n != 0),
)
def test_check_totals_consistent_receipts_pass_and_any_gross_error_is_reported(
    lines: list[int], rounding: int, error: int
) -> None:
    """A receipt whose lines add up passes; shifting its gross by any amount is reported once."""
    total = sum(lines)
    data: dict[str, Any] = {
        "gross_amount": total,
        "net_amount": total,
        "items": [{"gross_amount": line, "net_amount": line} for line in lines],
        "payments": [{"amount": total + rounding}],
        "_rounding": rounding,
    }
    assert check_totals(data) == []
    data["gross_amount"] = total + error
    assert check_totals(data) == [f"items sum to {total} but gross_amount is {total + error}"]


@pytest.mark.parametrize("amount", [1, 99, 12500, 1_000_000])
def test_the_tests_receipt_builder_obeys_the_totals_rule(amount: int) -> None:
    """support.make_receipt, which most tests feed to the agent, builds receipts that add up."""
    receipt = make_receipt(7, amount=amount)
    assert check_totals(receipt) == []
    (tax,) = receipt["items"][0]["tax_lines"]
    assert tax["amount"] + tax["tax_basis"] == amount
