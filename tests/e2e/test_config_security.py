"""Config security through the installed CLI: plain HTTP, shared folders, proxy, CA file.

Each test writes a real config, runs `receipt-agent check-config` or `run --once` as a
subprocess and reads what an operator reads: the exit code, the `path: message` lines on
stderr, and what reached the sandbox (through a real forwarding proxy on loopback).
"""

from __future__ import annotations

import http.client
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import certifi
import pytest
from support import ACCOUNT, base_config, cli, drop, make_receipt

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.e2e

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te"}


def _config(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path, **dintero: Any
) -> dict[str, Any]:
    config = base_config(
        base_url=dintero.pop("base_url", "https://api.dintero.com/v1"),
        spool_dir=spool_dir,
        state_dir=state_dir,
        secret_file=secret_file,
        log_file=tmp_path / "agent.log",
    )
    config["dintero"].update(dintero)
    return config


def _problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": " in line and "config.invalid" not in line]


def test_check_config_with_production_account_over_plain_http_exits_2_naming_base_url(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> None:  # fmt: skip
    """`P…` with `http://api.dintero.com/v1` is refused: exit 2, `dintero.base_url: …`."""
    config = _config(
        tmp_path, spool_dir, state_dir, secret_file,
        account_id="P12345678", base_url="http://api.dintero.com/v1",
    )  # fmt: skip
    result = cli("check-config", "-c", str(write_config(config)))
    assert result.returncode == 2
    lines = _problem_lines(result.stderr)
    assert any(line.startswith("dintero.base_url: ") and "https://" in line for line in lines)
    run = cli("run", "--once", "-c", str(write_config(config)))
    assert run.returncode == 2
    assert "dintero.base_url: " in run.stderr


def test_check_config_with_production_account_on_loopback_http_passes(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> None:  # fmt: skip
    """`P…` with the sandbox on this machine (`http://127.0.0.1:…`) is a valid config."""
    config = _config(
        tmp_path, spool_dir, state_dir, secret_file,
        account_id="P12345678", base_url="http://127.0.0.1:8080/v1",
    )  # fmt: skip
    result = cli("check-config", "-c", str(write_config(config)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("config ok")


@pytest.mark.parametrize("layout", ["two_spellings", "symlink"])
def test_check_config_with_overlapping_source_folders_exits_2_naming_both(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path], layout: str,
) -> None:  # fmt: skip
    """Two sources on one folder, however written, are refused naming both sources."""
    link = tmp_path / "spool-link"
    link.symlink_to(spool_dir)
    second_path = {
        "two_spellings": f"{tmp_path}/./spool/",
        "symlink": str(link),
    }[layout]
    config = _config(tmp_path, spool_dir, state_dir, secret_file)
    config["sources"].append(
        {**config["sources"][0], "name": "till-2", "path": second_path, "store": {"id": "sc030"}}
    )
    result = cli("check-config", "-c", str(write_config(config)))
    assert result.returncode == 2
    lines = [line for line in _problem_lines(result.stderr) if line.startswith("sources[1].path: ")]
    assert len(lines) == 1, result.stderr
    assert "'till-1'" in lines[0]
    assert "'till-2'" in lines[0]


def test_check_config_with_missing_ca_file_exits_2_naming_dintero_ca_file(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> None:  # fmt: skip
    """A CA file that does not exist is named as `dintero.ca_file`, exit 2."""
    ca_file = tmp_path / "store-ca.pem"
    config = _config(tmp_path, spool_dir, state_dir, secret_file, ca_file=str(ca_file))
    result = cli("check-config", "-c", str(write_config(config)))
    assert result.returncode == 2
    assert any(line.startswith("dintero.ca_file: ") for line in _problem_lines(result.stderr))


def test_check_config_with_pem_ca_bundle_and_proxy_passes(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> None:  # fmt: skip
    """A readable PEM bundle and a `http://host:port` proxy are a valid config."""
    ca_file = tmp_path / "store-ca.pem"
    shutil.copyfile(certifi.where(), ca_file)
    config = _config(
        tmp_path, spool_dir, state_dir, secret_file,
        ca_file="store-ca.pem", proxy="http://proxy.store.lan:3128",
    )  # fmt: skip
    result = cli("check-config", "-c", str(write_config(config)))
    assert result.returncode == 0, result.stderr


def test_check_config_with_bad_proxy_names_dintero_proxy_without_its_password(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> None:  # fmt: skip
    """A proxy that is not `http(s)://host:port` is named, and its credentials are not shown."""
    config = _config(
        tmp_path, spool_dir, state_dir, secret_file, proxy="ftp://me:pw-canary-91@proxy:21/x"
    )
    result = cli("check-config", "-c", str(write_config(config)))
    assert result.returncode == 2
    assert any(line.startswith("dintero.proxy: ") for line in _problem_lines(result.stderr))
    assert "pw-canary-91" not in result.stderr + result.stdout


class _ForwardingProxy(ThreadingHTTPServer):
    """An HTTP forward proxy on 127.0.0.1 that counts the requests it forwarded.

    With `upstream` it is a reverse proxy to that host and port instead, and with `tls`
    it speaks HTTPS (a store firewall that terminates TLS with its own CA).
    """

    daemon_threads = True

    def __init__(
        self, upstream: tuple[str, int] | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream
        self.scheme = "http"
        if tls is not None:  # a failed handshake is an OSError in accept(): dropped
            self.socket = tls.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.forwarded: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ForwardingProxy

    def _forward(self) -> None:
        if self.server.upstream is not None:  # reverse proxy: origin-form /path?query
            host, port = self.server.upstream
            self.path = f"http://{host}:{port}{self.path}"
        target = urlsplit(self.path)  # absolute-form: http://host:port/path?query
        if target.scheme != "http" or not target.hostname:
            self.send_error(400, "absolute http:// URL expected")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        with self.server.lock:
            self.server.forwarded.append(f"{self.command} {target.path}")
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in _HOP_BY_HOP | {"content-length"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward  # noqa: N815 - http.server's method names

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads `forwarded`, not stderr."""


@pytest.fixture
def forwarding_proxy() -> Iterator[_ForwardingProxy]:
    proxy = _ForwardingProxy()
    thread = threading.Thread(target=proxy.serve_forever, name="test-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=5)


def test_run_once_with_dintero_proxy_delivers_through_that_proxy(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path], sandbox: Sandbox, forwarding_proxy: _ForwardingProxy,
) -> None:  # fmt: skip
    """`dintero.proxy` carries the token request and the POST to the sandbox.

    1. A forwarding proxy on loopback; the config names it in `dintero.proxy`.
    2. Drop two receipts and run `run --once`.
    Result: exit 0, the sandbox holds both receipts, and the proxy forwarded the token
    request and the receipts POST.
    """
    config = _config(
        tmp_path, spool_dir, state_dir, secret_file,
        base_url=sandbox.base_url, proxy=forwarding_proxy.url,
    )  # fmt: skip
    drop(spool_dir, "two.json", [make_receipt(1), make_receipt(2)])
    result = cli("run", "--once", "-c", str(write_config(config)))
    assert result.returncode == 0, result.stderr
    assert sorted(sandbox.receipt_ids(ACCOUNT)) == ["R000001", "R000002"]
    assert f"POST /v1/accounts/{ACCOUNT}/auth/token" in forwarding_proxy.forwarded
    assert f"POST /v1/accounts/{ACCOUNT}/receipts" in forwarding_proxy.forwarded


def test_run_once_with_unreachable_dintero_proxy_keeps_receipts_pending(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path], sandbox: Sandbox,
) -> None:  # fmt: skip
    """A proxy that is down is used, not bypassed: nothing reaches the sandbox, exit 1."""
    config = _config(
        tmp_path, spool_dir, state_dir, secret_file,
        base_url=sandbox.base_url, proxy="http://127.0.0.1:9",
    )  # fmt: skip
    drop(spool_dir, "one.json", [make_receipt(1)])
    result = cli("run", "--once", "-c", str(write_config(config)))
    assert result.returncode == 1, result.stderr
    assert sandbox.receipt_ids(ACCOUNT) == []


def _store_firewall_ca(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A private CA and a 127.0.0.1 server certificate it signed, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test CA")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca, server = folder / "store-ca.pem", folder / "server.pem"
    steps = [
        ["req", "-x509", *key, "-keyout", "ca.key", "-out", ca.name, "-days", "2",
         "-subj", "/CN=Store firewall test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", "ca.key",
         "-CAcreateserial", "-out", server.name, "-days", "2", "-extfile", "ext.cnf"],
    ]  # fmt: skip
    (folder / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    for step in steps:
        subprocess.run([openssl, *step], cwd=folder, check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server, folder / "server.key")
    return ca, context


def test_run_once_through_tls_inspecting_firewall_needs_its_ca_in_dintero_ca_file(
    tmp_path: Path, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path], sandbox: Sandbox,
) -> None:  # fmt: skip
    """An HTTPS endpoint signed by the store's own CA is trusted only with `dintero.ca_file`.

    1. A private CA (openssl) signs a certificate for 127.0.0.1; an HTTPS front with it
       forwards to the sandbox (a TLS-inspecting firewall in miniature).
    2. `run --once` without `ca_file`, then with it.
    Result: without, the certificate is refused and the receipt stays pending (exit 1);
    with, it is delivered through the front (exit 0).
    """
    certificates = tmp_path / "pki"
    certificates.mkdir()
    ca_file, tls = _store_firewall_ca(certificates)
    host, port = urlsplit(sandbox.base_url).hostname or "", urlsplit(sandbox.base_url).port or 0
    front = _ForwardingProxy(upstream=(host, port), tls=tls)
    thread = threading.Thread(target=front.serve_forever, name="test-tls-front", daemon=True)
    thread.start()
    try:
        config = _config(tmp_path, spool_dir, state_dir, secret_file, base_url=f"{front.url}/v1")
        drop(spool_dir, "one.json", [make_receipt(1)])
        refused = cli("run", "--once", "-c", str(write_config(config)))
        assert refused.returncode == 1, refused.stderr
        assert sandbox.receipt_ids(ACCOUNT) == []
        config["dintero"]["ca_file"] = str(ca_file)
        trusted = cli("run", "--once", "-c", str(write_config(config)))
        assert trusted.returncode == 0, trusted.stderr
        assert sandbox.receipt_ids(ACCOUNT) == ["R000001"]
        assert f"POST /v1/accounts/{ACCOUNT}/receipts" in front.forwarded
    finally:
        front.shutdown()
        front.server_close()
        thread.join(timeout=5)
