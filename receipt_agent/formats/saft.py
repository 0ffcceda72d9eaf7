"""SAF-T Cash Register exports (Norway v1.00; the Danish variant too) → receipt records.

Implements `format: saft-cashregister` (CONTRACT §2 `mapping`, §3; formats.md §1, §2, §6).
Pure: reads the stream it is given, one `cashtransaction` at a time through the safe
`xml_stream` layer (defusedxml, no DTDs or entities, memory flat on a 2 GB file); no
filesystem, database, HTTP or logging. Amount, sign, line and totals rules live in
`saft_receipt`, the company master data in `saft_master`.

What becomes what:

- **Master data** (`header/curCode`, company name and ids, VAT codes, employees, articles,
  basics) is read first (it precedes the locations in the schema) and joined into each
  transaction. A code a transaction uses but the file never declares is named in that
  transaction's error when it is rejected.
- **Stores.** `mapping.stores` maps a `registerID` (checked first) or a `location/name` to
  `store.id`; anything unmapped gets `sources[].store.id`. A file with several `location`s
  in which any register falls back to that default raises ParseError (the file is
  quarantined, CONTRACT §2: never guessed). Registers are keyed by `registerID`, not by
  position, so the same ID in two `cashregister` blocks is the same till.
- **Which transactions are receipts** (formats.md §1.2): `transType` → basics type 11 →
  `predefinedBasicID`. 11001, 11002, 11006, 11009, 11012, 11013, 11015–11017 are receipts;
  11003–11005, 11007, 11008, 11010, 11011, 11014 are SkippedRecord("non_sale"). 11999, a
  missing transType or one without a type-11 basic (the Danish test export's "1"/"2") is a
  receipt only if a `ctLine` carries a non-zero amount (a drawer opening has none).
  `mapping.receipt_types`, when set, replaces the list: a transaction is a receipt when its
  predefinedBasicID (or, without a basic, its raw transType) is listed; one without any
  transType still follows the line rule. Then `trainingID=true` → "training" unless
  `training: send` (entry_status "Training"), `voidTransaction=true` → "voided" unless
  `voided: send` (entry_status "Voided"). Non-sale is decided first, then training, voided.
- **Ids.** `receipt_id` = `{store.id}-{registerID}-{nr}` (`nr` is the printed number; the
  `transID` when `nr` is absent or `NONE`); `transaction_id` = `transID`. The parts go to
  `mapping` as `_register_id` / `_number` for `receipt_id_format`.
- **Time.** `transDate` + `transTime` are local wall-clock time in `source.timezone`; an
  offset or `Z` on transTime wins. `purchase_at` always carries an explicit offset, never a
  bare `Z` for a local time. DST, decided and deterministic:
  - autumn fold (2020-10-25 02:30 happens twice): **the first occurrence** (fold=0, summer
    time), `2020-10-25T02:30:00+02:00`; the receipt_id does not depend on the time, so it
    is the same however often the file is read;
  - spring gap (2020-03-29 02:30 does not exist): read with the offset in force **before**
    the change (+01:00, i.e. 01:30 UTC) and written as the wall time that instant really
    had, `2020-03-29T03:30:00+02:00`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

from receipt_agent.config import SaftSource, SourceBase, XmlMapping
from receipt_agent.errors import ParseError
from receipt_agent.formats import InvalidRecord, RawReceipt, Record, SkippedRecord, SkipReason
from receipt_agent.formats.saft_master import (
    MASTER_PATHS,
    NON_SALE_TYPES,
    RECEIPT_TYPES,
    MasterData,
    value,
)
from receipt_agent.formats.saft_receipt import (
    SignMemory,
    Transaction,
    TransactionError,
    build_receipt,
    has_amount_lines,
    is_training,
    is_voided,
)
from receipt_agent.formats.xml_stream import Found, Path, stream_elements
from receipt_agent.refused import shape

_LOCATION = ("auditfile", "company", "location")
_REGISTER = (*_LOCATION, "cashregister")
_WANTED = MASTER_PATHS | {
    (*_LOCATION, "name"),
    (*_LOCATION, "streetAddress"),
    (*_REGISTER, "registerID"),
    (*_REGISTER, "cashtransaction"),
}
# Read past unread: events (X/Z reports can be large), and customer master data, which is
# personal data no Dintero field needs.
_SKIPPED = frozenset({(*_REGISTER, "event"), ("auditfile", "company", "customersSuppliers")})


@dataclass(slots=True)
class _State:
    """Where the stream is: counted by `wanted` at each element's start, in document order."""

    root: str | None = None
    locations: int = 0
    registers: int = 0
    location_name: str | None = None
    location_address: dict[str, str] | None = None
    register_id: str | None = None
    store: dict[str, Any] | None = None  # the current register's store, built lazily
    defaulted: list[str] = field(default_factory=list)  # locations that got the default id

    def wanted(self, path: Path) -> bool:
        if len(path) == 1:
            self.root = path[0]
        elif path == _LOCATION:
            self.locations += 1
            self.location_name = self.location_address = None
            self.register_id = self.store = None
        elif path == _REGISTER:
            self.registers += 1
            self.register_id = self.store = None
        return path in _WANTED


