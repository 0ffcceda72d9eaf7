"""The sandbox's receipt validator: `receipt-schema.json`, compiled once, checked fast.

Owns the one question "is this receipt what Dintero's POST /receipts accepts?"
(API-NOTES §1.3), answered from the sandbox's own JSON Schema and never from
`receipt_agent.model`, so a mapping bug cannot hide behind a shared definition.

Two engines, one schema:
- `compile_schema` turns the schema into nested predicates once, at import. The hot
  path (a valid batch) costs a few dict lookups per field: the benchmarks push
  20,000 receipts/s through the sandbox.
- Only when a receipt fails the fast check does `jsonschema` (Draft 2020-12, with a
  strict integer type and our own `date-time`/`date` format checks) run to explain
  why, as `path: message` pairs. Both engines read the same file; a test keeps them
  in agreement.

Never does I/O beyond reading the schema file shipped beside this module.
"""

import json
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from importlib.resources import files
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from jsonschema.protocols import Validator  # type: ignore[import-untyped]

SCHEMA_FILE = "receipt-schema.json"

Check = Callable[[Any], bool]

_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$", re.ASCII
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
_ANNOTATIONS = frozenset({"$comment", "title", "description", "examples", "default", "$schema"})
_ANNOTATIONS_ROOT = _ANNOTATIONS | {"$id", "$defs"}


def is_date_time(value: object) -> bool:
    """RFC 3339 date-time WITH an offset (`Z` or `±hh:mm`); a naive time is refused."""
    if not isinstance(value, str) or _DATE_TIME.match(value) is None:
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def is_date(value: object) -> bool:
    """RFC 3339 full-date, `2025-12-01`."""
    if not isinstance(value, str) or _DATE.match(value) is None:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


FORMATS: dict[str, Callable[[object], bool]] = {"date-time": is_date_time, "date": is_date}


def load_schema() -> dict[str, Any]:
    """Return the receipt schema shipped in the package."""
    text = files("receipt_agent.sandbox").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _is_integer(_checker: object, instance: object) -> bool:
    # JSON Schema counts 100.0 as an integer; Dintero's amounts are minor units, and a
    # float on the wire is a mapping bug we want to see, so only real ints pass.
    return type(instance) is int


def make_explainer(schema: dict[str, Any]) -> Validator:
    """Return a jsonschema validator for `schema` with strict integers and our formats."""
    base = jsonschema.Draft202012Validator
    base.check_schema(schema)
    strict = jsonschema.validators.extend(
        base, type_checker=base.TYPE_CHECKER.redefine("integer", _is_integer)
    )
    checker = jsonschema.FormatChecker(formats=())
    for name, function in FORMATS.items():
        checker.checks(name)(function)
    validator: Validator = strict(schema, format_checker=checker)
    return validator


# -- the fast engine -----------------------------------------------------------------

_TYPES: dict[str, Check] = {
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) is int or type(v) is float,
    "boolean": lambda v: type(v) is bool,
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "null": lambda v: v is None,
}


def compile_schema(schema: dict[str, Any]) -> Check:
    """Return a predicate equivalent to validating against `schema`.

    Supports the keywords the receipt schema uses and raises ValueError on any other,
    so the schema cannot grow a rule the fast path silently ignores.
    """
    definitions: dict[str, Any] = schema.get("$defs", {})
    compiled: dict[str, Check] = {}

    def by_ref(name: str) -> Check:
        # Late binding: definitions may refer to each other in any order.
        def check(value: Any) -> bool:
            return compiled[name](value)

        return check

    def build(node: dict[str, Any], root: bool = False) -> Check:
        allowed = _ANNOTATIONS_ROOT if root else _ANNOTATIONS
        if "$ref" in node:
            name = str(node["$ref"]).removeprefix("#/$defs/")
            if name not in definitions:
                raise ValueError(f"unsupported $ref {node['$ref']!r}")
            return by_ref(name)
        checks: list[Check] = []
        for keyword, argument in node.items():
            if keyword in allowed:
                continue
            check = _keyword(keyword, argument, node, build)
            if check is not None:
                checks.append(check)
        return _all_of(checks)

    for name, definition in definitions.items():
        compiled[name] = build(definition)
    return build(schema, root=True)


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return lambda _v: True
    if len(checks) == 1:
        return checks[0]
    first, *rest = checks
    if len(rest) == 1:
        second = rest[0]
        return lambda v: first(v) and second(v)
    return lambda v: all(check(v) for check in checks)


