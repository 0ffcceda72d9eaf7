"""`check-config`: every problem of a config in one run (CONTRACT §1, issue 16).

Owns the order borgmatic taught: the schema (every pydantic error, with unique names),
then the logical rules (`load.validate_mapping`), then the environment
(`environment.environment_problems`: folders, files, the CA file and the client secret,
checked as the user running the command). The environment is checked even when the
schema failed, on every part of the config that did validate, so an unknown key, a
missing spool folder and an unwritable log folder come out of one run, not three.

Reads the config, the secret and the CA file and looks at folders (stat, access); never
creates, writes or deletes anything, never contacts the API.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from receipt_agent.config import schema
from receipt_agent.config.environment import Problem, environment_problems
from receipt_agent.config.load import read_config_mapping, validate_mapping
from receipt_agent.config.rules import overlap_problems, transport_problems
from receipt_agent.config.values import ConfigPath
from receipt_agent.errors import ConfigError

_INDEXED = re.compile(r"^(sources|reports)\[(\d+)\]")
_INDEX_IN_TEXT = re.compile(r"(?:sources|reports)\[\d+\]")
_DEFAULT_STATE_DIR = Path("/var/lib/receipt-agent")


def collect_problems(path: Path) -> tuple[schema.AgentConfig | None, list[Problem], list[str]]:
    """Given a config path, return (the config or None, every problem, warnings).

    The config is None when any schema problem was found; the problems then still hold
    the environment checks of every part that validated on its own.
    """
    try:
        raw = read_config_mapping(path)
    except ConfigError as error:
        return None, error.problems, []
    config, problems = validate_mapping(raw, path)
    checked = _Salvaged(config, {}) if config is not None else _salvage(raw, path)
    found, warnings = environment_problems(checked.config)
    if config is None:
        # The cross-field rules validate_mapping runs only on a whole config: a production
        # account over http:// and overlapping folders are reported with the schema's.
        found += transport_problems(checked.config.dintero)
        found += overlap_problems(checked.config.sources)
    # The salvaged config numbers only the sources/reports that validated; put back
    # the index each one has in the file (in the key and in a message naming another).
    found = [
        (checked.renumber(key), _INDEX_IN_TEXT.sub(lambda m: checked.renumber(m[0]), message))
        for key, message in found
    ]
    return config, _merge(problems, found), warnings


def _merge(schema: list[Problem], environment: list[Problem]) -> list[Problem]:
    """Schema problems first; an environment problem on a key the schema already named is
    only a consequence of it (e.g. no secret found because client_secret_file was wrong)."""
    named = {key for key, _ in schema}
    merged = list(dict.fromkeys(schema))
    merged += [p for p in dict.fromkeys(environment) if p[0] not in named and p not in merged]
    return merged


class _Salvaged:
    """A stand-in config built from the parts that validated, and their original indices."""

    def __init__(self, config: schema.AgentConfig, indices: dict[str, list[int]]) -> None:
        self.config = config
        self._indices = indices

    def renumber(self, key: str) -> str:
        match = _INDEXED.match(key)
        if match is None or match[1] not in self._indices:
            return key
        original = self._indices[match[1]][int(match[2])]
        return f"{match[1]}[{original}]{key[match.end() :]}"


def _salvage(raw: dict[str, Any], path: Path) -> _Salvaged:
    """Validate each part of a config that failed as a whole, keeping the parts that pass.

    Built with `model_construct` (no validation): every part in it validated on its own,
    and a part that did not is left out (its schema problem is already reported).
    """
    context = {"base_dir": path.parent.resolve()}

    def part(adapter: Any, value: Any, default: Any) -> Any:
        try:
            return adapter.validate_python(value, context=context)
        except ValidationError:
            return default

    sources, source_indices = _valid_items(
        raw.get("sources"), TypeAdapter(schema.SourceConfig), part
    )
    reports, report_indices = _valid_items(
        raw.get("reports"), TypeAdapter(schema.ReportConfig), part
    )
    given = raw.get("dintero")
    dintero_raw: dict[str, Any] = given if isinstance(given, dict) else {}
    dintero = part(TypeAdapter(schema.DinteroConfig), dintero_raw, None)
    if dintero is None:
        # Only the two paths are looked at; each validated alone (a bad one is left out).
        path_adapter = TypeAdapter(ConfigPath | None)
        # and base_url/account_id when each is well-formed, for the P… + http:// rule.
        dintero = schema.DinteroConfig.model_construct(
            account_id=_well_formed(dintero_raw.get("account_id"), r"[PT]\d{8}") or "",
            base_url=_well_formed(dintero_raw.get("base_url"), r"https?://\S+")
            or "https://api.dintero.com/v1",
            client_id="",
            ca_file=part(path_adapter, dintero_raw.get("ca_file"), None),
            client_secret_file=part(path_adapter, dintero_raw.get("client_secret_file"), None),
        )
    config = schema.AgentConfig.model_construct(
        dintero=dintero,
        state_dir=part(TypeAdapter(ConfigPath), raw.get("state_dir", _DEFAULT_STATE_DIR), None)
        or _DEFAULT_STATE_DIR,
        log=part(TypeAdapter(schema.LogConfig), raw.get("log", {}), None)
        or schema.LogConfig(file="-"),
        sources=sources,
        reports=reports,
        metrics=part(TypeAdapter(schema.MetricsConfig), raw.get("metrics", {}), None)
        or schema.MetricsConfig(),
        reconcile=part(TypeAdapter(schema.ReconcileConfig | None), raw.get("reconcile"), None),
    )
    return _Salvaged(config, {"sources": source_indices, "reports": report_indices})


def _well_formed(value: Any, pattern: str) -> str | None:
    return value if isinstance(value, str) and re.fullmatch(pattern, value) else None


def _valid_items(items: Any, adapter: Any, part: Any) -> tuple[list[Any], list[int]]:
    valid: list[Any] = []
    indices: list[int] = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        checked = part(adapter, item, None)
        if checked is not None:
            valid.append(checked)
            indices.append(index)
    return valid, indices
