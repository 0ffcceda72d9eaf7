"""The shipped systemd unit (systemd/receipt-agent.service) and its spool drop-in.

`systemd-analyze` runs here without systemd as PID 1: `security --offline=true` scores
the file itself, and `verify` loads it like systemd would. `verify` refuses an ExecStart
binary that does not exist, and /opt/receipt-agent/bin/receipt-agent only exists after
scripts/install.sh ran, so it checks a copy whose ExecStart names an existing binary:
everything else in the copy is byte-for-byte the shipped file.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "receipt-agent.service"
DROP_IN = ROOT / "systemd" / "receipt-agent.service.d" / "spool.conf.example"
INSTALLED_BINARY = "/opt/receipt-agent/bin/receipt-agent"
MAX_EXPOSURE = 1.5
# CONTRACT §1 / STYLE §6: `run` drains at most this long after SIGTERM.
DRAIN_BOUND_S = 30.0

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)


def _settings(path: Path) -> dict[str, list[str]]:
    """Return {"Section.Key": [values…]} of a unit file (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def _seconds(value: str) -> float:
    """Parse the systemd time spans this unit uses (`45s`, `2min`, `30`)."""
    match = re.fullmatch(r"(\d+)\s*(s|sec|min|m)?", value)
    assert match, f"unexpected time span {value!r}"
    return float(match.group(1)) * (60 if match.group(2) in {"min", "m"} else 1)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "SYSTEMD_COLORS": "0"},
    )


def _copy_with_existing_binary(directory: Path, *, with_drop_in: bool) -> Path:
    """Copy the unit into `directory` with ExecStart pointing at an existing binary.

    The copy gets a name of its own so that drop-ins installed on this machine for
    receipt-agent.service (/etc/systemd/system/receipt-agent.service.d/) do not apply.
    """
    true_binary = shutil.which("true")
    assert true_binary is not None
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED_BINARY in text
    unit = directory / "receipt-agent-under-test.service"
    unit.write_text(text.replace(INSTALLED_BINARY, true_binary), encoding="utf-8")
    if with_drop_in:
        drop_in_dir = directory / f"{unit.name}.d"
        drop_in_dir.mkdir()
        shutil.copy(DROP_IN, drop_in_dir / "spool.conf")
    return unit


def _offline_root(directory: Path, *, with_drop_in: bool) -> Path:
    """An otherwise empty root holding only the unit (and the drop-in) under /etc.

    `security --offline=true --root=` then scores exactly the shipped files, whatever
    this machine has installed.
    """
    system = directory / "etc" / "systemd" / "system"
    system.mkdir(parents=True)
    shutil.copy(UNIT, system / UNIT.name)
    if with_drop_in:
        (system / f"{UNIT.name}.d").mkdir()
        shutil.copy(DROP_IN, system / f"{UNIT.name}.d" / "spool.conf")
    return directory


def test_unit_declares_the_lifecycle_the_agent_implements() -> None:
    """Type=notify, main-only notify access, a watchdog, restart on failure, the fixed
    user, the three directories, the credential and the contract's ExecStart."""
    settings = _settings(UNIT)

    assert settings["Service.Type"] == ["notify"]
    assert settings["Service.NotifyAccess"] == ["main"]
    assert settings["Service.Restart"] == ["on-failure"]
    assert settings["Service.RestartPreventExitStatus"] == ["2"]
    assert settings["Service.ExecStart"] == [
        f"{INSTALLED_BINARY} run -c /etc/receipt-agent/config.yaml"
    ]
    assert settings["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert settings["Service.User"] == ["receipt-agent"]
    assert settings["Service.StateDirectory"] == ["receipt-agent"]
    assert settings["Service.LogsDirectory"] == ["receipt-agent"]
    assert settings["Service.ConfigurationDirectory"] == ["receipt-agent"]
    # config/environment.py looks for $CREDENTIALS_DIRECTORY/client_secret: the names must match.
    assert settings["Service.LoadCredential"] == ["client_secret:/etc/receipt-agent/client_secret"]


def test_unit_stop_timeout_exceeds_drain_bound() -> None:
    """systemd waits longer than the agent's drain before it sends SIGKILL."""
    drain_s = DRAIN_BOUND_S
    try:
        agent = importlib.import_module("receipt_agent.agent")
    except ImportError:
        agent = None
    drain_s = float(getattr(agent, "DRAIN_TIMEOUT_S", drain_s))

    stop_s = _seconds(_settings(UNIT)["Service.TimeoutStopSec"][0])

    assert stop_s >= drain_s + 10


def test_unit_watchdog_leaves_room_for_the_main_loop() -> None:
    """The ping interval (WatchdogSec/2) is many main-loop ticks (0.5 s) long."""
    watchdog_s = _seconds(_settings(UNIT)["Service.WatchdogSec"][0])

    assert 10 <= watchdog_s / 2 <= 60


def test_drop_in_grants_the_spool_folder() -> None:
    """The example drop-in opens the spool folder read-write and adds the till's group."""
    settings = _settings(DROP_IN)

    assert settings["Service.ReadWritePaths"] == ["/srv/pos/export"]
    assert settings["Service.SupplementaryGroups"] == ["pos"]


@needs_systemd_analyze
@pytest.mark.parametrize("with_drop_in", [False, True], ids=["unit", "unit+drop-in"])
def test_unit_security_exposure_is_ok(tmp_path: Path, with_drop_in: bool) -> None:
    """`systemd-analyze security --offline=true` rates the shipped unit 1.5 or lower,
    also with the spool drop-in (which adds SupplementaryGroups=)."""
    root = _offline_root(tmp_path, with_drop_in=with_drop_in)

    result = _run("security", "--offline=true", f"--root={root}", "--no-pager", UNIT.name)
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {result.stderr.strip()}")

    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout
    assert match.group(2) == "OK"


@needs_systemd_analyze
@pytest.mark.parametrize("with_drop_in", [False, True], ids=["unit", "unit+drop-in"])
def test_unit_verify_is_clean(tmp_path: Path, with_drop_in: bool) -> None:
    """`systemd-analyze verify` prints nothing for the unit, alone and with the drop-in."""
    unit = _copy_with_existing_binary(tmp_path, with_drop_in=with_drop_in)

    result = _run("verify", str(unit))

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""


@needs_systemd_analyze
def test_verify_catches_a_typo(tmp_path: Path) -> None:
    """The verify test can fail: a misspelt key in the drop-in is reported."""
    unit = _copy_with_existing_binary(tmp_path, with_drop_in=True)
    drop_in = tmp_path / f"{unit.name}.d" / "spool.conf"
    drop_in.write_text(drop_in.read_text() + "ReadWritePath=/srv/typo\n")

    result = _run("verify", str(unit))

    assert "Unknown key 'ReadWritePath'" in result.stderr
