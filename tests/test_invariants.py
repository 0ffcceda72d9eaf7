"""Tests of invariants.py: each invariant kept, and each broken one named with its numbers."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from receipt_agent import invariants
from receipt_agent.config import DinteroJsonSource
from receipt_agent.formats import InvalidRecord, RawReceipt
from receipt_agent.invariants import check_invariants
from receipt_agent.mapping import ValidReceipt, finish_receipt

# 2 items at 25 % (one with a 10.00 discount), a 0 % tip; paid 500.00 in cash, rounded -0.50.
GOOD: dict[str, Any] = {
    "store": {"id": "sc029"},
    "receipt_id": "1",
    "purchase_at": "2026-01-15T12:00:00+01:00",
    "gross_amount": 50050,
    "net_amount": 49050,
    "total_discount": 1000,
    "items": [
        {
            "quantity": 2, "gross_amount": 30000, "net_amount": 29000,
            "discount_lines": [{"amount": 1000}],
            "tax_lines": [{"percentage": 25, "amount": 5800, "tax_basis": 23200}],
        },
        {
            "quantity": 1, "gross_amount": 15050, "net_amount": 15050,
            "tax_lines": [{"percentage": 25, "amount": 3010, "tax_basis": 12040}],
        },
        {"quantity": 1, "gross_amount": 5000, "net_amount": 5000, "tax_percent": 0},
    ],
    "tax_lines": [{"percentage": 25, "amount": 8810, "tax_basis": 35240}],
    "payments": [{"amount": 49000}],
}  # fmt: skip
ROUNDING = {"_rounding": -50}


def broken(data: dict[str, Any], private: dict[str, Any] | None = None) -> list[str]:
    return check_invariants(data, ROUNDING if private is None else private)


def changed(**fields: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    data.update(fields)
    return data


def test_invariants_good_receipt_keeps_them_all() -> None:
    """A receipt whose lines, VAT, discounts, payments and rounding agree passes unchanged."""
    assert broken(GOOD) == []


def test_invariants_items_must_sum_to_gross_and_net() -> None:
    """Σ items gross/net ≠ the receipt's: both sums and the difference are named."""
    assert broken(changed(gross_amount=50150, net_amount=49150, total_discount=1000)) == [
        "invariant Σ items.gross_amount = gross_amount is broken: the 3 items sum to 50050 but "
        "gross_amount is 50150 (difference 100)",
        "invariant Σ items.net_amount = net_amount is broken: the 3 items sum to 49050 but "
        "net_amount is 49150 (difference 100)",
        "invariant Σ payments = amount due ± rounding is broken: the payments sum to 49000 = "
        "49000 but net_amount 49150 plus rounding -50 = 49100 (difference -100)",
    ]


def test_invariants_item_tax_split_allows_one_ore_per_line() -> None:
    """VAT amount + basis may miss the item's net by 1 øre per tax line, never more."""
    data = copy.deepcopy(GOOD)
    data["items"][0]["tax_lines"][0]["tax_basis"] = 23201
    data["tax_lines"][0]["tax_basis"] = 35241
    assert broken(data) == []
    data["items"][0]["tax_lines"][0]["tax_basis"] = 23202
    assert broken(data) == [
        "items[0]: invariant tax amount + tax_basis = net_amount is broken: the tax lines add up "
        "to 29002 but net_amount is 29000 (difference -2, at most 1 allowed for rounding)"
    ]


def test_invariants_receipt_tax_lines_cover_the_taxed_items() -> None:
    """The receipt's VAT lines must add up to the net of the items carrying VAT (or the whole)."""
    data = changed(tax_lines=[{"percentage": 25, "amount": 8810, "tax_basis": 40000}])
    assert broken(data) == [
        "invariant tax amount + tax_basis = net_amount is broken for the receipt: its tax lines "
        "add up to 48810 but the items they cover have net_amount 44050 (difference -4760, at "
        "most 1 allowed for rounding)"
    ]


