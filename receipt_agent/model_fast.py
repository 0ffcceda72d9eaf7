"""The receipt validator of the hot path: `model.Receipt`'s own schema, building plain dicts.

`model.Receipt` stays the one definition of the wire shape; this module derives a second
validator and serialiser from its pydantic-core schema, mechanically, when imported:

- every strict (`extra="forbid"`) model becomes a typed dict with the same fields, in the
  same order, with the same field schemas: a field the input lacks stays absent instead of
  being filled with None (a receipt uses ~10 of the ~45 top-level and ~36 item fields), so
  building and serialising a receipt touches only what it has. The serialiser, built from
  the same dicts, writes the fields in the model's order and drops the Nones: the same
  bytes as `Receipt`'s serialiser with `exclude_none=True`. The discount rule models
  (`extra="allow"`, `model_discount.py`) stay models.
- the Python validators pydantic-core would call for every field (`_number`, `_not_blank`,
  `_datetime_input`, one interpreter frame each) become pure core schemas that accept a
  SUBSET of what they accept, with the same result: exact `int`, a finite `float` (not a
  `Decimal`, which `_number` turns into an int when integral), a string with a character
  that `str.strip` keeps, an ISO text matching `[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}` or
  an aware `datetime`.

So this validator accepts a receipt only when `Receipt` accepts it with the same values,
and `validate` falls back to `Receipt` whenever it refuses one: `Receipt` then decides,
and its errors are the ones the operator reads. A receipt is never accepted here that
`Receipt` refuses (tests/test_model_fast.py compares the two on every sample and test
receipt).

The payload of an accepted receipt is written by orjson when the values are plain JSON
(the common till receipt: text, integers, finite floats, lists, the typed dicts, already
in the model's field order) and its date-times are ones pydantic parsed from ISO text
(`TzInfo`, whole minutes); orjson writes these byte for byte as pydantic's serialiser
does (`Z` for UTC, microseconds as six digits, the same float and string escapes: tested
on every code point and 300,000 floats), at a third of the instructions. Anything else
(a None to leave out, a customer, discount rules, a number past 64 bits, another tzinfo)
goes to pydantic's serialiser. Pure: imports pydantic and orjson only; never does I/O.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic_core import SchemaSerializer, SchemaValidator, TzInfo, ValidationError, core_schema

from receipt_agent import model
from receipt_agent.model import Receipt

_STRIP_KEEPS = r"[^\s\x1c-\x1f]"
"""A character `str.strip()` keeps: Python's whitespace is Unicode's plus \\x1c-\\x1f."""
_ISO_DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}"
"""`model._ISO_DATETIME` with ASCII digits only (Python's `\\d` takes any script's)."""


def _fast_number() -> core_schema.CoreSchema:
    """`model._number` on exact ints and finite floats: the value as it is."""
    return core_schema.union_schema(
        [
            core_schema.int_schema(strict=True),
            core_schema.chain_schema(
                [
                    core_schema.is_instance_schema(float),
                    core_schema.float_schema(strict=True, allow_inf_nan=False),
                ]
            ),
        ],
        mode="left_to_right",
    )


def _fast_datetime(schema: core_schema.CoreSchema) -> core_schema.CoreSchema:
    """`model._datetime_input` before `schema`, for an aware datetime or ISO-8601 text."""
    strict = dict(schema)
    strict["strict"] = True
    # Text first: what a parser hands over is text, and a branch that fails first builds
    # an error (~1,000 instructions). The two branches take disjoint inputs (a str, a
    # datetime), so their order changes nothing else.
    return core_schema.union_schema(
        [
            core_schema.chain_schema(
                [core_schema.str_schema(strict=True, pattern=_ISO_DATETIME), schema]
            ),
            strict,
        ],
        mode="left_to_right",
    )


def _function(schema: dict[str, Any]) -> object:
    return schema.get("function", {}).get("function")


def _convert(schema: Any, *, fast: bool) -> Any:
    """A copy of a core schema with strict models as typed dicts (and, if `fast`, no
    Python validators on the hot fields)."""
    if isinstance(schema, list):
        return [_convert(item, fast=fast) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if fast and kind == "function-plain" and _function(schema) is model._number:
        return _fast_number()
    if fast and kind == "function-after" and _function(schema) is model._not_blank:
        inner = schema["schema"]
        if inner == {"type": "str", "strict": True}:
            return core_schema.str_schema(strict=True, pattern=_STRIP_KEEPS)
    if fast and kind == "function-before" and _function(schema) is model._datetime_input:
        return _fast_datetime(_convert(schema["schema"], fast=fast))
    if kind == "model" and schema["config"].get("extra_fields_behavior") == "forbid":
        return _typed_dict(schema, fast=fast)
    if kind == "model":
        return schema  # a discount rule: kept a model, validated as `Receipt` does
    return {key: _convert(value, fast=fast) for key, value in schema.items()}


def _typed_dict(schema: dict[str, Any], *, fast: bool) -> core_schema.CoreSchema:
    fields: dict[str, core_schema.TypedDictField] = {}
    for name, field in schema["schema"]["fields"].items():
        inner = field["schema"]
        required = inner.get("type") != "default"
        if not required:
            if inner.get("default") is not None:
                raise TypeError(f"{schema['cls'].__name__}.{name}: a default other than None")
            inner = inner["schema"]
        fields[name] = core_schema.typed_dict_field(_convert(inner, fast=fast), required=required)
    converted = core_schema.typed_dict_schema(fields, extra_behavior="forbid")
    if "ref" in schema:
        converted["ref"] = schema["ref"]
    return converted


_SCHEMA = Receipt.__pydantic_core_schema__
_validator = SchemaValidator(_convert(_SCHEMA, fast=True))
_serializer = SchemaSerializer(_convert(_SCHEMA, fast=False))


def validate(data: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Given a receipt's data, return it validated as plain values and its JSON payload.

    Raise `pydantic.ValidationError` (from `model.Receipt`, with its messages) when the
    receipt is not valid.
    """
    try:
        valid = _validator.validate_python(data)
    except ValidationError:
        receipt = Receipt.__pydantic_validator__.validate_python(data)  # raises the errors
        payload = receipt.__pydantic_serializer__.to_json(receipt, exclude_none=True)
        return receipt.model_dump(exclude_none=True), payload
    return valid, to_json(valid)


# Subclasses and dataclasses are refused (TypeError): pydantic may write them otherwise.
_PLAIN = orjson.OPT_UTC_Z | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
# The fields whose values may be other than plain JSON: `customer` (`metadata` holds any
# value; dates), `discounts` (rule models); with them, pydantic writes the payload.
_NOT_PLAIN = ("customer", "discounts")


def to_json(valid: dict[str, Any]) -> bytes:
    """The compact JSON payload of a receipt `validate` accepted here: the model's bytes.

    Written by orjson when that gives the same bytes (module docstring), else by
    pydantic's serialiser (callgrind, the harness receipt: ~8,000 instructions instead of
    ~26,000).
    """
    transaction_date = valid.get("transaction_date")
    if (
        _NOT_PLAIN[0] not in valid
        and _NOT_PLAIN[1] not in valid
        and type(valid["purchase_at"].tzinfo) is TzInfo
        and (transaction_date is None or type(transaction_date.tzinfo) is TzInfo)
    ):
        try:
            payload = orjson.dumps(valid, option=_PLAIN)
        except TypeError:  # orjson.JSONEncodeError: an int past 64 bits, a lone surrogate
            pass
        else:
            if b"null" not in payload:  # a None to leave out (or the word in a text)
                return payload
    return _serializer.to_json(valid, exclude_none=True)
