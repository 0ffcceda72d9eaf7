"""VAT and sales tax of POSLog lines → Dintero `tax_lines` (formats.md §4.2), exact to the øre.

Helper of `formats.poslog_lines`. Pure, stdlib only; works on Decimal amounts in minor units
(øre) that the reader has already taken from the XML. Rules:

- **Basis.** `TaxableAmount` is the VAT basis, except when `@TaxIncludedInTaxableAmountFlag`
  (on `TaxableAmount` or on `Tax`) is true: then it includes the tax and the basis is
  `TaxableAmount − Amount`. Nordic tills write either spelling; 89.90 incl. 25 % VAT is
  `TaxableAmount 71.92` or `TaxableAmount 89.90 @TaxIncludedInTaxableAmountFlag="true"`,
  both with `Amount 17.98`, and both give `tax_basis` 7192. A `TaxableAmount` equal to the
  line's VAT-inclusive net, with an Amount that is the VAT contained in it, is read as
  including it (a till that leaves the flag out). Without `TaxableAmount`, VAT
  included in the price has basis = the line's net − tax.
- **Only a rate.** A `Tax` with a `Percent` and no `Amount` (ARTS Digital Receipt, some
  Visma exports) gets its amount and basis from the line's net with `money.split_vat`.
- **Fractions of øre.** Tax is computed, and some tills write it unrounded (`Amount
  2.67857`). Unlike a price, such a tax amount is rounded half-even to the øre and the
  exact figure is kept in `amount_dwh`/`tax_basis_dwh` (Dintero's decimal fields, in minor
  units): 2.67857 → `amount` 268, `amount_dwh` "267.857". When the exact tax and basis add
  up to the line's net, the basis is net − the rounded tax, so tax + basis = net exactly.
- **After a discount.** When a transaction-level discount is spread over an item, or an
  item's own VAT adds up to its gross before its discount (the till did not recompute it),
  the item's VAT is recomputed from its net (`rebase`): one rate → `split_vat`; several
  lines → each scaled by new net / old net, the last øre on the largest basis. So tax +
  basis = net again.
- **Signs.** Item lines take the item's sign (a return's VAT is negative). Transaction-level
  `LineItem/Tax` lines keep the sign written, except that a receipt whose net is negative
  and whose tax lines are all written unsigned (ARTS 6 allows only non-negative amounts) has
  them negated, like its Totals.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from receipt_agent.money import split_vat

_ONE = Decimal(1)
_AMOUNT_KEYS = ("amount", "tax_basis", "amount_dwh", "tax_basis_dwh")


def decode(
    *,
    percent: int | Decimal | None,
    amount: Decimal | None,
    taxable: Decimal | None,
    includes_tax: bool,
    included_in_price: bool,
    net: int | None,
) -> dict[str, Any]:
    """Given one Tax's figures (minor units, one sign), return its Dintero tax line.

    `net` is the line's VAT-inclusive net in the same sign (None for transaction-level tax,
    whose net is not known per rate).
    """
    line: dict[str, Any] = {"included_in_price": included_in_price}
    if percent is not None:
        line["percentage"] = percent
    if amount is None:
        if percent is not None and included_in_price and net is not None:
            basis_minor, vat = split_vat(net, percent)
            line["amount"], line["tax_basis"] = vat, basis_minor
        elif taxable is not None:
            _put(line, "tax_basis", taxable)
        return line
    if (
        taxable is not None
        and not includes_tax
        and included_in_price
        and net is not None
        and amount != 0
        and taxable == net
        and taxable + amount != net
        and (percent is None or abs(split_vat(int(taxable), percent)[1] - amount) <= 1)
    ):
        # TaxableAmount = the VAT-inclusive net and Amount is the VAT in it: the flag was
        # left out. (Not when Amount is the rate on TaxableAmount: that is a basis written
        # before a discount that happens to equal the net, e.g. 20 % off at 25 % VAT.)
        includes_tax = True
    basis: Decimal | None = None
    if taxable is not None:
        basis = taxable - amount if includes_tax else taxable
    elif included_in_price and net is not None:
        basis = net - amount
    amount_minor = _put(line, "amount", amount)
    if basis is not None:
        if included_in_price and net is not None and amount + basis == net:
            line["tax_basis"] = net - amount_minor
            if basis != basis.to_integral_value():
                line["tax_basis_dwh"] = _text(basis)
        else:
            _put(line, "tax_basis", basis)
    return line


def signed(line: dict[str, Any], sign: int) -> dict[str, Any]:
    """The tax line with its amounts (and their `*_dwh` texts) multiplied by `sign`."""
    if sign == 1:
        return line
    out = dict(line)
    for key in ("amount", "tax_basis"):
        if key in out:
            out[key] = -out[key]
        if f"{key}_dwh" in out:
            out[f"{key}_dwh"] = _text(-Decimal(out[f"{key}_dwh"]))
    return out


def rebase(item: dict[str, Any], old_net: int) -> None:
    """Recompute a VAT-inclusive item's tax lines after its net changed from `old_net`."""
    lines = [line for line in item.get("tax_lines", []) if line.get("included_in_price")]
    net = item["net_amount"]
    if not lines or net == old_net:
        return
    if len(lines) == 1 and "percentage" in lines[0]:
        line = lines[0]
        basis, vat = split_vat(net, line["percentage"])
        line["amount"], line["tax_basis"] = vat, basis
        line.pop("amount_dwh", None)
        line.pop("tax_basis_dwh", None)
        return
    if old_net == 0:
        return
    for line in lines:
        line.pop("amount_dwh", None)
        line.pop("tax_basis_dwh", None)
        for key in ("amount", "tax_basis"):
            if key in line:
                line[key] = _round(Decimal(line[key]) * net / old_net)
    with_basis = [line for line in lines if "tax_basis" in line]
    if with_basis:
        left = net - sum(line.get("amount", 0) + line.get("tax_basis", 0) for line in lines)
        max(with_basis, key=lambda line: abs(line["tax_basis"]))["tax_basis"] += left


