"""The money inside one POSLog `RetailTransaction`: lines, discounts, tax, tenders, totals.

Helper of `formats.poslog` (split out for size). Pure: reads an already-parsed subtree with
local-name tags (`formats.xml_stream`), returns Dintero-shaped dicts; no I/O, no logging.
Never rounds: an amount finer than the currency's minor unit is an error of its receipt.

Rules (formats.md §4.2, decided here where the dialects differ; flags and codes are read in
every spelling by `formats.poslog_values`):

- **Lines.** `LineItem/Sale` and `LineItem/Return` become items. A Return, or a line with a
  minus sign on its amount or its quantity, is a return item: quantity and amounts are all
  negative (`is_return_item`), whichever of them the till wrote negative, so a return is
  never sent as a sale. `ExtendedAmount` is the line's gross (before discounts,
  VAT-inclusive in Nordic files); the discount is `ExtendedDiscountAmount` when non-zero,
  else Σ `RetailPriceModifier/Amount`; net = gross − discount. `ActualSalesUnitPrice` (else
  `RegularSalesUnitPrice`, `UnitListPrice`) → `unit_gross_price` when exact to the øre. A
  `TransactionLink` on a Return (the original sale) goes to `Lines.links` for `extra_info`.
- **Cancelled and voided lines.** `@CancelFlag="true"` lines never happened: dropped. NCR
  writes a void as an extra `@VoidFlag="true"` line with a negative amount that offsets an
  earlier line: both are kept and the void line gets `voided: true`, so the sums stay right.
  A `@VoidFlag` line with the sale's own sign (ARTS 6 marks the voided line itself) is
  dropped like a cancelled one: it has no offsetting partner.
- **Transaction-level discounts** (`LineItem/Discount`, NCR monetary `LoyaltyReward`) are
  put on items, because Dintero has no receipt-level discount line and Σ item net must equal
  the receipt's net (each item's VAT is then recomputed from its new net): on the item whose
  `OperatorSequence` the reward references, else spread over the positive items pro rata
  (largest remainder, so nothing is lost to rounding). NCR writes each monetary reward twice
  (`acs:detailedData` and `acs:summarizedActivity` copies): only the detailed copies count
  when there are any, else the summarised ones. Non-monetary rewards (points, messages,
  custom offers) are not money and are ignored.
- **Tax.** Item `Sale/Tax` → `tax_lines` (`included_in_price` = `mapping.tax_included`),
  read by `formats.poslog_tax` (the `TaxIncludedInTaxableAmountFlag` basis, rate-only tax,
  tax unrounded in the file, VAT recomputed after a spread discount, return signs).
  US-style transaction-level `LineItem/Tax` (tax on top) → receipt `tax_lines` only; items
  stay at the shelf price, and the amount the customer pays goes to `amount_due`. With
  `tax_included: false` and no `LineItem/Tax`, the items' own tax amounts are the tax on top
  (a file with both is read from the `LineItem/Tax` lines, never counted twice).
- **Tenders.** `Tender/Amount`; `@TypeCode="Refund"` (or `Return`) is negative; `@TenderType`
  (refined by `CreditDebit/@CardType`) → `token_type` (`formats.payment_types`); a masked
  card number and `CardBrand` → `card_info`; `Authorization/ReferenceNumber` →
  `reference_id`. A nested `TenderChange` or
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

from receipt_agent.formats import poslog_tax
from receipt_agent.formats.poslog_values import (
    code,
    first_text,
    is_after_discount,
    is_true,
    tender_details,
    unit_gross_price,
    units,
)
from receipt_agent.formats.xml_stream import child, children, text
from receipt_agent.money import (
    AmountError,
    allocate,
    minor_exponent,
    minor_to_major,
    parse_decimal,
    to_minor,
)
from receipt_agent.refused import refused

_MONETARY_REWARDS = {"monetary"}
_TOTAL_KINDS = {
    kind.lower(): kind
    for kind in (
        "TransactionGrossAmount",
        "TransactionNetAmount",
        "TransactionGrandAmount",
        "TransactionTaxAmount",
    )
}
_REFUNDS = {"refund", "return"}
_GTIN = {"gtin", "ean", "ean13", "ean8", "upc", "upca", "barcode"}


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
    # TransactionLinks (a return's original sale): (the item it is on, or None for the
    # transaction's own link, {"unit", "workstation", "day", "sequence", "transaction_id"}).
    links: list[tuple[dict[str, Any] | None, dict[str, str]]] = field(default_factory=list)


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
        self._discounted: dict[int, tuple[dict[str, Any], int]] = {}  # id → (item, old net)
        self._handed_out: list[tuple[dict[str, Any], int]] = []  # (payment, change/cash back)

    # --- values -------------------------------------------------------------------------

    def money(self, element: Element | None, where: str) -> int | None:
        """The element's text in minor units; None (and an error) when it is not exact."""
        value = text(element)
        if value is None:
            return None
        try:
            return to_minor(Decimal(value), self.currency)
        except (InvalidOperation, AmountError) as error:
            reason = (
                str(error) if isinstance(error, AmountError) else f"not a number {refused(value)}"
            )
            self.out.errors.append(f"{where}: {reason}")
            return None

    def exact(self, element: Element | None, where: str) -> Decimal | None:
        """The element's text in minor units as an exact Decimal (tax may have fractions)."""
        number = self._decimal(element, where)
        return None if number is None else number.scaleb(minor_exponent(self.currency))

    def number(self, element: Element | None, where: str) -> int | Decimal | None:
        """A quantity or percentage: int when whole, else the exact Decimal."""
        number = self._decimal(element, where)
        if number is None:
            return None
        return int(number) if number == number.to_integral_value() else number.normalize()

    def _decimal(self, element: Element | None, where: str) -> Decimal | None:
        """The element's text as a finite Decimal; None (and an error) when it is not one."""
        value = text(element)
        if value is None:
            return None
        try:
            return parse_decimal(value)
        except AmountError as error:
            self.out.errors.append(f"{where}: {error}")
            return None

    # --- the walk -----------------------------------------------------------------------

    def read(self, retail: Element) -> Lines:
        """Given a RetailTransaction subtree, return its items, payments, tax and totals."""
        for index, line in enumerate(children(retail, "LineItem"), 1):
            where = f"{self.where}/LineItem[{index}]"
            if is_true(line.get("CancelFlag")):
                continue
            voided = is_true(line.get("VoidFlag"))
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
                        (part, f"{where}/LoyaltyReward", is_true(part.get("detailedData")))
                    )
                elif part.tag == "LoyaltyMembership":
                    self.out.customer_id = self.out.customer_id or text(part, "LoyaltyID")
        self._apply_rewards()
        self._settle_change()
        for item, old_net in self._discounted.values():
            poslog_tax.rebase(item, old_net)  # a spread discount changed its net: VAT too
        for link in children(retail, "TransactionLink"):
            self._link(None, link)
        net = sum(item["net_amount"] for item in self.out.items)
        self.out.tax_lines = poslog_tax.orient(self.out.tax_lines, net)
        if not self.tax_included:
            if self._has_transaction_tax:
                self.out.tax_on_top = sum(line.get("amount", 0) for line in self.out.tax_lines)
            else:
                # Tax on top written per item only (no LineItem/Tax): the items' tax is on top.
                self.out.tax_on_top = self._item_tax_total
        for total in children(retail, "Total"):
            kind = _TOTAL_KINDS.get(code(total.get("TotalType")))
            if kind is not None:
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
        if counted is None:
            counted = units(child(sale, "Quantity"))
        quantity: int | Decimal = 1 if counted is None else counted
        is_return = sale.tag == "Return"
        # A Return, or a minus sign on the amount or the quantity, is money going back: both
        # signs agree (negative), whichever of them the till wrote negative.
        negative = is_return or gross < 0 or quantity < 0
        if negative:
            gross = -abs(gross)
            quantity = -quantity if quantity > 0 else quantity
        if voided and (gross > 0 or (is_return and gross < 0)):
            return  # ARTS 6: the voided line itself, with no offsetting partner
        sign = -1 if negative else 1
        discount_lines = self._price_modifiers(sale, where)
        discount = self.money(
            child(sale, "ExtendedDiscountAmount"), f"{where}/ExtendedDiscountAmount"
        )
        if discount:
            discount_lines = [{"amount": abs(discount), "discount_type": "manual"}]
            if is_after_discount(sale, abs(gross), abs(discount), quantity, self.currency):
                gross = sign * (abs(gross) + abs(discount))
        item: dict[str, Any] = {"line_id": len(self.out.items) + 1}
        item_id = text(sale, "ItemID")
        barcode = None
        other_id = None
        for identity in children(sale, "POSIdentity"):
            if code(identity.get("POSIDType")) in _GTIN:
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
        # A return's discount is negative like its other amounts: gross − net = Σ discounts.
        discount_lines = [{**line, "amount": sign * line["amount"]} for line in discount_lines]
        item["net_amount"] = gross - sum(line["amount"] for line in discount_lines)
        if discount_lines:
            item["discount_lines"] = discount_lines
        unit_price = unit_gross_price(sale, self.currency)
        if unit_price is not None:
            item["unit_gross_price"] = unit_price
        self._item_tax(sale, where, item, sign)
        if negative and not voided:
            item["is_return_item"] = True
        if voided:
            item["voided"] = True
        if is_true(line.get("weightItem")):
            item["scale_item"] = True
        self.out.items.append(item)
        for link in children(sale, "TransactionLink"):
            self._link(item, link)
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

    def _tax(self, tax: Element, where: str, net: int | None) -> dict[str, Any] | None:
        """One `Tax` element as a Dintero tax line (poslog_tax.decode), or None if empty."""
        percent = self.number(child(tax, "Percent"), f"{where}/Percent")
        amount = self.exact(child(tax, "Amount"), f"{where}/Amount")
        taxable_node = child(tax, "TaxableAmount")
        taxable = self.exact(taxable_node, f"{where}/TaxableAmount")
        if percent is None and amount is None and taxable is None:
            return None
        flag = "TaxIncludedInTaxableAmountFlag"
        includes_tax = is_true(
            taxable_node.get(flag)
            if taxable_node is not None and taxable_node.get(flag) is not None
            else tax.get(flag)
        )
        if net is not None:  # an item: magnitudes, its sign is applied by the caller
            amount = abs(amount) if amount is not None else None
            taxable = abs(taxable) if taxable is not None else None
        return poslog_tax.decode(
            percent=percent,
            amount=amount,
            taxable=taxable,
            includes_tax=includes_tax,
            included_in_price=self.tax_included,
            net=net,
        )

    def _item_tax(self, sale: Element, where: str, item: dict[str, Any], sign: int) -> None:
        tax_lines: list[dict[str, Any]] = []
        for index, tax in enumerate(children(sale, "Tax"), 1):
            line = self._tax(tax, f"{where}/Tax[{index}]", abs(item["net_amount"]))
            if line is None:
                continue
            line = poslog_tax.signed(line, sign)
            if child(tax, "Amount") is not None and "amount" in line:
                self._item_tax_total += line["amount"]
            tax_lines.append(line)
        if tax_lines:
            item["tax_lines"] = tax_lines
            if "percentage" in tax_lines[0]:
                item["tax_percent"] = tax_lines[0]["percentage"]
            gross, net = item["gross_amount"], item["net_amount"]
            written = [line.get("amount", 0) + line.get("tax_basis", 0) for line in tax_lines]
            if self.tax_included and gross != net and sum(written) == gross:
                poslog_tax.rebase(item, gross)  # VAT of the price before the line's discount

    def _transaction_tax(self, tax: Element, where: str) -> None:
        """`LineItem/Tax`: a receipt tax line (US: the tax on top), signed in `read`."""
        if child(tax, "Amount") is None:
            return
        line = self._tax(tax, where, None)
        if line is not None and "amount" in line:
            self.out.tax_lines.append(line)
            self._has_transaction_tax = True

    def _tender(self, tender: Element, where: str, *, voided: bool) -> None:
        for index, rounding in enumerate(children(tender, "Rounding"), 1):
            self._rounding(rounding, f"{where}/Rounding[{index}]")
        if child(tender, "Amount") is None:
            return
        amount = self.money(child(tender, "Amount"), f"{where}/Amount")
        if amount is None:
            return
        if code(tender.get("TypeCode")) in _REFUNDS:
            amount = -abs(amount)
        payment = self._payment(tender, amount, voided=voided)
        # Change and cash back leave the drawer: the payment is what the store kept. A tender
        # whose own Amount is negative is the change line itself (NCR writes -0.93 with a
        # nested TenderChange -0.93 saying so): nothing more to take off. Taken off in
        # `_settle_change`, once every tender line is known.
        for name in ("TenderChange", "Cashback"):
            node = child(tender, name)
            if node is not None and amount > 0:
                value = node if child(node, "Amount") is None else child(node, "Amount")
                handed_out = abs(self.money(value, f"{where}/{name}") or 0)
                if handed_out:
                    self._handed_out.append((payment, handed_out))

    def _settle_change(self) -> None:
        """Take nested change and cash back off their tender, unless paid out on its own line.

        NCR writes a card tender of 55.58 with `Cashback` 50.00 *and* a separate cash tender
        of -50.00: the cash back is already a payment line, so the card stays 55.58. Visma
        writes `TenderChange` 41.00 inside a 200.00 cash tender and nothing else: 159.00.
        """
        paid_out = [payment for payment in self.out.payments if payment["amount"] < 0]
        for payment, handed_out in self._handed_out:
            line = next((p for p in paid_out if p["amount"] == -handed_out), None)
            if line is not None:
                paid_out.remove(line)
            else:
                payment["amount"] -= handed_out

    def _tender_change(self, change: Element, where: str, *, voided: bool) -> None:
        """ARTS 6 `LineItem/TenderChange`: change handed back, a negative payment line."""
        amount = self.money(child(change, "Amount"), f"{where}/Amount")
        if amount:
            self._payment(change, -abs(amount), voided=voided)

    def _payment(self, tender: Element, amount: int, *, voided: bool) -> dict[str, Any]:
        payment: dict[str, Any] = {"line_id": len(self.out.payments) + 1, "amount": amount}
        type_id = tender.get("TenderType") or text(tender, "TenderID")
        if type_id:
            payment["type_id"] = type_id
        payment.update(tender_details(tender))
        if voided:
            payment["voided"] = True
        self.out.payments.append(payment)
        return payment

    def _rounding(self, rounding: Element, where: str) -> None:
        """`Rounding` (in a Tender or its own LineItem): Up adds, Down subtracts, else signed."""
        amount = self.money(
            rounding if child(rounding, "Amount") is None else child(rounding, "Amount"), where
        )
        if amount is not None:
            direction = code(rounding.get("RoundingDirection"))
            if direction == "up":
                amount = abs(amount)
            elif direction == "down":
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
            if code(text(reward, "RewardCategory")) not in _MONETARY_REWARDS:
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
        """Put a transaction-level discount on items: the referenced one, else pro rata.

        Pro rata over the sold items (a return-only receipt: over its returned items, whose
        magnitude it reduces), leaving out items without VAT lines (tips, deposits) when
        others have them; each share rounded toward zero, the rest on the largest item.
        """
        amount = line["amount"]
        target = self._by_operator_sequence.get(reference or "")
        if target is not None and target["gross_amount"] > 0:
            shares, sign = [(target, amount)], 1
        else:
            items = [item for item in self.out.items if not item.get("voided")]
            sold, sign = [item for item in items if item["net_amount"] > 0], 1
            if not sold:
                sold, sign = [item for item in items if item["net_amount"] < 0], -1
            taxed = [item for item in sold if item.get("tax_lines")]
            sold = taxed or sold
            available = sum(abs(item["net_amount"]) for item in sold)
            if amount > available:
                self.out.errors.append(
                    f"{where}: a discount of {minor_to_major(amount, self.currency)} on items "
                    f"of {minor_to_major(available, self.currency)}"
                )
                return
            weights = [abs(item["net_amount"]) for item in sold]
            shares = list(zip(sold, allocate(amount, weights), strict=True))
        for item, share in shares:
            if not share:
                continue
            self._discounted.setdefault(id(item), (item, item["net_amount"]))
            item.setdefault("discount_lines", []).append({**line, "amount": sign * share})
            item["net_amount"] -= sign * share

    def _link(self, item: dict[str, Any] | None, link: Element) -> None:
        """A `TransactionLink` (e.g. a return's original sale), kept for `extra_info`."""
        found = {
            "unit": first_text(link, "BusinessUnit/UnitID", "RetailStoreID", "UnitID"),
            "workstation": text(link, "WorkstationID"),
            "day": text(link, "BusinessDayDate"),
            "sequence": text(link, "SequenceNumber"),
            "transaction_id": text(link, "TransactionID"),
        }
        kept = {key: value for key, value in found.items() if value}
        if kept:
            self.out.links.append((item, kept))

    # --- checks -------------------------------------------------------------------------

    def check_totals(self, net_total: int, gross_total: int) -> list[str]:
        """Given the receipt's computed totals, return sentences for POSLog Totals that differ.

        Both spellings of a return are accepted: signed (-89.90) and, because the ARTS 6
        schema allows only non-negative amounts, the magnitude (89.90). A
        TransactionNetAmount written without the VAT (ARTS Digital Receipt exports) is
        accepted too when the prices include VAT.
        """
        problems: list[str] = []
        totals = self.out.totals
        tax_lines = self.out.tax_lines or [
            line for item in self.out.items for line in item.get("tax_lines", [])
        ]
        vat = sum(line.get("amount", 0) for line in tax_lines if line.get("included_in_price"))
        wanted = {
            "TransactionGrossAmount": [gross_total],
            "TransactionNetAmount": [net_total, net_total - vat] if vat else [net_total],
            "TransactionGrandAmount": [net_total + self.out.tax_on_top],
        }
        if self.out.tax_on_top:
            wanted["TransactionTaxAmount"] = [self.out.tax_on_top]
        for kind, accepted in wanted.items():
            total = totals.get(kind)
            if total is None or _matches(total, accepted):
                continue
            what = "tax lines" if kind == "TransactionTaxAmount" else "lines"
            problems.append(
                f"{self.where}/Total[@TotalType='{kind}'] is "
                f"{minor_to_major(total, self.currency)} but the {what} add up to "
                f"{minor_to_major(accepted[0], self.currency)}"
            )
        return problems


def _matches(total: int, accepted: list[int]) -> bool:
    """The Total equals a computed figure, or is the magnitude of a negative one."""
    return total in accepted or (total > 0 and -total in accepted)
