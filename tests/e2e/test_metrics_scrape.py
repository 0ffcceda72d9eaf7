"""Metrics scraped from a running `receipt-agent run` move with the work (issue 6).

The agent runs as a subprocess against the sandbox API (`receipt-agent sandbox`), with
`metrics.listen` on loopback and `metrics.textfile` set. A bundled till export is dropped
into its spool; the scrape must then show the file accepted, its receipts queued and
sent, a 2xx batch with its latency, a token refresh and a last-success time.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import support
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("receipt_agent.agent") is None,
        reason="receipt_agent.agent is not built yet",
    ),
]

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "receipt_agent" / "samples" / "dintero-json" / "z-2026-11-20-till1.json"
CLI = Path(sys.executable).parent / "receipt-agent"
SANDBOX_CLIENT_ID, SANDBOX_SECRET = "demo", "demo-secret"  # `receipt-agent sandbox` defaults

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# One polling helper for the whole suite (support.wait_until), with this file's deadline.
wait_until = functools.partial(support.wait_until, timeout=20)


def _is_listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM `process`, wait for it (SIGKILL after 45 s) and return its output."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output or ""


def _environment() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RECEIPT_AGENT_", "NOTIFY_SOCKET", "WATCHDOG_", "CREDENTIALS_"))
    }
    env["RECEIPT_AGENT_CLIENT_SECRET"] = SANDBOX_SECRET
    return env


def _samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _total(samples: Samples, name: str, **labels: str) -> float:
    """Sum the samples named `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(
        value for (sample, have), value in samples.items() if sample == name and wanted <= have
    )


@pytest.fixture
def sandbox_port() -> Iterator[int]:
    """`receipt-agent sandbox` on a free loopback port, stopped after the test."""
    if not CLI.exists():
        pytest.skip(f"the console script is not installed at {CLI}")
    port = support.free_port()
    process = subprocess.Popen(
        [str(CLI), "sandbox", "--port", str(port)],
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_until(lambda: process.poll() is not None or _is_listening(port))
        assert process.poll() is None, "the sandbox exited at start"
        yield port
    finally:
        _stop(process)


@pytest.mark.timeout(120)
def test_scraping_a_running_agent_shows_counters_moving(tmp_path: Path, sandbox_port: int) -> None:
    """1. Start the agent with metrics.listen on loopback and metrics.textfile set.
    2. Scrape /metrics: nothing sent yet, the textfile exists and parses.
    3. Drop a till export with N receipts into the spool.
    4. Scrape until N receipts are sent.
    Result: files accepted 1, receipts queued N and sent N, a 2xx batch with a latency
    observation, a token refresh, a last-success time, and an empty queue.
    """
    receipts_in_sample = len(json.loads(SAMPLE.read_text(encoding="utf-8")))
    spool = tmp_path / "spool"
    spool.mkdir()
    (tmp_path / "metrics").mkdir()
    textfile = tmp_path / "metrics" / "receipt_agent.prom"
    metrics_port = support.free_port()
    log = tmp_path / "agent.log"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
dintero:
  base_url: http://127.0.0.1:{sandbox_port}/v1
  account_id: T12345678
  client_id: {SANDBOX_CLIENT_ID}
  timeout: 5s
state_dir: {tmp_path / "state"}
log: {{file: {log}, format: json}}
sources:
  - name: till-1
    path: {spool}
    format: dintero-json
    settle: 100ms
    store: {{id: sc029}}
batch:
  flush_interval: 200ms
metrics:
  listen: 127.0.0.1:{metrics_port}
  textfile: {textfile}
"""
    )
    agent = subprocess.Popen(
        [str(CLI), "run", "-c", str(config)],
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        wait_until(lambda: agent.poll() is not None or _is_listening(metrics_port))
        assert agent.poll() is None, _stop(agent)
        with httpx.Client(timeout=5) as client:
            before = _samples(client.get(url).text)
            assert _total(before, "receipt_agent_receipts_total", outcome="sent") == 0
            wait_until(textfile.exists)
            assert _total(_samples(textfile.read_text()), "receipt_agent_build_info") == 1

            temporary = spool / ".incoming.part"
            shutil.copyfile(SAMPLE, temporary)
            temporary.rename(spool / SAMPLE.name)

            def sent_all() -> bool:
                samples = _samples(client.get(url).text)
                return (
                    _total(samples, "receipt_agent_receipts_total", outcome="sent")
                    >= receipts_in_sample
                )

            wait_until(sent_all, timeout=30)
            wait_until(
                lambda: _total(_samples(client.get(url).text), "receipt_agent_queue_pending") == 0
            )
            after = _samples(client.get(url).text)
    finally:
        output = _stop(agent)

    assert agent.returncode == 0, output
    assert _total(after, "receipt_agent_files_total", source="till-1", outcome="accepted") == 1
    assert _total(after, "receipt_agent_receipts_total", outcome="queued") == receipts_in_sample
    assert _total(after, "receipt_agent_receipts_total", outcome="sent") == receipts_in_sample
    sent_batches = {
        dict(labels)["status"]
        for (name, labels), value in after.items()
        if name == "receipt_agent_batches_total" and dict(labels)["outcome"] == "sent" and value
    }
    assert sent_batches
    assert all(status.startswith("2") for status in sent_batches)
    assert _total(after, "receipt_agent_post_duration_seconds_count", outcome="sent") >= 1
    assert _total(after, "receipt_agent_token_refreshes_total") >= 1
    assert _total(after, "receipt_agent_last_success_timestamp_seconds") > time.time() - 120
    assert _total(after, "receipt_agent_queue_oldest_pending_age_seconds") == 0
