"""Exact money: Decimal amounts from exports → integer minor units, and VAT splits.

Pure, stdlib only. Never uses float. An amount finer than the currency's minor unit is an
error (CONTRACT §3: converted exactly, never rounded silently).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from receipt_agent.refused import refused

# ISO 4217 minor-unit exponents that differ from 2; every other currency has 2.
_EXPONENTS = {
    "BHD": 3, "BIF": 0, "CLF": 4, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3,
    "JPY": 0, "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3,
    "UGX": 0, "UYI": 0, "UYW": 4, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}  # fmt: skip


class AmountError(ValueError):
    """An amount that cannot be converted exactly.

    The message quotes a parsed number (`12.345 NOK is finer…`) but never the text of
    one that did not parse: that text may be personal data (CONTRACT §6).
    """


def minor_exponent(currency: str) -> int:
    """Given an ISO 4217 code, return its number of minor-unit digits (NOK → 2)."""
    return _EXPONENTS.get(currency.upper(), 2)


def parse_decimal(text: str, *, decimal_separator: str = ".") -> Decimal:
    """Given `"1 234,50"` or `"-12.5"`, return the Decimal. Raise AmountError when it is not one."""
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "")
    if decimal_separator == ",":
        cleaned = cleaned.replace(".", "").replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise AmountError(f"not a number {refused(text)}") from None
    if not value.is_finite():
        raise AmountError("not a finite number (infinity or NaN)")
    return value


def to_minor(amount: Decimal | str | int, currency: str) -> int:
    """Given a major-unit amount (`Decimal("123.45")`), return minor units (12345).

    Raise AmountError when the amount has more decimals than the currency's minor unit
    (e.g. 12.345 NOK): it is rejected, never rounded. Trailing zeros are fine (12.34000).
    """
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    scaled = value.scaleb(minor_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise AmountError(
            f"{value} {currency} is finer than the currency's minor unit "
            f"(1/{10 ** minor_exponent(currency)}); the export must not hold fractions of øre"
        )
    return int(scaled)


def minor_to_major(amount_minor: int, currency: str) -> Decimal:
    """Given minor units (12345), return the major-unit Decimal (123.45)."""
    return Decimal(amount_minor).scaleb(-minor_exponent(currency))


def split_vat(gross_minor: int, percent: Decimal | int | str) -> tuple[int, int]:
    """Given a gross amount incl. VAT and a rate in percent, return (net, vat) in minor units.

    VAT = gross × rate / (100 + rate), rounded half-even to the minor unit; net = gross − VAT,
    so net + vat == gross always holds.
    """
    rate = Decimal(str(percent))
    if rate == 0:
        return gross_minor, 0
    vat = (Decimal(gross_minor) * rate / (Decimal(100) + rate)).quantize(
        Decimal(1), rounding=ROUND_HALF_EVEN
    )
    return gross_minor - int(vat), int(vat)


def allocate(amount_minor: int, weights: list[int]) -> list[int]:
    """Given an amount and non-negative weights (e.g. the lines' net amounts), return the
    shares pro rata, exact to the minor unit: each share is rounded toward zero and what is
    left goes to the largest weight (the first of equals), so the shares sum to the amount.

    Raise ValueError when the weights are empty, negative or sum to zero.
    """
    total = sum(weights)
    if not weights or total <= 0 or min(weights) < 0:
        raise ValueError("allocate needs non-negative weights with a positive sum")
    sign = -1 if amount_minor < 0 else 1
    shares = [sign * (abs(amount_minor) * weight // total) for weight in weights]
    largest = max(range(len(weights)), key=lambda index: (weights[index], -index))
    shares[largest] += amount_minor - sum(shares)
    return shares
