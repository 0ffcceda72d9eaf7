"""Receipts a real store prints, generated for the property tests of every format (issue 13).

One hypothesis strategy (`receipts()`) draws abstract receipts, the way a Nordic till rings
them up: several VAT rates, line discounts, a receipt-level (member/coupon) discount, a tip,
whole-receipt returns, cash rounding to the krone and split payments. Writers turn them into
each format's export (`to_saft`, `to_dintero_json` here; `to_poslog` and `to_csv` in
`receipt_writers`), and the tests check that the parse gives back receipts that keep every
invariant of `receipt_agent.invariants` and the generated totals, øre for øre.

Conventions of the abstract receipt (all money in integer øre, signed: a return is negative):

- `GenLine.amount` is the line total incl. VAT before its discount; `discount` has the same
  sign; `net` = amount − discount.
- `GenReceipt.discount` is the receipt-level discount, same sign as the lines; it is spread
  over the lines pro rata with `money.allocate` (what the mappers do) when a writer needs it
  per line.
- `tip` (sales only, ≥ 0) is outside VAT. `due` = Σ net − discount + tip; the customer pays
  `due + rounding` (`rounding` only with a cash payment).
- `when` is a naive local wall-clock time that exists exactly once in `TIMEZONE`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from receipt_agent.money import allocate, split_vat

TIMEZONE = ZoneInfo("Europe/Oslo")
RATES = (25, 15, 12, 0)
DESCRIPTIONS = ("Kaffe", "Rundstykke", "Øl 0,5l", "Avis", "Melk & brød")


@dataclass(frozen=True)
class GenLine:
    article: str
    description: str
    quantity: Decimal
    amount: int
    discount: int
    vat: int

    @property
    def net(self) -> int:
        return self.amount - self.discount


@dataclass(frozen=True)
class GenReceipt:
    number: int
    when: datetime
    lines: tuple[GenLine, ...]
    discount: int
    tip: int
    rounding: int
    payments: tuple[tuple[str, int], ...]  # (CASH | CARD | VIPPS, amount)

    @property
    def is_return(self) -> bool:
        return sum(line.amount for line in self.lines) < 0

    @property
    def gross(self) -> int:
        return sum(line.amount for line in self.lines) + self.tip

    @property
    def due(self) -> int:
        return sum(line.net for line in self.lines) - self.discount + self.tip

    @property
    def total_discount(self) -> int:
        return sum(line.discount for line in self.lines) + self.discount

    def line_nets(self) -> list[int]:
        """Each line's net after its share of the receipt discount (the mappers' split)."""
        nets = [line.net for line in self.lines]
        if not self.discount:
            return nets
        shares = allocate(self.discount, [abs(net) for net in nets])
        return [net - share for net, share in zip(nets, shares, strict=True)]


def _local_times() -> st.SearchStrategy[datetime]:
    def exists_once(naive: datetime) -> bool:
        local = naive.replace(tzinfo=TIMEZONE)
        back = local.astimezone(ZoneInfo("UTC")).astimezone(TIMEZONE).replace(tzinfo=None)
        other = naive.replace(tzinfo=TIMEZONE, fold=1)
        return back == naive and local.utcoffset() == other.utcoffset()

    return (
        st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31))
        .map(lambda moment: moment.replace(microsecond=0))
        .filter(exists_once)
    )


@st.composite
def _line(draw: st.DrawFn, sign: int, index: int) -> GenLine:
    quantity = draw(st.integers(1, 12))
    unit = draw(st.integers(100, 99_900))
    amount = quantity * unit
    discount = draw(st.sampled_from([0, 0, amount // 10, draw(st.integers(1, amount // 2))]))
    return GenLine(
        article=f"A{index}",
        description=draw(
            st.sampled_from(["Kaffe", "Rundstykke", "Øl 0,5l", "Avis", "Melk & brød"])
        ),
        quantity=Decimal(sign * quantity),
        amount=sign * amount,
        discount=sign * discount,
        vat=draw(st.sampled_from(RATES)),
    )


@st.composite
def receipts(draw: st.DrawFn, *, tips: bool = True) -> GenReceipt:
    """A receipt (module docstring); `tips=False` for formats that have no tip element."""
    sign = -1 if draw(st.booleans()) and draw(st.booleans()) else 1  # ~1 in 4 is a return
    lines = tuple(draw(_line(sign, index)) for index in range(1, draw(st.integers(1, 5)) + 1))
    nets = sum(line.net for line in lines)
    discount = sign * draw(st.sampled_from([0, 0, abs(nets) // 20, draw(st.integers(1, 500))]))
    if abs(discount) >= abs(nets):
        discount = 0
    tip = draw(st.sampled_from([0, 0, 2000, draw(st.integers(1, 10_000))])) if tips else 0
    tip = tip if sign > 0 else 0
    due = nets - discount + tip
    cash = draw(st.booleans())
    rounding = (round(due / 100) * 100 - due) if cash and draw(st.booleans()) else 0
    paid = due + rounding
    if cash and draw(st.booleans()):
        card = sign * draw(st.integers(0, abs(paid)))
        payments: tuple[tuple[str, int], ...] = (("CARD", card), ("CASH", paid - card))
    elif cash:
        payments = (("CASH", paid),)
    else:
        payments = ((draw(st.sampled_from(["CARD", "VIPPS"])), paid),)
    return GenReceipt(
        number=draw(st.integers(1, 10**9)),
        when=draw(_local_times()),
        lines=lines,
        discount=discount,
        tip=tip,
        rounding=rounding,
        payments=payments,
    )


# --- money as text ---------------------------------------------------------------------------


def kroner(minor: int) -> str:
    """12345 → "123.45"; -5 → "-0.05"."""
    return str(Decimal(minor).scaleb(-2).quantize(Decimal("0.01")))


def _vat_split(net: int, rate: int) -> tuple[int, int]:
    """(basis, VAT) of a VAT-inclusive net."""
    return split_vat(net, rate)


# --- SAF-T Cash Register (NO v1.00) ----------------------------------------------------------

SAFT_BASICS = (
    ("04", "100", "04999", "Other"),
    ("05", "SAL", None, "Sale line"),
    ("05", "RET", None, "Return line"),
    ("08", "MEMBER", None, "Member discount"),
    ("08", "LINE", None, "Line discount"),
    ("10", "TIPS", "10001", "Tips"),
    ("11", "CASHSAL", "11001", "Cash sale"),
    ("11", "RETURNSAL", "11006", "Return sale"),
    ("12", "CASH", "12001", "Cash"),
    ("12", "CARD", "12002", "Debit card"),
    ("12", "VIPPS", "12011", "Vipps"),
)


def _el(name: str, value: object | None) -> str:
    return "" if value is None else f"<{name}>{escape(str(value))}</{name}>"


def _saft_vat(net: int, rate: int) -> str:
    basis, vat = _vat_split(net, rate)
    return (
        f"<vat>{_el('vatCode', {25: 3, 15: 31, 12: 33, 0: 5}[rate])}{_el('vatPerc', rate)}"
        f"{_el('vatAmnt', kroner(vat))}{_el('vatBasAmnt', kroner(basis))}</vat>"
    )


@dataclass(frozen=True)
class SaftDialect:
    """How a vendor writes what the standard leaves open (formats.md §1.4, §7)."""

    line_amount_before_discount: bool = False  # lineAmntIn before the line's own discount
    discounts_negative: bool = False  # dscAmnt written as a negative number on a sale


def _saft_transaction(receipt: GenReceipt, dialect: SaftDialect) -> str:
    lines = []
    flip = -1 if dialect.discounts_negative else 1
    for index, line in enumerate(receipt.lines, start=1):
        basis, _ = _vat_split(line.net, line.vat)
        written = line.amount if dialect.line_amount_before_discount else line.net
        discount = (
            "<discount><dscTp>LINE</dscTp>"
            f"{_el('dscAmnt', kroner(flip * abs(line.discount)))}</discount>"
            if line.discount
            else ""
        )
        lines.append(
            f"<ctLine>{_el('nr', receipt.number)}{_el('lineID', index)}"
            f"{_el('lineType', 'RET' if receipt.is_return else 'SAL')}{_el('artID', line.article)}"
            f"{_el('qnt', line.quantity)}{_el('lineAmntIn', kroner(written))}"
            f"{_el('lineAmntEx', kroner(basis))}{_el('amntTp', 'D' if receipt.is_return else 'C')}"
            f"{_el('cashTransLineDescr', line.description)}{_saft_vat(line.net, line.vat)}"
            f"{discount}</ctLine>"
        )
    by_rate: dict[int, int] = {}
    for line, net in zip(receipt.lines, receipt.line_nets(), strict=True):
        by_rate[line.vat] = by_rate.get(line.vat, 0) + net
    vats = "".join(_saft_vat(net, rate) for rate, net in sorted(by_rate.items()))
    extra = ""
    if receipt.discount:
        amount = _el("dscAmnt", kroner(flip * abs(receipt.discount)))
        extra += f"<discount><dscTp>MEMBER</dscTp>{amount}</discount>"
    if receipt.tip:
        extra += (
            f"<raise><raiseType>TIPS</raiseType>{_el('raiseAmnt', kroner(receipt.tip))}</raise>"
        )
    if receipt.rounding:
        extra += f"<rounding>{_el('roundingAmnt', kroner(receipt.rounding))}</rounding>"
    paid = "".join(
        f"<payment>{_el('paymentType', kind)}{_el('paidAmnt', kroner(amount))}</payment>"
        for kind, amount in receipt.payments
    )
    excluding = sum(_vat_split(net, rate)[0] for rate, net in by_rate.items()) + receipt.tip
    return (
        f"<cashtransaction>{_el('nr', receipt.number)}{_el('transID', receipt.number)}"
        f"{_el('transType', 'RETURNSAL' if receipt.is_return else 'CASHSAL')}"
        f"{_el('transAmntIn', kroner(receipt.due))}{_el('transAmntEx', kroner(excluding))}"
        f"{_el('amntTp', 'D' if receipt.is_return else 'C')}{_el('empID', '1')}"
        f"{_el('transDate', receipt.when.date().isoformat())}"
        f"{_el('transTime', receipt.when.time().isoformat())}"
        f"{''.join(lines)}{vats}{extra}{paid}"
        "<signature>NA</signature><keyVersion>1</keyVersion></cashtransaction>"
    )


def to_saft(
    receipts: list[GenReceipt], *, register_id: str = "K1", dialect: SaftDialect | None = None
) -> bytes:
    """A SAF-T Cash Register export (one location, one register) holding the receipts."""
    dialect = dialect or SaftDialect()
    basics = "".join(
        f"<basic>{_el('basicType', t)}{_el('basicID', i)}{_el('predefinedBasicID', p)}"
        f"{_el('basicDesc', d)}</basic>"
        for t, i, p, d in SAFT_BASICS
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        '<auditfile xmlns="urn:StandardAuditFile-Taxation-CashRegister:NO">'
        "<header><curCode>NOK</curCode></header>"
        "<company><companyIdent>999999999</companyIdent><companyName>Butikk AS</companyName>"
        "<employees><employee><empID>1</empID><firstName>Kari</firstName></employee></employees>"
        f"<basics>{basics}</basics><location><name>Butikk</name>"
        f"<cashregister>{_el('registerID', register_id)}"
        + "".join(_saft_transaction(receipt, dialect) for receipt in receipts)
        + "</cashregister></location></company></auditfile>"
    ).encode()


# --- Dintero JSON (the receipt the till builds itself) ---------------------------------------


def to_dintero(
    receipt: GenReceipt, *, store_id: str = "sc029", offset: bool = True
) -> dict[str, Any]:
    """The receipt in Dintero's own shape, as a till that writes dintero-json builds it.

    Cash rounding has no field of its own: the till sends `round_off_to_coin` 100 and the
    rounded payments. `offset=False` writes `purchase_at` as local time without an offset.
    """
    items: list[dict[str, Any]] = []
    for index, (line, net) in enumerate(zip(receipt.lines, receipt.line_nets(), strict=True), 1):
        basis, vat = _vat_split(net, line.vat)
        item: dict[str, Any] = {
            "id": line.article, "line_id": index, "description": line.description,
            "quantity": int(line.quantity), "gross_amount": line.amount, "net_amount": net,
            "tax_percent": line.vat,
            "tax_lines": [{"percentage": line.vat, "amount": vat, "tax_basis": basis,
                           "included_in_price": True}],
        }  # fmt: skip
        discounts = [amount for amount in (line.discount, line.net - net) if amount]
        if discounts:
            item["discount_lines"] = [
                {"line_id": n, "amount": amount, "discount_type": "manual"}
                for n, amount in enumerate(discounts, 1)
            ]
        if receipt.is_return:
            item["is_return_item"] = True
        items.append(item)
    if receipt.tip:
        tip = receipt.tip
        items.append(
            {"line_id": len(items) + 1, "description": "Tips", "quantity": 1,
             "gross_amount": tip, "net_amount": tip, "tax_percent": 0}
        )  # fmt: skip
    local = receipt.when.replace(tzinfo=TIMEZONE)
    data: dict[str, Any] = {
        "store": {"id": store_id},
        "receipt_id": f"{store_id}-1-{receipt.number}",
        "purchase_at": local.isoformat() if offset else receipt.when.isoformat(),
        "currency": "NOK",
        "gross_amount": receipt.gross,
        "net_amount": receipt.due,
        "total_discount": receipt.total_discount,
        "items": items,
        "payments": [
            {"line_id": n, "amount": amount, "type_id": kind}
            for n, (kind, amount) in enumerate(receipt.payments, 1)
        ],
    }
    if receipt.rounding:
        data["round_off_to_coin"] = 100
    return data


def to_dintero_json(receipts: list[GenReceipt], *, offset: bool = True) -> bytes:
    """A dintero-json export: a JSON array of the receipts."""
    return json.dumps([to_dintero(r, offset=offset) for r in receipts], ensure_ascii=False).encode()


def utc_offset(receipt: GenReceipt) -> timedelta:
    """The offset the receipt's local time has in TIMEZONE."""
    offset = receipt.when.replace(tzinfo=TIMEZONE).utcoffset()
    assert offset is not None
    return offset
