"""Raw records → validated receipts: store defaults, currency, receipt_id, validation.

Implements CONTRACT §2 (`store`, `currency`, `receipt_id_format`) and §3 (receipt ids,
rejected receipts with field errors). Pure: values in, values out; no I/O, no logging.
Never puts an input value into an error message (it may be personal data, CONTRACT §6).
Never mutates the parser's record.

Store defaults: `sources[].store` describes the store with that id. A receipt whose
`store` has no id or the same id gets every default it lacks (its own values win, the
address merged field by field); a receipt that names ANOTHER store (a SAF-T/POSLog
`mapping.stores` entry) gets none, so it never borrows the wrong name or address.

Private keys (the convention for format authors)
-------------------------------------------------
A parser may put these keys at the TOP level of `RawReceipt.data`. `finish_receipt` pops
them before validation, so they are never sent; any other key starting with `_` is an
unknown field and rejects the receipt like any misspelt key.

- `_register_id` (str or int): the till/register/workstation that numbers the receipt
  (SAF-T `registerID`, POSLog `WorkstationID`, CSV `register_id`).
- `_number` (str or int): the receipt number as printed, unique per register (SAF-T `nr`,
  POSLog `SequenceNumber`, CSV `receipt_number`).
- `_rounding` (int, minor units, signed): the cash rounding the till applied, i.e. what
  was added to the receipt's total to get the amount paid (295.40 paid as 295.00: -40).
- `_change` (int, minor units): change handed back, for formats that record the tendered
  amount and the change separately instead of as a negative payment line.
- `_business_day` (YYYY-MM-DD): the till's business day when the export names one (POSLog
  `BusinessDayDate`); else reconciliation takes `purchase_at`'s date in `source.timezone`.

Parsers still build `receipt_id` themselves (`{store.id}-{register}-{number}` for SAF-T,
POSLog and CSV, CONTRACT §3); `_register_id`/`_number` exist so that a source's
`receipt_id_format` can rebuild it. `_rounding`/`_change` are read by
`totals.check_totals`; parsers import that from `receipt_agent.totals`, not from here,
because `formats` may not import `mapping` (import-linter layers).

`receipt_id_format` placeholders: `{store_id}` ← the merged `store.id`; `{register_id}` ←
`_register_id`, else `store.terminal_id`; `{number}` ← `_number`, else the receipt's own
`receipt_id` (so a dintero-json source can write `"{store_id}-{number}"`). A placeholder
without a value, an unknown placeholder or broken braces reject the receipt with a
sentence saying so.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from receipt_agent import ledger, model_fast, totals
from receipt_agent.config import SourceBase
from receipt_agent.invariants import check_invariants
from receipt_agent.notation import format_location, pydantic_message, receipt_id_placeholders
from receipt_agent.records import InvalidRecord, RawReceipt
from receipt_agent.refused import refused

# Shorter unquoted text is too likely an ordinary word of a message to count as an echo.
_MIN_UNQUOTED_ECHO = 8
_MAX_ECHO_DEPTH = 3
PRIVATE_KEYS = ("_register_id", "_number", "_rounding", "_change", "_business_day")
_PRIVATE = frozenset(PRIVATE_KEYS)
_NOT_AMOUNTS = frozenset({"line_id", "total_manual_percentage_discount"})  # ints, not money

# `source.tz` (ZoneInfo(source.timezone)) looked up once per zone name, not per receipt
# (the property call and ZoneInfo's own cache lookup: ~1,900 instructions; this ~600).
_zone = functools.lru_cache(maxsize=64)(ZoneInfo)

# Kept so that `from receipt_agent.mapping import check_totals` goes on working; new code
# in `formats` imports `receipt_agent.totals` instead (formats may not import mapping).
check_totals = totals.check_totals


@dataclass(slots=True)
class ValidReceipt:
    """A receipt ready to queue; `payload` is its final compact JSON object, sent verbatim.

    Read-only by convention, not frozen: one is built for every receipt taken in, and a
    frozen dataclass's `__init__` sets each field through `object.__setattr__` (callgrind:
    ~1,300 instructions a field; a plain slot store is a few dozen).
    """

    store_id: str
    receipt_id: str
    payload: bytes
    location: str
    entry: ledger.LedgerEntry | None = None  # what reconciliation records (CONTRACT §7)


def finish_receipt(raw: RawReceipt, source: SourceBase) -> ValidReceipt | InvalidRecord:
    """Given a parser's raw receipt and its source, return it validated, or its field errors.

    Merges `source.store` under the receipt's `store` (the receipt's values win, address
    field by field), sets `currency` from the source when absent, applies
    `source.receipt_id_format`, then validates with `model_fast.validate` (`model.Receipt`'s
    schema, accepts and errors) and checks the invariants of `receipt_agent.invariants` (a
    receipt that breaks one is rejected with the invariant and its numbers). Never mutates
    `raw`.
    """
    data = dict(raw.data)
    private: dict[str, Any] = {}
    if not _PRIVATE.isdisjoint(data):  # dintero-json receipts have none: one C-level test
        for key in PRIVATE_KEYS:
            if key in data:
                private[key] = data.pop(key)
    data["store"] = _merge_store(data.get("store"), source)
    if data.get("currency") is None:
        data["currency"] = source.currency
    errors: list[str] = []
    if source.receipt_id_format:
        receipt_id, problem = _format_receipt_id(source.receipt_id_format, data, private)
        if problem:
            errors.append(problem)
        else:
            data["receipt_id"] = receipt_id
    valid: dict[str, Any] | None = None
    try:
        valid, payload = model_fast.validate(data)
    except ValidationError as error:
        errors.extend(error_sentences(error))
    if valid is not None and not errors:
        errors = check_invariants(data, private)
    if valid is None or errors:
        return InvalidRecord(
            location=raw.location,
            errors=errors,
            store_id=_text(data["store"].get("id") if isinstance(data["store"], dict) else None),
            receipt_id=_text(data.get("receipt_id")),
            data=data,
            register_id=ledger.text_id(private.get("_register_id")),
            number=ledger.text_id(private.get("_number")),
        )
    return ValidReceipt(
        valid["store"]["id"],
        valid["receipt_id"],
        payload,
        raw.location,
        ledger.receipt_entry(valid, private, payload, _zone(source.timezone)),
    )


def error_sentences(error: ValidationError) -> list[str]:
    """Given a pydantic error, return `items[2].tax_percent: <message>` lines, no inputs."""
    sentences: list[str] = []
    errors = error.errors(include_url=False)
    decimals = [item for item in errors if _is_decimal_amount(item)]
    for item in errors:
        if item in decimals:
            if item is decimals[0]:
                sentences.append(_decimal_amounts(decimals))
            continue
        message = _without_input(pydantic_message(item, _RECEIPT_MESSAGES), item.get("input"))
        sentence = f"{field_path(tuple(item['loc']))}: {message}"
        if sentence not in sentences:
            sentences.append(sentence)
    return sentences


def _decimal_amounts(decimals: list[Any]) -> str:
    """One sentence for every money field that holds a number with decimals (issue 13)."""
    fields = ", ".join(field_path(tuple(item["loc"])) for item in decimals)
    holds = "these hold decimal numbers" if len(decimals) > 1 else "this holds a decimal number"
    return (
        f"{fields}: amounts are integers in minor units (øre), but {holds}, which looks "
        "like kroner; write 49.90 kr as 4990"
    )


def _is_decimal_amount(item: Any) -> bool:
    """A money field (an integer of øre) that got a number with decimals, e.g. 49.9."""
    loc = item["loc"]
    return (
        item["type"] == "int_type"
        and isinstance(item.get("input"), float)
        and bool(loc)
        and loc[-1] not in _NOT_AMOUNTS
    )


def field_path(loc: tuple[int | str, ...]) -> str:
    """Given a pydantic location, return `items[2].tax_percent` (list indices in brackets)."""
    return format_location(loc, tags=(), top="(receipt)")


_RECEIPT_MESSAGES = {
    "extra_forbidden": "unknown field; Dintero's receipt has no such field, check its spelling",
    "missing": "required field is missing",
    "timezone_aware": "the date-time has no offset; write it with one, e.g. +01:00 or Z",
}


def _without_input(message: str, value: object) -> str:
    """The message, unless it repeats the refused value (CONTRACT §6); then a plain one.

    Our model's messages never quote the input (`hide_input_in_errors`, fixed texts), but
    a few pydantic messages do (`Input tag 'x' found…` quotes a key of the input object):
    checked here, at the one place that renders them, so a pydantic upgrade cannot start
    leaking. Every text and number in the input (nested too) counts.
    """
    for leaf in _leaves(value):
        text = str(leaf).strip()
        if not text:
            continue
        quoted = f"'{text}'" in message or f'"{text}"' in message
        if quoted or (len(text) >= _MIN_UNQUOTED_ECHO and text in message):
            if leaf is value:
                return f"not a valid value for this field {refused(value)}"
            return "not a valid value for this field"
    return message


def _leaves(value: object, depth: int = 0) -> Iterator[object]:
    if isinstance(value, bool) or depth > _MAX_ECHO_DEPTH:
        return
    if isinstance(value, str | int | float):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item, depth + 1)


def _merge_store(store: object, source: SourceBase) -> object:
    """The source's store defaults under the receipt's own values (module docstring).

    A non-dict `store` is left as it is for validation to report.
    """
    cached = _DEFAULTS.get(id(source))  # _store_defaults' cache, read without its frame
    defaults = cached[1] if cached is not None and cached[0] is source else _store_defaults(source)
    if store is None:
        return _copy_store(defaults)
    if not isinstance(store, dict):
        return store
    if store.get("id") not in (None, defaults["id"]):
        return dict(store)
    default_address = defaults.get("address")
    # The copy owns its address (a dict); without one a plain copy is the same thing.
    merged = dict(defaults) if default_address is None else _copy_store(defaults)
    for key, value in store.items():
        if value is not None:
            merged[key] = value
    if default_address is None:
        return merged
    own_address = store.get("address")
    if isinstance(default_address, dict) and isinstance(own_address, dict):
        merged["address"] = {
            **default_address,
            **{key: value for key, value in own_address.items() if value is not None},
        }
    return merged


# id(source) → (that source, its store's defaults dumped): the dump is the same for every
# receipt of a source; a reload builds new config objects, so the identity check misses.
_DEFAULTS: dict[int, tuple[object, dict[str, Any]]] = {}
_MAX_DEFAULTS = 256  # reloads add entries: keep the cache small


def _store_defaults(source: SourceBase) -> dict[str, Any]:
    """`source.store` as JSON values without Nones, dumped once per config object."""
    cached = _DEFAULTS.get(id(source))
    if cached is not None and cached[0] is source:
        return cached[1]
    defaults = source.store.model_dump(mode="json", exclude_none=True)
    if len(_DEFAULTS) >= _MAX_DEFAULTS:
        _DEFAULTS.clear()
    _DEFAULTS[id(source)] = (source, defaults)
    return defaults


def _copy_store(defaults: dict[str, Any]) -> dict[str, Any]:
    """A copy a receipt may own: the cached defaults (and their address) are never shared."""
    copy = dict(defaults)
    address = copy.get("address")
    if isinstance(address, dict):
        copy["address"] = dict(address)
    return copy


def _format_receipt_id(
    template: str, data: Mapping[str, Any], private: Mapping[str, Any]
) -> tuple[str, str | None]:
    """Return (receipt_id, None), or ("", problem sentence) when the format cannot apply."""
    store = data["store"] if isinstance(data["store"], dict) else {}
    values = {
        "store_id": _text(store.get("id")),
        "register_id": _text(private.get("_register_id", store.get("terminal_id"))),
        "number": _text(private.get("_number", data.get("receipt_id"))),
    }
    try:
        names = receipt_id_placeholders(template)  # refused at load already; a defence
    except ValueError as error:
        return "", f"receipt_id_format: {error}"
    for name in names:
        if values[name] is None:
            return "", (
                f"receipt_id_format: this receipt has no value for {{{name}}}; "
                "the export does not provide it, so remove it from receipt_id_format"
            )
    try:
        return template.format_map(values), None
    except (ValueError, IndexError, KeyError):
        return "", "receipt_id_format: not a valid format string; use e.g. {store_id}-{number}"


def _text(value: object) -> str | None:
    """A usable id: a non-empty str, or an int written out; anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) and value else None
