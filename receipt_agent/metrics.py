"""Prometheus metrics: the counters and gauges an SRE scrapes (CONTRACT §2 `metrics`).

Owns one private `CollectorRegistry` per `AgentMetrics` (never the process-global one, so
tests and the demo can build as many as they like), the node_exporter textfile written
atomically, and the optional HTTP listener serving it. Never touches a spool file, the
state store or the API: the agent calls the recording methods with plain values after
the owning module has done the work. Never labels a series with a receipt id, a file
name or anything a customer typed: labels are source names, outcomes and status codes,
so the number of series stays small and nothing personal leaves the machine.

Metric names (all with HELP text):

    receipt_agent_receipts_total{source,outcome}     queued | sent | duplicate | rejected
    receipt_agent_files_total{source,outcome}        accepted | quarantined
    receipt_agent_batches_total{outcome,status}      sent | failed | split | rejected;
                                                     status = HTTP code or "none"
    receipt_agent_post_duration_seconds{outcome}     histogram of POST /receipts latency
    receipt_agent_queue_pending                      receipts waiting to be sent
    receipt_agent_queue_oldest_pending_age_seconds   0 when nothing is pending
    receipt_agent_last_success_timestamp_seconds     unix time of the last 2xx batch
    receipt_agent_token_refreshes_total              access tokens fetched
    receipt_agent_build_info{version}                always 1

The listener also answers `GET /health` with a small JSON document when the agent hands
it a health callable (the same verdict as `receipt-agent status`): 200 when healthy, 503
when degraded, for load balancers and uptime checks that cannot parse metrics.
"""

from __future__ import annotations

import functools
import json
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    make_wsgi_app,
    write_to_textfile,
)
from prometheus_client.exposition import ThreadingWSGIServer

from receipt_agent import __version__
from receipt_agent.notation import parse_host_port

RECEIPT_OUTCOMES = ("queued", "sent", "duplicate", "rejected")
FILE_OUTCOMES = ("accepted", "quarantined")
BATCH_OUTCOMES = ("sent", "failed", "split", "rejected")

# Seconds. Dintero usually answers in well under a second; the tail reaches the request
# timeout (30 s by default, CONTRACT §2 `dintero.timeout`), so the last buckets cover it.
POST_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

# How long stop() waits for the listener's thread after shutting the server down.
_LISTENER_JOIN_TIMEOUT_S = 5.0


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    # A typo in the caller would otherwise create a new, never-alerted-on series.
    if value not in allowed:
        raise ValueError(f"{value!r} is not a {what} outcome; use one of {', '.join(allowed)}")
    return value


# (healthy, document): what GET /health answers; the agent builds it from the state store.
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: scrapes every 15 s would bury the agent's own lines."""


