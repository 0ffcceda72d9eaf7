"""Config: YAML → models, every problem as `path: message`, secrets found in order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import cli, report_entry

from receipt_agent.config import (
    SECRET_ENV,
    AgentConfig,
    load_config,
    parse_duration,
    parse_size,
    resolve_client_secret,
)
from receipt_agent.config.environment import environment_problems as check_environment
from receipt_agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _minimal(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "dintero": {"account_id": "T12345678", "client_id": "c"},
        "state_dir": "state",
        "sources": [
            {"name": "till-1", "path": "spool", "format": "dintero-json", "store": {"id": "s1"}}
        ],
    }
    config.update(extra)
    return config


def _problems(write_config: Callable[..., Path], config: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(config))
    return raised.value.problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("2h", 7200),
        ("7d", 604800),
        (12, 12),
        ("0.2s", 0.2),
        ("250ms", 0.25),
    ],
)
def test_parse_duration_with_contract_spellings_returns_seconds(
    text: object, seconds: float
) -> None:
    """Every duration spelling of CONTRACT §2 is understood."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "5 minutes", "-3s", True])
def test_parse_duration_with_nonsense_raises_with_hint(text: object) -> None:
    """A wrong duration is refused with a message that shows the right spelling."""
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(text)


def test_parse_size_with_units_returns_bytes() -> None:
    """Sizes are binary multiples: 2MB is 2 MiB, as the default batch.max_bytes."""
    assert parse_size("2MB") == 2 * 1024 * 1024
    assert parse_size("512KB") == 512 * 1024
    assert parse_size("2GB") == 2 << 30
    assert parse_size(1000) == 1000


def test_load_config_resolves_relative_paths_against_config_folder(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """Relative paths in the YAML are relative to the config file's folder, not the cwd."""
    config = load_config(write_config(_minimal(tmp_path)))
    assert config.state_dir == tmp_path / "state"
    assert config.sources[0].path == tmp_path / "spool"
    assert config.archive_dir(config.sources[0]) == tmp_path / "state/archive/till-1"


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"typo": 1}, "typo"),
        ({"dintero": {"account_id": "T12345678", "client_id": "c", "typo": 1}}, "dintero.typo"),
        ({"log": {"typo": 1}}, "log.typo"),
        ({"batch": {"typo": 1}}, "batch.typo"),
        ({"retry": {"typo": 1}}, "retry.typo"),
        ({"metrics": {"typo": 1}}, "metrics.typo"),
        (
            {"reports": [{"name": "r", "template_id": "t", "template_data_path": "/p", "typo": 1}]},
            "reports[0].typo",
        ),
        (
            {
                "sources": [
                    {
                        "name": "a", "path": "s", "format": "dintero-json",
                        "store": {"id": "s", "typo": 1},
                    }
                ]
            },
            "sources[0].store.typo",
        ),
        (
            {
                "sources": [
                    {
                        "name": "a", "path": "s", "format": "poslog", "store": {"id": "s"},
                        "mapping": {"typo": 1},
                    }
                ]
            },
            "sources[0].mapping.typo",
        ),
    ],
)  # fmt: skip
def test_load_config_with_unknown_key_at_any_level_names_it(
    tmp_path: Path, write_config: Callable[..., Path], patch: dict[str, Any], path: str
) -> None:
    """A typo at any level is an error naming the key's full path; nothing is ignored."""
    problems = _problems(write_config, _minimal(tmp_path, **patch))
    assert (path, "unknown key; check its spelling against config/example.yaml") in problems


