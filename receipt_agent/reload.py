"""SIGHUP's config reload, the deciding half (CONTRACT §1, §6 `config.reloaded`).

Owns two decisions the agent's tick loop asks for when SIGHUP was seen: whether the
config file as it is now may replace the running one (every problem `check-config`
would report, plus what cannot change under a running daemon), and what differs
between the two (`changed`: the top-level sections, and sources by name: added, removed,
changed). Applying the change is the agent's (it owns the threads), and the jobs' part of
it `daemon_jobs`'.

Reads the config file, the secret and folders (as `check-config` does); never writes,
never contacts the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from receipt_agent.config import AgentConfig, resolve_client_secret
from receipt_agent.config.check import collect_problems
from receipt_agent.errors import ConfigError

Problem = tuple[str, str]


@dataclass(frozen=True)
class ConfigChanges:
    """What differs between the running config and the new one."""

    changed: list[str] = field(default_factory=list)  # top-level keys, in the file's order
    sources_added: list[str] = field(default_factory=list)
    sources_removed: list[str] = field(default_factory=list)
    sources_changed: list[str] = field(default_factory=list)

    def has(self, section: str) -> bool:
        return section in self.changed

    def log_keys(self) -> dict[str, Any]:
        """The keys of the `config.reloaded` line."""
        keys: dict[str, Any] = {"changed": self.changed}
        if self.has("sources"):
            keys |= {
                "sources_added": self.sources_added,
                "sources_removed": self.sources_removed,
                "sources_changed": self.sources_changed,
            }
        return keys


def load_for_reload(path: Path, running: AgentConfig) -> tuple[AgentConfig | None, list[Problem]]:
    """Given the config path and the running config, return (the new config, problems).

    The new config is None when it has any problem: then the running one stays.
    """
    config, problems, _ = collect_problems(path)
    if config is not None and config.state_dir != running.state_dir:
        problems.append(
            (
                "state_dir",
                "cannot change while the agent runs (the queue database is open and locked "
                "there); restart the service to move it",
            )
        )
    return (config if not problems else None), problems


def read_new_config(
    path: Path, running: AgentConfig, running_secret: SecretStr
) -> tuple[AgentConfig | None, SecretStr, list[Problem]]:
    """Given the config path, the running config and its secret, return (new, secret, problems).

    The new config is None when it has any problem, and the secret is then the running one.
    """
    try:
        new, problems = load_for_reload(path, running)
        secret = running_secret if new is None else resolve_client_secret(new.dintero)[0]
    except ConfigError as error:
        return None, running_secret, error.problems
    return new, secret, problems


def diff_configs(old: AgentConfig, new: AgentConfig) -> ConfigChanges:
    """Given the running and the new config, return what changed."""
    before = {source.name: source for source in old.sources}
    after = {source.name: source for source in new.sources}
    added = [name for name in after if name not in before]
    removed = [name for name in before if name not in after]
    modified = [name for name in after if name in before and after[name] != before[name]]
    changed = []
    for name in type(old).model_fields:
        if name == "sources":
            # The order of the sources changes nothing the agent does: not a change.
            if added or removed or modified:
                changed.append(name)
        elif getattr(old, name) != getattr(new, name):
            changed.append(name)
    return ConfigChanges(changed, added, removed, modified)
