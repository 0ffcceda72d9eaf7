"""Config security rules: plain HTTP for production, overlapping sources, proxy, CA file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import certifi
import pytest

from receipt_agent.api import network_settings
from receipt_agent.config import load_config
from receipt_agent.config.environment import environment_problems as check_environment
from receipt_agent.config.rules import is_loopback_host
from receipt_agent.errors import ConfigError


def _config(tmp_path: Path, *paths: str, **dintero: Any) -> dict[str, Any]:
    (tmp_path / "spool").mkdir(exist_ok=True)
    return {
        "dintero": {"account_id": "T12345678", "client_id": "c", **dintero},
        "state_dir": "state",
        "sources": [
            {"name": f"till-{n}", "path": path, "format": "dintero-json", "store": {"id": f"s{n}"}}
            for n, path in enumerate(paths or ("spool",), start=1)
        ],
    }


def _problems(write_config: Callable[..., Path], config: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        load_config(write_config(config))
    except ConfigError as error:
        return error.problems
    return []


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.200.3.4", True),
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("sandbox.localhost", True),
        ("128.0.0.1", False),
        ("10.0.0.1", False),
        ("localhost.example.com", False),
        ("api.dintero.com", False),
        (None, False),
    ],
)
def test_is_loopback_host_accepts_only_this_machine(host: str | None, loopback: bool) -> None:
    """Only 127.0.0.0/8, ::1 and localhost count as this machine."""
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("account_id", "base_url", "refused"),
    [
        ("P12345678", "http://api.dintero.com/v1", True),
        ("P12345678", "http://10.1.2.3:8080/v1", True),
        ("P12345678", "HTTP://api.dintero.com/v1", True),
        ("P12345678", "https://api.dintero.com/v1", False),
        ("P12345678", "http://127.8.9.10:8080/v1", False),
        ("P12345678", "http://[::1]:8080/v1", False),
        ("P12345678", "http://localhost:8080/v1", False),
        ("T12345678", "http://test-api.store.lan/v1", False),
    ],
)
def test_load_config_production_account_over_plain_http_is_refused(
    tmp_path: Path, write_config: Callable[..., Path], account_id: str, base_url: str,
    refused: bool,
) -> None:  # fmt: skip
    """A `P…` account over http:// to anything but loopback is a `dintero.base_url` problem."""
    config = _config(tmp_path, account_id=account_id, base_url=base_url)
    problems = _problems(write_config, config)
    assert any(path == "dintero.base_url" for path, _ in problems) is refused, problems


@pytest.mark.parametrize(
    ("second", "overlaps"),
    [
        ("spool", True),
        ("./spool/", True),
        ("{tmp}/spool", True),
        ("spool/../spool", True),
        ("spool-link", True),
        ("spool/inner", True),
        (".", True),
        ("spool-2", False),
        ("elsewhere/spool", False),
    ],
)
def test_load_config_overlapping_source_folders_are_refused_naming_both(
    tmp_path: Path, write_config: Callable[..., Path], second: str, overlaps: bool
) -> None:
    """Folders compared resolved: same folder, a symlink to it, or nested, but not siblings."""
    (tmp_path / "spool" / "inner").mkdir(parents=True)
    (tmp_path / "spool-link").symlink_to(tmp_path / "spool")
    config = _config(tmp_path, "spool", second.format(tmp=tmp_path))
    problems = [p for p in _problems(write_config, config) if p[0] == "sources[1].path"]
    assert bool(problems) is overlaps, problems
    if overlaps:
        assert "'till-1'" in problems[0][1]
        assert "'till-2'" in problems[0][1]


@pytest.mark.parametrize(
    "proxy",
    ["ftp://proxy:21", "proxy.store.lan:3128", "http://", "http://proxy:3128/path", "socks"],
)
def test_load_config_unusable_proxy_is_a_dintero_proxy_problem(
    tmp_path: Path, write_config: Callable[..., Path], proxy: str
) -> None:
    """A proxy that is not `http(s)://host:port` is refused at load, as `dintero.proxy`."""
    problems = _problems(write_config, _config(tmp_path, proxy=proxy))
    assert [path for path, _ in problems] == ["dintero.proxy"]


@pytest.mark.parametrize(
    "proxy", ["http://proxy.store.lan:3128", "https://proxy:8443", "http://u:p@10.0.0.1:3128/"]
)
def test_load_config_http_proxy_is_accepted(
    tmp_path: Path, write_config: Callable[..., Path], proxy: str
) -> None:
    """`http://host:port` (with credentials, or a TLS proxy) is a valid `dintero.proxy`."""
    assert _problems(write_config, _config(tmp_path, proxy=proxy)) == []


_BROKEN_PEM = b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read"),
        (b"\x30\x82\x03\x0c\x30\x82\x01\xf4" + bytes(64), "no PEM certificate"),
        (_BROKEN_PEM, "cannot be loaded"),
    ],
)
def test_check_environment_unusable_ca_file_is_a_dintero_ca_file_problem(
    tmp_path: Path, write_config: Callable[..., Path], content: bytes | None, fragment: str
) -> None:
    """A missing, DER or broken-PEM CA file is reported by check-config and by the client."""
    if content is not None:
        (tmp_path / "ca.pem").write_bytes(content)
    config = load_config(write_config(_config(tmp_path, ca_file="ca.pem")))
    problems, _ = check_environment(config)
    messages = [message for path, message in problems if path == "dintero.ca_file"]
    assert len(messages) == 1
    assert fragment in messages[0]
    with pytest.raises(ConfigError) as raised:
        network_settings(config.dintero)
    assert raised.value.problems[0][0] == "dintero.ca_file"


def test_network_settings_with_ca_file_trusts_it_in_addition_to_the_usual_bundle(
    tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """The configured bundle is added to the default trust store, not swapped for it."""
    shutil.copyfile(certifi.where(), tmp_path / "ca.pem")
    config = load_config(write_config(_config(tmp_path, ca_file="ca.pem", proxy="http://p:3128")))
    settings = network_settings(config.dintero)
    assert settings["proxy"] == "http://p:3128"
    assert settings["verify"].cert_store_stats()["x509_ca"] > 0
    assert network_settings(load_config(write_config(_config(tmp_path))).dintero) == {}
