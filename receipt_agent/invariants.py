"""The invariants every mapped receipt keeps before it is queued, whatever its format.

Checked by `mapping.finish_receipt` on every receipt of every format (dintero-json, CSV,
SAF-T, POSLog) after it has validated against `model.Receipt`; a receipt that breaks one is
`rejected` with one sentence per broken invariant, naming the invariant and the numbers
(integer minor units), never sent (CONTRACT §3, §4). Pure and stdlib only: values in,
sentences out; no I/O, no logging. It never quotes anything but amounts and field paths.

The invariants (formats.md §0.6, §6.2; issue 13), all in integer minor units:

1. **items-gross**: Σ `items[].gross_amount` = `gross_amount`; **items-net**: Σ
   `items[].net_amount` = `net_amount` (both VAT-inclusive, before / after discounts).
2. **tax-split**: per item and per receipt, for the VAT-inclusive tax lines (those whose
   `included_in_price` is not `false`), Σ (`amount` + `tax_basis`) = the net they cover,
   within 1 øre per tax line (tills round amount and basis separately). An item's lines
   cover its `net_amount`; the receipt's lines cover Σ `net_amount` of the items that carry
   tax lines (an item without any, e.g. a tip outside VAT, is covered by neither), or the
   whole `net_amount` (a till that writes a 0 % line for the tip).
3. **payments**: Σ `payments[].amount` − `_change` = the amount due + `_rounding`, where the
   amount due is `amount_due`, else `net_amount`, else `gross_amount`. A receipt with
   `round_off_to_coin` and no recorded `_rounding` (a till's own Dintero JSON) may differ by
   at most half that coin.
4. **discount**: `gross_amount` − `net_amount` = `total_discount` (when `total_discount` is
   given).
5. **return-sign**: an item with a negative `quantity`, `gross_amount` or `net_amount` is a
   return item (`is_return_item: true`), and the signs of its quantity and amounts agree; an
   item marked `is_return_item` has no positive amount. A `voided: true` line (NCR's
   offsetting void, formats.md §4.2) need not be a return item, but its signs still agree.
6. **offset**: `purchase_at` carries a UTC offset.

A rule is skipped where the receipt does not carry the numbers it needs (no items, no
payments, no tax basis, …): absence is for validation and for Dintero to judge, a
contradiction is ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any


def check_invariants(data: Mapping[str, Any], private: Mapping[str, Any]) -> list[str]:
    """Given a receipt that validated and its private keys, return one sentence per broken
    invariant (module docstring), or [] when it keeps them all."""
    if _keeps_all_at_a_glance(data, private):
        return []
    return _problems(data, private)


def _problems(data: Mapping[str, Any], private: Mapping[str, Any]) -> list[str]:
    """Every check, each broken invariant worded (`check_invariants` without its glance)."""
    problems: list[str] = []
    items = _dicts(data.get("items"))
    _check_sums(data, items, problems)
    _check_tax(data, items, problems)
    _check_payments(data, private, problems)
    if data.get("total_discount") is not None:  # most receipts have none
        _check_discount(data, problems)
    for index, item in enumerate(items):
        if _is_plain_sale(item):
            continue
        sentence = _return_sign(item)
        if sentence:
            problems.append(f"items[{index}]: invariant return-sign is broken: {sentence}")
    if not _has_offset(data.get("purchase_at")):
        problems.append(
            "invariant purchase_at has an offset is broken: it has none; a local time must be "
            "read in the source's timezone"
        )
    return problems


def _keeps_all_at_a_glance(data: Mapping[str, Any], private: Mapping[str, Any]) -> bool:
    """True when the receipt keeps every invariant, decided in one pass over the usual shape
    (lists of objects holding exact ints, plain sales); False when it breaks one or looks
    otherwise, and the checks below then decide and word it.

    The rules of the checks below on that shape, nothing looser: it never says True of a
    receipt they would find a problem in (tests/test_invariants.py compares the two).
    Every receipt is checked, so it is written for the interpreter: one function, no
    lists built (callgrind, a one-item receipt: ~19,000 instructions instead of ~35,000).
    """
    items = data.get("items")
    gross_sum = net_sum = covered = 0
    has_gross = has_net = any_item_split = False
    if items:
        if type(items) is not list:
            return False
        has_gross = has_net = True  # every item has the amount (else no Σ to check)
        for item in items:
            if type(item) is not dict:
                return False
            quantity, gross, net = (
                item.get("quantity"),
                item.get("gross_amount"),
                item.get("net_amount"),
            )
            # A plain sale (_is_plain_sale): else _return_sign decides.
            if quantity is not None and not (
                (type(quantity) is int or type(quantity) is float) and quantity >= 0
            ):
                return False
            if gross is None:
                has_gross = False
            elif type(gross) is int and gross >= 0:
                gross_sum += gross
            else:
                return False
            if net is None:
                has_net = False
            elif type(net) is int and net >= 0:
                net_sum += net
            else:
                return False
            if item.get("is_return_item") is True:
                return False
            lines = item.get("tax_lines")
            if lines is not None:  # _check_tax on this item
                summed = _glance_tax_sum(lines)
                if summed is None:
                    return False
                split, count = summed
                if count:
                    if net is None or abs(split - net) > count:
                        return False
                    any_item_split = True
                    covered += net
    gross, net = data.get("gross_amount"), data.get("net_amount")
    if has_gross and gross is not None and (type(gross) is not int or gross != gross_sum):
        return False
    if has_net and net is not None and (type(net) is not int or net != net_sum):
        return False
    if any_item_split and not _glance_receipt_tax(data.get("tax_lines"), covered, net):
        return False
    if data.get("total_discount") is not None or not _glance_payments(data, private):
        return False
    purchase_at = data.get("purchase_at")
    if type(purchase_at) is str:  # as dintero_json._localize reads it: see _glance_offset
        return (
            purchase_at.find("+", 11) > 0
            or purchase_at.find("-", 11) > 0
            or purchase_at.endswith("Z")
        )
    return _has_offset(purchase_at)


def _glance_receipt_tax(lines: object, covered: int, whole: object) -> bool:
    """`_check_tax` on the receipt's own tax lines finds nothing, on exact ints."""
    if lines is None:
        return True
    if whole is not None and type(whole) is not int:
        return False
    summed = _glance_tax_sum(lines)
    if summed is None:
        return False
    total, count = summed
    return not (
        count and abs(total - covered) > count and (whole is None or abs(total - whole) > count)
    )


