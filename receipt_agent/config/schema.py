"""The config's schema: frozen pydantic models of every key (CONTRACT §2).

Owns the models `AgentConfig` and its parts, with `extra="forbid"` at every level, and
the field validators that need only the value (a base_url's scheme, a known encoding,
the placeholders of `receipt_id_format`, a crontab line). Error paths an operator reads
(`sources[0].settle`) are the paths of these models. Pure: reads no file and no
environment variable; the value types live in `values.py`, cross-field rules in
`load.py`, anything that looks at the machine in `environment.py`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from receipt_agent.config.rules import check_proxy_url
from receipt_agent.config.values import (
    ConfigPath,
    Crontab,
    Duration,
    Name,
    Size,
    TimeZoneName,
    resolve_path,
)
from receipt_agent.errors import ConfigError
from receipt_agent.notation import parse_host_port, receipt_id_placeholders

FORMATS = ("dintero-json", "csv", "saft-cashregister", "poslog")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DinteroConfig(_Model):
    base_url: str = "https://api.dintero.com/v1"
    account_id: Annotated[str, Field(pattern=r"^[PT]\d{8}$")]
    client_id: Annotated[str, Field(min_length=1)]
    client_secret_file: ConfigPath | None = None
    timeout: Duration = 30.0
    proxy: Annotated[str, AfterValidator(check_proxy_url)] | None = None
    ca_file: ConfigPath | None = None  # checked by check-config (rules.ca_file_problems)
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
        return value if value == "-" else str(resolve_path(Path(value), info))


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
    cron: Crontab | None = None
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


class ReconcileConfig(_Model):
    """`reconcile:` (CONTRACT §2, §7): the daily completeness check."""

    cron: Crontab | None = None  # in each source's timezone; None: by hand only
    remote: Literal["none", "sample", "all"] = "sample"
    sample_size: Annotated[int, Field(ge=1, le=100_000)] = 50
    max_requests_per_second: Annotated[float, Field(gt=0, le=1000)] = 5.0


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
