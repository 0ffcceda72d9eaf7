"""Deviations from CONTRACT.md found by trying the installed CLI as store IT would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support import (
    cli,
    drop,
    events,
    free_port,
    make_receipt,
    read_log,
    start_agent,
    stop_agent,
    wait_until,
)

pytestmark = pytest.mark.e2e


def test_relative_log_file_is_relative_to_the_config_folder_not_the_cwd(
    tmp_path: Path, make_agent_config: Callable[..., Path], spool_dir: Path
) -> None:
    """`log.file: logs/agent.log` lands next to the config when run from another folder (§2).

    1. A config whose log.file is relative, its folder created. 2. `run --once` started
    with the working directory elsewhere. Result: the log is in the config's folder and
    nothing is written in the working directory.
    """
    config = make_agent_config(log={"file": "logs/agent.log", "format": "json"})
    (tmp_path / "logs").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    drop(spool_dir, "a.json", [make_receipt(1)])

    result = cli("run", "--once", "-c", str(config), cwd=elsewhere)

    assert result.returncode == 0, result.stderr
    events = [line["event"] for line in read_log(tmp_path / "logs/agent.log")]
    assert "file.accepted" in events
    assert "batch.sent" in events
    assert list(elsewhere.iterdir()) == []


def test_config_option_is_taken_before_the_command_and_before_its_action(
    agent_config: Path,
) -> None:
    """`-c` works wherever an operator puts it (§1: every command takes -c); the last one wins.

    1. A valid config and one `run --once` (the state store exists). 2. status / queue
    list / check-config with -c before the command, before the action, after it. Result:
    exit 0 each time (the config was found).
    """
    assert cli("run", "--once", "-c", str(agent_config)).returncode == 0
    config = str(agent_config)
    for argv in (
        ["-c", config, "status"],
        [f"--config={config}", "check-config"],
        ["queue", "-c", config, "list"],
        ["queue", "list", "-c", config],
        ["-c", "/nowhere.yaml", "queue", "list", "-c", config],
    ):
        result = cli(*argv)

        assert result.returncode == 0, (argv, result.stderr)


def test_demo_and_sandbox_accept_a_config_option_they_do_not_need() -> None:
    """`demo -c F` and `sandbox -c F` are not usage errors (§1: every command takes -c)."""
    assert cli("demo", "-c", "/etc/receipt-agent/config.yaml", "--help").returncode == 0
    assert cli("sandbox", "-c", "/etc/receipt-agent/config.yaml", "--help").returncode == 0


def test_check_config_with_a_schema_error_still_reports_http_production_and_overlaps(
    tmp_path: Path, write_config: Callable[..., Path], secret_file: Path
) -> None:
    """One run names every problem (§1): a typo does not hide P… over http:// or shared folders.

    1. A config with an unknown key, a source with a bad format first, two sources on the
    same folder, a P… account over plain http:// and a bad reconcile cron. 2. check-config.
    Result: exit 2 and every one of them named at its key, the overlap with the indices the
    sources have in the file.
    """
    (tmp_path / "spool").mkdir()
    source = {"format": "dintero-json", "store": {"id": "s"}}
    config = write_config(
        {
            "dintero": {
                "base_url": "http://api.dintero.com/v1",
                "account_id": "P12345678",
                "client_id": "c",
                "client_secret_file": str(secret_file),
                "typo": 1,
            },
            "state_dir": "state",
            "log": {"file": "-"},
            "sources": [
                {**source, "name": "x", "path": "other", "format": "excel"},
                {**source, "name": "a", "path": "spool"},
                {**source, "name": "b", "path": "./spool/"},
            ],
            "reconcile": {"cron": "61 * * * *"},
        }
    )

    result = cli("check-config", "-c", str(config))

    assert result.returncode == 2
    problems = dict(line.split(": ", 1) for line in result.stderr.splitlines() if ": " in line)
    assert "unknown key" in problems["dintero.typo"]
    assert "unknown format" in problems["sources[0].format"]
    assert "production account" in problems["dintero.base_url"]
    assert "same folder as source 'a' (sources[1].path" in problems["sources[2].path"]
    assert "61" in problems["reconcile.cron"]


def test_command_line_mistakes_exit_2_and_never_reach_the_daemon_log(
    tmp_path: Path, agent_config: Path
) -> None:
    """A bad option or an unknown name is a usage error: exit 2, said on stderr, not logged.

    The config's log file is the daemon's; monitoring alerts on `config.invalid` there, so
    an operator's typo at the shell must not write one. 1. settlement test-report --count 0,
    convert/reconcile --source and report generate with names the config lacks. Result:
    exit 2, the option named on stderr, and the log file holds no config.invalid line.
    """
    config = str(agent_config)
    for argv, words in (
        (["settlement", "test-report", "--count", "0"], "--count"),
        (["convert", "--source", "nope", str(tmp_path / "a.json")], "no source named 'nope'"),
        (["reconcile", "--source", "nope"], "no source named 'nope'"),
        (["report", "generate", "nope"], "no report named 'nope'"),
    ):
        result = cli(*argv, "-c", config)

        assert result.returncode == 2, (argv, result.stderr)
        assert words in result.stderr
    assert [line for line in read_log(tmp_path / "agent.log") if "config" in line["event"]] == []


def test_daemon_logs_a_file_it_has_already_taken_in_once_as_already_seen(
    tmp_path: Path, make_agent_config: Callable[..., Path], spool_dir: Path, state_dir: Path
) -> None:
    """A copy of an exported file is archived by the daemon with one `file.accepted` line (§3.4).

    Under `run` a fresh file is held in the spool for 3 x settle after it is read; a copy
    of a file already taken in went to the archive with no info line at all (run --once
    logs it). 1. The daemon takes in a.json. 2. The same bytes arrive as b.json. Result:
    b.json archived, one file.accepted for it with receipts 0 and already_seen, nothing
    queued or sent twice.
    """
    sources = [
        {"name": "till-1", "path": str(spool_dir), "format": "dintero-json", "settle": "0.5s",
         "store": {"id": "sc029"}},
    ]  # fmt: skip
    agent = start_agent(make_agent_config(sources=sources))
    try:
        drop(spool_dir, "a.json", [make_receipt(1), make_receipt(2)])
        wait_until((state_dir / "archive/till-1/a.json").exists, timeout=60)
        (spool_dir / "b.json").write_bytes((state_dir / "archive/till-1/a.json").read_bytes())
        wait_until((state_dir / "archive/till-1/b.json").exists, timeout=60)
    finally:
        code, stderr = stop_agent(agent)
    assert code == 0, stderr
    accepted = {line["file"]: line for line in events(tmp_path / "agent.log", "file.accepted")}
    assert accepted["a.json"]["receipts"] == 2
    assert accepted["b.json"]["receipts"] == 0
    assert accepted["b.json"]["already_seen"] is True
    assert len(events(tmp_path / "agent.log", "file.accepted")) == 2
    assert sum(line["receipts"] for line in events(tmp_path / "agent.log", "batch.sent")) == 2


def test_health_endpoint_gives_the_verdict_of_status_for_a_quarantined_file(
    tmp_path: Path, make_agent_config: Callable[..., Path], spool_dir: Path
) -> None:
    """GET /health agrees with `status` (issue 16) when a file was just quarantined.

    /health built the status without the config, so spools, quarantine and rejections were
    not looked at: it said healthy while `status` exited 1. 1. The daemon with
    metrics.listen. 2. A truncated export is quarantined. Result: `status` exits 1 and
    /health answers 503 "degraded" naming the quarantine.
    """
    port = free_port()
    config = make_agent_config(metrics={"listen": f"127.0.0.1:{port}"})
    agent = start_agent(config)
    try:
        drop(spool_dir, "bad.json", b'[{"receipt_id": ')
        wait_until(lambda: events(tmp_path / "agent.log", "file.quarantined"), timeout=60)
        assert cli("status", "-c", str(config)).returncode == 1
        answer = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
    finally:
        code, stderr = stop_agent(agent)
    assert code == 0, stderr
    assert answer.status_code == 503
    assert answer.json()["status"] == "degraded"
    assert any("quarantined" in problem for problem in answer.json()["problems"])


def test_file_accepted_counts_every_skip_reason_even_when_zero(
    tmp_path: Path, make_agent_config: Callable[..., Path], spool_dir: Path
) -> None:
    """`skipped` in file.accepted always holds non_sale, training and voided (§2), 0 included.

    1. The bundled SAF-T sample of 2026-01-15 (one training, one non-sale transaction) in a
    saft-cashregister source, and a dintero-json file (nothing skipped). 2. run --once.
    Result: {non_sale: 1, training: 1, voided: 0} and {non_sale: 0, training: 0, voided: 0}.
    """
    samples = Path(__file__).resolve().parents[2] / "receipt_agent/samples/saft"
    saft_dir = tmp_path / "saft"
    saft_dir.mkdir()
    sample = samples / "SAF-T_Cash_Register_999888777_20260115230000_1_1.xml"
    (saft_dir / sample.name).write_bytes(sample.read_bytes())
    drop(spool_dir, "a.json", [make_receipt(1)])
    sources = [
        {"name": "till-1", "path": str(spool_dir), "format": "dintero-json", "settle": 0,
         "store": {"id": "sc029"}},
        {"name": "saft", "path": str(saft_dir), "format": "saft-cashregister", "settle": 0,
         "store": {"id": "sc031"}},
    ]  # fmt: skip

    result = cli("run", "--once", "-c", str(make_agent_config(sources=sources)))

    assert result.returncode == 0, result.stderr
    skipped = {
        line["file"]: line["skipped"] for line in events(tmp_path / "agent.log", "file.accepted")
    }
    assert skipped[sample.name] == {"non_sale": 1, "training": 1, "voided": 0}
    assert skipped["a.json"] == {"non_sale": 0, "training": 0, "voided": 0}


def test_run_once_shows_a_progress_bar_on_a_terminal_and_none_in_a_pipe(
    agent_config: Path, spool_dir: Path
) -> None:
    """`run --once` draws a progress bar on a terminal (§1); stdout keeps just the summary.

    1. Two files; run --once with stderr on a pseudo-terminal, stdout a pipe. 2. Again
    with both piped. Result: the terminal got the bar (a line drawn, then cleared);
    stdout is the one summary line both times; the pipe got no bar.
    """
    import os
    import pty
    import subprocess

    from support import BIN

    drop(spool_dir, "a.json", [make_receipt(1)])
    drop(spool_dir, "b.json", [make_receipt(2)])
    leader, follower = pty.openpty()
    try:
        process = subprocess.run(
            [str(BIN / "receipt-agent"), "run", "--once", "-c", str(agent_config)],
            stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120, check=False,
        )  # fmt: skip
        os.close(follower)
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(leader)
    assert process.returncode == 0
    assert process.stdout.splitlines() == [
        "files: 2 taken in, 0 quarantined, 0 left in the spool; "
        "receipts: 2 sent, 0 duplicate, 0 rejected, 0 pending"
    ]
    assert b"\x1b[2K" in drawn  # a line drawn and cleared: rich's live progress

    drop(spool_dir, "c.json", [make_receipt(3)])
    piped = cli("run", "--once", "-c", str(agent_config))

    assert piped.returncode == 0
    assert piped.stdout.count("\n") == 1
    assert "\x1b[" not in piped.stderr


def test_queue_retry_takes_ids_or_all_rejected_not_both(agent_config: Path) -> None:
    """`queue retry [ID…|--all-rejected]` (§1): both at once is a usage error, exit 2."""
    assert cli("run", "--once", "-c", str(agent_config)).returncode == 0

    result = cli("queue", "retry", "1", "--all-rejected", "-c", str(agent_config))

    assert result.returncode == 2
    assert "not both" in result.stderr


def test_health_after_a_reload_looks_at_the_sources_the_daemon_has_now(
    tmp_path: Path, make_agent_config: Callable[..., Path], spool_dir: Path
) -> None:
    """/health follows a SIGHUP reload: a source added then quarantining a file degrades it.

    1. The daemon with metrics.listen and one source; /health 200. 2. The config gains
    source b and SIGHUP (config.reloaded). 3. A truncated export in b is quarantined.
    Result: /health 503 naming b's quarantine (it read the config of the start before).
    """
    import signal

    import yaml

    port = free_port()
    config = make_agent_config(metrics={"listen": f"127.0.0.1:{port}"})
    url = f"http://127.0.0.1:{port}/health"

    def health() -> httpx.Response | None:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            return None

    agent = start_agent(config)
    try:
        assert wait_until(health, timeout=60).status_code == 200
        second = tmp_path / "spool-b"
        second.mkdir()
        raw = yaml.safe_load(config.read_text())
        raw["sources"].append(
            {"name": "b", "path": str(second), "format": "dintero-json", "settle": 0,
             "store": {"id": "sb"}}
        )  # fmt: skip
        config.write_text(yaml.safe_dump(raw, sort_keys=False))
        agent.send_signal(signal.SIGHUP)
        wait_until(lambda: events(tmp_path / "agent.log", "config.reloaded"), timeout=60)
        drop(second, "bad.json", b'[{"receipt_id": ')
        wait_until(lambda: events(tmp_path / "agent.log", "file.quarantined"), timeout=60)
        answer = health()
    finally:
        code, stderr = stop_agent(agent)
    assert code == 0, stderr
    assert answer is not None
    assert answer.status_code == 503
    assert any(problem.startswith("b:") for problem in answer.json()["problems"])
