"""Configuration: YAML → frozen pydantic models (CONTRACT §2).

Owns the config schema, duration and size types, relative-path resolution, the secret
lookup order and the rendering of every problem as `path.to.key: message`. Reads the
config file and the secret; never writes anything, never contacts the API.

Order of checks (borgmatic's): the schema first (all pydantic errors), then the logical
checks that need the filesystem (`config_check.py`), all in the same `path: message`
shape, collected, never stopping at the first.

Over the 400-line target (under the 600 cap) on purpose: the schema is one document an
operator's error paths are read against, and splitting it would split `sources[0].…`
paths from the models that define them.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from receipt_agent import config_rules
from receipt_agent.errors import ConfigError
from receipt_agent.notation import (
    format_location,
    parse_host_port,
    pydantic_message,
    receipt_id_placeholders,
)

DEFAULT_CONFIG_PATH = Path("/etc/receipt-agent/config.yaml")
CONFIG_ENV = "RECEIPT_AGENT_CONFIG"
SECRET_ENV = "RECEIPT_AGENT_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
FORMATS = ("dintero-json", "csv", "saft-cashregister", "poslog")

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


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
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
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", min_length=1, max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DinteroConfig(_Model):
    base_url: str = "https://api.dintero.com/v1"
    account_id: Annotated[str, Field(pattern=r"^[PT]\d{8}$")]
    client_id: Annotated[str, Field(min_length=1)]
    client_secret_file: ConfigPath | None = None
    timeout: Duration = 30.0
    proxy: Annotated[str, AfterValidator(config_rules.check_proxy_url)] | None = None
    ca_file: ConfigPath | None = None  # checked by config_check (config_rules)
    receipt_token_expire_days: Annotated[int, Field(ge=1)] | None = None

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("base_url must start with https:// (or http:// for the sandbox)")
        return value.rstrip("/")

    @property
    def is_test_account(self) -> bool:
        return self.account_id.startswith("T")


class LogConfig(_Model):
    file: str = "/var/log/receipt-agent/agent.log"
    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("file")
    @classmethod
    def _relative_to_config(cls, value: str, info: ValidationInfo) -> str:
        """`-` is stderr; any other relative path is relative to the config's folder."""
        return value if value == "-" else str(_resolve_path(Path(value), info))


class StoreAddress(_Model):
    address_line: str
    address_line_2: str | None = None
    postal_code: str | None = None
    postal_place: str
    country: str


class StoreDefaults(_Model):
    """Defaults merged into each receipt's `store` (the receipt's own values win)."""

    id: Annotated[str, Field(min_length=1)]
    name: str | None = None
    business_name: str | None = None
    chain: str | None = None
    email: str | None = None
    gln: str | None = None
    organization_number: str | None = None
    phone_number: str | None = None
    mcc: str | None = None
    bax: str | None = None
    terminal_id: str | None = None
    payout_destination_id: str | None = None
    address: StoreAddress | None = None


class CsvColumns(_Model):
    """Receipt field → CSV header. Only the first three are required."""

    receipt_number: str
    purchase_at: str
    item_gross_amount: str
    register_id: str | None = None
    item_id: str | None = None
    item_description: str | None = None
    item_quantity: str | None = None
    item_tax_percent: str | None = None
    item_barcode: str | None = None
    payment_type: str | None = None
    payment_amount: str | None = None
    currency: str | None = None
    operator_id: str | None = None
    item_discount_amount: str | None = None  # the line's discount; item_gross_amount is before it
    receipt_discount_amount: str | None = None  # spread over the lines (csv_export)


class CsvMapping(_Model):
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    encoding: str = "utf-8"
    decimal_separator: Literal[",", "."] = "."
    amounts: Literal["major", "minor"] = "major"
    datetime_format: str | None = None
    # auto: a minus sign on a line's quantity OR amount makes it a return (both negative);
    # signed: a line whose quantity and amount signs disagree is rejected (csv_export).
    sign_convention: Literal["auto", "signed"] = "auto"
    payment_types: dict[str, str] = Field(default_factory=dict)  # payment_type cell → token_type
    columns: CsvColumns

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        import codecs

        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}; use e.g. utf-8 or cp1252") from None
        return value


class XmlMapping(_Model):
    stores: dict[str, str] = Field(default_factory=dict)
    sign_convention: Literal["auto", "signed", "amnttp"] = "auto"
    tax_included: bool = True
    training: Literal["skip", "send"] = "skip"
    voided: Literal["skip", "send"] = "skip"
    receipt_types: list[str] | None = None


class NoMapping(_Model):
    """dintero-json needs no mapping: the export already has Dintero's shape."""


_DEFAULT_PATTERNS = {
    "dintero-json": "*.json",
    "csv": "*.csv",
    "saft-cashregister": "*.xml",
    "poslog": "*.xml",
}
_STREAMED_FORMATS = {"saft-cashregister", "poslog"}


