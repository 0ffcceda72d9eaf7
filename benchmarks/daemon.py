"""A running `receipt-agent run` for the daemon benchmarks (latency, burst, idle); not a test."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import harness


class Daemon:
    """`receipt-agent run` on the agent's core; waits for `agent.started`, stops with SIGTERM."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.finished: harness.Finished | None = None

    def __enter__(self) -> Daemon:
        self.started = time.monotonic()
        self.process = harness.start_agent(self.config)
        deadline = time.monotonic() + 30
        while not any(line["event"] == "agent.started" for line in harness.read_log(self.log)):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the daemon did not start")
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> harness.Finished:
        assert self.process is not None
        if self.finished is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.finished = harness.wait_child(self.process, self.started)
        return self.finished

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