def test_invariants_receipt_tax_lines_may_cover_the_whole_receipt() -> None:
    """A till that writes a 0 % VAT line for the tip covers the whole net: that adds up too."""
    zero = {"percentage": 0, "amount": 0, "tax_basis": 5000}
    assert broken(changed(tax_lines=[*GOOD["tax_lines"], zero])) == []


def test_invariants_tax_added_on_top_is_not_split_from_the_net() -> None:
    """US-style tax lines (`included_in_price: false`) are not held to amount + basis = net."""
    data = copy.deepcopy(GOOD)
    for line in [*data["tax_lines"], *data["items"][0]["tax_lines"]]:
        line.update(included_in_price=False, tax_basis=1)
    assert broken(data) == []


def test_invariants_payments_must_match_due_with_recorded_rounding() -> None:
    """Without the recorded rounding, 490.00 paid on 490.50 due is named with both figures."""
    assert broken(GOOD, {}) == [
        "invariant Σ payments = amount due ± rounding is broken: the payments sum to 49000 = "
        "49000 but net_amount 49050 = 49050 (difference -50)"
    ]
    assert broken(GOOD, {"_change": 100, "_rounding": -150}) == []


def test_invariants_round_off_to_coin_allows_half_a_coin_without_recorded_rounding() -> None:
    """A till's own JSON with round_off_to_coin 100 may pay up to 0.50 off the net, not more."""
    assert broken(changed(round_off_to_coin=100), {}) == []
    data = changed(round_off_to_coin=100, payments=[{"amount": 48900}])
    assert "(difference -150, at most 50 allowed by round_off_to_coin 100)" in broken(data, {})[0]


def test_invariants_amount_due_wins_over_net() -> None:
    """Tax on top: payments are held to amount_due, not to net_amount."""
    assert broken(changed(amount_due=49050), {}) == [
        "invariant Σ payments = amount due ± rounding is broken: the payments sum to 49000 = "
        "49000 but amount_due 49050 = 49050 (difference -50)"
    ]
    assert broken(changed(amount_due=49000), {}) == []


def test_invariants_total_discount_is_gross_minus_net() -> None:
    """total_discount must equal gross − net; a receipt without it is not held to it."""
    assert broken(changed(total_discount=900)) == [
        "invariant gross_amount − net_amount = total_discount is broken: 50050 − 49050 = 1000 "
        "but total_discount is 900"
    ]
    data = copy.deepcopy(GOOD)
    del data["total_discount"]
    assert broken(data) == []


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"quantity": -1, "gross_amount": 8990, "net_amount": 8990},
            "quantity negative but gross_amount and net_amount positive (quantity -1, "
            "gross_amount 8990, net_amount 8990); a return has every sign negative, a sale "
            "every sign positive",
        ),
        (
            {"quantity": Decimal("-0.5"), "gross_amount": -450, "net_amount": -450},
            "quantity -0.5, gross_amount -450, net_amount -450 is negative but is_return_item "
            "is not true",
        ),
        (
            {"quantity": 1, "gross_amount": 450, "net_amount": 450, "is_return_item": True},
            "is_return_item is true but quantity 1, gross_amount 450, net_amount 450 is "
            "positive (a return sent as a sale)",
        ),
    ],
)
def test_invariants_return_items_have_agreeing_negative_signs(
    item: dict[str, Any], message: str
) -> None:
    """A return sent as a sale, unmarked, or with disagreeing signs is named item by item."""
    data = {"receipt_id": "1", "items": [item]}
    assert check_invariants(data, {}) == [f"items[0]: invariant return-sign is broken: {message}"]


def test_invariants_a_voided_offset_line_need_not_be_a_return() -> None:
    """NCR's negative void line (`voided: true`) keeps agreeing signs without is_return_item."""
    item = {"quantity": -2.2, "gross_amount": -130, "net_amount": -130, "voided": True}
    assert check_invariants({"items": [item]}, {}) == []


