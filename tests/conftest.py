"""Shared fixtures: real folders, real YAML, the real sandbox on loopback.

- `spool_dir` / `state_dir`: folders in tmp_path.
- `write_config`: writes a real YAML config (dict → file) and returns its path.
- `sandbox`: the package's own Dintero stand-in on 127.0.0.1:0, in a thread.
- `agent_config`: a config for one dintero-json source sending to that sandbox.
- autouse `clean_environ`: drops RECEIPT_AGENT_*, CREDENTIALS_DIRECTORY and proxies.
Helpers (the installed CLI, receipt builders, log readers) live in `support.py`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import support
import yaml
from hypothesis import settings
from pydantic import SecretStr
from support import CLIENT_ID, SECRET, base_config

from receipt_agent import logs
from receipt_agent.agent import Agent
from receipt_agent.config import AgentConfig, load_config
from receipt_agent.sandbox import Sandbox
from receipt_agent.statedb import StateDB

# Property tests draw the same examples on every run and keep no example database: a
# failure reproduces on the next run, and a run never passes because of the last one.
settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.load_profile("deterministic")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's receipt-agent settings or proxies (httpx's rule)."""
    for name in list(os.environ):
        if name.startswith("RECEIPT_AGENT_") or name in {"CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET"}:
            monkeypatch.delenv(name, raising=False)
        if name.lower() in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    """A test that leaves a thread running (an observer, a scheduler, a server) fails.

    watchdog's rule: a thread that outlives its test hides a missing stop() that would
    keep a real agent from exiting.
    """
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = [t for t in leaked if t.is_alive()]
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture(autouse=True)
def no_agent_leaks() -> Iterator[None]:
    """An agent process a test started and did not stop (it failed first) is killed here."""
    yield
    while support.STARTED_AGENTS:
        process = support.STARTED_AGENTS.pop()
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


@pytest.fixture(autouse=True)
def reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(client_id=CLIENT_ID, client_secret=SECRET, port=0) as running:
        yield running


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "client_secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(config: dict[str, Any], name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    return write


@pytest.fixture
def make_agent_config(
    tmp_path: Path,
    sandbox: Sandbox,
    spool_dir: Path,
    state_dir: Path,
    secret_file: Path,
    write_config: Callable[..., Path],
) -> Callable[..., Path]:
    """A factory: a config for one dintero-json source sending to the sandbox, with overrides."""

    def make(**overrides: Any) -> Path:
        return write_config(
            base_config(
                base_url=sandbox.base_url,
                spool_dir=spool_dir,
                state_dir=state_dir,
                secret_file=secret_file,
                log_file=tmp_path / "agent.log",
                **overrides,
            )
        )

    return make


@pytest.fixture
def agent_config(make_agent_config: Callable[..., Path]) -> Path:
    """A config for one dintero-json source sending to the sandbox."""
    return make_agent_config()


@pytest.fixture
def make_config(make_agent_config: Callable[..., Path]) -> Callable[..., AgentConfig]:
    """Build a loaded AgentConfig for the sandbox (keyword overrides as make_agent_config)."""
    return lambda **overrides: load_config(make_agent_config(**overrides))


@pytest.fixture
def offline_config(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> Callable[..., AgentConfig]:  # fmt: skip
    """A factory: a loaded config whose API nothing answers (port 9), source keys overridden.

    For tests of intake and the spool that never send: no sandbox is started for them.
    """

    def make(**source_overrides: Any) -> AgentConfig:
        raw = base_config(
            base_url="http://127.0.0.1:9/v1", spool_dir=spool_dir, state_dir=state_dir,
            secret_file=secret_file, log_file=tmp_path / "agent.log",
        )  # fmt: skip
        raw["sources"][0].update(source_overrides)
        return load_config(write_config(raw))

    return make


@pytest.fixture
def db(state_dir: Path) -> Iterator[StateDB]:
    """A real state store in the test's state folder, closed after the test."""
    database = StateDB(state_dir / "state.db")
    yield database
    database.close()


@pytest.fixture
def run_agent(write_config: Callable[..., Path]) -> Iterator[Callable[[dict[str, Any]], Agent]]:
    """Start the real daemon (`Agent.run`) in a thread; stop it in teardown."""
    started: list[tuple[Agent, threading.Thread]] = []

    def start(raw: dict[str, Any]) -> Agent:
        config = load_config(write_config(raw))
        logs.configure(file=str(config.log.file), format="json", level="info")
        agent = Agent(config, SecretStr(SECRET))
        thread = threading.Thread(target=agent.run, name="agent-under-test")
        thread.start()
        started.append((agent, thread))
        return agent

    yield start
    for agent, thread in started:
        agent.stop_event.set()
        thread.join(timeout=30)
    logs.configure(file="-", format="console", level="warning")  # closes the log file
