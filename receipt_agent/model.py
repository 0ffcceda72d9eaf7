"""Pydantic models of the Dintero receipt we send: the one definition of the wire shape.

Implements API-NOTES §1.3 and the "Create new Receipts" page (seed 004) for
`POST /v1/accounts/{aid}/receipts`, CONTRACT §3 (times, amounts). Pure: imports pydantic
and the stdlib only, never does I/O. The discount-rule shape (`discounts[]`) lives in
`model_discount.py`, split out for size and because it is modelled permissively.

Decisions, each pinned by a test in tests/test_model.py:

- `extra="forbid"` everywhere (except the discount rule): we emit only schema fields, and
  a till's misspelt key is a field error, never silently sent or dropped.
- Amounts (every integer money field, `line_id`) are JSON integers only: `12.5`, `"12"`,
  `true` **and** `12.0` are rejected. A float in a minor-unit field almost always means
  the till wrote major units (kroner), and accepting `12.0` as 12 øre would hide that.
- Other numbers (`quantity`, percentages, `no_of_items`, `issuer_id`, `input_type`) are
  JSON numbers: an int stays an int, a finite float stays a float, a `Decimal` from a
  parser becomes an int when integral, else a float. Strings and booleans are rejected.
- Strings and booleans are strict: `42` is not a string, `"true"` is not a boolean.
- Date-times must be ISO-8601 strings (or aware `datetime`s) **with an offset**; a naive
  time is rejected, never guessed. They serialise with the offset they came with
  (`+01:00` stays `+01:00`; UTC is written `Z`).
- `hide_input_in_errors`: a validation error never repeats the input, which may be
  personal data (CONTRACT §6).

Serialise with `receipt.model_dump(mode="json", exclude_none=True)`.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError, core_schema

from receipt_agent.model_discount import DiscountRefs

# --- field types ---------------------------------------------------------------------------

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _number(value: object) -> int | float:
    """A JSON number: int stays int, finite float stays float; str/bool are refused."""
    if type(value) is int:  # the common case first (called for every quantity and rate)
        return value
    if isinstance(value, Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number_type", "Input should be a valid number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


def _datetime_input(value: object) -> object:
    """Only ISO-8601 text or a datetime: pydantic would read `1699335116` as a timestamp."""
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATETIME.match(value)):
        return value
    raise PydanticCustomError(
        "datetime_format",
        "Input should be an ISO-8601 date-time with an offset, e.g. 2021-03-30T10:40:00+01:00",
    )


def _date_input(value: object) -> object:
    if (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and _ISO_DATE.match(value)
    ):
        return value
    raise PydanticCustomError("date_format", "Input should be a date as YYYY-MM-DD")


def _no_outer_spaces(value: str) -> str:
    if value != value.strip():
        raise PydanticCustomError("outer_spaces", "must not start or end with spaces")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank_string", "must not be empty or only spaces")
    return value


Amount = StrictInt
"""Money in the currency's minor unit (øre), a JSON integer."""


class _PlainNumber:
    """`_number` as the whole validation of a field, its value serialised as it is.

    `PlainValidator(_number)` wraps the field's serialiser in a Python function (pydantic
    calls it for every number it writes); an int or a float serialises the same without
    it, so this builds the same validator and leaves serialisation to pydantic-core.
    """

    def __get_pydantic_core_schema__(
        self, source: object, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_number)


Number = Annotated[int | float, _PlainNumber(), WithJsonSchema({"type": "number"})]
DateTime = Annotated[AwareDatetime, BeforeValidator(_datetime_input)]
Date = Annotated[date, BeforeValidator(_date_input)]
DecimalText = Annotated[StrictStr, Field(pattern=r"^-?\d+(\.\d+)?$")]
"""A `*_dwh` field: the same minor-unit amount with decimals, as text (`"59800.01"`)."""
PhoneNumber = Annotated[StrictStr, Field(pattern=r"^\+?[1-9]\d{1,14}$")]
"""E.164, as the spec's pattern for `customer` and `delivery` phone numbers."""
Currency = Annotated[StrictStr, Field(pattern=r"^[A-Z]{3}$")]

