"""Report runs: Dintero report generation on a schedule, at start-up and on demand.

Implements CONTRACT §1 (`report generate`), §2 (`reports`) and the events
`report.generated` / `report.failed` of §6 (their only emitter).

Report generation (`POST /accounts/{aid}/reports/generation`, API-NOTES §4.1): every
query parameter of the seed page comes from the report's config; `data_from`/`data_to`
are the period of `reports.periods` (half-open: `data_to` is the next period's start).
Each 2xx answer becomes ONE file in `output_dir`, written atomically:

- 200 → the body is the report: `<name>-<period start>.<ext>`, the extension from the
  response's Content-Type, else from `accept` (pdf, csv, json, html, txt, xml, …);
- 201 (`save: true`: Dintero keeps the report) → the same when the body is a non-JSON
  document of exactly the `accept` type; otherwise a small JSON receipt
  `<name>-<period start>.saved.json` holding the period and Dintero's answer (the 201
  body is undocumented: API-NOTES §4.1 [UNK]).

Only after the file is on disk is the period recorded in the state store's `reports`
table, and a recorded period is never requested or written again. 408/429/5xx,
timeouts and connection errors are retried (`api.retry_transient`: exponential from
`retry.initial`, capped at `retry.max`, no jitter, Retry-After honoured up to 15 min, at
most 5 attempts); any other
answer fails the run at once. A failed period stays unrecorded, so the next start's
catch-up runs it again.

May write only into a report's output folder; prints nothing (cli shows the outcome);
never logs or raises with a token, a header or a response body. Everything pure is in
`reports.periods`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import orjson
import structlog

from receipt_agent.api import (
    TRANSIENT_ATTEMPTS,
    DinteroClient,
    error_message,
    open_client,
    raise_if_transient,
    retry_transient,
)
from receipt_agent.config import AgentConfig, ReportConfig
from receipt_agent.errors import (
    ConfigError,
    ReportError,
    SendError,
    StateStoreError,
    TransientSendError,
)
from receipt_agent.files import atomic_write
from receipt_agent.reports.periods import (
    Period,
    extension_for,
    last_fire_time,
    parse_date,
    period_starting,
    previous_period,
)
from receipt_agent.statedb import StateDB

REPORT_ATTEMPTS = TRANSIENT_ATTEMPTS
FILE_MODE = 0o640  # reports hold business figures: owner and group only


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """What one report run did: wrote `file` (`bytes` long), or found it already written."""

    name: str
    period_start: str
    file: Path
    bytes: int
    status: int | None  # the API's answer; None when the period was already recorded
    skipped: bool = False


def report_query(report: ReportConfig, period: Period) -> dict[str, str]:
    """Return the query parameters of seed 000 for one report period."""
    query = {
        "template_id": report.template_id,
        "template_data_path": report.template_data_path,
        "template_accept": report.accept,
        "template_accept_language": report.language,
        "template_accept_timezone": report.timezone,
        **period.query(),
    }
    if report.schedule is not None:
        query["schedule"] = report.schedule
    query["save"] = "true" if report.save else "false"
    return query


class ReportRunner:
    """Runs configured reports: on their cron, once at start-up to catch up, or on demand.

    Safe to call from several scheduler threads: runs of the same report are serialised,
    so a catch-up and a cron run of the same period never both request it. Pass the
    agent's `stop_event` so a shutdown interrupts a retry's wait.
    """

    def __init__(
        self,
        config: AgentConfig,
        client: DinteroClient,
        db: StateDB,
        *,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.client = client
        self.db = db
        self._stop = stop_event or threading.Event()
        self._locks = {report.name: threading.Lock() for report in config.reports}
        self._locks_guard = threading.Lock()
        self._caught_up = False
        self._log = structlog.get_logger("receipt_agent")

    # --- entry points ---------------------------------------------------------------------

    def run(
        self, report: ReportConfig, period_start: date | None = None, *, now: datetime | None = None
    ) -> ReportOutcome:
        """Given a report and optionally its period's first day (a date), run it now.

        Without `period_start` the period is the last full one before `now`. Raise
        ReportError (already logged as report.failed) when it cannot be written.
        """
        if period_start is None:
            period = previous_period(report.period, report.timezone, now or datetime.now(UTC))
        else:
            period = period_starting(report.period, report.timezone, period_start)
        return self.run_period(report, period)

    def run_scheduled(self, report: ReportConfig) -> None:
        """The cron job: the period before the cron's latest fire time (normally now).

        Anchoring on the fire time rather than the clock keeps a run that starts late
        (within the misfire grace) on the period it was due for. Failures are logged as
        report.failed and left for the next start's catch-up; never raises ReportError.
        """
        now = datetime.now(UTC)
        fire = last_fire_time(report.cron, report.timezone, now) if report.cron else None
        period = previous_period(report.period, report.timezone, fire or now)
        try:
            self.run_period(report, period)
        except ReportError:
            return  # logged as report.failed where it happened

    def catch_up(self, *, now: datetime | None = None) -> list[ReportOutcome]:
        """At start-up, once: run each cron report whose latest due period is unrecorded.

        Only the most recent due period is caught up (per the cron in its time zone,
        looking back at most 400 days), not every period missed. A first start counts too:
        the last due period of a newly configured report is fetched. Return what was
        written; failures are logged as report.failed and do not stop the others.
        """
        if self._caught_up:
            return []
        self._caught_up = True
        current = now or datetime.now(UTC)
        written: list[ReportOutcome] = []
        for report in self.config.reports:
            if not report.cron:
                continue
            # No ValueError to catch: the line passed cron.check_crontab when the config loaded.
            fire = last_fire_time(report.cron, report.timezone, current)
            if fire is None:
                continue
            try:
                outcome = self.run_period(
                    report, previous_period(report.period, report.timezone, fire)
                )
            except ReportError:
                continue  # logged as report.failed; the next start tries again
            if not outcome.skipped:
                written.append(outcome)
        return written

    def run_period(self, report: ReportConfig, period: Period) -> ReportOutcome:
        """Given a report and a period, write its file unless the period is recorded.

        Raise ReportError (logged as report.failed) when the API refuses or keeps failing,
        or the file or its record cannot be written.
        """
        with self._lock(report.name):
            try:
                done = self.db.report_done(report.name, period.key)
            except StateStoreError as error:
                message = f"report {report.name}: {error}"
                raise self._failed(report, period, message, None, "error") from None
            if done is not None:
                return ReportOutcome(report.name, period.key, Path(done), 0, None, skipped=True)
            started = time.monotonic()
            response = self._generate(report, period)
            path, data = self._document(report, period, response)
            try:
                atomic_write(path, data, mode=FILE_MODE)
            except OSError as error:
                message = (
                    f"report {report.name}: cannot write {path} ({error.strerror}); "
                    "check that output_dir is writable by this user"
                )
                raise self._failed(report, period, message, response.status_code, "error") from None
            # The file is durable before the period is recorded: a crash in between
            # only means the same file is written again, never a recorded period without it.
            try:
                self.db.record_report(report.name, period.key, str(path))
            except StateStoreError as error:
                message = (
                    f"report {report.name}: wrote {path} but could not record it ({error}); "
                    "it will be written again"
                )
                raise self._failed(report, period, message, response.status_code, "error") from None
            self._log.info(
                "report.generated",
                name=report.name,
                file=str(path),
                bytes=len(data),
                status=response.status_code,
                period_start=period.key,
                ms=round((time.monotonic() - started) * 1000, 1),
            )
            return ReportOutcome(report.name, period.key, path, len(data), response.status_code)

    # --- internals ------------------------------------------------------------------------

    def _lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    def _generate(self, report: ReportConfig, period: Period) -> httpx.Response:
        """POST the generation request with retries; return a 2xx response."""
        # Exponential from retry.initial, capped at retry.max, a longer Retry-After wins;
        # no jitter (report runs have never had it).
        retrying = retry_transient(self.config.retry, self._sleep, jitter=False)
        try:
            response = retrying(self._post_once, report, period)
        except TransientSendError as error:
            message = (
                f"report {report.name}: gave up after {REPORT_ATTEMPTS} attempts ({error}); "
                "the period is tried again at the next start"
            )
            if self._stop.is_set():
                message = (
                    f"report {report.name}: the agent stopped while waiting to retry ({error}); "
                    "the period is tried again at the next start"
                )
            raise self._failed(report, period, message, error.status, "warning") from None
        except SendError as error:  # MisconfiguredError: 401 after a fresh token
            raise self._failed(
                report, period, f"report {report.name}: {error}", error.status, "error"
            ) from None
        status = response.status_code
        if not 200 <= status < 300:  # noqa: PLR2004
            hint = (
                "check dintero.account_id, base_url and the API client's report scopes"
                if status in (403, 404)
                else f"check reports '{report.name}' (template, accept, body)"
            )
            message = (
                f"report {report.name}: Dintero answered {status} ({error_message(response)}); "
                f"{hint}"
            )
            raise self._failed(report, period, message, status, "error")
        return response

    def _post_once(self, report: ReportConfig, period: Period) -> httpx.Response:
        response = self.client.request(
            "POST",
            "/reports/generation",
            params=report_query(report, period),
            json=[item.model_dump(mode="json") for item in report.body],
            headers={"Accept": f"{report.accept}, application/json;q=0.5"},
        )
        raise_if_transient(response, "POST reports/generation")
        return response

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise TransientSendError("the agent is stopping")

    def _document(
        self, report: ReportConfig, period: Period, response: httpx.Response
    ) -> tuple[Path, bytes]:
        """Return where the answer goes and what is written there."""
        folder = self.config.report_dir(report)
        content_type = response.headers.get("Content-Type")
        extension = extension_for(content_type, report.accept)
        media_type = (content_type or "").split(";")[0].strip().lower()
        # 200 carries the report. Any other 2xx (201 with save) is undocumented: only a
        # non-JSON body of exactly the asked type is taken for the report itself; a JSON
        # body could as well be Dintero's note about the saved report.
        is_report = response.status_code == 200 or (  # noqa: PLR2004
            bool(response.content)
            and media_type == report.accept.lower()
            and media_type != "application/json"
        )
        if is_report:
            return folder / f"{report.name}-{period.key}.{extension}", response.content
        try:
            answer = response.json() if response.content else None
        except ValueError:
            answer = None
        saved = {
            "report": report.name,
            "status": response.status_code,
            "saved_by_dintero": report.save,
            "period_start": period.key,
            **period.query(),
            "template_id": report.template_id,
            "generated_at": datetime.now(UTC).isoformat(),
            "response": answer if isinstance(answer, dict) else None,
        }
        data = orjson.dumps(saved, option=orjson.OPT_INDENT_2) + b"\n"
        return folder / f"{report.name}-{period.key}.saved.json", data

    def _failed(
        self,
        report: ReportConfig,
        period: Period,
        message: str,
        status: int | None,
        level: str,
    ) -> ReportError:
        """Log report.failed once, where it happened; return the error to raise."""
        log = self._log.warning if level == "warning" else self._log.error
        log(
            "report.failed",
            name=report.name,
            error=message,
            status=status,
            period_start=period.key,
        )
        return ReportError(message, status=status)


def generate_report(
    config: AgentConfig, name: str, period_start: str | None, *, now: datetime | None = None
) -> ReportOutcome:
    """`report generate NAME [--period-start DATE]`: run one report now; return its outcome.

    Without `period_start` the period is the last full one. Raise ConfigError for an
    unknown name or a bad/unfinished period (before any request), ReportError (logged
    as report.failed) when the run fails.
    """
    report = config.report(name)
    current = now or datetime.now(UTC)
    if period_start is None:
        period = previous_period(report.period, report.timezone, current)
    else:
        start = parse_date(period_start, "--period-start")
        period = period_starting(report.period, report.timezone, start)
        if period.data_to is not None and period.data_to > current:
            raise ConfigError(
                [
                    (
                        "--period-start",
                        f"the period {period.key} .. {period.data_to.date()} has not ended yet; "
                        "a report of it would be incomplete and never redone",
                    )
                ]
            )
    client = open_client(config.dintero)
    db = StateDB(config.db_path)
    try:
        return ReportRunner(config, client, db).run_period(report, period)
    finally:
        client.close()
        db.close()