def _health_app(health: HealthCheck, fallback: Any) -> Any:
    """Return a WSGI app answering /health from `health` and everything else from `fallback`."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").rstrip("/") != "/health":
            return fallback(environ, start_response)
        try:
            healthy, document = health()
        except Exception as error:  # noqa: BLE001 - a request boundary: answer, never crash
            healthy, document = False, {"status": "unknown", "problems": [str(error)]}
        body = json.dumps(document, default=str).encode()
        start_response(
            "200 OK" if healthy else "503 Service Unavailable",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


class AgentMetrics:
    """The agent's metrics in their own registry, with one method per thing that happened."""

    def __init__(self, sources: Iterable[str] = ()) -> None:
        """Create the metrics; series for `sources` start at 0 so rate() works at once."""
        self.registry = CollectorRegistry()
        # Every metric lives in this registry, never prometheus_client's global one.
        counter = functools.partial(Counter, registry=self.registry)
        gauge = functools.partial(Gauge, registry=self.registry)
        self._receipts = counter(
            "receipt_agent_receipts",
            "Receipts by source and outcome: queued from a file, sent (2xx), duplicate "
            "(already queued or sent), rejected (invalid, or refused alone by the API).",
            ["source", "outcome"],
        )
        self._files = counter(
            "receipt_agent_files",
            "Till export files taken in (accepted) or moved to quarantine, by source.",
            ["source", "outcome"],
        )
        self._batches = counter(
            "receipt_agent_batches",
            "POST /receipts batches by outcome (sent, failed, split, rejected) and HTTP "
            'status code ("none" for timeouts and connection errors).',
            ["outcome", "status"],
        )
        self._post_duration = Histogram(
            "receipt_agent_post_duration_seconds",
            "Latency of POST /receipts requests, by batch outcome.",
            ["outcome"],
            buckets=POST_DURATION_BUCKETS,
            registry=self.registry,
        )
        self._pending = gauge(
            "receipt_agent_queue_pending",
            "Receipts in the queue waiting to be sent (state pending).",
        )
        self._oldest_age = gauge(
            "receipt_agent_queue_oldest_pending_age_seconds",
            "Age of the oldest pending receipt in seconds; 0 when nothing is pending.",
        )
        self._last_success = gauge(
            "receipt_agent_last_success_timestamp_seconds",
            "Unix time of the last batch Dintero accepted (2xx); 0 until the first.",
        )
        self._token_refreshes = counter(
            "receipt_agent_token_refreshes",
            "Access tokens fetched from Dintero (at start, before expiry, or after a 401).",
        )
        self._reconcile_mismatch_days = counter(
            "receipt_agent_reconcile_mismatch_days",
            "Business days (per store and register) the daily reconciliation found a gap, a "
            "control-total difference or a receipt Dintero does not hold, by source.",
            ["source"],
        )
        self._reconcile_gaps = counter(
            "receipt_agent_reconcile_gaps",
            "Till numbers the daily reconciliation found missing (never reached the agent).",
            ["source"],
        )
        build = Info("receipt_agent_build", "The running receipt-agent.", registry=self.registry)
        build.info({"version": __version__})
        for source in sources:
            for outcome in RECEIPT_OUTCOMES:
                self._receipts.labels(source, outcome)
            for outcome in FILE_OUTCOMES:
                self._files.labels(source, outcome)
            self._reconcile_mismatch_days.labels(source)
            self._reconcile_gaps.labels(source)
        for outcome in BATCH_OUTCOMES:
            self._post_duration.labels(outcome)
        # The labelled children, looked up once: prometheus-client's labels() validates and
        # joins the label values under a lock on every call (per batch and per file).
        self._receipt_children: dict[tuple[str, str], Any] = {}
        self._file_children: dict[tuple[str, str], Any] = {}
        self._batch_children: dict[tuple[str, int | None], tuple[Any, Any]] = {}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- recording: called by the agent after the owning module did the work -------------

    def receipts(self, source: str, outcome: str, count: int = 1) -> None:
        """Count `count` receipts of `source` that were queued, sent, duplicate or rejected."""
        if count < 0:
            raise ValueError("a receipt count cannot be negative")
        child = self._receipt_children.get((source, outcome))
        if child is None:
            child = self._receipts.labels(source, _check(outcome, RECEIPT_OUTCOMES, "receipt"))
            self._receipt_children[source, outcome] = child
        if count:  # the series exists from labels() above; adding 0 changes nothing
            child.inc(count)

    def batch(self, outcome: str, status: int | None, seconds: float) -> None:
        """Count one POST /receipts that took `seconds` and ended with HTTP `status`."""
        children = self._batch_children.get((outcome, status))
        if children is None:
            _check(outcome, BATCH_OUTCOMES, "batch")
            children = (
                self._batches.labels(outcome, "none" if status is None else str(status)),
                self._post_duration.labels(outcome),
            )
            self._batch_children[outcome, status] = children
        children[0].inc()
        children[1].observe(max(seconds, 0.0))

    def set_queue(self, pending: int, oldest_age_s: float | None) -> None:
        """Set the queue gauges; `oldest_age_s` is None when nothing is pending."""
        self._pending.set(pending)
        self._oldest_age.set(0.0 if oldest_age_s is None else max(oldest_age_s, 0.0))

    def last_success(self, unix_ts: float) -> None:
        """Record when Dintero last accepted a batch (also call it at start from the DB)."""
        self._last_success.set(unix_ts)

    def token_refreshed(self) -> None:
        """Count one access token fetched."""
        self._token_refreshes.inc()

    def file_accepted(self, source: str, count: int = 1) -> None:
        """Count `count` export files of `source` taken in (their receipts are in the DB)."""
        self._file_child(source, "accepted").inc(count)

    def file_quarantined(self, source: str, count: int = 1) -> None:
        """Count `count` export files of `source` moved to quarantine."""
        self._file_child(source, "quarantined").inc(count)

    def _file_child(self, source: str, outcome: str) -> Any:
        # Looked up once per source and outcome, as for receipts (one file.accepted a file).
        child = self._file_children.get((source, outcome))
        if child is None:
            child = self._file_children[source, outcome] = self._files.labels(source, outcome)
        return child

    def reconciled(self, source: str, result: str, gaps: int) -> None:
        """Count one reconciled register-day of `source`: a mismatch, and its gaps."""
        if result != "complete":
            self._reconcile_mismatch_days.labels(source).inc()
        self._reconcile_gaps.labels(source).inc(max(gaps, 0))

    # --- exposition ---------------------------------------------------------------------

    def render(self) -> bytes:
        """Return the metrics in the Prometheus text format (what /metrics serves)."""
        return generate_latest(self.registry)

    def write_textfile(self, path: Path | str) -> None:
        """Write the metrics to `path` for node_exporter's textfile collector, atomically.

        prometheus_client writes `<path>.<pid>.<thread>` in the same folder and renames it
        over `path`, so a scrape never reads half a file; the temporary name does not end
        in `.prom`, so the collector ignores it. `path` must end in `.prom` to be
        collected. Raises OSError when the folder is missing or not writable.
        """
        write_to_textfile(str(path), self.registry)

    def start_listener(
        self, host_port: str, *, health: HealthCheck | None = None
    ) -> tuple[str, int]:
        """Serve /metrics (and /health when given) on `host_port` in a daemon thread.

        Return the bound (host, port); port 0 picks a free port (tests). Raises OSError
        when the address is in use and RuntimeError when a listener is already running.
        """
        if self._server is not None:
            raise RuntimeError("the metrics listener is already running")
        host, port = parse_host_port(host_port)
        app = make_wsgi_app(self.registry)
        if health is not None:
            app = _health_app(health, app)

        class _Server(ThreadingWSGIServer):
            address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

        server = make_server(host, port, app, _Server, handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        bound_host, bound_port = server.server_address[:2]
        return str(bound_host), int(bound_port)

    def stop(self) -> None:
        """Stop the listener, free its port and join its thread; a no-op when none runs."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()  # shutdown() alone keeps the port bound
        if thread is not None:
            thread.join(_LISTENER_JOIN_TIMEOUT_S)