class SourceBase(_Model):
    name: Name
    path: ConfigPath
    pattern: str | None = None
    settle: Duration = 2.0
    poll: bool = False
    max_file_size: Size | None = None
    after: Literal["archive", "delete"] = "archive"
    archive_dir: ConfigPath | None = None
    quarantine_dir: ConfigPath | None = None
    store: StoreDefaults
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "NOK"
    timezone: TimeZoneName = "Europe/Oslo"
    receipt_id_format: str | None = None

    @field_validator("receipt_id_format")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        if value is not None:
            receipt_id_placeholders(value)
        return value

    @property
    def glob(self) -> str:
        return self.pattern or _DEFAULT_PATTERNS[self.format_name]

    @property
    def format_name(self) -> str:
        return str(getattr(self, "format"))  # noqa: B009 - defined by every subclass

    @property
    def size_limit_bytes(self) -> int:
        if self.max_file_size is not None:
            return self.max_file_size
        return (2 << 30) if self.format_name in _STREAMED_FORMATS else (50 << 20)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DinteroJsonSource(SourceBase):
    format: Literal["dintero-json"]
    mapping: NoMapping = Field(default_factory=NoMapping)


class CsvSource(SourceBase):
    format: Literal["csv"]
    mapping: CsvMapping


class SaftSource(SourceBase):
    format: Literal["saft-cashregister"]
    mapping: XmlMapping = Field(default_factory=XmlMapping)


class PoslogSource(SourceBase):
    format: Literal["poslog"]
    mapping: XmlMapping = Field(default_factory=XmlMapping)


SourceConfig = Annotated[
    DinteroJsonSource | CsvSource | SaftSource | PoslogSource, Field(discriminator="format")
]


MAX_CONCURRENCY = 16  # the send pool's thread cap: reloads may raise concurrency up to it


class BatchConfig(_Model):
    max_receipts: Annotated[int, Field(ge=1, le=10_000)] = 100
    max_bytes: Size = 2 << 20
    flush_interval: Duration = 5.0
    # Batches in flight at once (CONTRACT §2); 1 = strictly one after another.
    concurrency: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)] = 4


class RetryConfig(_Model):
    initial: Duration = 1.0
    max: Duration = 600.0
    give_up_after: Duration | None = None

    @model_validator(mode="after")
    def _initial_below_max(self) -> RetryConfig:
        if self.initial > self.max:
            raise ValueError("retry.initial must not be larger than retry.max")
        return self


class ReportBodyItem(_Model):
    key: str
    path: str
    data: dict[str, Any] = Field(default_factory=dict)


class ReportConfig(_Model):
    name: Name
    cron: str | None = None
    timezone: TimeZoneName = "Europe/Oslo"
    template_id: Annotated[str, Field(min_length=1)]
    template_data_path: Annotated[str, Field(min_length=1)]
    accept: str = "application/pdf"
    language: Literal["no", "en"] = "no"
    period: Literal["previous_day", "previous_week", "previous_month", "none"] = "none"
    schedule: Literal["monthly", "weekly", "daily", "custom", "none"] | None = None
    save: bool = False
    body: list[ReportBodyItem] = Field(default_factory=list)
    output_dir: ConfigPath | None = None

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:  # noqa: PLR2004 - crontab has 5
            raise ValueError(
                f"{value!r} is not a crontab expression; write 5 fields, e.g. '15 6 1 * *'"
            )
        return value


class ReconcileConfig(_Model):
    """`reconcile:` (CONTRACT §2, §7): the daily completeness check."""

    cron: str | None = None  # in each source's timezone; None: by hand only
    remote: Literal["none", "sample", "all"] = "sample"
    sample_size: Annotated[int, Field(ge=1, le=100_000)] = 50
    max_requests_per_second: Annotated[float, Field(gt=0, le=1000)] = 5.0

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str | None) -> str | None:
        return ReportConfig._five_fields(value)  # the same crontab rule as reports


class MetricsConfig(_Model):
    textfile: ConfigPath | None = None
    listen: str | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None and parse_host_port(value)[1] == 0:
            raise ValueError("port 0 is any free port, unknown to a scraper; write e.g. :9464")
        return value


