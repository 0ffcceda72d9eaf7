"""Logging: structlog over stdlib logging, one event per line (CONTRACT §6).

Owns the processor chain (contextvars, level, UTC ISO-8601 `timestamp`, redaction, then
JSON or console rendering), the log file handler (`WatchedFileHandler`, so logrotate's
move is noticed; `reopen()` on SIGHUP for good measure) and the routing of stdlib loggers
(httpx, apscheduler, watchdog) through the same formatter at WARNING. Our own events
are rendered by structlog and written straight through that handler (`_LineWriter`),
without a stdlib LogRecord: the same line for a third of the CPU. The per-line steps
are the cheap equivalents of structlog's (`_timestamp`, `redact`'s fast check, `_unusual`,
`_render_json`; tests/test_logs_lines.py holds them to the stock chain's bytes), and
`bound()` is `get_logger().bind()` for a per-file logger without rebuilding it each time.

The redaction processor is a backstop: call sites name receipts by store_id + receipt_id
only and never pass secrets, tokens or customers' personal data.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any

from receipt_agent import lean_import

# structlog imports structlog.dev and structlog.tracebacks, which import rich (console,
# traceback, pretty) when it is installed: ~130 ms of every start-up, for rich tracebacks
# that the JSON log never uses (its tracebacks are dicts without locals) and that the
# console renderer below does not use either (it is given plain tracebacks explicitly).
# structlog falls back to its plain formatter on ImportError. Done at import of this
# module, which `cli` imports before anything imports structlog.
lean_import.import_hiding("structlog", "rich")

import orjson  # noqa: E402 - after the import above, on purpose
import structlog  # noqa: E402 - after the import above, on purpose

REDACTED = "[redacted]"
# Keys whose values are never written, whatever a call site passes.
_SECRET_KEYS = frozenset(
    {
        "client_secret", "secret", "password", "token", "access_token", "refresh_token",
        "authorization", "headers", "email", "phone", "phone_number", "first_name",
        "last_name", "address", "addresses", "date_of_birth", "card_number", "card_info",
        "customer", "delivery", "customer_id", "token_id", "payload", "body",
    }
)  # fmt: skip
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Neither pattern above can match a string without an "@" or whitespace between two
# other characters (the bearer pattern needs `\s+` and then a token): `redact` checks for
# those first (`in` and one split, a tenth of a regex search), and skips both
# substitutions for the usual value (a file name, a source, an id), on every log line.
_NOISY = ("httpx", "httpcore", "apscheduler", "watchdog", "tzlocal")

_handler: logging.Handler | None = None


class _ExpectedLibraryNoise(logging.Filter):
    """Drop two library lines that describe our design working, not a problem.

    - APScheduler warns "skipped: maximum number of running instances" each time the
      flush job is due while a long flush still runs: max_instances=1 is on purpose.
    - watchdog logs "queue_events() called when the thread is inactive" at ERROR when an
      observer is stopped while it waits for events (at every shutdown), which would page
      anyone alerting on errors (found by tests/reliability).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("apscheduler") and "maximum number of running" in str(record.msg):
            return False
        return not (
            record.name.startswith("watchdog")
            and "called when the thread is inactive" in str(record.msg)
        )