def parse(stream: IO[bytes], source: SourceBase) -> Iterator[Record]:
    """Given a SAF-T Cash Register export and its source, yield one record per cashtransaction.

    Raise ParseError when the file is not safe, well-formed SAF-T, or names several
    locations that `mapping.stores` does not map.
    """
    if not isinstance(source, SaftSource):
        raise TypeError("saft.parse needs a SaftSource")
    mapping = source.mapping
    master = MasterData()
    memory = SignMemory()
    state = _State()
    for found in stream_elements(stream, state.wanted, skip=_SKIPPED.__contains__):
        name = found.name
        if name == "cashtransaction":
            yield _record(found, state, master, memory, source)
        elif name == "registerID":
            state.register_id = value(found.element)
        elif name == "name":
            state.location_name = value(found.element)
        elif name == "streetAddress":
            state.location_address = _address(found.element)
        else:
            master.absorb(found)
    if state.root != "auditfile":
        raise ParseError(
            f"the root element is <{state.root}>, not <auditfile>; this is not a SAF-T Cash "
            "Register export (check the source's format)",
            location="/" + (state.root or ""),
        )
    _check_locations(state, mapping)


def _check_locations(state: _State, mapping: XmlMapping) -> None:
    if state.locations > 1 and state.defaulted:
        unmapped = ", ".join(sorted({repr(name) for name in state.defaulted}))
        raise ParseError(
            f"the file holds {state.locations} locations and mapping.stores does not map "
            f"{unmapped} (by location name or registerID); receipt-agent never guesses a "
            "store, so add every location to mapping.stores",
            location="/auditfile/company/location",
        )


def _store(state: _State, master: MasterData, source: SaftSource) -> dict[str, Any]:
    """The current register's `store`, resolved through mapping.stores (docstring)."""
    stores = source.mapping.stores
    register_id, location = state.register_id, state.location_name
    store_id = (stores.get(register_id) if register_id else None) or (
        stores.get(location) if location else None
    )
    if store_id is None:
        store_id = source.store.id
        state.defaulted.append(location or f"location {state.locations}")
        _check_locations(state, source.mapping)
    store: dict[str, Any] = {"id": store_id}
    name = location or master.company_name
    if name:
        store["name"] = name
    if master.company_name:
        store["business_name"] = master.company_name
    organization = master.tax_reg_ident or master.company_ident
    if organization:
        store["organization_number"] = organization
    if register_id:
        store["terminal_id"] = register_id
    if state.location_address:
        store["address"] = state.location_address
    return store


def _address(element: Element) -> dict[str, str] | None:
    """`streetAddress` → Dintero address, only when its three required parts exist."""
    street = " ".join(
        part for part in (value(element, "streetname"), value(element, "number")) if part
    )
    city, country = value(element, "city"), value(element, "country")
    if not (street and city and country):
        return None
    address = {"address_line": street, "postal_place": city, "country": country}
    postal_code = value(element, "postalCode")
    if postal_code:
        address["postal_code"] = postal_code
    return address


