"""The agent's lifecycle (agent.py): start, run, drain, stop — in-process, on real threads.

The real daemon (`Agent.run`) runs in a thread or on the test's main thread, against the
sandbox on loopback, a real spool folder, a real SQLite state store and the real watchdog
observer and APScheduler pool; the autouse `no_thread_leaks` fixture fails any test that
leaves one of their threads behind. Signals are real: sent to this process with os.kill.
End-to-end runs of the installed CLI as a subprocess live in tests/e2e/test_daemon.py.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from support import ACCOUNT, SECRET, drop, events, make_receipt, read_log, wait_until

from receipt_agent import logs, scheduler, spool
from receipt_agent.agent import EXIT_FAILED, EXIT_OK, Agent
from receipt_agent.config import AgentConfig, load_config
from receipt_agent.errors import AgentLockedError
from receipt_agent.once_report import EXIT_NEEDS_A_PERSON
from receipt_agent.sandbox import Sandbox


@pytest.fixture
def config(make_agent_config: Callable[..., Path]) -> Iterator[AgentConfig]:
    """The agent's config, with its JSON log file configured the way the CLI does."""
    loaded = load_config(make_agent_config())
    logs.configure(file=str(loaded.log.file), format="json", level="info")
    yield loaded
    logs.configure(file="-", format="console", level="warning")  # closes the log file


class _Running:
    """An `Agent.run()` in a thread; `stop()` sets its stop flag and returns the exit code."""

    def __init__(self, config: AgentConfig) -> None:
        self.agent = Agent(config, SecretStr(SECRET))
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, name="agent-under-test")
        self.thread.start()

    def _run(self) -> None:
        self.code = self.agent.run()

    def stop(self, timeout: float = 40) -> int | None:
        self.agent.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the agent did not stop"
        return self.code


@pytest.fixture
def start_agent(config: AgentConfig) -> Iterator[Callable[[], _Running]]:
    """Start agents in threads; whatever a test left running is stopped in teardown."""
    running: list[_Running] = []

    def start() -> _Running:
        running.append(_Running(config))
        return running[-1]

    yield start
    for item in running:
        if item.thread.is_alive():
            item.stop()


def _event_names(log: Path) -> list[str]:
    return [str(line.get("event")) for line in read_log(log)]


def test_run_starts_delivers_and_stops_in_order(
    config: AgentConfig,
    start_agent: Callable[[], _Running],
    spool_dir: Path,
    sandbox: Sandbox,
) -> None:
    """The daemon's life, as its log tells it: started, the file's receipts sent, stopped.

    1. Start `run()`; wait for `agent.started`; drop a file of 3 receipts into the spool.
    2. Wait until the log says the batch was sent; set the stop flag.
    Result: exit 0; agent.started < batch.sent < agent.stopping < agent.stopped, the stop
    drained (`drained: true`, nothing pending); every agent thread is gone (autouse check)
    and the state directory's lock is free for the next agent.
    """
    log = Path(str(config.log.file))
    running = start_agent()
    wait_until(lambda: events(log, "agent.started"))
    drop(spool_dir, "a.json", [make_receipt(n) for n in range(3)])
    wait_until(lambda: events(log, "batch.sent"))  # recorded, not only received
    assert running.stop() == EXIT_OK
    assert len(sandbox.receipt_ids(ACCOUNT)) == 3
    names = _event_names(log)
    order = [names.index(name) for name in ("agent.started", "batch.sent", "agent.stopping")]
    assert order == sorted(order)
    assert names[-1] == "agent.stopped"
    (stopped,) = events(log, "agent.stopped")
    assert (stopped["drained"], stopped["pending"]) == (True, 0)
    assert running.agent.drained
    again = Agent(config, SecretStr(SECRET))
    again._open()  # the lock was released: a second agent may take the directory
    again._close()


def test_a_second_agent_on_the_same_state_dir_is_refused_while_the_first_runs(
    config: AgentConfig, start_agent: Callable[[], _Running]
) -> None:
    """Two agents never share a queue: the second learns which process holds it."""
    log = Path(str(config.log.file))
    running = start_agent()
    wait_until(lambda: events(log, "agent.started"))
    with pytest.raises(AgentLockedError, match=f"pid {os.getpid()}"):
        Agent(config, SecretStr(SECRET)).run_once()
    assert running.stop() == EXIT_OK


