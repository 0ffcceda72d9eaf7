"""Crontab lines mean what crontab(5) says, not APScheduler's Monday-first numbering."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from receipt_agent.cron import crontab_trigger, day_of_week_names

SATURDAY = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "names"),
    [("1", "mon"), ("0", "sun"), ("7", "sun"), ("1-5", "mon,tue,wed,thu,fri"),
     ("0,6", "sun,sat"), ("5-7", "sun,fri,sat"), ("*/2", "sun,tue,thu,sat"),
     ("mon-wed", "mon,tue,wed"), ("*", "*")],
)  # fmt: skip
def test_day_of_week_names_follow_crontab_numbering(field: str, names: str) -> None:
    """0 and 7 are Sunday, 1 is Monday, ranges and steps count from Sunday."""
    assert day_of_week_names(field) == names


def test_crontab_trigger_monday_line_fires_on_monday() -> None:
    """`0 6 * * 1` fires on the next Monday at 06:00 local time (APScheduler alone says Tuesday)."""
    fire = crontab_trigger("0 6 * * 1", "Europe/Oslo").get_next_fire_time(None, SATURDAY)
    assert fire.isoformat() == "2026-11-30T06:00:00+01:00"
    assert fire.strftime("%A") == "Monday"


@pytest.mark.parametrize("line", ["0 6 * *", "0 6 * * 9", "0 6 * * 5-1", "x 6 * * *"])
def test_crontab_trigger_rejects_bad_lines(line: str) -> None:
    """A wrong crontab line is refused with a reason, not scheduled at a surprising time."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the mistake
        crontab_trigger(line, "Europe/Oslo")