def _glance_tax_sum(lines: object) -> tuple[int, int] | None:
    """(amount + tax_basis summed, lines counted) over the tax lines included in price, on
    exact ints; None when they are not a list of such lines (the full checks decide)."""
    if type(lines) is not list:
        return None
    total = count = 0
    for line in lines:
        if type(line) is not dict:
            return None
        if line.get("included_in_price") is False:
            continue
        amount, basis = line.get("amount"), line.get("tax_basis")
        if type(amount) is not int or type(basis) is not int:
            return None
        total += amount + basis
        count += 1
    return total, count


def _glance_payments(data: Mapping[str, Any], private: Mapping[str, Any]) -> bool:
    """`_check_payments` finds nothing, on exact ints."""
    payments = data.get("payments")
    if payments is None:
        return True
    if type(payments) is not list:
        return False
    paid = 0
    for payment in payments:
        if type(payment) is not dict:
            return False
        amount = payment.get("amount")
        if type(amount) is not int:
            return False
        paid += amount
    if not payments:
        return True
    due = data.get("amount_due")  # else net_amount, else gross_amount: the amount due
    if due is None:
        due = data.get("net_amount")
        if due is None:
            due = data.get("gross_amount")
            if due is None:
                return True
    if type(due) is not int:
        return False
    coin = data.get("round_off_to_coin")
    if coin is None and not private:  # the usual receipt: no change, rounding or coin
        return paid == due
    change: Any = 0
    rounding: Any = None
    if private:
        change, rounding = private.get("_change"), private.get("_rounding")
        if change is None:
            change = 0
        if type(change) is not int or (rounding is not None and type(rounding) is not int):
            return False
    if coin is None:
        coin = 0
    elif type(coin) is not int:
        return False
    allowed = coin // 2 if rounding is None and coin > 0 else 0
    difference: int = paid - change - (due + (rounding or 0))
    return abs(difference) <= allowed