class AgentConfig(_Model):
    dintero: DinteroConfig
    state_dir: ConfigPath = Path("/var/lib/receipt-agent")
    log: LogConfig = Field(default_factory=LogConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    reports: list[ReportConfig] = Field(default_factory=list)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    reconcile: ReconcileConfig | None = None

    def source(self, name: str) -> DinteroJsonSource | CsvSource | SaftSource | PoslogSource:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError([("sources", f"no source named {name!r}")])

    def report(self, name: str) -> ReportConfig:
        for report in self.reports:
            if report.name == name:
                return report
        raise ConfigError([("reports", f"no report named {name!r}")])

    def archive_dir(self, source: SourceBase) -> Path:
        return source.archive_dir or self.state_dir / "archive" / source.name

    def quarantine_dir(self, source: SourceBase) -> Path:
        return source.quarantine_dir or self.state_dir / "quarantine" / source.name

    def report_dir(self, report: ReportConfig) -> Path:
        return report.output_dir or self.state_dir / "reports"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "state.db"


# --- loading and problem rendering -------------------------------------------------------

_FORMAT_TAGS = set(FORMATS)


_CONFIG_MESSAGES = {
    "extra_forbidden": "unknown key; check its spelling against config/example.yaml",
    "missing": "required key is missing",
    "union_tag_invalid": f"unknown format; use one of {', '.join(FORMATS)}",
    "union_tag_not_found": f"`format` is required; use one of {', '.join(FORMATS)}",
}


def problems_from(error: ValidationError) -> list[tuple[str, str]]:
    """Given a pydantic ValidationError, return (path, message) pairs without input values."""
    return [
        (
            # A source's bad or missing `format` is reported at the source; name the key.
            format_location(
                (*e["loc"], "format") if e["type"] in _TAG_ERRORS else e["loc"], tags=_FORMAT_TAGS
            ),
            pydantic_message(e, _CONFIG_MESSAGES),
        )
        for e in error.errors()
    ]


_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")


def resolve_config_path(path: str | os.PathLike[str] | None) -> Path:
    """Given the -c argument, return it, else $RECEIPT_AGENT_CONFIG, else the default."""
    if path:
        return Path(path)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_config(path: Path) -> AgentConfig:
    """Given a YAML path, return the validated config. Raise ConfigError with every problem."""
    config, problems = validate_mapping(read_config_mapping(path), path)
    if config is None or problems:
        raise ConfigError(problems)
    return config


def read_config_mapping(path: Path) -> dict[str, Any]:
    """Given a YAML path, return its top-level mapping. Raise ConfigError when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            [(str(path), f"cannot read the config file ({error.strerror})")]
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(
            [(where, f"not valid YAML ({getattr(error, 'problem', error)})")]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError([(str(path), "the config must be a YAML mapping of keys")])
    return raw


def validate_mapping(
    raw: dict[str, Any], path: Path
) -> tuple[AgentConfig | None, list[tuple[str, str]]]:
    """Given the YAML mapping of `path`, return (the config or None, schema+logical problems)."""
    try:
        config = AgentConfig.model_validate(raw, context={"base_dir": path.parent.resolve()})
    except ValidationError as error:
        return None, [*problems_from(error), *_duplicate_names(raw)]
    return config, _logical_problems(config)


def _duplicate_names(raw: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for section in ("sources", "reports"):
        seen: dict[str, int] = {}
        items = raw.get(section)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                yield (
                    f"{section}[{index}].name",
                    f"{name!r} is already used by {section}[{seen[name]}]; names must be unique",
                )
            seen.setdefault(name, index)


def _logical_problems(config: AgentConfig) -> list[tuple[str, str]]:
    """Cross-field rules that the schema cannot express."""
    problems = list(_duplicate_names(config.model_dump(mode="json")))
    problems += config_rules.transport_problems(config.dintero)
    problems += config_rules.overlap_problems(config.sources)
    for index, source in enumerate(config.sources):
        if source.after == "archive" and config.archive_dir(source) == source.path:
            problems.append(
                (f"sources[{index}].archive_dir", "must not be the source folder itself")
            )
        if config.quarantine_dir(source) == source.path:
            problems.append(
                (f"sources[{index}].quarantine_dir", "must not be the source folder itself")
            )
    return problems


def resolve_client_secret(dintero: DinteroConfig) -> tuple[SecretStr, list[str]]:
    """Return the client secret and warnings, looked up in the contract's order.

    Order: `dintero.client_secret_file` → $RECEIPT_AGENT_CLIENT_SECRET →
    $CREDENTIALS_DIRECTORY/client_secret (systemd LoadCredential=). Raise ConfigError
    when none of them yields a non-empty secret.
    """
    warnings: list[str] = []
    if dintero.client_secret_file is not None:
        path = dintero.client_secret_file
        try:
            mode = path.stat().st_mode
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                [("dintero.client_secret_file", f"cannot read {path} ({error.strerror})")]
            ) from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(
                f"dintero.client_secret_file: {path} is readable by group or others; "
                f"run chmod 600 {path}"
            )
        if not secret:
            raise ConfigError([("dintero.client_secret_file", f"{path} is empty")])
        return SecretStr(secret), warnings
    from_env = os.environ.get(SECRET_ENV, "").strip()
    if from_env:
        return SecretStr(from_env), warnings
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        path = Path(credentials) / "client_secret"
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError:
            secret = ""
        if secret:
            return SecretStr(secret), warnings
    raise ConfigError(
        [
            (
                "dintero.client_secret_file",
                f"no client secret found; set client_secret_file, ${SECRET_ENV}, "
                "or systemd LoadCredential=client_secret:…",
            )
        ]
    )