def test_load_config_collects_every_problem_including_duplicate_names(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """Schema problems and cross-field problems are reported together."""
    source = {"name": "a", "path": "s", "format": "dintero-json", "store": {"id": "s"}}
    config = _minimal(tmp_path, sources=[source, {**source, "settle": "x"}, source])
    problems = dict(_problems(write_config, config))
    assert "sources[1].settle" in problems
    assert "sources[2].name" in problems
    assert "already used by sources[0]" in problems["sources[2].name"]


def test_load_config_with_unknown_format_lists_the_formats(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """An unknown `format:` lists the four supported ones, at the key (a missing one too)."""
    config = _minimal(
        tmp_path,
        sources=[
            {"name": "a", "path": "s", "format": "excel", "store": {"id": "s"}},
            {"name": "b", "path": "t", "store": {"id": "t"}},
        ],
    )
    problems = dict(_problems(write_config, config))
    assert "saft-cashregister" in problems["sources[0].format"]
    assert "required" in problems["sources[1].format"]


def test_resolve_client_secret_prefers_file_then_env_then_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_config: Callable[..., Path]
) -> None:
    """The secret comes from the file, else the env var, else systemd's credentials."""
    config = load_config(write_config(_minimal(tmp_path)))
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "client_secret").write_text("from-credentials\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert resolve_client_secret(config.dintero)[0].get_secret_value() == "from-credentials"
    monkeypatch.setenv(SECRET_ENV, "from-env")
    assert resolve_client_secret(config.dintero)[0].get_secret_value() == "from-env"
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    secret_file.chmod(0o644)
    raw = _minimal(tmp_path)
    raw["dintero"]["client_secret_file"] = "secret"
    with_file = load_config(write_config(raw, "with-file.yaml"))
    secret, warnings = resolve_client_secret(with_file.dintero)
    assert secret.get_secret_value() == "from-file"
    assert warnings
    assert "chmod 600" in warnings[0]


def test_resolve_client_secret_without_any_source_explains_the_three_ways(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """No secret anywhere: the error names all three places it may come from."""
    config = load_config(write_config(_minimal(tmp_path)))
    with pytest.raises(ConfigError) as raised:
        resolve_client_secret(config.dintero)
    assert "LoadCredential" in str(raised.value)
    assert SECRET_ENV in str(raised.value)


def test_check_environment_reports_missing_spool_folder(
    tmp_path: Path, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source folder that does not exist is a problem at its config path."""
    monkeypatch.setenv(SECRET_ENV, "x")
    config = load_config(write_config(_minimal(tmp_path)))
    problems, _ = check_environment(config)
    assert problems[0][0] == "sources[0].path"


@pytest.mark.parametrize(
    "path", sorted([*(ROOT / "config").glob("*.yaml"), *(ROOT / "config/examples").glob("*.yaml")])
)
def test_shipped_example_configs_are_valid(path: Path) -> None:
    """Every example config we ship loads without a problem (kept from drifting)."""
    assert isinstance(load_config(path), AgentConfig)


def test_check_config_cli_passes_example_config_pointed_at_real_folders(tmp_path: Path) -> None:
    """config/example.yaml, with its folders pointed at this machine's, prints `config ok`."""
    raw = yaml.safe_load((ROOT / "config/example.yaml").read_text())
    raw["state_dir"] = str(tmp_path / "state")
    raw["log"]["file"] = str(tmp_path / "agent.log")
    raw["sources"][0]["path"] = str(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = cli("check-config", "-c", str(path), env={"PATH": "/usr/bin", SECRET_ENV: "x"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "config ok\n"


@pytest.mark.parametrize(
    "text", ["{store}-{nr}", "{store_id-{number}", "fixed", "{number.real}", "{}", "{number"]
)
def test_load_config_with_bad_receipt_id_format_is_reported_by_check_config(
    tmp_path: Path, write_config: Callable[..., Path], text: str
) -> None:
    """A receipt_id_format with unknown placeholders fails check-config, not every receipt."""
    columns = {"receipt_number": "n", "purchase_at": "t", "item_gross_amount": "g"}
    source = {
        "name": "a", "path": "s", "format": "csv", "store": {"id": "s"},
        "receipt_id_format": text, "mapping": {"columns": columns},
    }  # fmt: skip
    problems = dict(_problems(write_config, _minimal(tmp_path, sources=[source])))
    assert "sources[0].receipt_id_format" in problems


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("0 6 * *", "write 5 fields"),
        ("0 6 * * 9", "day of week 9 is out of range"),
        ("0 6 * * 5-1", "runs backwards"),
        ("61 6 * * *", "61"),
    ],
)
def test_load_config_with_bad_cron_names_the_key_once(
    tmp_path: Path, write_config: Callable[..., Path], line: str, reason: str
) -> None:
    """A crontab line the scheduler could not run is one problem per key, at load."""
    config = _minimal(
        tmp_path, reports=[report_entry(cron=line)], reconcile={"cron": line, "remote": "none"}
    )
    problems = _problems(write_config, config)
    for key in ("reports[0].cron", "reconcile.cron"):
        messages = [message for where, message in problems if where == key]
        assert len(messages) == 1
        assert reason in messages[0]


def test_status_with_bad_report_cron_exits_2_naming_the_key(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """Any command that loads the config, not only check-config, refuses a bad cron: exit 2."""
    config = write_config(_minimal(tmp_path, reports=[report_entry(cron="0 6 * * 9")]))
    result = cli("status", "-c", str(config))
    assert result.returncode == 2
    assert "reports[0].cron: day of week 9 is out of range" in result.stderr
