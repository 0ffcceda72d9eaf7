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

Why two (issue 11 asked for one validator or none in the runtime install): the sandbox
is a runtime feature (`demo`, `sandbox`), so it must validate and explain there, and
jsonschema alone checks ~220 receipts/s against ~13,400/s for the compiled predicates
(make_receipt receipts, this 2-core machine under load), which would make the sandbox,
not the agent, the bottleneck of every benchmark. So jsonschema stays the one reference
and explainer, imported only when the first invalid receipt needs explaining (it is
~half of the sandbox's import time), and the compiled engine is a measured fast path
that refuses any schema keyword it does not implement.

Never does I/O beyond reading the schema file shipped beside this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from importlib.resources import files
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    import jsonschema  # type: ignore[import-untyped]  # lazily: only invalid receipts need it

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

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),  # strict: bool is a subclass but `type(True) is bool`, not int
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}
_OBJECT_KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties"})
_ARRAY_KEYWORDS = frozenset({"type", "items", "minItems", "maxItems"})
_LEAF_KEYWORDS = frozenset(
    {"type", "enum", "minLength", "maxLength", "pattern", "format", "minimum", "maximum"}
)


def compile_schema(schema: dict[str, Any]) -> Check:
    """Return a predicate equivalent to validating against `schema`.

    Supports the keywords the receipt schema uses and raises ValueError on any other,
    so the schema cannot grow a rule the fast path silently ignores. Objects check
    plain-typed properties with one `type(x) in types` test each, without a call.
    """
    return _Compiler(schema).build(schema, root=True)


class _Compiler:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.definitions: dict[str, Any] = schema.get("$defs", {})
        self.compiled: dict[str, Check] = {}
        self.building: set[str] = set()

    def build(self, node: dict[str, Any], root: bool = False) -> Check:
        allowed = _ANNOTATIONS_ROOT if root else _ANNOTATIONS
        keywords = set(node) - allowed
        if "$ref" in node:
            if keywords != {"$ref"}:
                raise ValueError("unsupported schema keyword beside $ref")
            return self._ref(str(node["$ref"]))
        types = _types_of(node)
        if "properties" in node or "required" in node or types == (dict,):
            _only(keywords, _OBJECT_KEYWORDS)
            return self._object(node, types)
        if "items" in node or types == (list,):
            _only(keywords, _ARRAY_KEYWORDS)
            return self._array(node, types)
        _only(keywords, _LEAF_KEYWORDS)
        return _leaf(node, types)

    def _ref(self, ref: str) -> Check:
        name = ref.removeprefix("#/$defs/")
        if name not in self.definitions:
            raise ValueError(f"unsupported $ref {ref!r}")
        if name not in self.compiled:
            if name in self.building:
                raise ValueError(f"recursive $ref {ref!r} is not supported")
            self.building.add(name)
            self.compiled[name] = self.build(self.definitions[name])
            self.building.discard(name)
        return self.compiled[name]

    def _object(self, node: dict[str, Any], types: tuple[type, ...] | None) -> Check:
        additional = node.get("additionalProperties", True)
        if not isinstance(additional, bool):
            raise TypeError("additionalProperties must be a boolean here")
        closed = additional is False
        required = tuple(node.get("required", ()))
        plain: dict[str, tuple[type, ...]] = {}
        nested: dict[str, Check] = {}
        for name, sub in node.get("properties", {}).items():
            sub_types = _types_of(sub)
            if sub_types is not None and set(sub) - _ANNOTATIONS == {"type"}:
                plain[name] = sub_types
            else:
                nested[name] = self.build(sub)
        plain_get, nested_get = plain.get, nested.get

        def check(value: Any) -> bool:
            if type(value) is not dict:
                return types is None or type(value) in types
            for name in required:
                if name not in value:
                    return False
            for key, item in value.items():
                item_types = plain_get(key)
                if item_types is not None:
                    if type(item) not in item_types:
                        return False
                    continue
                sub = nested_get(key)
                if sub is None:
                    if closed:
                        return False
                elif not sub(item):
                    return False
            return True

        return check

    def _array(self, node: dict[str, Any], types: tuple[type, ...] | None) -> Check:
        low = int(node.get("minItems", 0))
        high = node.get("maxItems")
        item_schema = node.get("items", {})
        item_types = _types_of(item_schema)
        item: Check
        if item_types is not None and set(item_schema) - _ANNOTATIONS == {"type"}:

            def item(value: Any) -> bool:  # plain-typed items: no nested call
                return type(value) in item_types

        else:
            item = self.build(item_schema)

        def check(value: Any) -> bool:
            if type(value) is not list:
                return types is None or type(value) in types
            if len(value) < low or (high is not None and len(value) > high):
                return False
            return all(map(item, value))  # map, not a generator: about as fast as a loop

        return check


def _types_of(node: dict[str, Any]) -> tuple[type, ...] | None:
    names = node.get("type")
    if names is None:
        return None
    names = [names] if isinstance(names, str) else names
    return tuple(python for name in names for python in _PYTHON_TYPES[name])


def _only(keywords: set[str], supported: frozenset[str]) -> None:
    unsupported = sorted(keywords - supported)
    if unsupported:
        raise ValueError(f"unsupported schema keyword(s) {', '.join(unsupported)}")


def _leaf(node: dict[str, Any], types: tuple[type, ...] | None) -> Check:
    checks: list[Check] = []
    if "enum" in node:
        options = [(option, type(option)) for option in node["enum"]]
        checks.append(lambda v: any(v == o and type(v) is t for o, t in options))
    if "minLength" in node:
        low = int(node["minLength"])
        checks.append(lambda v: type(v) is not str or len(v) >= low)
    if "maxLength" in node:
        high = int(node["maxLength"])
        checks.append(lambda v: type(v) is not str or len(v) <= high)
    if "pattern" in node:
        search = re.compile(node["pattern"]).search
        checks.append(lambda v: type(v) is not str or search(v) is not None)
    if "format" in node:
        function = FORMATS[node["format"]]
        checks.append(lambda v: type(v) is not str or function(v))
    if "minimum" in node:
        minimum = node["minimum"]
        checks.append(lambda v: type(v) not in (int, float) or v >= minimum)
    if "maximum" in node:
        maximum = node["maximum"]
        checks.append(lambda v: type(v) not in (int, float) or v <= maximum)

    def check(value: Any) -> bool:
        if types is not None and type(value) not in types:
            return False
        for extra in checks:  # noqa: SIM110 - a loop beats all(<generator>) here
            if not extra(value):
                return False
        return True

    return check


# -- the public face ------------------------------------------------------------------


class ReceiptValidator:
    """Validates receipts against `receipt-schema.json`; fast when they are valid."""

    def __init__(self, schema: dict[str, Any] | None = None, max_errors: int = 20) -> None:
        self.schema = schema if schema is not None else load_schema()
        self.is_valid: Check = compile_schema(self.schema)
        self._explainer: Validator | None = None  # built on the first invalid receipt
        self._max_errors = max_errors

    def explain(self, receipt: Any) -> list[tuple[str, str]]:
        """Return `(path, message)` for each way `receipt` breaks the schema, path-ordered.

        Paths are dot-separated (`items.0.gross_amount`); a missing property is named by
        its own path (`store.id`), not its parent's.
        """
        found: list[tuple[str, str]] = []
        if self._explainer is None:
            self._explainer = make_explainer(self.schema)
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
