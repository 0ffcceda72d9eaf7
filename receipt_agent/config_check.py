"""`check-config`: every problem of a config in one run (CONTRACT §1, issue 16).

Owns the order borgmatic taught: the schema (every pydantic error, with unique names),
then the logical rules (`config.validate_mapping`), then the environment: each spool,
archive, quarantine and state folder, the log file's folder, the metrics textfile's
folder, the CA file and the client secret, checked as the user running the command.
The environment is checked even when the schema failed, on every part of the config
that did validate, so an unknown key, a missing spool folder and an unwritable log
folder come out of one run, not three.

Reads the config, the secret and the CA file and looks at folders (stat, access); never
creates, writes or deletes anything, never contacts the API.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from receipt_agent import config_rules
from receipt_agent.config import (
    AgentConfig,
    ConfigPath,
    DinteroConfig,
    LogConfig,
    MetricsConfig,
    ReconcileConfig,
    ReportConfig,
    SourceConfig,
    read_config_mapping,
    resolve_client_secret,
    validate_mapping,
)
from receipt_agent.cron import crontab_trigger
from receipt_agent.errors import ConfigError

Problem = tuple[str, str]
_INDEXED = re.compile(r"^(sources|reports)\[(\d+)\]")
_INDEX_IN_TEXT = re.compile(r"(?:sources|reports)\[\d+\]")
_DEFAULT_STATE_DIR = Path("/var/lib/receipt-agent")


def collect_problems(path: Path) -> tuple[AgentConfig | None, list[Problem], list[str]]:
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
    found += cron_problems(checked.config)
    if config is None:
        # The cross-field rules validate_mapping runs only on a whole config: a production
        # account over http:// and overlapping folders are reported with the schema's.
        found += config_rules.transport_problems(checked.config.dintero)
        found += config_rules.overlap_problems(checked.config.sources)
    # The salvaged config numbers only the sources/reports that validated; put back
    # the index each one has in the file (in the key and in a message naming another).
    found = [
        (checked.renumber(key), _INDEX_IN_TEXT.sub(lambda m: checked.renumber(m[0]), message))
        for key, message in found
    ]
    return config, _merge(problems, found), warnings


def cron_problems(config: AgentConfig) -> list[Problem]:
    """Given a config, return a problem for each report cron APScheduler cannot build."""
    problems = []
    for index, report in enumerate(config.reports):
        if report.cron:
            try:
                crontab_trigger(report.cron, report.timezone)
            except ValueError as error:
                problems.append((f"reports[{index}].cron", str(error)))
    if config.reconcile and config.reconcile.cron:
        try:
            crontab_trigger(config.reconcile.cron, "UTC")  # each source's zone: the same fields
        except ValueError as error:
            problems.append(("reconcile.cron", str(error)))
    return problems


def environment_problems(config: AgentConfig) -> tuple[list[Problem], list[str]]:
    """Given a config, return (problems, warnings) about its folders, CA file and secret.

    Checked as the user running this: what `run` will need to read, write and create.
    """
    problems: list[Problem] = []
    state_problem = _folder_problem("state_dir", config.state_dir, "the queue database")
    if state_problem is not None:
        problems.append(state_problem)
    for index, source in enumerate(config.sources):
        key = f"sources[{index}]"
        if not source.path.is_dir():
            problems.append((f"{key}.path", f"{source.path} is not an existing folder; create it"))
        elif not os.access(source.path, os.R_OK | os.W_OK | os.X_OK):
            problems.append(
                (
                    f"{key}.path",
                    f"{source.path} must be readable and writable by this user "
                    "(files are moved to the archive)",
                )
            )
        # Folders under state_dir are only checked on their own when state_dir is fine:
        # otherwise the one state_dir problem says it all.
        folders = [("quarantine_dir", source.quarantine_dir, config.quarantine_dir(source))]
        if source.after == "archive":
            folders.append(("archive_dir", source.archive_dir, config.archive_dir(source)))
        for name, given, effective in folders:
            if given is None and state_problem is not None:
                continue
            problem = _folder_problem(f"{key}.{name}", effective, f"the {name[:-4]} of files")
            if problem is not None:
                problems.append(problem)
    if config.log.file != "-":
        problems += _file_problems("log.file", Path(config.log.file), "the log")
    if config.metrics.textfile is not None:
        problems += _file_problems("metrics.textfile", config.metrics.textfile, "the metrics")
    problems += config_rules.ca_file_problems(config.dintero.ca_file)
    warnings: list[str] = []
    try:
        _, warnings = resolve_client_secret(config.dintero)
    except ConfigError as error:
        problems.extend(error.problems)
    return problems, warnings


def _folder_problem(key: str, folder: Path, holds: str) -> Problem | None:
    """A folder the agent writes in must be writable, or creatable where it is missing."""
    if folder.is_dir():
        if os.access(folder, os.W_OK | os.X_OK):
            return None
        return key, f"{folder} is not writable by this user; it holds {holds}"
    if folder.exists():
        return key, f"{folder} is not a folder"
    ancestor = folder.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.is_dir() and os.access(ancestor, os.W_OK | os.X_OK):
        return None
    return key, (
        f"{folder} does not exist and cannot be created by this user "
        f"({ancestor} is not a writable folder); create it, writable by the service user"
    )


def _file_problems(key: str, file: Path, what: str) -> list[Problem]:
    """A file the agent appends to or replaces: its folder writable, itself if present."""
    if file.is_dir():
        return [(key, f"{file} is a folder; name a file in it")]
    if file.exists() and not os.access(file, os.W_OK):
        return [(key, f"{file} is not writable by this user")]
    problem = _folder_problem(key, file.parent, f"{what} file")
    return [] if problem is None else [problem]


def _merge(schema: list[Problem], environment: list[Problem]) -> list[Problem]:
    """Schema problems first; an environment problem on a key the schema already named is
    only a consequence of it (e.g. no secret found because client_secret_file was wrong)."""
    named = {key for key, _ in schema}
    merged = list(dict.fromkeys(schema))
    merged += [p for p in dict.fromkeys(environment) if p[0] not in named and p not in merged]
    return merged


class _Salvaged:
    """A stand-in config built from the parts that validated, and their original indices."""

    def __init__(self, config: AgentConfig, indices: dict[str, list[int]]) -> None:
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

    sources, source_indices = _valid_items(raw.get("sources"), TypeAdapter(SourceConfig), part)
    reports, report_indices = _valid_items(raw.get("reports"), TypeAdapter(ReportConfig), part)
    given = raw.get("dintero")
    dintero_raw: dict[str, Any] = given if isinstance(given, dict) else {}
    dintero = part(TypeAdapter(DinteroConfig), dintero_raw, None)
    if dintero is None:
        # Only the two paths are looked at; each validated alone (a bad one is left out).
        path_adapter = TypeAdapter(ConfigPath | None)
        # and base_url/account_id when each is well-formed, for the P… + http:// rule.
        dintero = DinteroConfig.model_construct(
            account_id=_well_formed(dintero_raw.get("account_id"), r"[PT]\d{8}") or "",
            base_url=_well_formed(dintero_raw.get("base_url"), r"https?://\S+")
            or "https://api.dintero.com/v1",
            client_id="",
            ca_file=part(path_adapter, dintero_raw.get("ca_file"), None),
            client_secret_file=part(path_adapter, dintero_raw.get("client_secret_file"), None),
        )
    config = AgentConfig.model_construct(
        dintero=dintero,
        state_dir=part(TypeAdapter(ConfigPath), raw.get("state_dir", _DEFAULT_STATE_DIR), None)
        or _DEFAULT_STATE_DIR,
        log=part(TypeAdapter(LogConfig), raw.get("log", {}), None) or LogConfig(file="-"),
        sources=sources,
        reports=reports,
        metrics=part(TypeAdapter(MetricsConfig), raw.get("metrics", {}), None) or MetricsConfig(),
        reconcile=part(TypeAdapter(ReconcileConfig | None), raw.get("reconcile"), None),
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