def test_invariants_purchase_at_needs_an_offset() -> None:
    """A naive purchase_at string breaks the offset invariant (the model refuses it first)."""
    assert check_invariants({"purchase_at": "2026-01-15T12:00:00"}, {}) == [
        "invariant purchase_at has an offset is broken: it has none; a local time must be read "
        "in the source's timezone"
    ]


def test_finish_receipt_rejects_a_receipt_that_breaks_an_invariant(tmp_path: Path) -> None:
    """Through mapping: the receipt is rejected with the invariant's sentence, never sent."""
    source = DinteroJsonSource.model_validate(
        {"name": "t", "path": tmp_path, "format": "dintero-json", "store": {"id": "sc029"}}
    )
    good = finish_receipt(RawReceipt(data={**GOOD, **ROUNDING}, location="[0]"), source)
    assert isinstance(good, ValidReceipt)
    bad = finish_receipt(RawReceipt(data=changed(total_discount=1), location="[1]"), source)
    assert isinstance(bad, InvalidRecord)
    assert bad.receipt_id == "1"
    assert any("total_discount" in error for error in bad.errors)


_ODD = st.sampled_from(["absent", None, True, 1.5, Decimal(2), -1, 0, "7", [], {}])
_SMALL = st.sampled_from([0, 0, 0, 0, 0, 0, 1, -1, 2])  # how far a figure is from agreeing
_TIMES = [
    "2026-01-15T12:00:00+01:00", "2026-01-15T12:00:00-03:30", "2026-01-15T12:00Z",
    "2026-01-15T12:00:00", "2026-01-15", "20260115T120000-0100", "not a time-at-all",
    "2026-01-15T12:00:00+0",
]  # fmt: skip
MIXED_SIGNS = [(-1, 1, 1), (1, -1, 1), (1, 1, -1), (1, -1, -1)]


