"""The config against this machine: the client secret and the folders and files `run` needs.

Owns the client secret's lookup order (CONTRACT §2: `dintero.client_secret_file`, then
$RECEIPT_AGENT_CLIENT_SECRET, then systemd's `LoadCredential=` file in
$CREDENTIALS_DIRECTORY: the one place that directory is looked up) and the checks
`check-config` and the start-up preflight run on a validated config: each spool,
archive, quarantine and state folder, the log file's and metrics textfile's folders,
the CA file and the secret, as the user running the command. Reads the secret, the CA
file and the environment, looks at folders (stat, access); never creates, writes or
deletes anything.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import SecretStr

from receipt_agent.config.rules import ca_file_problems
from receipt_agent.config.schema import AgentConfig, DinteroConfig
from receipt_agent.errors import ConfigError

SECRET_ENV = "RECEIPT_AGENT_CLIENT_SECRET"  # noqa: S105 - a variable name, not a secret
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
Problem = tuple[str, str]


def credential_path(name: str) -> Path | None:
    """Given a systemd credential's name, return its file in $CREDENTIALS_DIRECTORY, or None
    outside a unit with `LoadCredential=` (systemd.exec(5))."""
    directory = os.environ.get(CREDENTIALS_ENV)
    return Path(directory) / name if directory else None


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
    credential = credential_path("client_secret")
    if credential is not None:
        try:
            secret = credential.read_text(encoding="utf-8").strip()
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
    problems += ca_file_problems(config.dintero.ca_file)
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