def orient(lines: list[dict[str, Any]], net: int) -> list[dict[str, Any]]:
    """Transaction-level tax lines, negated when the receipt is a return written unsigned."""
    amounts = [line.get("amount", 0) for line in lines] + [
        line.get("tax_basis", 0) for line in lines
    ]
    if net < 0 and all(value >= 0 for value in amounts) and any(amounts):
        return [signed(line, -1) for line in lines]
    return lines


def sum_by_rate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Receipt tax lines: the items' tax lines summed per (rate, included_in_price).

    A `*_dwh` exact figure is summed too (items without one count their whole øre).
    """
    by_rate: dict[tuple[str, bool], dict[str, Any]] = {}
    exact: dict[tuple[str, bool], dict[str, Decimal]] = {}
    for item in items:
        for tax in item.get("tax_lines", []):
            key = (str(tax.get("percentage")), bool(tax.get("included_in_price")))
            total = by_rate.setdefault(
                key,
                {
                    k: v
                    for k, v in tax.items()
                    if k not in ("amount", "tax_basis") and "_dwh" not in k
                },
            )
            sums = exact.setdefault(key, {})
            for amount_key in ("amount", "tax_basis"):
                if amount_key in tax:
                    total[amount_key] = total.get(amount_key, 0) + tax[amount_key]
                    figure = tax.get(f"{amount_key}_dwh", tax[amount_key])
                    sums[amount_key] = sums.get(amount_key, Decimal(0)) + Decimal(figure)
                    if f"{amount_key}_dwh" in tax:
                        sums[f"{amount_key}_has_dwh"] = _ONE
    for key, total in by_rate.items():
        for amount_key in ("amount", "tax_basis"):
            if f"{amount_key}_has_dwh" in exact[key]:
                total[f"{amount_key}_dwh"] = _text(exact[key][amount_key])
    return list(by_rate.values())


def _put(line: dict[str, Any], key: str, value: Decimal) -> int:
    """Set `key` to the øre (half-even) and `key_dwh` to the exact figure when it has more."""
    minor = _round(value)
    line[key] = minor
    if value != minor:
        line[f"{key}_dwh"] = _text(value)
    return minor


def _round(value: Decimal) -> int:
    return int(value.quantize(_ONE, rounding=ROUND_HALF_EVEN))


def _text(value: Decimal) -> str:
    """A `*_dwh` text: plain digits, no exponent, no trailing zeros (`267.857`)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text