@st.composite
def _receipts(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A receipt whose figures (nearly) agree, then a few values made odd or removed."""
    items = []
    for _ in range(draw(st.integers(0, 3))):
        # Signs of quantity, gross and net: a sale, a return, now and then a mix.
        signs = draw(st.sampled_from([(1, 1, 1)] * 6 + [(-1, -1, -1)] * 2 + MIXED_SIGNS))
        sign = signs[2]
        net = sign * draw(st.integers(0, 60))
        item: dict[str, Any] = {
            "quantity": signs[0] * draw(st.sampled_from([1, 2, 0.5, 0])),
            "gross_amount": signs[1] * (abs(net) + draw(st.sampled_from([0, 0, 10]))),
            "net_amount": net,
        }
        if sign < 0 or draw(st.integers(0, 9)) == 0:
            item["is_return_item"] = draw(st.booleans())
        if draw(st.booleans()):
            tax = sign * draw(st.integers(0, abs(net)))
            item["tax_lines"] = [{"amount": tax, "tax_basis": net - tax + draw(_SMALL)}]
            if draw(st.booleans()):
                item["tax_lines"].append(
                    {"amount": 3, "tax_basis": 9, "included_in_price": draw(st.booleans())}
                )
        items.append(item)
    net = sum(item["net_amount"] for item in items) + draw(_SMALL)
    gross = sum(item["gross_amount"] for item in items) + draw(_SMALL)
    covered = sum(item["net_amount"] for item in items if "tax_lines" in item)
    data: dict[str, Any] = {
        "purchase_at": draw(st.sampled_from(_TIMES)),
        "items": items,
        "gross_amount": gross,
        "net_amount": net,
        "tax_lines": [
            {"amount": 0, "tax_basis": draw(st.sampled_from([covered, net])) + draw(_SMALL)}
        ],
    }
    private: dict[str, Any] = {}
    due = net
    if draw(st.booleans()):
        data["amount_due"] = due = net + draw(_SMALL)
    if draw(st.booleans()):
        private["_rounding"] = draw(st.integers(-3, 3))
    if draw(st.booleans()):
        private["_change"] = draw(st.integers(0, 5))
    if draw(st.booleans()):
        data["round_off_to_coin"] = draw(st.sampled_from([0, 4, 100]))
    if draw(st.booleans()):
        data["total_discount"] = gross - net + draw(_SMALL)
    paid = due + private.get("_rounding", 0) + private.get("_change", 0) + draw(_SMALL)
    data["payments"] = [{"amount": paid - 1}, {"amount": 1}]
    lines = [line for item in items for line in item.get("tax_lines", [])]
    parents = [data, private, *items, *data["payments"], *data["tax_lines"], *lines]
    for _ in range(draw(st.integers(0, 2))):  # a few odd values anywhere
        parent: dict[str, Any] = draw(st.sampled_from(parents))
        key = draw(
            st.sampled_from(
                [
                    "items", "tax_lines", "payments", "gross_amount", "net_amount", "amount_due",
                    "quantity", "is_return_item", "amount", "tax_basis", "included_in_price",
                    "_change", "_rounding", "round_off_to_coin", "total_discount", "purchase_at",
                ]
            )
        )  # fmt: skip
        value = draw(_ODD)
        if value == "absent":
            parent.pop(key, None)
        else:
            parent[key] = value
    return data, private


def _one_item(**changes: Any) -> dict[str, Any]:
    """A one-item card sale that keeps every invariant, with `changes` made."""
    data: dict[str, Any] = {
        "purchase_at": "2026-11-20T10:15:00+01:00",
        "gross_amount": 12500,
        "net_amount": 12500,
        "items": [
            {
                "quantity": 1, "gross_amount": 12500, "net_amount": 12500, "tax_percent": 25,
                "tax_lines": [{"amount": 2500, "percentage": 25, "tax_basis": 10000}],
            }
        ],
        "tax_lines": [{"amount": 2500, "percentage": 25, "tax_basis": 10000}],
        "payments": [{"amount": 12500, "type_id": "CARD"}],
    }  # fmt: skip
    data.update(changes)
    return data


_NEAR_MISSES = [  # each breaks exactly one rule, by a little
    (_one_item(items=[{**_one_item()["items"][0], "quantity": -1}]), {}),
    (_one_item(round_off_to_coin=4, payments=[{"amount": 12501}]), {"_rounding": 0}),
    (_one_item(tax_lines=[{"amount": 2500, "tax_basis": 9990}]), {}),
    (_one_item(payments=[{"amount": 12500}]), {"_change": 1}),
    (_one_item(total_discount=0, gross_amount=12600), {}),
]


@settings(max_examples=1000)
@given(_receipts())
@example(_NEAR_MISSES[0])
@example(_NEAR_MISSES[1])
@example(_NEAR_MISSES[2])
@example(_NEAR_MISSES[3])
@example(_NEAR_MISSES[4])
def test_invariants_glance_never_passes_a_receipt_the_checks_refuse(
    receipt: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Whatever the receipt, the one-pass glance says "keeps them all" only when every check
    finds nothing: the operator gets the same decisions and sentences as without it."""
    data, private = receipt
    if invariants._keeps_all_at_a_glance(data, private):
        assert invariants._problems(data, private) == []
    assert check_invariants(data, private) == invariants._problems(data, private)


def test_invariants_glance_decides_the_usual_receipts_alone() -> None:
    """A good receipt with discounts aside, tax lines, rounding and a tip, and a one-item
    card sale, are decided in the one pass (the checks' calls are not needed)."""
    usual = changed(total_discount=None)
    assert invariants._keeps_all_at_a_glance(usual, ROUNDING)
    assert invariants._keeps_all_at_a_glance(_one_item(), {})
    for data, private in _NEAR_MISSES:
        assert check_invariants(data, private) != []
