"""Prometheus metrics (receipt_agent.metrics): what a scrape and a textfile show."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from support import base_config

from receipt_agent import __version__
from receipt_agent.config import load_config
from receipt_agent.errors import ConfigError
from receipt_agent.metrics import AgentMetrics
from receipt_agent.notation import parse_host_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    """Parse exposition text into {(sample name, labels): value}."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def metrics() -> Iterator[AgentMetrics]:
    """AgentMetrics whose listener (if a test starts one) is stopped in teardown."""
    agent_metrics = AgentMetrics(sources=["till-1"])
    yield agent_metrics
    agent_metrics.stop()


def _record_some(metrics: AgentMetrics) -> None:
    metrics.file_accepted("till-1")
    metrics.file_quarantined("till-2")
    metrics.receipts("till-1", "queued", 5)
    metrics.receipts("till-1", "sent", 4)
    metrics.receipts("till-1", "duplicate", 1)
    metrics.batch("sent", 201, 0.12)
    metrics.batch("failed", 503, 1.5)
    metrics.batch("failed", None, 30.0)
    metrics.set_queue(7, 42.5)
    metrics.last_success(1_764_300_000.0)
    metrics.token_refreshed()


def test_scrape_over_loopback_shows_counters_moving(metrics: AgentMetrics) -> None:
    """1. Start the listener on 127.0.0.1:0 and scrape /metrics: counters are at 0.
    2. Record files, receipts, batches, queue state and a token refresh.
    3. Scrape again.
    Result: every series shows the recorded values, with HELP text and the build version.
    """
    host, port = metrics.start_listener("127.0.0.1:0")
    url = f"http://{host}:{port}/metrics"
    with httpx.Client(timeout=5) as client:
        before = _samples(client.get(url).text)
        assert _value(before, "receipt_agent_receipts_total", source="till-1", outcome="sent") == 0
        assert _value(before, "receipt_agent_token_refreshes_total") == 0

        _record_some(metrics)
        response = client.get(url)

    assert response.status_code == 200
    after = _samples(response.text)
    assert _value(after, "receipt_agent_receipts_total", source="till-1", outcome="queued") == 5
    assert _value(after, "receipt_agent_receipts_total", source="till-1", outcome="sent") == 4
    assert _value(after, "receipt_agent_receipts_total", source="till-1", outcome="duplicate") == 1
    assert _value(after, "receipt_agent_receipts_total", source="till-1", outcome="rejected") == 0
    assert _value(after, "receipt_agent_files_total", source="till-1", outcome="accepted") == 1
    assert _value(after, "receipt_agent_files_total", source="till-2", outcome="quarantined") == 1
    assert _value(after, "receipt_agent_batches_total", outcome="sent", status="201") == 1
    assert _value(after, "receipt_agent_batches_total", outcome="failed", status="503") == 1
    assert _value(after, "receipt_agent_batches_total", outcome="failed", status="none") == 1
    assert _value(after, "receipt_agent_post_duration_seconds_count", outcome="failed") == 2
    assert (
        _value(after, "receipt_agent_post_duration_seconds_bucket", outcome="sent", le="0.25") == 1
    )
    assert (
        _value(after, "receipt_agent_post_duration_seconds_bucket", outcome="sent", le="0.1") == 0
    )
    assert _value(after, "receipt_agent_queue_pending") == 7
    assert _value(after, "receipt_agent_queue_oldest_pending_age_seconds") == 42.5
    assert _value(after, "receipt_agent_last_success_timestamp_seconds") == 1_764_300_000.0
    assert _value(after, "receipt_agent_token_refreshes_total") == 1
    assert _value(after, "receipt_agent_build_info", version=__version__) == 1
    assert "# HELP receipt_agent_queue_pending " in response.text


def test_every_metric_is_prefixed_and_documented(metrics: AgentMetrics) -> None:
    """Every family is named receipt_agent_* and carries HELP text an SRE can read."""
    _record_some(metrics)

    families = list(text_string_to_metric_families(metrics.render().decode()))

    assert len(families) >= 9
    for family in families:
        assert family.name.startswith("receipt_agent_"), family.name
        assert len(family.documentation) > 20, family.name


def test_metrics_use_their_own_registry(metrics: AgentMetrics) -> None:
    """Two AgentMetrics coexist and nothing lands in prometheus_client's global registry."""
    other = AgentMetrics()
    metrics.token_refreshed()

    assert REGISTRY.get_sample_value("receipt_agent_token_refreshes_total") is None
    assert other.registry.get_sample_value("receipt_agent_token_refreshes_total") == 0
    assert metrics.registry.get_sample_value("receipt_agent_token_refreshes_total") == 1


