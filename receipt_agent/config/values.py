"""How operators write durations, sizes, paths, time zones and names in the config (CONTRACT §2).

Owns the value types the schema's fields are declared with: `30s`/`5m`/`2h` durations,
`2MB` sizes (binary multiples), paths relative to the config file's folder, IANA time
zone names, source/report names and crontab lines (checked by `cron.check_crontab`, the
one crontab check). Each raises ValueError with the sentence
`check-config` prints after `path.to.key: `. Pure: never touches a file (a path is only
joined, not looked at).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

from receipt_agent.cron import check_crontab

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}


def parse_duration(value: object) -> float:
    """Given `30s`, `5m`, `2h`, `7d`, `250ms` or a number of seconds, return seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or e.g. 30s, 5m, 2h, 7d")  # noqa: TRY004
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(
                f"{value!r} is not a duration; write a number of seconds or e.g. 30s, 5m, 2h, 7d"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_size(value: object) -> int:
    """Given `2MB`, `512KB`, `2GB` (binary multiples) or a number of bytes, return bytes."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or e.g. 2MB")  # noqa: TRY004
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a size; write e.g. 512KB, 2MB, 2GB")
        unit = (match.group(2) or "b").lower().replace("i", "")
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
    if size <= 0:
        raise ValueError("a size must be greater than zero")
    return size


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Relative paths are relative to the config file's folder (CONTRACT §2)."""
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return value


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Europe/Oslo"
        ) from None
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
ConfigPath = Annotated[Path, AfterValidator(resolve_path)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", min_length=1, max_length=64)]
Crontab = Annotated[str, AfterValidator(check_crontab)]  # 5 fields, crontab's weekdays
