"""scripts/install.sh into a staging root, as store IT would run it into / (issue 6).

The script is run twice into a temporary `--root` without root privileges: the second
run must change nothing an operator made (config.yaml) and report the rest unchanged.
Then the installed console script is run. pip fetches the package's dependencies (from
its cache when warm), so this is the slowest e2e test; it skips until the CLI exists.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install.sh"
EXAMPLE_CONFIG = ROOT / "config" / "example.yaml"
PREFIX = "/opt/receipt-agent"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("receipt_agent.cli") is None,
        reason="the CLI (receipt_agent.cli) is not built yet",
    ),
    pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed"),
]


def _install(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DESTDIR", "PREFIX", "PYTHON", "VIRTUAL_ENV"}
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
        env=env,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow  # 30 s of pip installs: run by `make e2e`; the offline stub test stays fast
@pytest.mark.timeout(600)
def test_install_script_twice_into_staging_root_is_idempotent(tmp_path: Path) -> None:
    """1. Run install.sh --root STAGE: venv, unit, logrotate file, examples, config.
    2. Edit the installed config, as the operator would.
    3. Run install.sh --root STAGE again.
    4. Run the installed `receipt-agent --help`.
    Result: both runs exit 0; the second keeps the edited config, reports the unit and
    logrotate file unchanged, skips systemd and the user; the installed CLI works.
    """
    stage = tmp_path / "root"

    first = _install("--root", str(stage))

    assert first.returncode == 0, first.stdout + first.stderr
    unit = stage / "etc/systemd/system/receipt-agent.service"
    logrotate = stage / "etc/logrotate.d/receipt-agent"
    assert unit.read_text() == (ROOT / "systemd/receipt-agent.service").read_text()
    assert logrotate.read_text() == (ROOT / "systemd/receipt-agent.logrotate").read_text()
    assert _mode(unit) == 0o644
    assert _mode(logrotate) == 0o644
    assert (stage / PREFIX.lstrip("/") / "share/receipt-agent/spool.conf.example").is_file()
    link = stage / "usr/local/bin/receipt-agent"
    assert str(link.readlink()) == f"{PREFIX}/bin/receipt-agent"
    assert "skipped  creating user receipt-agent" in first.stdout
    assert "skipped  systemctl daemon-reload" in first.stdout
    assert not (stage / "etc/receipt-agent/client_secret").exists()
    config = stage / "etc/receipt-agent/config.yaml"
    if EXAMPLE_CONFIG.exists():
        assert config.read_text() == EXAMPLE_CONFIG.read_text()
        assert _mode(config) == 0o640
        config.write_text(config.read_text() + "# edited by the operator\n")
    else:
        assert not config.exists()

    second = _install("--root", str(stage))

    assert second.returncode == 0, second.stdout + second.stderr
    assert "venv exists" in second.stdout
    assert f"unchanged  {unit}" in second.stdout
    assert f"unchanged  {logrotate}" in second.stdout
    if EXAMPLE_CONFIG.exists():
        assert config.read_text().endswith("# edited by the operator\n")
        assert f"kept  {config}" in second.stdout

    cli = stage / PREFIX.lstrip("/") / "bin/receipt-agent"
    result = subprocess.run(
        [str(cli), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for command in ("run", "check-config", "status", "queue", "demo"):
        assert command in result.stdout


def test_install_script_rejects_unknown_argument() -> None:
    """A mistyped option stops the script before it touches anything (exit 2)."""
    result = _install("--rooot", "/tmp/nowhere")

    assert result.returncode == 2
    assert "unknown argument --rooot" in result.stderr


def test_install_script_rejects_relative_prefix(tmp_path: Path) -> None:
    """--prefix must be absolute: the unit's ExecStart names it."""
    result = _install("--root", str(tmp_path), "--prefix", "opt/receipt-agent")

    assert result.returncode == 1
    assert "--prefix must be an absolute path" in result.stderr
    assert list(tmp_path.iterdir()) == []