def test_empty_queue_reports_zero_age(metrics: AgentMetrics) -> None:
    """With nothing pending the oldest-age gauge reads 0, not a stale age."""
    metrics.set_queue(3, 120.0)
    metrics.set_queue(0, None)

    samples = _samples(metrics.render().decode())

    assert _value(samples, "receipt_agent_queue_pending") == 0
    assert _value(samples, "receipt_agent_queue_oldest_pending_age_seconds") == 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.receipts("till-1", "lost", 1), "not a receipt outcome"),
        (lambda m: m.receipts("till-1", "sent", -1), "cannot be negative"),
        (lambda m: m.batch("ok", 200, 0.1), "not a batch outcome"),
    ],
)
def test_unknown_outcome_is_refused(
    metrics: AgentMetrics, call: Callable[[AgentMetrics], object], match: str
) -> None:
    """A misspelt outcome raises instead of creating a series no alert watches."""
    with pytest.raises(ValueError, match=match):
        call(metrics)


def test_textfile_is_replaced_atomically(metrics: AgentMetrics, tmp_path: Path) -> None:
    """1. Write the textfile, record a refresh, write it again.
    Result: the second write replaced the file by rename (new inode), the content parses
    with the new value, and no temporary file is left in the collector's folder.
    """
    path = tmp_path / "receipt_agent.prom"
    metrics.write_textfile(path)
    first_inode = path.stat().st_ino
    metrics.token_refreshed()

    metrics.write_textfile(path)

    assert path.stat().st_ino != first_inode
    assert [p.name for p in tmp_path.iterdir()] == ["receipt_agent.prom"]
    samples = _samples(path.read_text())
    assert _value(samples, "receipt_agent_token_refreshes_total") == 1


def test_textfile_in_missing_folder_raises(metrics: AgentMetrics, tmp_path: Path) -> None:
    """A textfile path in a folder that does not exist fails loudly and leaves nothing."""
    with pytest.raises(OSError, match="No such file"):
        metrics.write_textfile(tmp_path / "missing" / "receipt_agent.prom")


def test_stop_frees_port_and_joins_thread(metrics: AgentMetrics) -> None:
    """After stop() the port can be bound again and no listener thread is left running."""
    threads_before = set(threading.enumerate())
    host, port = metrics.start_listener("127.0.0.1:0")
    assert len(set(threading.enumerate()) - threads_before) == 1

    metrics.stop()
    metrics.stop()  # idempotent

    assert set(threading.enumerate()) - threads_before == set()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, port))
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{host}:{port}/metrics", timeout=2)


def test_second_listener_is_refused(metrics: AgentMetrics) -> None:
    """Starting the listener twice is a bug in the caller, reported as RuntimeError."""
    metrics.start_listener("127.0.0.1:0")

    with pytest.raises(RuntimeError, match="already running"):
        metrics.start_listener("127.0.0.1:0")


def test_listener_on_port_in_use_raises(metrics: AgentMetrics) -> None:
    """A port another process holds gives OSError, which the agent reports at start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        with pytest.raises(OSError, match="in use"):
            metrics.start_listener(f"127.0.0.1:{port}")


def test_listener_on_ipv6_loopback(metrics: AgentMetrics) -> None:
    """`[::1]:PORT` serves /metrics over IPv6 loopback where the machine has it."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        host, port = metrics.start_listener("[::1]:0")
    except OSError as error:
        pytest.skip(f"IPv6 loopback unavailable: {error}")

    response = httpx.get(f"http://[{host}]:{port}/metrics", timeout=5)

    assert "receipt_agent_build_info" in response.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464))],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    """host:port as written in `metrics.listen` splits into host and port."""
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    "text", ["9464", ":9464", "localhost:", "localhost:http", "127.0.0.1:70000"]
)
def test_parse_host_port_rejects_malformed(text: str) -> None:
    """Anything but host:port is refused with the example to copy."""
    with pytest.raises(ValueError, match=r"write e\.g\. 127\.0\.0\.1:9464"):
        parse_host_port(text)


@pytest.mark.parametrize(
    ("listen", "reason"), [("127.0.0.1:0", "port 0 is any free port"), ("9464", "not host:port")]
)
def test_config_refuses_a_listen_address_a_scraper_cannot_use(
    listen: str, reason: str, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """`metrics.listen` is checked at load with the same host:port rule the listener uses."""
    raw = base_config(
        base_url="http://127.0.0.1:9/v1", spool_dir=tmp_path, state_dir=tmp_path / "state",
        secret_file=tmp_path / "secret", log_file=tmp_path / "agent.log",
        metrics={"listen": listen},
    )  # fmt: skip
    with pytest.raises(ConfigError, match=f"metrics.listen: .*{reason}"):
        load_config(write_config(raw))
