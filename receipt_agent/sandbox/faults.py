"""Switchable faults of the sandbox: what goes wrong, how often, and for which endpoints.

Owns the `Faults` switchboard and the per-request decision (`Faults.decide`). Tests set
fields directly (`sb.faults.error_rate = 0.3`) or several at once and atomically
(`sb.set_faults(error_every=3, error_status=502)`); the command line and
`POST /_sandbox/faults` go through the same `Faults.update`, which validates names and
values. Counters ("every Nth", "the next N") and the seeded random generator live
here behind one lock, so decisions are thread-safe and, with `seed`, reproducible.

Faults hit the endpoints named in `endpoints` (default: receipts, reports and
test-report; add "token" to hit the token endpoint too). They never touch the
`/_sandbox/*` test hooks. Does no I/O.
"""

import argparse
import random
import re
import threading
import time
from dataclasses import dataclass, field, fields
from email.utils import formatdate
from typing import Any

ENDPOINTS = frozenset({"token", "receipts", "search", "reports", "test_report"})
_DEFAULT_ENDPOINTS = frozenset({"receipts", "reports", "test_report"})
_SERVER_ERROR_CLASS = 5  # status // 100 of a 5xx
_NON_NEGATIVE = (
    "error_every",
    "fail_next",
    "rate_limit_every",
    "retry_after_s",
    "delay_s",
    "hang_s",
    "unauthorized_next",
    "max_batch_receipts",
    "max_batch_bytes",
    "idle_timeout_s",
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the server does instead of (or before) answering normally.

    `action` is "answer" (send `status` with an error body and `headers`), "reset"
    (close the socket with an RST, no answer) or "hang" (wait `hang_s`, then close
    without answering). `delay_s` is slept first in every case.
    """

    action: str = "pass"
    status: int = 0
    code: str = ""
    message: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    hang_s: float = 0.0


PASS = Decision()


@dataclass
class Faults:
    """The fault switchboard; every field defaults to "behave like a healthy Dintero".

    Rates are probabilities in [0, 1]; `*_every` = N fails every Nth faultable request
    (0 = off; one counter of requests to `endpoints`, shared by all "every" faults);
    counts (`fail_next`, `unauthorized_next`) are used up one request each.

    Order of precedence per request: unauthorized_next → forbidden → not_found →
    reset_rate → hang_rate → fail_next → rate_limit_every → error_every/error_rate;
    `delay_s` is slept before any of them. The rest act inside the endpoint:
    max_batch_bytes / max_batch_receipts (413), refuse_receipt_id (400), lose_receipt_id
    (search finds nothing), token lifetime, idle_timeout_s (per new connection),
    test_report_nothing.
    """

    error_rate: float = 0.0  # probability of a 5xx (`error_status`)
    error_every: int = 0  # every Nth request → 5xx
    error_status: int = 503
    fail_next: int = 0  # the next N requests → `fail_next_status`, then normal again
    fail_next_status: int = 503
    rate_limit_every: int = 0  # every Nth request → 429 with Retry-After
    retry_after_s: int = 1
    retry_after_http_date: bool = False  # Retry-After as an HTTP-date instead of seconds
    delay_s: float = 0.0  # slow: sleep this long before answering each request
    hang_rate: float = 0.0  # probability of hanging `hang_s`, then closing unanswered
    hang_s: float = 60.0
    reset_rate: float = 0.0  # probability of closing the connection with an RST, no answer
    unauthorized_next: int = 0  # the next N requests → 401 (token refresh cannot help)
    forbidden: bool = False  # every request → 403
    not_found: bool = False  # every request → 404
    max_batch_receipts: int = 0  # POST /receipts with more receipts → 413 (0 = no limit)
    max_batch_bytes: int = 0  # any request body larger → 413 (0 = no limit)
    refuse_receipt_id: str = ""  # regex; matching receipt_ids → 400 INVALID_RECEIPT
    lose_receipt_id: str = ""  # regex; matching receipt_ids are accepted, then never found
    token_lifetime_s: int = 3600  # expires_in of new tokens; tokens really expire
    idle_timeout_s: float = 0.0  # close keep-alive connections idle this long (0 = never)
    test_report_nothing: bool | None = None  # None: 200 "nothing" iff no receipts yet
    scopes: str = ""  # the API client's grant, space-separated; "" = every receipts scope
    endpoints: frozenset[str] = _DEFAULT_ENDPOINTS
    seed: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _random: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    _seen: int = field(default=0, repr=False, compare=False)

    def __post_init__(self) -> None:
        for item in fields(self):
            if not item.name.startswith("_"):
                object.__setattr__(self, item.name, _coerce(item.name, getattr(self, item.name)))
        self._check()
        self._random.seed(self.seed)

    def __setattr__(self, name: str, value: Any) -> None:
        # After __init__, `faults.error_rate = 0.3` is validated and applied under the lock.
        if name.startswith("_") or "_random" not in self.__dict__:
            object.__setattr__(self, name, value)
        else:
            self.update(**{name: value})

    # -- changing --------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        """Set several fields at once, atomically; raise ValueError on a bad name or value."""
        names = {f.name for f in fields(self) if not f.name.startswith("_")}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(unknown)}")
        with self._lock:
            before = {name: getattr(self, name) for name in changes}
            for name, value in changes.items():
                object.__setattr__(self, name, _coerce(name, value))
            try:
                self._check()
            except ValueError:
                for name, value in before.items():
                    object.__setattr__(self, name, value)
                raise
            if "seed" in changes:
                self._random.seed(self.seed)

    def clear(self) -> None:
        """Back to a healthy Dintero: every field to its default, counters to zero."""
        defaults = {f.name: f.default for f in fields(self) if not f.name.startswith("_")}
        self.update(**defaults)
        with self._lock:
            object.__setattr__(self, "_seen", 0)

    def as_dict(self) -> dict[str, Any]:
        """Return the public fields, JSON-ready."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        out["endpoints"] = sorted(out["endpoints"])
        return out

    def _check(self) -> None:
        for name in ("error_rate", "hang_rate", "reset_rate"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        for name in ("error_status", "fail_next_status"):
            if int(getattr(self, name)) // 100 != _SERVER_ERROR_CLASS:
                raise ValueError(f"{name} must be a 5xx status")
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.token_lifetime_s < 1:
            raise ValueError("token_lifetime_s must be at least 1")
        if not set(self.endpoints) <= ENDPOINTS:
            raise ValueError(f"endpoints must be among {', '.join(sorted(ENDPOINTS))}")

    # -- deciding --------------------------------------------------------------------

    def decide(self, endpoint: str) -> Decision:
        """Return what to do with one request to `endpoint` ("receipts", "token", …)."""
        if endpoint not in self.endpoints:
            return PASS
        with self._lock:
            seen = self._seen + 1
            object.__setattr__(self, "_seen", seen)
            return self._decide_locked(seen)

    def _decide_locked(self, seen: int) -> Decision:
        delay = self.delay_s
        if self.unauthorized_next > 0:
            object.__setattr__(self, "unauthorized_next", self.unauthorized_next - 1)
            return _answer(
                401, "UNAUTHORIZED", "Access forbidden, invalid JWT token was used", delay
            )
        if self.forbidden:
            return _answer(403, "FORBIDDEN", "Access forbidden (sandbox fault)", delay)
        if self.not_found:
            return _answer(404, "NOT_FOUND", "Not found (sandbox fault)", delay)
        if self.reset_rate and self._random.random() < self.reset_rate:
            return Decision(action="reset", delay_s=delay)
        if self.hang_rate and self._random.random() < self.hang_rate:
            return Decision(action="hang", delay_s=delay, hang_s=self.hang_s)
        if self.fail_next > 0:
            object.__setattr__(self, "fail_next", self.fail_next - 1)
            return _answer(self.fail_next_status, "SERVER_ERROR", "Unexpected error", delay)
        if self.rate_limit_every and seen % self.rate_limit_every == 0:
            if self.retry_after_http_date:
                retry_after = formatdate(time.time() + self.retry_after_s, usegmt=True)
            else:
                retry_after = str(self.retry_after_s)
            return _answer(
                429,
                "TOO_MANY_REQUESTS",
                "Too many requests",
                delay,
                (("Retry-After", retry_after),),
            )
        if (self.error_every and seen % self.error_every == 0) or (
            self.error_rate and self._random.random() < self.error_rate
        ):
            return _answer(self.error_status, "SERVER_ERROR", "Unexpected error", delay)
        if delay:
            return Decision(action="pass", delay_s=delay)
        return PASS


def _answer(
    status: int, code: str, message: str, delay_s: float, headers: tuple[tuple[str, str], ...] = ()
) -> Decision:
    return Decision("answer", status, code, message, headers, delay_s)


def _coerce(name: str, value: Any) -> Any:
    """Turn JSON or command-line values into the field's type."""
    if name == "endpoints":
        items = value.split(",") if isinstance(value, str) else value
        return frozenset(str(item).strip() for item in items if str(item).strip())
    if name == "test_report_nothing":
        return None if value is None or value == "auto" else _to_bool(value)
    if name == "seed":
        return None if value is None else int(value)
    if name in ("forbidden", "not_found", "retry_after_http_date"):
        return _to_bool(value)
    if name in ("refuse_receipt_id", "lose_receipt_id"):
        re.compile(str(value))
        return str(value)
    if name == "scopes":
        return " ".join(str(value).replace(",", " ").split())
    if name in ("error_rate", "hang_rate", "reset_rate", "delay_s", "hang_s", "idle_timeout_s"):
        return float(value)
    return int(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


# -- command line ----------------------------------------------------------------------

_HELP = {
    "error_rate": "probability (0..1) of answering 5xx",
    "error_every": "answer 5xx to every Nth request",
    "error_status": "the 5xx status to use (default 503)",
    "fail_next": "fail the next N requests with --fail-next-status, then succeed",
    "fail_next_status": "status for --fail-next (default 503)",
    "rate_limit_every": "answer 429 with Retry-After to every Nth request",
    "retry_after_s": "Retry-After seconds (default 1)",
    "retry_after_http_date": "send Retry-After as an HTTP-date (true/false)",
    "delay_s": "sleep this many seconds before each answer",
    "hang_rate": "probability of hanging --hang-s, then closing without an answer",
    "hang_s": "how long a hang lasts (default 60)",
    "reset_rate": "probability of resetting the connection without an answer",
    "unauthorized_next": "answer 401 to the next N requests",
    "forbidden": "answer 403 to every request (true/false)",
    "not_found": "answer 404 to every request (true/false)",
    "max_batch_receipts": "413 for a POST /receipts with more receipts than this",
    "max_batch_bytes": "413 for a request body larger than this many bytes",
    "refuse_receipt_id": "regex: receipts whose receipt_id matches are refused with 400",
    "lose_receipt_id": "regex: receipts whose receipt_id matches are accepted with 201 but "
    "search never finds them (a receipt Dintero lost, for reconcile --remote)",
    "token_lifetime_s": "expires_in of issued tokens, seconds (default 3600)",
    "idle_timeout_s": "close keep-alive connections idle this many seconds (0 = never)",
    "test_report_nothing": "test report answers 200 'nothing': true, false or auto",
    "endpoints": "comma-separated endpoints faults apply to: "
    "token,receipts,search,reports,test_report",
    "scopes": "the API client's scopes, e.g. 'write:receipts' (a client that cannot search)",
    "seed": "seed for reproducible random faults",
}


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one `--<fault-name>` option per Faults field (used by both sandbox CLIs)."""
    group = parser.add_argument_group("faults")
    for name, text in _HELP.items():
        group.add_argument(
            "--" + name.replace("_", "-"), dest="fault_" + name, metavar=_metavar(name), help=text
        )


def _metavar(name: str) -> str:
    if name.endswith("_rate"):
        return "P"
    if name.endswith("_s"):
        return "SECONDS"
    if name in ("forbidden", "not_found", "retry_after_http_date"):
        return "BOOL"
    special = {
        "refuse_receipt_id": "REGEX",
        "lose_receipt_id": "REGEX",
        "endpoints": "LIST",
        "test_report_nothing": "WHEN",
        "scopes": "LIST",
    }
    return special.get(name, "N")


def faults_from_arguments(namespace: argparse.Namespace) -> Faults:
    """Return Faults from parsed `add_fault_arguments` options; raise ValueError if bad."""
    faults = Faults()
    changes = {
        name: getattr(namespace, "fault_" + name)
        for name in _HELP
        if getattr(namespace, "fault_" + name, None) is not None
    }
    faults.update(**changes)
    return faults
