"""The money inside one POSLog `RetailTransaction`: lines, discounts, tax, tenders, totals.

Helper of `formats.poslog` (split out for size). Pure: reads an already-parsed subtree with
local-name tags (`formats.xml_stream`), returns Dintero-shaped dicts; no I/O, no logging.
Never rounds: an amount finer than the currency's minor unit is an error of its receipt.

Rules (formats.md §4.2, decided here where the dialects differ):

- **Lines.** `LineItem/Sale` and `LineItem/Return` become items; a Return is negative
  (quantity and amounts), whatever sign the till wrote. `ExtendedAmount` is the line's gross
  (before discounts, VAT-inclusive in Nordic files); the discount is `ExtendedDiscountAmount`
  when non-zero, else Σ `RetailPriceModifier/Amount`; net = gross − discount.
- **Cancelled and voided lines.** `@CancelFlag="true"` lines never happened: dropped. NCR
  writes a void as an extra `@VoidFlag="true"` line with a negative amount that offsets an
  earlier line: both are kept and the void line gets `voided: true`, so the sums stay right.
  A `@VoidFlag` line with the sale's own sign (ARTS 6 marks the voided line itself) is
  dropped like a cancelled one: it has no offsetting partner.
- **Transaction-level discounts** (`LineItem/Discount`, NCR monetary `LoyaltyReward`) are put
  on items, because Dintero has no receipt-level discount line and Σ item net must equal
  the receipt's net: on the item whose `OperatorSequence` the reward references, else spread
  over the positive items pro rata (largest remainder, so nothing is lost to rounding). NCR
  writes each monetary reward twice (`acs:detailedData` and `acs:summarizedActivity` copies):
  only the detailed copies count when there are any, else the summarised ones. Non-monetary
  rewards (points, messages, custom offers) are not money and are ignored.
- **Tax.** Item `Sale/Tax` → `tax_lines` (`included_in_price` = `mapping.tax_included`).
  US-style transaction-level `LineItem/Tax` (tax on top) → receipt `tax_lines` only; items
  stay at the shelf price, and the amount the customer pays goes to `amount_due`. With
  `tax_included: false` and no `LineItem/Tax`, the items' own tax amounts are the tax on top
  (a file with both is read from the `LineItem/Tax` lines, never counted twice).
- **Tenders.** `Tender/Amount`; `@TypeCode="Refund"` is negative; a nested `TenderChange` or
  `Cashback` is subtracted (the payment is what the store kept); NCR's separate negative
  change tender is kept as written, and an ARTS 6 `LineItem/TenderChange` becomes a negative
  payment line. A `Rounding` (inside a Tender or as its own LineItem) is not a payment:
  `RoundingDirection="Up"` adds, `Down` subtracts, and the signed sum goes to the private
  `_rounding` key for `totals.check_totals` (and to `extra_info` `poslog.rounding`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.etree.ElementTree import Element

from receipt_agent.formats.xml_stream import child, children, text
from receipt_agent.money import AmountError, minor_to_major, to_minor

_MONETARY_REWARDS = {"Monetary"}


@dataclass
class Lines:
    """What one RetailTransaction adds up to; `errors` are sentences with element paths."""

    items: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    tax_lines: list[dict[str, Any]] = field(default_factory=list)
    tax_on_top: int = 0
    rounding: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    customer_id: str | None = None
    errors: list[str] = field(default_factory=list)


class LineReader:
    """Reads the lines of one RetailTransaction in `currency`; see the module docstring."""

    def __init__(self, currency: str, where: str, *, tax_included: bool) -> None:
        self.currency = currency
        self.where = where
        self.tax_included = tax_included
        self.out = Lines()
        self._by_operator_sequence: dict[str, dict[str, Any]] = {}
        self._rewards: list[tuple[Element, str, bool]] = []
        self._item_tax_total = 0
        self._has_transaction_tax = False

    # --- values -------------------------------------------------------------------------

    def money(self, element: Element | None, where: str) -> int | None:
        """The element's text in minor units; None (and an error) when it is not exact."""
        value = text(element)
        if value is None:
            return None
        try:
            return to_minor(Decimal(value), self.currency)
        except (InvalidOperation, AmountError) as error:
            reason = str(error) if isinstance(error, AmountError) else f"{value!r} is not a number"
            self.out.errors.append(f"{where}: {reason}")
            return None

    def number(self, element: Element | None, where: str) -> int | Decimal | None:
        """A quantity or percentage: int when whole, else the exact Decimal."""
        value = text(element)
        if value is None:
            return None
        try:
            number = Decimal(value)
        except InvalidOperation:
            self.out.errors.append(f"{where}: {value!r} is not a number")
            return None
        if not number.is_finite():
            self.out.errors.append(f"{where}: {value!r} is not a finite number")
            return None
        return int(number) if number == number.to_integral_value() else number.normalize()

    # --- the walk -----------------------------------------------------------------------

    def read(self, retail: Element) -> Lines:
        """Given a RetailTransaction subtree, return its items, payments, tax and totals."""
        for index, line in enumerate(children(retail, "LineItem"), 1):
            where = f"{self.where}/LineItem[{index}]"
            if line.get("CancelFlag") == "true":
                continue
            voided = line.get("VoidFlag") == "true"
            for part in line:
                if part.tag in ("Sale", "Return"):
                    self._item(line, part, f"{where}/{part.tag}", voided=voided)
                elif part.tag == "Tender":
                    self._tender(part, f"{where}/Tender", voided=voided)
                elif part.tag == "TenderChange":
                    self._tender_change(part, f"{where}/TenderChange", voided=voided)
                elif part.tag == "Rounding" and not voided:
                    self._rounding(part, f"{where}/Rounding")
                elif part.tag == "Tax" and not voided:
                    self._transaction_tax(part, f"{where}/Tax")
                elif part.tag == "Discount" and not voided:
                    self._discount(part, f"{where}/Discount")
                elif part.tag == "LoyaltyReward" and not voided:
                    self._rewards.append(
                        (part, f"{where}/LoyaltyReward", part.get("detailedData") == "true")
                    )
                elif part.tag == "LoyaltyMembership":
                    self.out.customer_id = self.out.customer_id or text(part, "LoyaltyID")
        self._apply_rewards()
        if not self.tax_included and not self._has_transaction_tax:
            # Tax on top written per item only (no LineItem/Tax): the items' tax is on top.
            self.out.tax_on_top = self._item_tax_total
        for total in children(retail, "Total"):
            kind = (total.get("TotalType") or "").rpartition(":")[2]
            if kind.startswith("Transaction") and kind.endswith("Amount"):
                amount = self.money(total, f"{self.where}/Total[@TotalType='{kind}']")
                if amount is not None:
                    self.out.totals[kind] = amount
        for customer in (*children(retail, "Customer"), *children(retail, "LoyaltyAccount")):
            self.out.customer_id = self.out.customer_id or text(customer, "CustomerID")
        return self.out

    def _item(self, line: Element, sale: Element, where: str, *, voided: bool) -> None:
        gross = self.money(child(sale, "ExtendedAmount"), f"{where}/ExtendedAmount")
        if gross is None:
            if child(sale, "ExtendedAmount") is None:
                self.out.errors.append(f"{where}: has no ExtendedAmount")
            return
        counted = self.number(child(sale, "Quantity"), f"{where}/Quantity")
        quantity: int | Decimal = 1 if counted is None else counted
        is_return = sale.tag == "Return"
        if is_return:
            gross = -abs(gross)
            quantity = -quantity if quantity > 0 else quantity
        direction = -1 if is_return else 1
        if voided and gross * direction > 0:
            return  # ARTS 6: the voided line itself, with no offsetting partner
        sign = -1 if gross < 0 else 1
        discount_lines = self._price_modifiers(sale, where)
        discount = self.money(
            child(sale, "ExtendedDiscountAmount"), f"{where}/ExtendedDiscountAmount"
        )
        if discount:
            discount_lines = [{"amount": abs(discount), "discount_type": "manual"}]
        item: dict[str, Any] = {"line_id": len(self.out.items) + 1}
        item_id = text(sale, "ItemID")
        barcode = None
        other_id = None
        for identity in children(sale, "POSIdentity"):
            if identity.get("POSIDType") == "GTIN":
                barcode = barcode or text(identity, "POSItemID")
            else:
                other_id = other_id or text(identity, "POSItemID")
        item_id = item_id or other_id or barcode
        if item_id:
            item["id"] = item_id
        description = text(sale, "Description")
        if description:
            item["description"] = description
        if barcode:
            item["barcode"] = barcode
        groups = [
            {"id": group_id}
            for group_id in (text(node) for node in children(sale, "MerchandiseHierarchy"))
            if group_id
        ]
        if groups:
            item["groups"] = groups
        item["quantity"] = quantity
        item["gross_amount"] = gross
        item["net_amount"] = gross - sign * sum(line["amount"] for line in discount_lines)
        if discount_lines:
            item["discount_lines"] = discount_lines
        self._item_tax(sale, where, item, sign)
        if is_return:
            item["is_return_item"] = True
        if voided:
            item["voided"] = True
        if line.get("weightItem") == "true":
            item["scale_item"] = True
        self.out.items.append(item)
        reference = text(sale, "OperatorSequence")
        if reference:
            self._by_operator_sequence[reference] = item

    def _price_modifiers(self, sale: Element, where: str) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        for index, modifier in enumerate(children(sale, "RetailPriceModifier"), 1):
            amount = self.money(
                child(modifier, "Amount"), f"{where}/RetailPriceModifier[{index}]/Amount"
            )
            if not amount:
                continue
            promotion = text(modifier, "PromotionID")
            line: dict[str, Any] = {
                "amount": abs(amount),
                "discount_type": "periodic" if promotion else "manual",
            }
            if promotion:
                line["discount_id"] = promotion
            lines.append(line)
        return lines

    def _item_tax(self, sale: Element, where: str, item: dict[str, Any], sign: int) -> None:
        tax_lines: list[dict[str, Any]] = []
        for index, tax in enumerate(children(sale, "Tax"), 1):
            tax_where = f"{where}/Tax[{index}]"
            percent = self.number(child(tax, "Percent"), f"{tax_where}/Percent")
            amount = self.money(child(tax, "Amount"), f"{tax_where}/Amount")
            basis = self.money(child(tax, "TaxableAmount"), f"{tax_where}/TaxableAmount")
            line: dict[str, Any] = {"included_in_price": self.tax_included}
            if percent is not None:
                line["percentage"] = percent
            if amount is not None:
                line["amount"] = sign * abs(amount)
                self._item_tax_total += line["amount"]
                if basis is None and self.tax_included:
                    basis = abs(item["net_amount"]) - abs(amount)
            if basis is not None:
                line["tax_basis"] = sign * abs(basis)
            tax_lines.append(line)
        if tax_lines:
            item["tax_lines"] = tax_lines
            if "percentage" in tax_lines[0]:
                item["tax_percent"] = tax_lines[0]["percentage"]

    def _transaction_tax(self, tax: Element, where: str) -> None:
        amount = self.money(child(tax, "Amount"), f"{where}/Amount")
        if amount is None:
            return
        line: dict[str, Any] = {"amount": amount, "included_in_price": self.tax_included}
        percent = self.number(child(tax, "Percent"), f"{where}/Percent")
        if percent is not None:
            line["percentage"] = percent
        basis = self.money(child(tax, "TaxableAmount"), f"{where}/TaxableAmount")
        if basis is not None:
            line["tax_basis"] = basis
        self.out.tax_lines.append(line)
        self._has_transaction_tax = True
        if not self.tax_included:
            self.out.tax_on_top += amount

    def _tender(self, tender: Element, where: str, *, voided: bool) -> None:
        for index, rounding in enumerate(children(tender, "Rounding"), 1):
            self._rounding(rounding, f"{where}/Rounding[{index}]")
        if child(tender, "Amount") is None:
            return
        amount = self.money(child(tender, "Amount"), f"{where}/Amount")
        if amount is None:
            return
        if tender.get("TypeCode") == "Refund":
            amount = -abs(amount)
        # Change and cash back leave the drawer: the payment is what the store kept.
        for name in ("TenderChange", "Cashback"):
            node = child(tender, name)
            if node is not None:
                value = node if child(node, "Amount") is None else child(node, "Amount")
                amount -= abs(self.money(value, f"{where}/{name}") or 0)
        self._payment(tender, amount, voided=voided)

    def _tender_change(self, change: Element, where: str, *, voided: bool) -> None:
        """ARTS 6 `LineItem/TenderChange`: change handed back, a negative payment line."""
        amount = self.money(child(change, "Amount"), f"{where}/Amount")
        if amount:
            self._payment(change, -abs(amount), voided=voided)

    def _payment(self, tender: Element, amount: int, *, voided: bool) -> None:
        payment: dict[str, Any] = {"line_id": len(self.out.payments) + 1, "amount": amount}
        type_id = tender.get("TenderType") or text(tender, "TenderID")
        if type_id:
            payment["type_id"] = type_id
        if voided:
            payment["voided"] = True
        self.out.payments.append(payment)

    def _rounding(self, rounding: Element, where: str) -> None:
        """`Rounding` (in a Tender or its own LineItem): Up adds, Down subtracts, else signed."""
        amount = self.money(
            rounding if child(rounding, "Amount") is None else child(rounding, "Amount"), where
        )
        if amount is not None:
            direction = rounding.get("RoundingDirection")
            if direction == "Up":
                amount = abs(amount)
            elif direction == "Down":
                amount = -abs(amount)
            self.out.rounding += amount

    def _discount(self, discount: Element, where: str) -> None:
        amount = self.money(child(discount, "Amount"), f"{where}/Amount")
        if amount:
            line: dict[str, Any] = {"amount": abs(amount), "discount_type": "total"}
            promotion = text(discount, "PromotionID")
            if promotion:
                line["discount_id"] = promotion
            self._allocate(line, text(discount, "OperatorSequenceReference"), where)

    def _apply_rewards(self) -> None:
        has_detailed = any(detailed for _, _, detailed in self._rewards)
        for reward, where, detailed in self._rewards:
            if has_detailed and not detailed:
                continue  # the summarised copy of a detailed reward: count it once
            if text(reward, "RewardCategory") not in _MONETARY_REWARDS:
                continue
            amount = self.money(
                child(reward, "ExtendedRewardAmount"), f"{where}/ExtendedRewardAmount"
            )
            if not amount:
                continue
            line: dict[str, Any] = {"amount": abs(amount), "discount_type": "loyalty"}
            promotion = text(reward, "PromotionID")
            if promotion:
                line["discount_id"] = promotion
            self._allocate(line, text(reward, "OperatorSequenceReference"), where)

    def _allocate(self, line: dict[str, Any], reference: str | None, where: str) -> None:
        """Put a transaction-level discount on items: the referenced one, else pro rata."""
        target = self._by_operator_sequence.get(reference or "")
        if target is not None and target["gross_amount"] > 0:
            shares = [(target, line["amount"])]
        else:
            positive = [item for item in self.out.items if item["net_amount"] > 0]
            if not positive:
                self.out.errors.append(f"{where}: a discount on a receipt with no sold items")
                return
            shares = _pro_rata(positive, line["amount"])
        for item, share in shares:
            if not share:
                continue
            item.setdefault("discount_lines", []).append({**line, "amount": share})
            item["net_amount"] -= share

    # --- checks -------------------------------------------------------------------------

    def check_totals(self, net_total: int, gross_total: int) -> list[str]:
        """Given the receipt's computed totals, return sentences for POSLog Totals that differ."""
        problems: list[str] = []
        totals = self.out.totals
        wanted = {
            "TransactionGrossAmount": gross_total,
            "TransactionNetAmount": net_total,
            "TransactionGrandAmount": net_total + self.out.tax_on_top,
        }
        for kind, computed in wanted.items():
            if kind in totals and totals[kind] != computed:
                problems.append(
                    f"{self.where}/Total[@TotalType='{kind}'] is "
                    f"{minor_to_major(totals[kind], self.currency)} but the lines add up to "
                    f"{minor_to_major(computed, self.currency)}"
                )
        tax_total = totals.get("TransactionTaxAmount")
        if self.out.tax_on_top and tax_total is not None and tax_total != self.out.tax_on_top:
            problems.append(
                f"{self.where}/Total[@TotalType='TransactionTaxAmount'] is "
                f"{minor_to_major(tax_total, self.currency)} but the "
                f"tax lines add up to {minor_to_major(self.out.tax_on_top, self.currency)}"
            )
        return problems


def _pro_rata(items: list[dict[str, Any]], amount: int) -> list[tuple[dict[str, Any], int]]:
    """Split `amount` over items by net amount, largest remainder first; shares sum exactly."""
    base = sum(item["net_amount"] for item in items)
    raw = [(item, amount * item["net_amount"]) for item in items]
    shares = [[item, value // base, value % base] for item, value in raw]
    left = amount - sum(int(share[1]) for share in shares)
    for share in sorted(shares, key=lambda entry: -int(entry[2]))[:left]:
        share[1] = int(share[1]) + 1
    return [(share[0], int(share[1])) for share in shares]
