"""POSLog values that the ARTS standard and vendors spell in several ways (formats.md §4).

Helper of `formats.poslog` and `formats.poslog_lines`. Pure, stdlib only; no I/O, no logging.

- **Flags** are `xs:boolean`: `true`/`1` (and vendors' `True`/`TRUE`) are true.
- **Codes** (`TransactionStatus`, `@TypeCode`, `@TotalType`, `@RoundingDirection`,
  `@TenderType`) are compared without a vendor prefix (`VRExt:`), case or punctuation:
  `Cancelled`, `Canceled` and `CANCELED` are one status.
- **Times.** An ISO-8601 date-time's own offset wins; else an `@Offset` (or `@UTCOffset`,
  `@TimeZoneOffset`) attribute on the element: `+01:00`, `+0100`, `+1`, `Z`, `UTC+01:00`, or
  minutes (`60`, `-300`) when larger than 14; else a `@TimeZone` attribute or the
  transaction's `TimeZone` element (an IANA name such as `Europe/Oslo`, or an offset); else
  the source's `timezone`.
- **Card numbers** go to Dintero only when the till already masked them (`************1234`);
  an unmasked number is never forwarded.
- **Line amounts.** A unit price is `ActualSalesUnitPrice`, else `RegularSalesUnitPrice`,
  `UnitListPrice`, `UnitPrice`; a `Quantity` without text takes its `@Units`; and an
  `ExtendedAmount` is already net of `ExtendedDiscountAmount` when a unit price × quantity
  equals the two together (vendors write either).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from receipt_agent.formats.payment_types import normalised, token_type_for
from receipt_agent.formats.xml_stream import child, text
from receipt_agent.money import AmountError, to_minor

_TRUE = {"true", "1", "yes", "y"}
_UNIT_PRICES = ("ActualSalesUnitPrice", "RegularSalesUnitPrice", "UnitListPrice", "UnitPrice")
_OFFSET = re.compile(r"([+-])?(\d{1,4})(?::(\d{2}))?")
_MAX_OFFSET_HOURS = 14
_HOUR_DIGITS = 2
_OFFSET_ATTRIBUTES = ("Offset", "UTCOffset", "TimeZoneOffset")
_MASK = re.compile(r"[*Xx#•]")
_Found = TypeVar("_Found")
_MAX_VISIBLE_DIGITS = 10  # PCI DSS: at most the first 6 and the last 4 digits may be shown


class TimeError(ValueError):
    """A time or offset that cannot be read; the message never repeats the value."""


def is_true(value: str | None) -> bool:
    """Given an `xs:boolean` attribute value (or None), return whether it says true."""
    return value is not None and value.strip().lower() in _TRUE


def code(value: str | None) -> str:
    """Given `VRExt:PostVoided` or `Post-Voided`, return `postvoided` ('' for None)."""
    return normalised(value) if value else ""


def offset_from(value: str) -> tzinfo:
    """Given `+01:00`, `+0100`, `-5`, `Z`, `UTC+1` or `-300` (minutes), return the fixed zone.

    Raise TimeError when it is none of those or beyond ±14 hours.
    """
    cleaned = value.strip()
    if cleaned.upper() in ("Z", "UTC", "GMT"):
        return UTC
    if cleaned[:3].upper() in ("UTC", "GMT"):
        cleaned = cleaned[3:].strip()
    match = _OFFSET.fullmatch(cleaned)
    if not match or (match.group(3) is not None and len(match.group(2)) > _HOUR_DIGITS):
        raise TimeError("is not a UTC offset (e.g. +01:00)")
    digits, after_colon = match.group(2), match.group(3)
    if after_colon is not None:  # +01:00
        minutes = int(digits) * 60 + int(after_colon)
    elif len(digits) == _HOUR_DIGITS * 2:  # +0100
        minutes = int(digits[:2]) * 60 + int(digits[2:])
    elif int(digits) <= _MAX_OFFSET_HOURS:  # +1, -05
        minutes = int(digits) * 60
    else:  # 60, -300: minutes
        minutes = int(digits)
    if minutes > _MAX_OFFSET_HOURS * 60:
        raise TimeError("is not a UTC offset (e.g. +01:00)")
    return timezone(timedelta(minutes=-minutes if match.group(1) == "-" else minutes))


def zone_from(value: str) -> tzinfo:
    """Given an IANA zone name (`Europe/Oslo`) or an offset, return the zone.

    Raise TimeError when it is neither.
    """
    cleaned = value.strip()
    if "/" in cleaned:
        try:
            return ZoneInfo(cleaned)
        except (ZoneInfoNotFoundError, ValueError):
            raise TimeError("is not a known time zone (e.g. Europe/Oslo)") from None
    try:
        return offset_from(cleaned)
    except TimeError:
        try:
            return ZoneInfo(cleaned)
        except (ZoneInfoNotFoundError, ValueError):
            raise TimeError("is neither a time zone (e.g. Europe/Oslo) nor an offset") from None


def transaction_zone(transaction: Element) -> tuple[tzinfo | None, str | None]:
    """The zone a transaction names for its local times: (zone, None) or (None, problem)."""
    value = transaction.get("TimeZone") or text(transaction, "TimeZone")
    if value is None:
        return None, None
    try:
        return zone_from(value), None
    except TimeError as error:
        return None, f"TimeZone: {error}"


def read_time(node: Element, default_zone: tzinfo) -> str:
    """Given a date-time element, return it as ISO-8601 with an explicit offset.

    The text's own offset wins, then the element's offset or TimeZone attribute, then
    `default_zone` (the transaction's TimeZone, else the source's timezone; fold=0).
    Raise TimeError (naming what is wrong, never the value) when it cannot be read.
    """
    value = (node.text or "").strip()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise TimeError("is not an ISO-8601 date-time") from None
    if moment.tzinfo is not None:
        return moment.isoformat()
    for name in _OFFSET_ATTRIBUTES:
        offset = node.get(name)
        if offset is not None:
            try:
                return moment.replace(tzinfo=offset_from(offset)).isoformat()
            except TimeError as error:
                raise TimeError(f"@{name} {error}") from None
    zone_name = node.get("TimeZone")
    if zone_name is not None:
        try:
            return moment.replace(tzinfo=zone_from(zone_name), fold=0).isoformat()
        except TimeError as error:
            raise TimeError(f"@TimeZone {error}") from None
    return moment.replace(tzinfo=default_zone, fold=0).isoformat()


def masked_card_number(value: str | None) -> str | None:
    """A card number the till masked (`************1234`), else None: never a full number."""
    if not value:
        return None
    cleaned = value.strip()
    digits = sum(character.isdigit() for character in cleaned)
    if _MASK.search(cleaned) and digits <= _MAX_VISIBLE_DIGITS:
        return cleaned
    return None


def first_text(element: Element, *names: str) -> str | None:
    """The text of the first of `names` that `element` has (alternative spellings)."""
    return _first(names, lambda name: text(element, name))


def first_child(element: Element, *names: str) -> Element | None:
    """The first of `names` that `element` has as a child (alternative spellings)."""
    return _first(names, lambda name: child(element, name))


def _first(names: tuple[str, ...], read: Callable[[str], _Found | None]) -> _Found | None:
    """What `read` finds for the first name that has something (vendors' spellings)."""
    return next((found for name in names if (found := read(name)) is not None), None)


def tender_details(tender: Element) -> dict[str, Any]:
    """A Tender's `token_type`, `card_info` and `reference_id`, where the export says them.

    `@TenderType` (else `TenderID`), refined by `CreditDebit/@CardType`, gives the token
    type (`payment_types`); `CardBrand` and a masked card number give `card_info`;
    `Authorization/ReferenceNumber` gives `reference_id`.
    """
    details: dict[str, Any] = {}
    card = first_child(tender, "CreditDebit", "Credit", "Debit", "Card")
    card_kind = card.get("CardType") if card is not None else None
    token_type = token_type_for(tender.get("TenderType") or text(tender, "TenderID"), card_kind)
    if token_type:
        details["token_type"] = token_type
    if card is not None:
        card_info = {
            "card_type": first_text(card, "CardBrand", "CardName", "Brand"),
            "card_number": masked_card_number(
                first_text(card, "PrimaryAccountNumber", "MaskedCardNumber", "CardNumber")
            ),
            "issuer_name": first_text(card, "IssuerName", "CardIssuerName"),
        }
        card_info = {key: value for key, value in card_info.items() if value}
        if card_info:
            details["card_info"] = card_info
    authorization = child(tender, "Authorization")
    reference = text(authorization, "ReferenceNumber") if authorization is not None else None
    if reference:
        details["reference_id"] = reference
    return details


def units(quantity: Element | None) -> int | Decimal | None:
    """`Quantity/@Units` when the element has no text (a positive count), else None."""
    units = quantity.get("Units") if quantity is not None else None
    try:
        number = Decimal(units) if units else None
    except InvalidOperation:
        return None
    if number is None or not number.is_finite() or number <= 0:
        return None
    return int(number) if number == number.to_integral_value() else number.normalize()


def is_after_discount(
    sale: Element, extended: int, discount: int, quantity: int | Decimal, currency: str
) -> bool:
    """Whether ExtendedAmount is already net of ExtendedDiscountAmount (vendors differ).

    True when a unit price × quantity equals ExtendedAmount + ExtendedDiscountAmount (the
    till wrote the line after its discount and the discount beside it), unless the
    ActualSalesUnitPrice × quantity is ExtendedAmount itself (then it is before it).
    """
    prices: dict[str, int] = {}
    for name in _UNIT_PRICES:
        value = text(sale, name)
        try:
            prices[name] = abs(to_minor(Decimal(value), currency)) if value else 0
        except (InvalidOperation, AmountError):
            prices[name] = 0
    count = Decimal(quantity).copy_abs()
    if prices["ActualSalesUnitPrice"] * count == extended:
        return False
    return any(price and price * count == extended + discount for price in prices.values())


def unit_gross_price(sale: Element, currency: str) -> int | None:
    """The unit price (a magnitude), when the till wrote one exact to the øre."""
    value = first_text(sale, *_UNIT_PRICES)
    if value is None:
        return None
    try:
        return abs(to_minor(Decimal(value), currency))
    except (InvalidOperation, AmountError):
        return None  # informative only: a price per gram in fractions of øre is left out
