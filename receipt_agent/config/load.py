"""Loading the config: finding the file, reading its YAML, validating it (CONTRACT §2).

Owns the config path's lookup order (`-c`, then $RECEIPT_AGENT_CONFIG, then
/etc/receipt-agent/config.yaml), the safe YAML read, the rendering of pydantic's errors
as `path.to.key: message` (without the refused values) and the cross-field rules the
schema cannot express (unique names, overlapping folders, plain HTTP for a production
account), in borgmatic's order: the schema first, then the logical checks, collected,
never stopping at the first. Reads the config file only; never writes anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from receipt_agent.config.rules import overlap_problems, transport_problems
from receipt_agent.config.schema import FORMATS, AgentConfig
from receipt_agent.errors import ConfigError
from receipt_agent.notation import format_location, pydantic_message

DEFAULT_CONFIG_PATH = Path("/etc/receipt-agent/config.yaml")
CONFIG_ENV = "RECEIPT_AGENT_CONFIG"
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
    problems += transport_problems(config.dintero)
    problems += overlap_problems(config.sources)
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