def _check_discount(data: Mapping[str, Any], problems: list[str]) -> None:
    gross = _int(data.get("gross_amount"))
    net = _int(data.get("net_amount"))
    discount = _int(data.get("total_discount"))
    if gross is not None and net is not None and discount is not None and gross - net != discount:
        problems.append(
            f"invariant gross_amount − net_amount = total_discount is broken: {gross} − {net} "
            f"= {gross - net} but total_discount is {discount}"
        )


def _check_sums(data: Mapping[str, Any], items: list[dict[str, Any]], problems: list[str]) -> None:
    if not items:
        return
    for key in ("gross_amount", "net_amount"):
        total = data.get(key)
        if type(total) is not int:
            total = _int(total)
            if total is None:
                continue
        line_sum = 0
        for item in items:  # a loop, not a list: this runs for every receipt
            line = item.get(key)
            if type(line) is not int:
                line = _int(line)
                if line is None:
                    break  # an item without this amount: nothing to check
            line_sum += line
        else:
            if line_sum != total:
                problems.append(
                    f"invariant Σ items.{key} = {key} is broken: the {len(items)} items sum to "
                    f"{line_sum} but {key} is {total} (difference {total - line_sum})"
                )


def _tax_sum(tax_lines: object) -> tuple[int, int] | None:
    """Σ (amount + tax_basis) of the VAT-inclusive lines and their count; None if unknown."""
    total = count = 0
    for line in _dicts(tax_lines):
        if line.get("included_in_price") is False:
            continue
        amount, basis = line.get("amount"), line.get("tax_basis")
        if type(amount) is not int or type(basis) is not int:
            amount, basis = _int(amount), _int(basis)
            if amount is None or basis is None:
                return None
        total += amount + basis
        count += 1
    return (total, count) if count else None


def _check_tax(data: Mapping[str, Any], items: list[dict[str, Any]], problems: list[str]) -> None:
    covered = 0
    any_item_split = False  # whether some item carries VAT-inclusive tax lines
    for index, item in enumerate(items):
        lines = item.get("tax_lines")
        if lines is None:
            continue  # no tax lines: no split to check, nothing covered
        split, net = _tax_sum(lines), _int(item.get("net_amount"))
        if split is not None:
            any_item_split = True
        if split is None or net is None:
            continue
        covered += net
        total, count = split
        if abs(total - net) > count:
            problems.append(
                f"items[{index}]: invariant tax amount + tax_basis = net_amount is broken: "
                f"the tax lines add up to {total} but net_amount is {net} "
                f"(difference {net - total}, at most {count} allowed for rounding)"
            )
    split = _tax_sum(data.get("tax_lines"))
    if split is None or not any_item_split:
        return
    total, count = split
    whole = _int(data.get("net_amount"))
    if abs(total - covered) > count and (whole is None or abs(total - whole) > count):
        problems.append(
            f"invariant tax amount + tax_basis = net_amount is broken for the receipt: its "
            f"tax lines add up to {total} but the items they cover have net_amount {covered} "
            f"(difference {covered - total}, at most {count} allowed for rounding)"
        )