def test_stop_during_a_slow_post_waits_for_the_answer_and_records_it(
    config: AgentConfig, start_agent: Callable[[], _Running], spool_dir: Path, sandbox: Sandbox
) -> None:
    """The drain lets the batch in flight finish: what Dintero stored is marked sent.

    1. The sandbox answers every request after 1.5 s. Start the agent, drop 5 receipts.
    2. As soon as the POST is in flight (the sender is busy), set the stop flag.
    Result: exit 0 with `drained: true`; the 5 receipts are at the sandbox and `sent` in
    the state store (nothing pending to be resent after the restart).
    """
    log = Path(str(config.log.file))
    sandbox.set_faults(delay_s=1.5, endpoints=frozenset({"receipts"}))
    running = start_agent()
    wait_until(lambda: events(log, "agent.started"))
    drop(spool_dir, "a.json", [make_receipt(n) for n in range(5)])
    wait_until(running.agent.sender.busy.is_set, interval=0.01)
    started = time.monotonic()
    assert running.stop() == EXIT_OK
    assert time.monotonic() - started < 30  # bounded by DRAIN_TIMEOUT_S
    (stopped,) = events(log, "agent.stopped")
    assert (stopped["drained"], stopped["pending"]) == (True, 0)
    assert len(sandbox.receipt_ids(ACCOUNT)) == 5


def test_sigterm_on_the_main_thread_stops_run_and_restores_the_handlers(
    config: AgentConfig, spool_dir: Path, sandbox: Sandbox
) -> None:
    """A real SIGTERM makes `run()` return 0 after delivering; the test's handlers come back.

    1. Drop a file; a timer thread sends this process SIGTERM once the receipts arrived.
    2. `run()` on the main thread (where it installs its handlers) returns.
    Result: exit 0, the receipts delivered, and SIGTERM/SIGINT/SIGHUP handled again as
    before the run.
    """
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    drop(spool_dir, "a.json", [make_receipt(n) for n in range(2)])

    def terminate_when_delivered() -> None:
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 2)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_when_delivered, name="sigterm-sender")
    killer.start()
    try:
        code = Agent(config, SecretStr(SECRET)).run()
    finally:
        killer.join(30)
    assert code == EXIT_OK
    assert len(sandbox.receipt_ids(ACCOUNT)) == 2
    assert {s: signal.getsignal(s) for s in before} == before


def test_run_once_delivers_everything_and_exits_0(
    config: AgentConfig, spool_dir: Path, sandbox: Sandbox
) -> None:
    """`run --once`: every ready file is taken in and sent, the spool is empty, exit 0."""
    for number in range(3):
        drop(spool_dir, f"f-{number}.json", [make_receipt(number * 10 + i) for i in range(4)])
    for path in spool_dir.iterdir():
        os.utime(path, (time.time() - 60, time.time() - 60))  # settled long ago
    assert Agent(config, SecretStr(SECRET)).run_once() == EXIT_OK
    assert len(sandbox.receipt_ids(ACCOUNT)) == 12
    assert list(spool_dir.iterdir()) == []


