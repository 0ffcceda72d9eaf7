"""`check-config --online` names the layer that fails (CONTRACT §1, issue 16).

Each fault is real and on loopback: the sandbox with a wrong secret, a 403 or a client
that may only write; a closed port; a wrong path under the sandbox (404); a TLS server
with a self-signed certificate made by openssl for the test; a proxy port nothing
listens on. Every failure is exit 2 and one `dintero.<key>: <layer>: …` line.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import base_config, cli, free_port

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.e2e


@pytest.fixture
def check(
    tmp_path: Path, spool_dir: Path, secret_file: Path, write_config: Callable[..., Path]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `check-config --online` against `base_url` with `dintero:` changes."""

    def run(base_url: str, **dintero: Any) -> subprocess.CompletedProcess[str]:
        config = base_config(
            base_url=base_url, spool_dir=spool_dir, state_dir=tmp_path / "state",
            secret_file=secret_file, log_file=tmp_path / "agent.log",
        )  # fmt: skip
        config["dintero"].update(dintero)
        return cli("check-config", "--online", "-c", str(write_config(config)))

    return run


def _failure(result: subprocess.CompletedProcess[str]) -> str:
    """The one problem line of a failed online check (asserting it is printed once)."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "config ok" not in result.stdout
    return lines[0]


def test_online_check_passes_with_a_client_that_may_read_receipts(
    check: Callable[..., subprocess.CompletedProcess[str]], sandbox: Sandbox
) -> None:
    """The sandbox's default client: a token, then 200 from receipts/search; config ok."""
    result = check(sandbox.base_url)

    assert result.returncode == 0, result.stderr
    assert "online ok: token" in result.stdout
    assert "online ok: receipts: GET receipts/search answered 200" in result.stdout
    assert result.stdout.strip().endswith("config ok")
    searches = [r for r in sandbox.requests if r.path.endswith("/receipts/search")]
    assert len(searches) == 1
    assert searches[0].method == "GET"
    assert sandbox.receipt_ids("T12345678") == []


def test_wrong_secret_is_named_credentials(
    check: Callable[..., subprocess.CompletedProcess[str]], sandbox: Sandbox, tmp_path: Path
) -> None:
    """401 from the token endpoint: `dintero.client_id: credentials: …`."""
    wrong = tmp_path / "wrong_secret"
    wrong.write_text("not-the-secret\n")
    wrong.chmod(0o600)

    line = _failure(check(sandbox.base_url, client_secret_file=str(wrong)))

    assert line.startswith("dintero.client_id: credentials: the token endpoint refused")
    assert "not-the-secret" not in line


def test_forbidden_receipts_are_named_account_or_scope(
    check: Callable[..., subprocess.CompletedProcess[str]], sandbox: Sandbox
) -> None:
    """403 from receipts/search for a client with every receipts scope: account or scope."""
    sandbox.set_faults(forbidden=True, endpoints="search")

    line = _failure(check(sandbox.base_url))

    assert line.startswith("dintero.account_id: account or scope: GET receipts/search answered")
    assert "403" in line


def test_a_client_that_may_only_write_passes_with_a_warning(
    check: Callable[..., subprocess.CompletedProcess[str]], sandbox: Sandbox
) -> None:
    """Scope write:receipts only: the search is refused, exit 0, and a warning says that
    only a real send proves write:receipts."""
    sandbox.set_faults(scopes="write:receipts")

    result = check(sandbox.base_url)

    assert result.returncode == 0, result.stderr
    assert "only a real send proves write:receipts" in result.stderr
    assert "config ok" in result.stdout


def test_wrong_path_under_the_api_host_is_named_base_url(
    check: Callable[..., subprocess.CompletedProcess[str]], sandbox: Sandbox
) -> None:
    """A base_url whose path is wrong answers 404: `dintero.base_url: base URL: …`."""
    line = _failure(check(f"{sandbox.url}/api/v1"))

    assert line.startswith("dintero.base_url: base URL: the token request answered 404")


def test_closed_port_is_named_connection(
    check: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    """Nothing listens on the port: `dintero.base_url: connection: … refused`."""
    port = free_port()

    line = _failure(check(f"http://127.0.0.1:{port}/v1"))

    assert line.startswith(f"dintero.base_url: connection: 127.0.0.1:{port} refused")


def test_unknown_host_is_named_dns(check: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    """A host name that cannot resolve (.invalid never does): `… DNS: …`."""
    line = _failure(check("https://no-such-host.invalid/v1"))

    assert line.startswith("dintero.base_url: DNS: the name in no-such-host.invalid")


def test_dead_proxy_is_named_proxy(
    check: Callable[..., subprocess.CompletedProcess[str]], sandbox: Sandbox
) -> None:
    """dintero.proxy on a port nothing listens on: `dintero.proxy: proxy: …`, not the API."""
    port = free_port()

    line = _failure(check(sandbox.base_url, proxy=f"http://127.0.0.1:{port}"))

    assert line.startswith(f"dintero.proxy: proxy: the proxy http://127.0.0.1:{port} refused")


class _NotDintero(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the agent's output, not this server's."""


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback with a self-signed certificate (openssl); (url, cert)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotDintero)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/v1", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_self_signed_certificate_is_named_tls_and_ca_file_fixes_it(
    check: Callable[..., subprocess.CompletedProcess[str]], tls_server: tuple[str, Path]
) -> None:
    """1. HTTPS with a self-signed certificate: `dintero.ca_file: TLS: … not trusted`.
    2. The same with dintero.ca_file naming that certificate: TLS passes and the next
    layer is named (this server is not Dintero: base URL).
    """
    url, cert = tls_server

    untrusted = _failure(check(url))

    assert untrusted.startswith("dintero.ca_file: TLS: the certificate of 127.0.0.1 is not")
    assert "set dintero.ca_file" in untrusted

    trusted = _failure(check(url, ca_file=str(cert)))

    assert trusted.startswith("dintero.base_url: base URL:")
