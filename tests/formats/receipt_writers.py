"""POSLog and CSV writers for the generated receipts of `receipt_gen` (issue 13).

Each writer writes a `GenReceipt` the way one of the tills we know would, in a *style* drawn
by hypothesis, so the property tests cover the spellings the parsers must accept:

- POSLog (`to_poslog`): the VAT of a line as a basis (`TaxableAmount` without tax), as a
  `TaxableAmount` including it (`@TaxIncludedInTaxableAmountFlag="true"`) or as a rate only;
  item VAT written before the receipt-level discount (`LineItem/Discount`, which the parser
  spreads and then recomputes the VAT); a return as `Return` lines with magnitudes and a
  `Refund` tender, its Totals signed or as magnitudes (ARTS 6); cash rounding as a
  `Rounding` with a direction; a tip as a line without VAT; a default namespace or an
  `arts:` prefix on every element.
- CSV (`to_csv`): a return marked by a minus sign on the quantity only (unsigned amounts and
  refund), on the amount only, or on both; the receipt-level discount on the first row only
  or repeated on every row; a tip as a line without a VAT rate. CSV has no field for cash
  rounding, so the CSV property draws receipts without it.
"""

from __future__ import annotations

from dataclasses import dataclass

from formats.receipt_gen import GenReceipt, kroner
from hypothesis import strategies as st

from receipt_agent.money import split_vat

POSLOG_TENDERS = {"CASH": "Cash", "CARD": "CreditDebit", "VIPPS": "Vipps"}
CSV_PAYMENTS = {"CASH": "Kontant", "CARD": "Kort", "VIPPS": "Vipps"}
CSV_HEADER = (
    "Kvitteringsnr;Tidspunkt;Varetekst;Antall;MVA;Linjebeløp;Linjerabatt;Kvitteringsrabatt;"
    "Betalingsmåte;Betalt"
)
CSV_COLUMNS = {
    "receipt_number": "Kvitteringsnr",
    "purchase_at": "Tidspunkt",
    "item_description": "Varetekst",
    "item_quantity": "Antall",
    "item_tax_percent": "MVA",
    "item_gross_amount": "Linjebeløp",
    "item_discount_amount": "Linjerabatt",
    "receipt_discount_amount": "Kvitteringsrabatt",
    "payment_type": "Betalingsmåte",
    "payment_amount": "Betalt",
}


@dataclass(frozen=True)
class PoslogStyle:
    tax: str  # "basis" | "included" | "rate"
    signed_totals: bool
    prefix: bool


@dataclass(frozen=True)
class CsvStyle:
    return_sign: str  # "quantity" | "amount" | "both"
    repeat_receipt_discount: bool


poslog_styles = st.builds(
    PoslogStyle,
    tax=st.sampled_from(["basis", "included", "rate"]),
    signed_totals=st.booleans(),
    prefix=st.booleans(),
)
csv_styles = st.builds(
    CsvStyle,
    return_sign=st.sampled_from(["quantity", "amount", "both"]),
    repeat_receipt_discount=st.booleans(),
)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _poslog_tax(net: int, rate: int, style: PoslogStyle) -> str:
    """The line's VAT on its (magnitude) net, in the style's spelling."""
    basis, vat = split_vat(net, rate)
    if style.tax == "rate":
        return f"<Tax><Percent>{rate}</Percent></Tax>"
    if style.tax == "included":
        taxable = (
            f'<TaxableAmount TaxIncludedInTaxableAmountFlag="true">{kroner(net)}</TaxableAmount>'
        )
    else:
        taxable = f"<TaxableAmount>{kroner(basis)}</TaxableAmount>"
    return f"<Tax>{taxable}<Amount>{kroner(vat)}</Amount><Percent>{rate}</Percent></Tax>"