def test_run_once_takes_a_backlog_in_chunks_every_file_once(
    config: AgentConfig, spool_dir: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --once` over more files than a scan chunk holds takes each of them in once.

    1. Scan chunks of 4 files (SCAN_LIMIT, 10,000 in production).
    2. Eleven settled files: ten of one receipt, one corrupt, the corrupt one in the
       middle of the order.
    Result: ten receipts at the sandbox, the corrupt file quarantined, one `file.accepted`
    line per good file and one `file.quarantined`, the spool empty, exit 3 (a person
    should look at the quarantine).
    """
    monkeypatch.setattr(spool, "SCAN_LIMIT", 4)
    now = time.time()
    for number in range(11):
        name = f"f-{number:02d}.json"
        if number == 5:
            drop(spool_dir, name, b"{ not json")
        else:
            drop(spool_dir, name, [make_receipt(number)])
        os.utime(spool_dir / name, (now - 600 + number, now - 600 + number))
    assert Agent(config, SecretStr(SECRET)).run_once() == EXIT_NEEDS_A_PERSON
    assert len(sandbox.receipt_ids(ACCOUNT)) == 10
    assert list(spool_dir.iterdir()) == []
    accepted = sorted(line["file"] for line in events(Path(config.log.file), "file.accepted"))
    assert accepted == [f"f-{number:02d}.json" for number in range(11) if number != 5]
    assert [line["file"] for line in events(Path(config.log.file), "file.quarantined")] == [
        "f-05.json"
    ]


def test_run_once_with_the_api_down_keeps_receipts_pending_and_exits_1(
    config: AgentConfig, spool_dir: Path, sandbox: Sandbox
) -> None:
    """An unreachable API (every POST 503) fails `run --once`; nothing is lost, it stays pending."""
    sandbox.set_faults(error_rate=1.0, endpoints=frozenset({"receipts"}))
    drop(spool_dir, "a.json", [make_receipt(n) for n in range(4)])
    os.utime(spool_dir / "a.json", (time.time() - 60, time.time() - 60))
    agent = Agent(config, SecretStr(SECRET))
    assert agent.run_once() == EXIT_FAILED
    assert sandbox.receipt_ids(ACCOUNT) == []
    again = Agent(config, SecretStr(SECRET))
    again._open()
    try:
        assert again.db.counts()["pending"] == 4
    finally:
        again._close()


def _run_with_two_sigterms(
    sandbox: Sandbox, run: Callable[[], int], *, second_when: Callable[[], object]
) -> int:
    """Return `run()`'s code; SIGTERM arrives once a POST is out, again when `second_when`."""

    def terminate_twice() -> None:
        wait_until(lambda: any(r.path.endswith("/receipts") for r in sandbox.requests))
        os.kill(os.getpid(), signal.SIGTERM)
        wait_until(second_when)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_twice, name="sigterm-sender")
    killer.start()
    try:
        return run()
    finally:
        killer.join(30)


def test_second_sigterm_during_the_drain_ends_run_at_once_not_drained(
    config: AgentConfig, spool_dir: Path, sandbox: Sandbox
) -> None:
    """A second SIGTERM while the drain waits for a slow POST ends `run()` at once with exit 1.

    1. The sandbox holds POSTs 6 s unanswered; drop a file; `run()` on the main thread.
    2. A helper thread sends SIGTERM once the POST is in flight, and again once the log
       says `agent.stopping`.
    Result: `run()` returns 1 with the POST still out (`drained: false` in `agent.stopped`,
    so the cli exits hard); nothing left the handlers: the test's own are back. The
    handlers only set flags: the process was not ended from inside one.
    """
    log = Path(str(config.log.file))
    sandbox.set_faults(hang_rate=1.0, hang_s=6.0)  # recorded on arrival, unanswered 6 s
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    drop(spool_dir, "a.json", [make_receipt(n) for n in range(2)])
    agent = Agent(config, SecretStr(SECRET))

    code = _run_with_two_sigterms(
        sandbox, agent.run, second_when=lambda: events(log, "agent.stopping")
    )
    still_sending = agent.sender.busy.is_set()
    assert code == EXIT_FAILED
    assert not agent.drained
    assert still_sending
    (stopped,) = events(log, "agent.stopped")
    assert stopped["drained"] is False
    assert {s: signal.getsignal(s) for s in before} == before
    # The cli would exit now; in-process, let the POST finish before the store closes.
    assert scheduler.RUNNING_JOBS.wait_idle(30)
    agent.db.close()


def test_run_that_fails_to_start_stops_what_it_started_before_the_store_closes(
    make_agent_config: Callable[..., Path],
) -> None:
    """The metrics port is taken: `run()` raises, and no thread of the agent is left running.

    1. Hold a listening socket; start `run()` with `metrics.listen` on its port.
    Result: OSError from `run()`; the intake thread, the folder watch and the scheduler
    it had already started are stopped (the autouse thread check) and the state
    directory's lock is free for the next agent.
    """
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = load_config(make_agent_config(metrics={"listen": f"127.0.0.1:{port}"}))
        agent = Agent(config, SecretStr(SECRET))
        with pytest.raises(OSError, match="in use"):
            agent.run()
    assert agent.drained
    again = Agent(config, SecretStr(SECRET))
    again._open()
    again._close()


def test_run_once_second_sigterm_while_a_post_hangs_returns_1_not_drained(
    config: AgentConfig, spool_dir: Path, sandbox: Sandbox
) -> None:
    """`run --once` ends at a second SIGTERM even while its POST hangs (the cli then exits hard).

    1. The sandbox holds POSTs 6 s unanswered; one settled file; `run_once()` on the main
       thread.
    2. A helper thread sends SIGTERM once the POST is in flight, and again once the first
       was seen.
    Result: `run_once()` returns 1, not drained, while the pass is still waiting for its
    POST; the receipts stay pending (nothing at the sandbox).
    """
    sandbox.set_faults(hang_rate=1.0, hang_s=6.0)  # recorded on arrival, unanswered 6 s
    drop(spool_dir, "a.json", [make_receipt(n) for n in range(2)])
    os.utime(spool_dir / "a.json", (time.time() - 60, time.time() - 60))
    agent = Agent(config, SecretStr(SECRET))

    # two signals at once may be seen as one: the second waits for the first's stop
    code = _run_with_two_sigterms(sandbox, agent.run_once, second_when=agent.stop_event.is_set)
    (still_running,) = [t for t in threading.enumerate() if t.name == "once"]
    assert code == EXIT_FAILED
    assert not agent.drained
    assert still_running.is_alive()
    assert sandbox.receipt_ids(ACCOUNT) == []
    # The cli would exit now; in-process, let the pass end before the store closes.
    still_running.join(30)
    assert agent.db.counts()["pending"] == 2
    agent.db.close()
