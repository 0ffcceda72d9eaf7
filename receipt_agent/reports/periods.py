"""The pure rules of report runs: periods, cron fire times, dates, file extensions.

Pure functions from values to values (no I/O, no logging, no clock reads: `now` is
always passed in), used by `reports.runner` for CONTRACT §2 `reports[].period` and
`cron` and for the output file's extension, and by `reports.settlement` for its dates.

Periods are half-open intervals in the report's `timezone`: `data_from` is the local
midnight that starts the period and `data_to` is the local midnight that starts the
NEXT period (exclusive end). So consecutive periods neither overlap nor leave a gap,
whatever the clock resolution of the transactions, and a DST change inside the period
only changes the offset of the end: March 2026 in Europe/Oslo is
`2026-03-01T00:00:00+01:00` → `2026-04-01T00:00:00+02:00` (743 hours).

- `previous_day`: yesterday, local midnight to local midnight (23 or 25 h on DST days);
- `previous_week`: the previous ISO week, Monday 00:00 to Monday 00:00;
- `previous_month`: the previous calendar month, the 1st 00:00 to the next 1st 00:00;
- `none`: no interval is sent; the period is named by the local date of the run.

A period is named by its start date (`YYYY-MM-DD`, local): that name keys the state
store's `reports` table and is part of the output file name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from receipt_agent.cron import crontab_trigger
from receipt_agent.errors import ConfigError

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FIRST_WINDOW = timedelta(hours=1)
CRON_LOOKBACK = timedelta(days=400)  # a yearly cron still has a fire inside this window
_EXTENSIONS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/json": "json",
    "text/html": "html",
    "text/plain": "txt",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/zip": "zip",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}


@dataclass(frozen=True, slots=True)
class Period:
    """One report period: its name (start date) and, unless `period: none`, its bounds."""

    start_date: date
    data_from: datetime | None = None
    data_to: datetime | None = None

    @property
    def key(self) -> str:
        """The period's name in the state store and in file names: `YYYY-MM-DD`."""
        return self.start_date.isoformat()

    def query(self) -> dict[str, str]:
        """Return `data_from`/`data_to` as ISO-8601 with offset, or nothing for `none`."""
        if self.data_from is None or self.data_to is None:
            return {}
        return {"data_from": self.data_from.isoformat(), "data_to": self.data_to.isoformat()}


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """Return the first instant of `day` in `tz`, also where DST skips midnight itself.

    A wall-clock time in a DST gap is resolved with the offset before the gap; the round
    trip through UTC turns it into the first instant that exists (e.g. 01:00).
    """
    naive_midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    return naive_midnight.astimezone(UTC).astimezone(tz)


def _next_start(period: str, start: date) -> date:
    if period == "previous_day":
        return start + timedelta(days=1)
    if period == "previous_week":
        return start + timedelta(days=7)
    # previous_month
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def _current_start(period: str, today: date) -> date:
    """The start of the period that contains `today`."""
    if period == "previous_day":
        return today
    if period == "previous_week":
        return today - timedelta(days=today.weekday())  # ISO: Monday is weekday 0
    return today.replace(day=1)


def _previous_start(period: str, current: date) -> date:
    if period == "previous_day":
        return current - timedelta(days=1)
    if period == "previous_week":
        return current - timedelta(days=7)
    return (current - timedelta(days=1)).replace(day=1)


def period_starting(period: str, timezone: str, start: date) -> Period:
    """Given a period kind, a time zone and the period's first day, return the Period.

    Raise ConfigError when `start` is not the first day of such a period (a week starts
    on a Monday, a month on the 1st).
    """
    if period == "none":
        return Period(start)
    if _current_start(period, start) != start:
        first = _current_start(period, start)
        unit = "a Monday (ISO weeks)" if period == "previous_week" else "the 1st of a month"
        raise ConfigError(
            [
                (
                    "--period-start",
                    f"{start.isoformat()} does not start a {period.removeprefix('previous_')}; "
                    f"a period starts on {unit}, e.g. {first.isoformat()}",
                )
            ]
        )
    tz = ZoneInfo(timezone)
    return Period(
        start,
        local_midnight(start, tz),
        local_midnight(_next_start(period, start), tz),
    )


def previous_period(period: str, timezone: str, now: datetime) -> Period:
    """Given a period kind, a time zone and an aware `now`, return the last full period.

    For `none` the Period only carries the local date of `now` as its name.
    """
    today = now.astimezone(ZoneInfo(timezone)).date()
    if period == "none":
        return Period(today)
    return period_starting(period, timezone, _previous_start(period, _current_start(period, today)))


def parse_date(value: str, where: str) -> date:
    """Given `YYYY-MM-DD` text, return the date. Raise ConfigError at `where` otherwise.

    Stricter than `date.fromisoformat`, which since 3.11 also takes `20260301` and
    `2026-W10-1`: the API's `format: date` is the extended calendar form only.
    """
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            [(where, f"{value!r} is not a valid date; write YYYY-MM-DD, e.g. 2026-03-01")]
        ) from None


def last_fire_time(
    cron: str, timezone: str, now: datetime, *, lookback: timedelta = CRON_LOOKBACK
) -> datetime | None:
    """Given a crontab expression in `timezone`, return its latest fire time <= `now`.

    Uses `cron.crontab_trigger`, the same trigger the scheduler uses, so both agree on
    day-of-week numbering (crontab's: 0 = Sunday) and DST. Searches back in doubling windows, so
    a minutely cron costs a few steps and a monthly one a dozen. Return None when the
    cron never fired within `lookback`.
    """
    trigger = crontab_trigger(cron, timezone)
    window = _FIRST_WINDOW
    while True:
        fire: datetime | None = trigger.get_next_fire_time(None, now - window)
        if fire is not None and fire <= now:
            while True:
                following: datetime | None = trigger.get_next_fire_time(
                    fire, fire + timedelta(seconds=1)
                )
                if following is None or following > now:
                    return fire
                fire = following
        if window >= lookback:
            return None
        window = min(window * 2, lookback)


# --- file names -------------------------------------------------------------------------


def extension_for(content_type: str | None, accept: str) -> str:
    """Given the response's Content-Type and the report's `accept`, return a file extension.

    The response's type wins when it is a known document type; a generic one
    (`application/octet-stream`) falls back to `accept`; an unknown type gives `bin`.
    """
    for value in (content_type, accept):
        media_type = (value or "").split(";")[0].strip().lower()
        if media_type in _EXTENSIONS:
            return _EXTENSIONS[media_type]
    return "bin"