def _check_payments(
    data: Mapping[str, Any], private: Mapping[str, Any], problems: list[str]
) -> None:
    payments = _dicts(data.get("payments"))
    if not payments:
        return
    paid = 0
    for payment in payments:  # a loop, not a list: this runs for every receipt
        amount = payment.get("amount")
        if type(amount) is not int:
            amount = _int(amount)
            if amount is None:
                return
        paid += amount
    for key in ("amount_due", "net_amount", "gross_amount"):
        found = _int(data.get(key))
        if found is not None:
            break
    else:
        return
    due = found or 0
    if private:
        change = _int(private.get("_change")) or 0
        rounding = _int(private.get("_rounding"))
    else:  # dintero-json: no private keys
        change, rounding = 0, None
    coin = _int(data.get("round_off_to_coin")) or 0
    allowed = coin // 2 if rounding is None and coin > 0 else 0
    difference = paid - change - (due + (rounding or 0))
    if abs(difference) <= allowed:
        return
    got = f"the payments sum to {paid}" + (f" minus change {change}" if change else "")
    want = f"{key} {due}" + (f" plus rounding {rounding}" if rounding else "")
    slack = f", at most {allowed} allowed by round_off_to_coin {coin}" if allowed else ""
    problems.append(
        f"invariant Σ payments = amount due ± rounding is broken: {got} = {paid - change} "
        f"but {want} = {due + (rounding or 0)} (difference {difference}{slack})"
    )


def _sign(value: object) -> int:
    kind = type(value)
    if kind is int or kind is float:  # the common case, without the isinstance checks
        return (value > 0) - (value < 0)  # type: ignore[operator]
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return 0
    return (value > 0) - (value < 0)


def _is_plain_sale(item: Mapping[str, Any]) -> bool:
    """No negative quantity or amount and not a return: `_return_sign` has nothing to say.

    Exact ints and floats only (the common case, without `_sign`'s calls); anything else
    is False and goes to `_return_sign`, which decides.
    """
    quantity, gross, net = item.get("quantity"), item.get("gross_amount"), item.get("net_amount")
    return (
        (quantity is None or ((type(quantity) is int or type(quantity) is float) and quantity >= 0))
        and (gross is None or (type(gross) is int and gross >= 0))
        and (net is None or (type(net) is int and net >= 0))
        and item.get("is_return_item") is not True
    )


def _return_sign(item: Mapping[str, Any]) -> str | None:
    is_return = item.get("is_return_item") is True
    if not is_return and (
        _sign(item.get("quantity")) >= 0
        and _sign(item.get("gross_amount")) >= 0
        and _sign(item.get("net_amount")) >= 0
    ):
        return None  # no negative sign and not a return: nothing to say (the common sale)
    signs = {key: _sign(item.get(key)) for key in ("quantity", "gross_amount", "net_amount")}
    present = {key: sign for key, sign in signs.items() if sign}
    negative = [key for key, sign in present.items() if sign < 0]
    positive = [key for key, sign in present.items() if sign > 0]
    described = ", ".join(f"{key} {item.get(key)}" for key in present)
    if negative and positive:
        return (
            f"{' and '.join(negative)} negative but {' and '.join(positive)} positive "
            f"({described}); a return has every sign negative, a sale every sign positive"
        )
    if negative and not is_return and item.get("voided") is not True:
        return f"{described} is negative but is_return_item is not true"
    if is_return and positive:
        return f"is_return_item is true but {described} is positive (a return sent as a sale)"
    return None


def _has_offset(value: object) -> bool:
    if isinstance(value, datetime):
        return value.utcoffset() is not None
    if not isinstance(value, str):
        return True  # validation reports a missing or mistyped purchase_at
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return True
    return parsed.utcoffset() is not None


def _int(value: object) -> int | None:
    if type(value) is int:  # the common case, without the isinstance checks
        return value
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dicts(value: object) -> list[dict[str, Any]]:
    """The objects of a JSON array; callers only read the list they get."""
    if type(value) is list:  # the common case (a JSON array), without the ABC isinstance
        for item in value:
            if not isinstance(item, dict):
                return [item for item in value if isinstance(item, dict)]
        return value  # every element an object (the usual case): no copy
    if value is None:
        return []
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [item for item in value if isinstance(item, dict)]
    return []