def _poslog_transaction(receipt: GenReceipt, style: PoslogStyle) -> str:
    kind = "Return" if receipt.is_return else "Sale"
    parts: list[str] = []
    for line in receipt.lines:
        quantity = abs(line.quantity)
        modifier = (
            f"<RetailPriceModifier><Amount>{kroner(abs(line.discount))}</Amount>"
            "</RetailPriceModifier>"
            if line.discount
            else ""
        )
        parts.append(
            f"<LineItem><{kind}><ItemID>{line.article}</ItemID>"
            f"<Description>{_escape(line.description)}</Description>"
            f"<ActualSalesUnitPrice>{kroner(abs(line.amount) // int(quantity))}"
            f"</ActualSalesUnitPrice><ExtendedAmount>{kroner(abs(line.amount))}</ExtendedAmount>"
            f"<Quantity>{quantity}</Quantity>{modifier}"
            f"{_poslog_tax(abs(line.net), line.vat, style)}</{kind}></LineItem>"
        )
    if receipt.tip:
        parts.append(
            "<LineItem><Sale><ItemID>TIP</ItemID><Description>Tips</Description>"
            f"<ExtendedAmount>{kroner(receipt.tip)}</ExtendedAmount><Quantity>1</Quantity>"
            "</Sale></LineItem>"
        )
    if receipt.discount:
        parts.append(
            f"<LineItem><Discount><Amount>{kroner(abs(receipt.discount))}</Amount>"
            "<PromotionID>MEDLEM</PromotionID></Discount></LineItem>"
        )
    for name, amount in receipt.payments:
        code = "Refund" if amount < 0 else "Sale"
        parts.append(
            f'<LineItem><Tender TenderType="{POSLOG_TENDERS[name]}" TypeCode="{code}">'
            f"<Amount>{kroner(abs(amount))}</Amount></Tender></LineItem>"
        )
    if receipt.rounding:
        direction = "Up" if receipt.rounding > 0 else "Down"
        parts.append(
            f'<LineItem><Tender><Rounding RoundingDirection="{direction}">'
            f"{kroner(abs(receipt.rounding))}</Rounding></Tender></LineItem>"
        )

    def total(kind_of_total: str, amount: int) -> str:
        written = amount if style.signed_totals else abs(amount)
        return f'<Total TotalType="{kind_of_total}">{kroner(written)}</Total>'

    parts += [
        total("TransactionGrossAmount", receipt.gross),
        total("TransactionNetAmount", receipt.due),
        total("TransactionGrandAmount", receipt.due),
    ]
    return (
        "<Transaction><BusinessUnit><UnitID>0417</UnitID></BusinessUnit>"
        f"<WorkstationID>1</WorkstationID><SequenceNumber>{receipt.number}</SequenceNumber>"
        "<CurrencyCode>NOK</CurrencyCode>"
        f'<RetailTransaction TransactionStatus="Finished">{"".join(parts)}</RetailTransaction>'
        f"<EndDateTime>{receipt.when.isoformat()}</EndDateTime></Transaction>"
    )


def _prefixed(xml: str) -> str:
    """Every element with an `arts:` prefix (the namespace bound to it, not the default)."""
    out: list[str] = []
    for index, piece in enumerate(xml.split("<")):
        if index == 0:
            out.append(piece)
        elif piece.startswith("/"):
            out.append("</arts:" + piece[1:])
        else:
            out.append("<arts:" + piece)
    return "".join(out)


def to_poslog(receipts: list[GenReceipt], style: PoslogStyle) -> bytes:
    """A POSLog 6 export of store 0417, workstation 1, holding the receipts."""
    body = "".join(_poslog_transaction(receipt, style) for receipt in receipts)
    namespace = "http://www.nrf-arts.org/IXRetail/namespace/"
    if style.prefix:
        xml = f'<arts:POSLog xmlns:arts="{namespace}">' + _prefixed(body) + "</arts:POSLog>"
    else:
        xml = f'<POSLog xmlns="{namespace}">{body}</POSLog>'
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + xml).encode()


def _csv_money(minor: int) -> str:
    return kroner(minor).replace(".", ",")


def to_csv(receipts: list[GenReceipt], style: CsvStyle) -> bytes:
    """A Norwegian CSV export (`;`, decimal comma) holding the receipts; see CSV_COLUMNS."""
    rows = [CSV_HEADER]
    for receipt in receipts:
        when = receipt.when.strftime("%d.%m.%Y %H:%M:%S")
        signed_amounts = not receipt.is_return or style.return_sign in ("amount", "both")
        for index, line in enumerate(receipt.lines):
            quantity = abs(line.quantity)
            if receipt.is_return and style.return_sign in ("quantity", "both"):
                quantity = -quantity
            amount = line.amount if signed_amounts else abs(line.amount)
            discount = _csv_money(line.discount) if line.discount else ""
            on_row = index == 0 or style.repeat_receipt_discount
            receipt_discount = _csv_money(receipt.discount) if receipt.discount and on_row else ""
            rows.append(
                f"{receipt.number};{when};{line.description};{quantity};{line.vat};"
                f"{_csv_money(amount)};{discount};{receipt_discount};;"
            )
        if receipt.tip:
            rows.append(f"{receipt.number};{when};Tips;1;;{_csv_money(receipt.tip)};;;;")
        for name, amount in receipt.payments:
            paid = amount if signed_amounts else abs(amount)
            rows.append(f"{receipt.number};{when};;;;;;;{CSV_PAYMENTS[name]};{_csv_money(paid)}")
    return ("\r\n".join(rows) + "\r\n").encode()
