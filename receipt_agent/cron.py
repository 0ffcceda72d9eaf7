"""Crontab expressions with crontab's meaning, on APScheduler 3.x triggers.

APScheduler's `CronTrigger.from_crontab` numbers weekdays from Monday = 0, so the
crontab line `0 6 * * 1` ("Mondays at 06:00") would fire on Tuesdays. `crontab_trigger`
rewrites the day-of-week field into names first (0 and 7 = Sunday, as crontab(5) says),
so a store's IT person gets what they wrote. The scheduler and the reports' catch-up both
use it, so they agree.

A crontab line is validated once, when the config loads: `check_crontab` is the field
validator of `reports[].cron` and `reconcile.cron` (config/values.py), so a bad line is
a `reports[0].cron: <reason>` problem of `check-config` and of every command that loads
the config (exit 2), and the scheduler and `reports.periods` only ever build triggers for
lines that passed. Below config in the import layers; imports apscheduler only, and only
when a trigger is built (so importing the config costs no apscheduler import).
"""

from __future__ import annotations

from typing import Any

_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAYS_IN_WEEK = 7
_FIELDS = ("minute", "hour", "day", "month", "day_of_week")  # a crontab line, in order


def _day(token: str) -> int:
    token = token.strip().lower()
    if token[:3] in _NAMES and not token.isdigit():
        return _NAMES.index(token[:3])
    number = int(token)
    if not 0 <= number <= _DAYS_IN_WEEK:
        raise ValueError(f"day of week {number} is out of range; use 0-7 (0 and 7 = Sunday)")
    return number % _DAYS_IN_WEEK


def day_of_week_names(field: str) -> str:
    """Given crontab's day-of-week field (`1-5`, `0,6`, `*/2`, `mon-fri`), return names."""
    if field.strip() == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"step {step_text!r} in {field!r} must be at least 1")
        if span == "*":
            first, last = 0, _DAYS_IN_WEEK - 1
        elif "-" in span:
            start, end = span.split("-", 1)
            first, last = _day(start), _day(end)
            if end.strip() == "7":
                last = _DAYS_IN_WEEK  # `5-7` is Friday to Sunday
        else:
            first = last = _day(span)
            if step_text:
                last = _DAYS_IN_WEEK - 1
        if last < first:
            raise ValueError(f"day-of-week range {span!r} runs backwards; write e.g. 1-5")
        days.update(day % _DAYS_IN_WEEK for day in range(first, last + 1, step))
    return ",".join(_NAMES[day] for day in sorted(days))


def check_crontab(expression: str) -> str:
    """Given a crontab line, return it when a trigger can be built from it: the one check.

    Raise ValueError with a readable reason (the field, the range) otherwise. The fields'
    meaning does not depend on the time zone, so the line is checked in UTC once for every
    zone it will run in (reconcile runs in each source's zone).
    """
    crontab_trigger(expression, "UTC")
    return expression


def crontab_trigger(expression: str, timezone: str) -> Any:
    """Given a 5-field crontab line and an IANA zone, return an APScheduler CronTrigger.

    Raise ValueError with a readable reason when the expression is not valid (a config
    has none: `check_crontab` refused them at load).
    """
    from apscheduler.triggers.cron import CronTrigger  # here: loading a config stays light

    fields = expression.split()
    if len(fields) != len(_FIELDS):
        raise ValueError(f"{expression!r} is not a crontab line; write 5 fields, e.g. '15 6 1 * *'")
    named = dict(zip(_FIELDS, fields, strict=True))
    named["day_of_week"] = day_of_week_names(named["day_of_week"])
    return CronTrigger(**named, timezone=timezone)