EntryStatus = Literal[
    "None", "Voided", "Posted", "Concluded", "Cancelled", "OnHold", "Training", "Reprinted"
]
DiscountType = Literal["customer", "periodic", "manual", "loyalty", "total", "employee", "external"]
ValueType = Literal["string", "integer", "number", "boolean", "datetime"]
CustomerType = Literal["customer", "company", "contact", "employee", "other"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


# --- shared parts ---------------------------------------------------------------------------


class Address(_Model):
    address_line: StrictStr
    address_line_2: StrictStr | None = None
    postal_code: StrictStr | None = None
    postal_place: StrictStr
    country: StrictStr  # ISO 3166-1, e.g. "NO"


class ExtraInfo(_Model):
    key: StrictStr | None = None
    value: StrictStr | None = None
    value_type: ValueType | None = None


class InfoCodeItem(_Model):
    line_id: StrictInt | None = None
    amount: Amount | None = None
    amount_dwh: DecimalText | None = None
    infocode_id: StrictStr | None = None
    sub_infocode_id: StrictStr | None = None
    information: StrictStr | None = None
    input_type: Number | None = None
    withdrawal_from_stock: StrictBool | None = None


class TaxItem(_Model):
    amount: Amount | None = None
    amount_dwh: DecimalText | None = None
    exempt: StrictBool | None = None
    included_in_price: StrictBool | None = None
    percentage: Number | None = None
    tax_basis: Amount | None = None
    tax_basis_dwh: DecimalText | None = None
    tax_code: StrictStr | None = None
    tax_group: StrictStr | None = None


# --- store ----------------------------------------------------------------------------------


class Store(_Model):
    id: Annotated[StrictStr, AfterValidator(_not_blank)]
    name: StrictStr | None = None
    business_name: StrictStr | None = None
    address: Address | None = None
    chain: StrictStr | None = None
    email: StrictStr | None = None
    gln: StrictStr | None = None
    organization_number: StrictStr | None = None
    phone_number: StrictStr | None = None  # no pattern in the spec for the store's number
    mcc: Annotated[StrictStr, Field(pattern=r"^\d{4}$")] | None = None  # ISO 18245
    bax: StrictStr | None = None
    terminal_id: StrictStr | None = None
    payout_destination_id: StrictStr | None = None


# --- items ----------------------------------------------------------------------------------


class ItemGroup(_Model):
    id: StrictStr
    name: StrictStr | None = None


class Dimension(_Model):
    color: StrictStr | None = None
    size: StrictStr | None = None
    style: StrictStr | None = None
    config: StrictStr | None = None
    variant: StrictStr | None = None


class DiscountItem(_Model):
    amount: Amount | None = None
    percentage: Number | None = None
    discount_type: DiscountType | None = None
    discount_id: StrictStr | None = None
    description: StrictStr | None = None
    line_id: StrictInt | None = None


class BonusItem(_Model):
    bonus: Amount | None = None
    percentage: Number | None = None
    discount_type: DiscountType | None = None
    discount_id: StrictStr | None = None
    description: StrictStr | None = None
    line_id: StrictInt | None = None


class ReceiptItem(_Model):
    id: StrictStr | None = None
    groups: list[ItemGroup] | None = None
    quantity: Number | None = None
    unit: StrictStr | None = None
    description: StrictStr | None = None
    description_alias: StrictStr | None = None
    net_amount: Amount | None = None
    net_amount_dwh: DecimalText | None = None
    gross_amount: Amount | None = None
    gross_amount_dwh: DecimalText | None = None
    unit_gross_price: Amount | None = None
    tax_percent: Number | None = None
    line_id: StrictInt | None = None
    barcode: StrictStr | None = None
    cost_price: Amount | None = None
    voided: StrictBool | None = None
    scale_item: StrictBool | None = None
    eligible_for_discount: StrictBool | None = None
    included_in_total_discount: StrictBool | None = None
    price_has_been_keyedIn: StrictBool | None = None  # noqa: N815 - the spec's spelling
    discount_has_been_keyedIn: StrictBool | None = None  # noqa: N815 - the spec's spelling
    is_return_item: StrictBool | None = None
    is_linked_item: StrictBool | None = None
    is_virtual_product: StrictBool | None = None
    is_changed: StrictBool | None = None
    salesperson_id: StrictStr | None = None
    salesperson_name: StrictStr | None = None
    serial_id: StrictStr | None = None
    comment: StrictStr | None = None
    infocode_lines: list[InfoCodeItem] | None = None
    tax_lines: list[TaxItem] | None = None
    dimension: Dimension | None = None
    discount_lines: list[DiscountItem] | None = None
    bonus_lines: list[BonusItem] | None = None
    extra_info: list[ExtraInfo] | None = None


# --- payments -------------------------------------------------------------------------------


class CardInfo(_Model):
    balance_amount: Amount | None = None
    card_amount: Amount | None = None
    issuer_id: Number | None = None
    issuer_name: StrictStr | None = None
    session_id: StrictStr | None = None
    terminal_id: StrictStr | None = None
    card_number: StrictStr | None = None  # masked by the terminal
    card_type: StrictStr | None = None
    receipt: StrictStr | None = None  # the terminal's receipt text


class PaymentItem(_Model):
    line_id: StrictInt | None = None
    amount: Amount | None = None
    type_id: StrictStr | None = None
    token_id: StrictStr | None = None
    token_type: StrictStr | None = None
    description: StrictStr | None = None
    voided: StrictBool | None = None
    card_info: CardInfo | None = None
    reference_id: StrictStr | None = None
    infocode_lines: list[InfoCodeItem] | None = None


# --- customer and delivery ------------------------------------------------------------------


class CustomerAddress(Address):
    type: StrictStr | None = None
    custom_type: StrictStr | None = None


class EnrolledBy(_Model):
    type: StrictStr | None = None  # free text since 2024-04-01 (url, store, qr_code, …)
    value: StrictStr


class Company(_Model):
    organization_number: StrictStr | None = None
    bussiness_name: StrictStr  # sic: the spec's spelling
    department: StrictStr | None = None
    industry: StrictStr | None = None
    website: StrictStr | None = None
    number_of_employees: StrictStr | None = None


class Consent(_Model):
    consent: StrictBool | None = None
    updated_at: DateTime | None = None


class MarketingConsent(_Model):
    sms: Consent | None = None
    email: Consent | None = None


class Term(_Model):
    id: StrictStr | None = None


class CustomerToken(_Model):
    token_id: StrictStr | None = None
    value: StrictStr | None = None
    type: StrictStr | None = None


class Customer(_Model):
    gender: StrictStr | None = None
    first_name: StrictStr | None = None
    last_name: StrictStr | None = None
    email: StrictStr | None = None
    metadata: dict[str, Any] | None = None
    phone_number: PhoneNumber | None = None
    addresses: list[CustomerAddress] | None = None
    pays_tax: StrictBool | None = None
    date_of_birth: Date | None = None
    enrolled_by: EnrolledBy | None = None
    favorite_store: StrictStr | None = None
    company: Company | None = None
    marketing_consent: MarketingConsent | None = None
    status: StrictStr | None = None
    term: Term | None = None
    type: CustomerType | None = None
    token: CustomerToken | None = None


class Delivery(_Model):
    first_name: StrictStr | None = None
    last_name: StrictStr | None = None
    email: StrictStr | None = None
    phone_number: PhoneNumber | None = None
    address: Address | None = None


# --- the receipt ----------------------------------------------------------------------------


class Receipt(_Model):
    """One element of the `POST /receipts` array; `store`, `receipt_id`, `purchase_at` req."""

    store: Store
    receipt_id: Annotated[StrictStr, AfterValidator(_not_blank)]
    purchase_at: DateTime
    items: list[ReceiptItem] | None = None
    payments: list[PaymentItem] | None = None
    tax_lines: list[TaxItem] | None = None
    discounts: list[DiscountRefs] | None = None
    customer_id: (
        Annotated[StrictStr, Field(max_length=255), AfterValidator(_no_outer_spaces)] | None
    ) = None
    customer: Customer | None = None
    delivery: Delivery | None = None
    gross_amount: Amount | None = None
    gross_amount_dwh: DecimalText | None = None
    net_amount: Amount | None = None
    net_amount_dwh: DecimalText | None = None
    round_off_to_coin: Amount | None = None
    currency: Currency | None = None
    order_number: StrictStr | None = None
    transaction_id: StrictStr | None = None
    transaction_date: DateTime | None = None
    amount_due: Amount | None = None
    amount_due_dwh: DecimalText | None = None
    no_of_items: Number | None = None
    is_changed: StrictBool | None = None
    total_discount: Amount | None = None
    total_manual_discount_amount: Amount | None = None
    total_manual_percentage_discount: StrictInt | None = None
    total_bonus: Amount | None = None  # changelog 2023-07-01; not on the seed page (API-NOTES §1.1)
    operator_id: StrictStr | None = None
    operator_name: StrictStr | None = None
    salesperson_id: StrictStr | None = None
    salesperson_name: StrictStr | None = None
    entry_status: EntryStatus | None = None
    comment: StrictStr | None = None
    receipt_text: StrictStr | None = None
    infocode_items: list[InfoCodeItem] | None = None
    discount_code: list[StrictStr] | None = None
    extra_info: list[ExtraInfo] | None = None
