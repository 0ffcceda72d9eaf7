"""What reconciliation remembers of each transaction (CONTRACT §7): the ledger entry.

Pure: values in, values out; no I/O, no logging. `mapping` builds an entry for every valid
receipt, `intake` one for every rejected and skipped transaction, and `statedb` stores
them. An entry carries the till's register and number (to find gaps in the numbering),
the business day in the source's timezone, the amount paid, and the figures a till's own
control totals (a SAF-T Z report) are compared with: VAT per rate and payments per type.

`content` is a digest of the transaction: the same number read twice with the same
content is one transaction read twice (a re-export, a file read again); with a different
content it is a number the till used twice, which reconciliation names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

RECEIPT, REJECTED = "receipt", "rejected"
OUTCOMES = (RECEIPT, REJECTED, "training", "voided", "non_sale")


@dataclass(slots=True)  # not frozen: see mapping.ValidReceipt; read-only all the same
class LedgerEntry:
    """One transaction as reconciliation sees it; amounts in minor units, signed."""

    register: str  # "" when the format names no register
    number: str | None  # the till's number, None when the format has none
    business_day: str  # YYYY-MM-DD in the source's timezone
    outcome: str  # one of OUTCOMES
    content: str  # digest of the transaction's content
    amount_minor: int | None = None
    vat_minor: dict[str, int] = field(default_factory=dict)  # rate "25" → VAT
    payments_minor: dict[str, int] = field(default_factory=dict)  # type id → amount


def rate_key(percent: float | int | str) -> str:
    """A VAT rate as a stable key: 25, 25.0, "25.00" → "25"; 12.5 → "12.5"."""
    number = float(percent)
    key = str(int(number)) if number == int(number) else f"{number:g}"
    if len(_RATES) >= _MAX_RATES:
        _RATES.clear()
    _RATES[percent] = key
    return key


# rate_key's answers by rate: a handful of rates, met on every receipt. A plain dict read
# inline where an entry is built (lru_cache's wrapper: ~600 instructions a call). Equal
# rates (25, 25.0) share an entry, as they did in the lru_cache: they have the same key.
_RATES: dict[float | int | str, str] = {}
_MAX_RATES = 256


def business_day(purchase_at: datetime | str, tz: ZoneInfo) -> str:
    """The local date of a purchase time in the source's timezone, as YYYY-MM-DD."""
    moment = (
        purchase_at if isinstance(purchase_at, datetime) else datetime.fromisoformat(purchase_at)
    )
    return moment.astimezone(tz).date().isoformat()


def valid_day(text: str | None) -> str | None:
    """YYYY-MM-DD from an export's date text, or None when it is none or not a date."""
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return None


def text_id(value: object) -> str | None:
    """A register or number as text; None for nothing usable."""
    if value is None or isinstance(value, bool):
        return None
    written = str(value).strip()
    return written or None


# An empty SHA-256 to copy: `hashlib.sha256(data)` looks the algorithm up in OpenSSL on
# every call (EVP fetch), a copy does not: 5.3 -> 3.7 µs for a 520-byte payload (timeit,
# this machine); the same digest. Never updated itself, so threads may copy it at once.
_SHA256 = hashlib.sha256()


def digest(data: bytes) -> str:
    """A short content digest (16 hex digits of SHA-256)."""
    hashed = _SHA256.copy()
    hashed.update(data)
    return hashed.digest()[:8].hex()  # = hexdigest()[:16], one string less


# date → its YYYY-MM-DD text: `date.isoformat` formats through PyUnicode_FromFormat
# (callgrind: ~3,000 instructions), a lookup costs a tenth of that.
_DAYS: dict[date, str] = {}
_MAX_DAYS = 4096


def receipt_entry(
    receipt: Mapping[str, Any], private: Mapping[str, Any], payload: bytes, tz: ZoneInfo
) -> LedgerEntry:
    """Given a validated receipt (`model_fast.validate`'s plain values: no None, an aware
    `purchase_at`), the parser's private keys and the payload, return its entry."""
    if private:
        day = valid_day(text_id(private.get("_business_day")))
        register = text_id(private.get("_register_id")) or ""
        number = text_id(private.get("_number"))
    else:  # dintero-json: no private keys (the common case, without six calls)
        day, register, number = None, "", None
    if day is None:  # = business_day(), its text looked up: the same few days every time
        local = receipt["purchase_at"].astimezone(tz).date()
        day = _DAYS.get(local)
        if day is None:
            if len(_DAYS) >= _MAX_DAYS:
                _DAYS.clear()
            day = _DAYS[local] = local.isoformat()
    amount = receipt.get("net_amount")
    if amount is None:
        amount = receipt.get("gross_amount")
    items = receipt.get("items") or ()
    if amount is None:
        amount = sum(item.get("net_amount") or item.get("gross_amount") or 0 for item in items)
    # VAT per rate: the receipt's tax lines, else every item's; payments per type. Inline
    # loops (one frame per receipt, not four): every valid receipt comes through here.
    vat: dict[str, int] = {}
    lines = receipt.get("tax_lines") or [
        tax for item in items for tax in item.get("tax_lines") or ()
    ]
    for tax in lines:
        percentage, tax_amount = tax.get("percentage"), tax.get("amount")
        if percentage is None or tax_amount is None:
            continue
        key = _RATES.get(percentage)
        if key is None:
            key = rate_key(percentage)
        vat[key] = vat.get(key, 0) + tax_amount
    payments: dict[str, int] = {}
    for payment in receipt.get("payments") or ():
        paid = payment.get("amount")
        if paid is None or payment.get("voided"):
            continue
        key = payment.get("type_id") or "unknown"
        payments[key] = payments.get(key, 0) + paid
    return LedgerEntry(register, number, day, RECEIPT, digest(payload), amount, vat, payments)