# Keys our call sites pass that are none of the secret ones: found without a `lower()`
# (which `redact` calls for every other key, on every line). A key here is still checked
# for a bearer token or an e-mail address in its string value.
_PLAIN_KEYS = frozenset(
    {
        "source", "file", "receipts", "rejected", "duplicates", "skipped", "store_id",
        "receipt_id", "where", "error", "status", "retry_in", "ms", "count", "name",
        "bytes", "created", "since", "path", "kind", "size_bytes", "read_bytes", "job",
    }
)  # fmt: skip
# Keys whose values the processors before `redact` set themselves, whatever a call site
# passed (`add_log_level`, `_timestamp`), and the event name: never a secret or personal
# data, so never searched.
_OWN_KEYS = frozenset({"event", "level", "timestamp"})


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Drop known secret/personal keys and mask bearer tokens and e-mails in strings."""
    for key, value in list(event_dict.items()):
        if key in _OWN_KEYS:
            continue
        if key not in _PLAIN_KEYS and key.lower() in _SECRET_KEYS:
            event_dict[key] = REDACTED
        elif isinstance(value, str) and ("@" in value or len(value.split(None, 1)) > 1):
            event_dict[key] = _EMAIL.sub(REDACTED, _BEARER.sub(REDACTED, value))
    return event_dict


# (unix second, its "YYYY-MM-DDTHH:MM:SS"): the part of `timestamp` that changes once a
# second, formatted once a second instead of on every line.
_second: tuple[int, str] = (-1, "")


def iso_utc(ns: int) -> str:
    """Given Unix time in nanoseconds, return it as `timestamp` is written (CONTRACT §6).

    The same text as `datetime.fromtimestamp(s, timezone.utc).isoformat()` with `Z` for
    `+00:00` (structlog's `TimeStamper(fmt="iso", utc=True)`), microseconds truncated as
    `datetime.now()` truncates them, and left out when zero as `isoformat()` leaves them.
    """
    global _second  # noqa: PLW0603 - a one-entry cache, replaced whole (thread-safe)
    seconds, rest = divmod(ns, 1_000_000_000)
    cached = _second
    if cached[0] != seconds:
        t = time.gmtime(seconds)
        text = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        )
        cached = _second = (seconds, text)
    micro = rest // 1000
    return f"{cached[1]}.{micro:06d}Z" if micro else f"{cached[1]}Z"


def _timestamp(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """`timestamp`: UTC ISO-8601, as TimeStamper(fmt="iso", utc=True) wrote it, in a
    sixth of its instructions (a datetime per line was ~17,000)."""
    event_dict["timestamp"] = iso_utc(time.time_ns())
    return event_dict


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class _LineWriter:
    """structlog's logger: writes each rendered line through the current log handler.

    What `Handler.handle` + `StreamHandler.emit` do for a record, for a line rendered
    already: the handler's lock, WatchedFileHandler's reopen-if-rotated check before each
    line, the write, the flush; a failed write goes to `handleError` (stderr), never up
    into the caller, as with every logging call. The handler is looked up per line, as
    the stdlib logger did through the root logger: a logger bound before a reload's
    `configure` writes to the new file too.
    """

    def msg(self, line: str) -> None:
        handler = _handler
        if handler is None:  # pragma: no cover - configure() installs both together
            return
        handler.acquire()
        try:
            if isinstance(handler, logging.handlers.WatchedFileHandler):
                handler.reopenIfNeeded()
            stream = handler.stream  # type: ignore[attr-defined] # a StreamHandler's
            if stream is None and isinstance(handler, logging.FileHandler):
                # closed, e.g. a reopen that failed: FileHandler.emit opens it again
                stream = handler.stream = handler._open()
            stream.write(line + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as Handler.emit: a failed write never raises
            handler.handleError(logging.makeLogRecord({"msg": line}))
        finally:
            handler.release()

    debug = info = warning = warn = error = exception = critical = fatal = log = msg


_LINE_WRITER = _LineWriter()


def _line_writer_factory(*_: Any) -> _LineWriter:
    return _LINE_WRITER


def _render_json(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> str:
    """JSONRenderer(serializer=_orjson_dumps)'s line, without its indirection."""
    return orjson.dumps(event_dict, default=str).decode()


def _unusual(processors: list[Any]) -> Any:
    """Return a processor that runs `processors` only on a line they have something to do.

    PositionalArgumentsFormatter, StackInfoRenderer and ExceptionRenderer act on a line
    only when it has `positional_args`, `stack_info` or `exc_info` (each looks up, pops
    or deletes its key, and does nothing without it); most lines have none of the three.
    """

    def when_needed(
        logger: Any, name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if (
            "exc_info" in event_dict
            or "stack_info" in event_dict
            or ("positional_args" in event_dict)
        ):
            for processor in processors:
                event_dict = processor(logger, name, event_dict)
        return event_dict

    return when_needed


# (processors, wrapper class, context class) of the structlog configuration `bound` was
# built for, and the logger it built: configure() or a test's capture_logs() make new ones.
_bound_for: tuple[Any, Any, Any, Any] = (None, None, None, None)


def bound(**context: Any) -> Any:
    """Return `structlog.get_logger("receipt_agent").bind(**context)`, for a hot path.

    The same logger (processors, level filter, log handler, context), at a fraction of
    the cost: the configured logger is built once per configuration and bound from there
    (a lazy proxy builds it again on every bind; ~32,000 instructions a spool file).
    Only for our own configuration (`configure`): any other is bound the usual way.
    """
    config = structlog.get_config()
    if config["logger_factory"] is not _line_writer_factory:
        return structlog.get_logger("receipt_agent").bind(**context)
    global _bound_for  # noqa: PLW0603 - one cache entry, replaced whole (thread-safe)
    key = (config["processors"], config["wrapper_class"], config["context_class"])
    cached = _bound_for
    if cached[0] is not key[0] or cached[1] is not key[1] or cached[2] is not key[2]:
        cached = _bound_for = (*key, structlog.get_logger("receipt_agent").bind())
    return cached[3].bind(**context)


def configure(*, file: str = "-", format: str = "json", level: str = "info") -> None:
    """Set up structlog and stdlib logging; `file="-"` writes to stderr (journald)."""
    global _handler  # noqa: PLW0603 - one process-wide handler, reopened on SIGHUP
    # No renderer here prints a record's thread, process or multiprocessing names, so
    # LogRecord need not look them up for every line (the logging HOWTO's "Optimization"
    # switches; part of the per-file cost of `file.accepted` on a spool of small files).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        _timestamp,
        redact,
    ]
    if format == "json":
        renderer: Any = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        # Tracebacks without frame locals: a sender frame's locals hold the batch body, i.e.
        # customers' personal data, which the redaction above never sees (CONTRACT §6; seen
        # in a job.failed line during tests/reliability/test_disk_full.py).
        tracebacks = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        final = [tracebacks, renderer]
        # Our events: the same two steps, without a call per line into processors that
        # have nothing to do (no traceback, stack or %-arguments on the line: the usual
        # case) and with orjson called directly, not through JSONRenderer's indirection.
        own_final: list[Any] = [
            _unusual(
                [
                    structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.processors.StackInfoRenderer(),
                    tracebacks,
                ]
            ),
            _render_json,
        ]
    else:
        # Plain tracebacks, whatever was imported first: rich's default one prints every
        # frame's locals, and a sender frame's locals hold customers' personal data
        # (CONTRACT §6), as the JSON branch above says.
        final = [
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            )
        ]
        own_final = [
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            *final,
        ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    if file == "-":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        from pathlib import Path

        Path(file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.WatchedFileHandler(file, encoding="utf-8")
    handler.setFormatter(formatter)
    handler.addFilter(_ExpectedLibraryNoise())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    _handler = handler
    # Our own events skip the stdlib detour (a LogRecord, its copy in ProcessorFormatter, a
    # caller lookup, the handler's filters): the same processors render the line, and it
    # is written through the handler, under its lock and with its reopen check, so it
    # shares the file with the stdlib loggers' lines. Same bytes; a file.accepted line
    # costs about half of what it did (issue 17, files of 1).
    structlog.configure(
        processors=[*shared, *own_final],
        logger_factory=_line_writer_factory,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )


def reopen() -> None:
    """Reopen the log file (SIGHUP after logrotate); a no-op on stderr."""
    if isinstance(_handler, logging.handlers.WatchedFileHandler):
        _handler.acquire()
        try:
            _handler.close()
            _handler.stream = _handler._open()
            _handler._statstream()
        finally:
            _handler.release()