def _record(
    found: Found, state: _State, master: MasterData, memory: SignMemory, source: SaftSource
) -> Record:
    element, where = found.element, found.where
    mapping = source.mapping
    if state.store is None:
        state.store = _store(state, master, source)
    store_id: str = state.store["id"]
    trans_type = value(element, "transType")
    basic = master.basic("11", trans_type)
    predefined = basic.predefined if basic else None
    notes: list[str] = []
    if trans_type is not None and basic is None:
        notes.append(f"transType {trans_type!r} has no basic of type 11 in the file")
    if not _is_receipt(element, trans_type, predefined, mapping):
        return _skipped("non_sale", where, element, state)
    training, voided = is_training(element), is_voided(element)
    if training and mapping.training == "skip":
        return _skipped("training", where, element, state)
    if voided and mapping.voided == "skip":
        return _skipped("voided", where, element, state)
    register_id = state.register_id
    number = value(element, "nr") or value(element, "transID")
    errors: list[str] = []
    if register_id is None:
        errors.append("cashregister/registerID: is missing; the receipt_id needs it")
    if number is None:
        errors.append("cashtransaction: has neither nr nor transID; the receipt_id needs one")
    purchase_at = _purchase_at(element, source.tz, errors)
    if register_id is None or number is None or purchase_at is None:
        receipt_id = f"{store_id}-{register_id}-{number}" if register_id and number else None
        return InvalidRecord(
            where, errors + notes, store_id=store_id, receipt_id=receipt_id,
            register_id=register_id, number=value(element, "nr"),
            business_day=value(element, "transDate"),
        )  # fmt: skip
    receipt_id = f"{store_id}-{register_id}-{number}"
    tx = Transaction(
        element=element,
        store=dict(state.store),
        register_id=register_id,
        receipt_id=receipt_id,
        number=number,
        currency=master.currency or source.currency,
        predefined_type=predefined,
        purchase_at=purchase_at,
        notes=notes,
    )
    try:
        data = build_receipt(tx, mapping.sign_convention, memory, master)
    except TransactionError as error:
        return InvalidRecord(
            where, error.errors, store_id=store_id, receipt_id=receipt_id,
            register_id=register_id, number=value(element, "nr"),
            business_day=value(element, "transDate"),
        )  # fmt: skip
    if training:
        data["entry_status"] = "Training"
    elif voided:
        data["entry_status"] = "Voided"
    return RawReceipt(data=data, location=where)


def _skipped(reason: SkipReason, where: str, element: Element, state: _State) -> SkippedRecord:
    """A skipped transaction with what reconciliation needs: its register, `nr` and day."""
    return SkippedRecord(
        reason, where, store_id=state.store["id"] if state.store else None,
        register_id=state.register_id, number=value(element, "nr"),
        business_day=value(element, "transDate"), content=value(element, "transAmntIn"),
    )  # fmt: skip


def _is_receipt(
    element: Element, trans_type: str | None, predefined: str | None, mapping: XmlMapping
) -> bool:
    if trans_type is not None and mapping.receipt_types is not None:
        return (predefined or trans_type) in mapping.receipt_types
    if predefined in RECEIPT_TYPES:
        return True
    if predefined in NON_SALE_TYPES:
        return False
    return has_amount_lines(element)


def _purchase_at(element: Element, tz: ZoneInfo, errors: list[str]) -> str | None:
    """transDate + transTime → ISO-8601 with offset (DST rules in the module docstring)."""
    date_text, time_text = value(element, "transDate"), value(element, "transTime")
    if date_text is None or time_text is None:
        errors.append("cashtransaction: transDate and transTime are required")
        return None
    try:
        day, clock = _date_and_time(date_text, time_text)
    except ValueError:
        errors.append(
            "cashtransaction: transDate / transTime is not a valid date and time "
            f"(YYYY-MM-DD, hh:mm:ss); transDate has {shape(date_text)}, "
            f"transTime has {shape(time_text)}"
        )
        return None
    if clock.tzinfo is not None:
        return datetime.combine(day, clock).isoformat()
    local = datetime.combine(day, clock).replace(tzinfo=tz, fold=0)
    # Normalising through UTC turns a wall time in the spring gap into the one that existed.
    return local.astimezone(UTC).astimezone(tz).isoformat()


_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(Z|[+-]\d{2}:\d{2})?$")


def _date_and_time(date_text: str, time_text: str) -> tuple[date, time]:
    """Every spelling xsd:date / xsd:time allow, and a vendor's full date-time in transTime.

    A zone on transDate (`2020-01-01+01:00`) applies when transTime has none; `24:00:00` is
    the end of the day, i.e. 00:00 the next day. Raise ValueError when it is neither.
    """
    match = _DATE.match(date_text)
    if match is None:
        raise ValueError(date_text)
    day = date.fromisoformat(match.group(1))
    clock_text = time_text.partition("T")[2] if "T" in time_text else time_text
    if clock_text.startswith("24:00:00"):
        day += timedelta(days=1)
        clock_text = "00:00:00" + clock_text[len("24:00:00") :].lstrip(".0")
    clock = time.fromisoformat(clock_text)
    zone = match.group(2)
    if clock.tzinfo is None and zone is not None:
        clock = time.fromisoformat(clock_text + ("+00:00" if zone == "Z" else zone))
    return day, clock
