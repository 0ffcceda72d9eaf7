"""`check-config` reports every problem in one run (CONTRACT §1, issue 16)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import base_config, cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder this user cannot write: mode 0555, or a read-only tmpfs for root."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"root cannot be denied a folder here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _config(tmp_path: Path, secret_file: Path, spool_dir: Path, **changes: Any) -> dict[str, Any]:
    return base_config(
        base_url="http://127.0.0.1:9/v1",
        spool_dir=spool_dir,
        state_dir=tmp_path / "state",
        secret_file=secret_file,
        log_file=tmp_path / "agent.log",
        **changes,
    )


def _problems(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return dict(
        line.split(": ", 1)
        for line in result.stderr.splitlines()
        if ": " in line and not line.startswith(("warning", "20"))
    )


def test_unknown_key_missing_spool_and_unwritable_log_folder_in_one_run(
    tmp_path: Path,
    secret_file: Path,
    readonly_dir: Path,
    write_config: Callable[..., Path],
) -> None:
    """1. A config with a typo'd key, a spool folder that does not exist and a log file in
    a folder this user cannot write. 2. `check-config`.
    Result: exit 2 and all three, each as `path.to.key: message`, from the one run.
    """
    config = _config(tmp_path, secret_file, tmp_path / "no-such-spool")
    config["batch"]["max_recipts"] = 5
    config["log"]["file"] = str(readonly_dir / "logs" / "agent.log")

    result = cli("check-config", "-c", str(write_config(config)))

    assert result.returncode == 2, result.stdout + result.stderr
    problems = _problems(result)
    assert problems["batch.max_recipts"].startswith("unknown key")
    assert "is not an existing folder" in problems["sources[0].path"]
    assert "cannot be created by this user" in problems["log.file"]
    assert "config ok" not in result.stdout


def test_archive_and_quarantine_folders_are_checked(
    tmp_path: Path,
    secret_file: Path,
    spool_dir: Path,
    readonly_dir: Path,
    write_config: Callable[..., Path],
) -> None:
    """An archive_dir and a quarantine_dir in an unwritable place are named, with the source."""
    config = _config(tmp_path, secret_file, spool_dir)
    config["sources"][0]["archive_dir"] = str(readonly_dir / "archive")
    config["sources"][0]["quarantine_dir"] = str(readonly_dir)

    result = cli("check-config", "-c", str(write_config(config)))

    assert result.returncode == 2, result.stderr
    problems = _problems(result)
    assert "cannot be created by this user" in problems["sources[0].archive_dir"]
    assert "is not writable by this user" in problems["sources[0].quarantine_dir"]


def test_a_bad_second_source_keeps_its_index_next_to_the_first_sources_folder_check(
    tmp_path: Path, secret_file: Path, write_config: Callable[..., Path]
) -> None:
    """sources[0] valid with a missing folder, sources[1] with a schema error: both named
    with their own index (the folder check is not renumbered to the valid-only list)."""
    config = _config(tmp_path, secret_file, tmp_path / "missing")
    second = dict(config["sources"][0], name="till-2", settle="soon", path=str(tmp_path))
    config["sources"].append(second)
    config["sources"].reverse()

    result = cli("check-config", "-c", str(write_config(config)))

    problems = _problems(result)
    assert result.returncode == 2
    assert "not a duration" in problems["sources[0].settle"]
    assert "is not an existing folder" in problems["sources[1].path"]


def test_a_clean_config_is_still_ok(
    tmp_path: Path, secret_file: Path, spool_dir: Path, write_config: Callable[..., Path]
) -> None:
    """Nothing wrong: `config ok`, exit 0 (state, archive and log folders get created later)."""
    result = cli("check-config", "-c", str(write_config(_config(tmp_path, secret_file, spool_dir))))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "config ok"
