"""Configuration: YAML → frozen pydantic models, and every problem as `path: message` (CONTRACT §2).

borgmatic's shape, one module per step, each importing only those below it (an
import-linter contract in pyproject.toml keeps the order):

    check.py        `check-config`: schema, logical and environment problems in one run
    load.py         config path lookup, safe YAML read, validation, pydantic errors
                    rendered as `sources[0].settle: message`, cross-field rules
    environment.py  the client secret's lookup order ($CREDENTIALS_DIRECTORY included)
                    and the folder/file checks against this machine
    schema.py       the models, `extra="forbid"` and frozen at every level
    values.py       durations, sizes, config-relative paths, time zones, names, crontab lines
    rules.py        security rules: transport, proxy URL, CA file, overlapping folders

This module only re-exports the names the rest of the agent uses, so
`from receipt_agent.config import AgentConfig, load_config` keeps working; `check.py`
is imported by its own name (only `check-config`, reload and preflight need it).
"""

from __future__ import annotations

from receipt_agent.config.environment import SECRET_ENV as SECRET_ENV
from receipt_agent.config.environment import resolve_client_secret as resolve_client_secret
from receipt_agent.config.load import CONFIG_ENV as CONFIG_ENV
from receipt_agent.config.load import DEFAULT_CONFIG_PATH as DEFAULT_CONFIG_PATH
from receipt_agent.config.load import load_config as load_config
from receipt_agent.config.load import problems_from as problems_from
from receipt_agent.config.load import read_config_mapping as read_config_mapping
from receipt_agent.config.load import resolve_config_path as resolve_config_path
from receipt_agent.config.load import validate_mapping as validate_mapping
from receipt_agent.config.schema import FORMATS as FORMATS
from receipt_agent.config.schema import MAX_CONCURRENCY as MAX_CONCURRENCY
from receipt_agent.config.schema import AgentConfig as AgentConfig
from receipt_agent.config.schema import BatchConfig as BatchConfig
from receipt_agent.config.schema import CsvColumns as CsvColumns
from receipt_agent.config.schema import CsvMapping as CsvMapping
from receipt_agent.config.schema import CsvSource as CsvSource
from receipt_agent.config.schema import DinteroConfig as DinteroConfig
from receipt_agent.config.schema import DinteroJsonSource as DinteroJsonSource
from receipt_agent.config.schema import LogConfig as LogConfig
from receipt_agent.config.schema import MetricsConfig as MetricsConfig
from receipt_agent.config.schema import NoMapping as NoMapping
from receipt_agent.config.schema import PoslogSource as PoslogSource
from receipt_agent.config.schema import ReconcileConfig as ReconcileConfig
from receipt_agent.config.schema import ReportBodyItem as ReportBodyItem
from receipt_agent.config.schema import ReportConfig as ReportConfig
from receipt_agent.config.schema import RetryConfig as RetryConfig
from receipt_agent.config.schema import SaftSource as SaftSource
from receipt_agent.config.schema import SourceBase as SourceBase
from receipt_agent.config.schema import SourceConfig as SourceConfig
from receipt_agent.config.schema import StoreAddress as StoreAddress
from receipt_agent.config.schema import StoreDefaults as StoreDefaults
from receipt_agent.config.schema import XmlMapping as XmlMapping
from receipt_agent.config.values import ConfigPath as ConfigPath
from receipt_agent.config.values import Crontab as Crontab
from receipt_agent.config.values import Duration as Duration
from receipt_agent.config.values import Name as Name
from receipt_agent.config.values import Size as Size
from receipt_agent.config.values import TimeZoneName as TimeZoneName
from receipt_agent.config.values import parse_duration as parse_duration
from receipt_agent.config.values import parse_size as parse_size