def _keyword(
    keyword: str, argument: Any, node: dict[str, Any], build: Callable[[dict[str, Any]], Check]
) -> Check | None:
    if keyword == "type":
        names = [argument] if isinstance(argument, str) else list(argument)
        type_checks = [_TYPES[name] for name in names]
        if len(type_checks) == 1:
            return type_checks[0]
        return lambda v: any(check(v) for check in type_checks)
    if keyword == "properties":
        return _properties(argument, node, build)
    if keyword == "additionalProperties":
        if argument is False or argument is True:
            return None  # handled together with `properties`
        raise ValueError("additionalProperties must be a boolean here")
    if keyword == "required":
        required = tuple(argument)
        return lambda v: type(v) is not dict or all(name in v for name in required)
    if keyword == "items":
        item = build(argument)
        return lambda v: type(v) is not list or all(item(x) for x in v)
    if keyword == "enum":
        options = list(argument)
        return lambda v: any(v == o and type(v) is type(o) for o in options)
    if keyword == "minLength":
        low = int(argument)
        return lambda v: type(v) is not str or len(v) >= low
    if keyword == "maxLength":
        high = int(argument)
        return lambda v: type(v) is not str or len(v) <= high
    if keyword == "pattern":
        search = re.compile(argument).search
        return lambda v: type(v) is not str or search(v) is not None
    if keyword == "format":
        function = FORMATS[argument]
        return lambda v: type(v) is not str or function(v)
    if keyword in ("minItems", "maxItems", "minimum", "maximum"):
        return _bound(keyword, argument)
    raise ValueError(f"unsupported schema keyword {keyword!r}")


def _bound(keyword: str, argument: Any) -> Check:
    limit = argument
    if keyword == "minItems":
        return lambda v: type(v) is not list or len(v) >= limit
    if keyword == "maxItems":
        return lambda v: type(v) is not list or len(v) <= limit
    is_number = _TYPES["number"]
    if keyword == "minimum":
        return lambda v: not is_number(v) or v >= limit
    return lambda v: not is_number(v) or v <= limit


def _properties(
    argument: dict[str, Any], node: dict[str, Any], build: Callable[[dict[str, Any]], Check]
) -> Check:
    properties = {name: build(sub) for name, sub in argument.items()}
    closed = node.get("additionalProperties", True) is False

    def check(value: Any) -> bool:
        if type(value) is not dict:
            return True
        get = properties.get
        for key, item in value.items():
            sub = get(key)
            if sub is None:
                if closed:
                    return False
            elif not sub(item):
                return False
        return True

    return check


# -- the public face ------------------------------------------------------------------


class ReceiptValidator:
    """Validates receipts against `receipt-schema.json`; fast when they are valid."""

    def __init__(self, schema: dict[str, Any] | None = None, max_errors: int = 20) -> None:
        self.schema = schema if schema is not None else load_schema()
        self.is_valid: Check = compile_schema(self.schema)
        self._explainer = make_explainer(self.schema)
        self._max_errors = max_errors

    def explain(self, receipt: Any) -> list[tuple[str, str]]:
        """Return `(path, message)` for each way `receipt` breaks the schema, path-ordered.

        Paths are dot-separated (`items.0.gross_amount`); a missing property is named by
        its own path (`store.id`), not its parent's.
        """
        found: list[tuple[str, str]] = []
        errors = sorted(self._explainer.iter_errors(receipt), key=lambda e: list(map(str, e.path)))
        for error in errors[: self._max_errors]:
            parts = [str(part) for part in error.absolute_path]
            if error.validator == "required" and isinstance(error.instance, dict):
                missing = [
                    name
                    for name in error.validator_value
                    if name not in error.instance and repr(name) in error.message
                ]
                parts += missing[:1]
            found.append((".".join(parts), error.message))
        if not found and not self.is_valid(receipt):  # pragma: no cover - engines disagree
            found.append(("", "refused by the fast validator; jsonschema found no error"))
        return found

    def invalid(self, receipts: Iterable[Any]) -> list[tuple[int, Any, list[tuple[str, str]]]]:
        """Return `(index, receipt, errors)` for each receipt that is not valid."""
        is_valid = self.is_valid
        return [
            (index, receipt, self.explain(receipt))
            for index, receipt in enumerate(receipts)
            if not is_valid(receipt)
        ]
