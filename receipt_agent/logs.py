"""Logging: structlog over stdlib logging, one event per line (CONTRACT §6).

Owns the processor chain (contextvars, level, UTC ISO-8601 `timestamp`, redaction, then
JSON or console rendering), the log file handler (`WatchedFileHandler`, so logrotate's
move is noticed; `reopen()` on SIGHUP for good measure) and the routing of stdlib loggers
(httpx, apscheduler, watchdog) through the same formatter at WARNING. Our own events
are rendered by structlog and written straight through that handler (`_LineWriter`),
without a stdlib LogRecord: the same line for a third of the CPU. The per-line steps
are the cheap equivalents of structlog's (`_timestamp`, `redact`'s fast check, `_unusual`,
`_render_json`, and the redaction checked once on the rendered usual line;
tests/test_logs_lines.py holds them to the stock chain's bytes). `bound()` is a per-file
logger that runs those processors itself, and `batched()` holds one thread's lines so that
a group's are written in one write.

The redaction processor is a backstop: call sites name receipts by store_id + receipt_id
only and never pass secrets, tokens or customers' personal data.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import re
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
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
    write, the write, the flush; a failed write goes to `handleError` (stderr), never up
    into the caller, as with every logging call. The handler is looked up per write, as
    the stdlib logger did through the root logger: a logger bound before a reload's
    `configure` writes to the new file too. Inside `batched()` a thread's lines wait
    and are written together when its block ends.
    """

    def msg(self, line: str) -> None:
        waiting = getattr(_batch, "lines", None)
        if waiting is not None:
            waiting.append(line)
        else:
            self.write(line)

    def write(self, lines: str) -> None:
        """Write one or more lines (joined by newlines, none at the end) as one write."""
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
            stream.write(lines + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as Handler.emit: a failed write never raises
            handler.handleError(logging.makeLogRecord({"msg": lines}))
        finally:
            handler.release()

    debug = info = warning = warn = error = exception = critical = fatal = log = msg


# A thread's lines held by `batched()` (its `lines`: a list, or None outside a block).
_batch = threading.local()


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Hold this thread's own lines (structlog's) and write them together when the block ends.

    For a burst of lines from one thread (a group's 64 `file.accepted`): one reopen
    check, one write and one flush instead of one each per line; the lines, their order
    and their timestamps are the same. Other threads' lines and the stdlib loggers' go
    straight through meanwhile. A `kill -9` inside the block loses the lines held so far
    (a group's after-commit moves take milliseconds). Nested blocks write at the outer end.
    """
    if getattr(_batch, "lines", None) is not None:
        yield
        return
    lines: list[str] = []
    _batch.lines = lines
    try:
        yield
    finally:
        _batch.lines = None
        if lines:
            _LINE_WRITER.write("\n".join(lines))


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


# Keys of a usual line: every one is neither a secret key nor one that `_unusual` acts on.
_USUAL_KEYS = _PLAIN_KEYS | _OWN_KEYS


def _redacted_json(unusual: Any) -> Any:
    """Return the last processor of our own JSON lines: `redact`, `unusual`, `_render_json`.

    The same line for less: the usual line (only `_USUAL_KEYS`) is rendered first and
    checked once, whole. It is already what `redact` would leave when it has no `@`, no
    whitespace and no backslash: every string value is in it, raw or escaped (orjson
    escapes a control character, a quote and a backslash with a backslash), so a value
    `redact` would search for an e-mail or a token shows one of the three. Any other line
    takes the three steps, as before.
    """

    def redact_then_render(logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        if event_dict.keys() <= _USUAL_KEYS:
            line = orjson.dumps(event_dict, default=str).decode()
            if "@" not in line and "\\" not in line and len(line.split(None, 1)) == 1:
                return line
        return _render_json(logger, name, unusual(logger, name, redact(logger, name, event_dict)))

    return redact_then_render


# What `configure` gave structlog for our own JSON or console lines: `bound` runs the same
# processors itself while structlog's configuration is still this one (not a test's
# capture_logs, not a library user's own).
_own: tuple[Any, Any, int] = (None, None, logging.NOTSET)  # (processors, wrapper, level)


class _Bound:
    """`bound()`'s logger under our own configuration: the same line for a third less CPU.

    What structlog's filtering bound logger does for a line, without its steps per call
    (the proxy, the method lookups, a bound copy per `bind`): below the configured level
    nothing; else the context, the keywords, `event`, then the configured processors in
    order and the rendered line to `_LineWriter`, or nothing on DropEvent. `exception`
    (exc_info from the running exception) and any other method go to structlog's own
    bound logger, built on first use.
    """

    __slots__ = ("_context", "_level", "_processors", "_structlog")

    def __init__(self, context: dict[str, Any], processors: Any, level: int) -> None:
        self._context, self._processors, self._level = context, processors, level
        self._structlog: Any = None

    def _line(self, level: int, name: str, event: str, kw: dict[str, Any]) -> None:
        if level < self._level:
            return
        event_dict: Any = self._context.copy()
        event_dict.update(kw)
        event_dict["event"] = event
        try:
            for processor in self._processors:
                event_dict = processor(_LINE_WRITER, name, event_dict)
        except structlog.DropEvent:
            return
        _LINE_WRITER.msg(event_dict)

    def debug(self, event: str, **kw: Any) -> None:
        self._line(logging.DEBUG, "debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        self._line(logging.INFO, "info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        self._line(logging.WARNING, "warning", event, kw)

    def error(self, event: str, **kw: Any) -> None:
        self._line(logging.ERROR, "error", event, kw)

    def __getattr__(self, name: str) -> Any:
        """`exception`, `bind`, … : structlog's own logger, bound to the same context."""
        if self._structlog is None:
            self._structlog = structlog.get_logger("receipt_agent").bind(**self._context)
        return getattr(self._structlog, name)


def bound(**context: Any) -> Any:
    """Return `structlog.get_logger("receipt_agent").bind(**context)`, for a hot path.

    The same lines (processors, level filter, log handler, context), at a fraction of the
    cost: under our own configuration (`configure`) a `_Bound` runs its processors itself;
    under any other (a test's capture_logs, a library user's own) it is structlog's.
    """
    config = structlog.get_config()
    processors, wrapper, level = _own
    if (
        config["processors"] is processors
        and config["wrapper_class"] is wrapper
        and config["context_class"] is dict
        and config["logger_factory"] is _line_writer_factory
    ):
        return _Bound(context, processors, level)
    return structlog.get_logger("receipt_agent").bind(**context)


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
        own: list[Any] = [
            *shared[:-1],  # redact: with the rendering, checked once on the usual line
            _redacted_json(
                _unusual(
                    [
                        structlog.stdlib.PositionalArgumentsFormatter(),
                        structlog.processors.StackInfoRenderer(),
                        tracebacks,
                    ]
                )
            ),
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
        own = [
            *shared,
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
    global _own  # noqa: PLW0603 - replaced whole with the configuration (thread-safe)
    level_number = logging.getLevelName(level.upper())
    wrapper = structlog.make_filtering_bound_logger(level_number)
    structlog.configure(
        processors=own,
        logger_factory=_line_writer_factory,
        wrapper_class=wrapper,
        context_class=dict,
        cache_logger_on_first_use=False,
    )
    _own = (own, wrapper, level_number)


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
