"""HTTP face of the sandbox: routing, auth, faults and the Dintero-shaped answers.

Owns the wire behaviour of each endpoint (CONTRACT §5, API-NOTES §1–§4) on top of
stdlib `http.server` with HTTP/1.1 keep-alive: every answer carries a correct
Content-Length and is written in one `send`. Error bodies are Dintero's
`{"error": {"code", "message", "errors"?}}`. No per-request logging (the hot path must
stay lean); what happened is in the request records instead. Never stores or echoes
the Authorization value.

Routes (POST unless marked, under /v1/accounts/{aid} with aid matching ^[PT]\\d{8}$):
  /auth/token, /receipts, GET /receipts/search,
  /reports/generation, /settlements/reports/generate-test-report
GET /receipts/search needs read:receipts or admin:receipts, POST /receipts write:receipts or
admin:receipts: `Faults.scopes` is the API client's grant.
Test hooks (no auth, not recorded, not part of Dintero's API):
  GET /_sandbox/stats, GET /_sandbox/receipt-ids?account=, GET /_sandbox/receipts?account=,
  POST /_sandbox/faults (JSON object of Faults fields; "clear": true resets first),
  POST /_sandbox/reset (forget receipts, records and tokens).
Anything else: 404 with an error body.
"""

import base64
import binascii
import re
import socket
import struct
import time
import traceback
from datetime import UTC, datetime
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from receipt_agent import __version__
from receipt_agent.sandbox import reports
from receipt_agent.sandbox.faults import Decision
from receipt_agent.sandbox.state import DEFAULT_SCOPES, RecordedRequest

if TYPE_CHECKING:
    from receipt_agent.sandbox.server import SandboxHTTPServer

AUDIENCE = "https://api.dintero.com/v1/accounts/{account_id}"
_ROUTE = re.compile(
    r"^/v1/accounts/(?P<aid>[^/]+)/"
    r"(?P<endpoint>auth/token|receipts/search|receipts|reports/generation"
    r"|settlements/reports/generate-test-report)/?$"
)
_ENDPOINTS = {
    "auth/token": "token",
    "receipts": "receipts",
    "receipts/search": "search",
    "reports/generation": "reports",
    "settlements/reports/generate-test-report": "test_report",
}
_ACCOUNT = re.compile(r"^[PT]\d{8}$")
_JSON = "application/json"
_LINE_LIMIT = 65_537

Answer = tuple[int, bytes, str, tuple[tuple[str, str], ...], int | None]


def error_body(code: str, message: str, errors: list[dict[str, Any]] | None = None) -> bytes:
    """Return Dintero's error body (API-NOTES §1.5)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if errors is not None:
        error["errors"] = errors
    return orjson.dumps({"error": error})


def _error(status: int, code: str, message: str, errors: list[Any] | None = None) -> Answer:
    return status, error_body(code, message, errors), _JSON, (), None


class _DateHeader:
    """The Date header value, formatted once per second rather than once per answer."""

    second = -1
    value = ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.value, cls.second = formatdate(second, usegmt=True), second
        return cls.value


class SandboxHandler(BaseHTTPRequestHandler):
    """One connection's requests; `server` carries the state, faults and validator."""

    protocol_version = "HTTP/1.1"
    server_version = f"receipt-agent-sandbox/{__version__}"
    disable_nagle_algorithm = True
    server: "SandboxHTTPServer"

    def setup(self) -> None:
        # A load balancer closes idle keep-alive connections; clients must reconnect.
        super().setup()
        idle_s = self.server.faults.idle_timeout_s
        if idle_s > 0:
            self.connection.settimeout(idle_s)  # read timeout → stdlib closes the connection
        self.server.track(self.connection, opened=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, opened=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: no per-request logging (the records say what happened)."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    # -- plumbing --------------------------------------------------------------------

    def _read_body(self) -> bytes:
        """Return the request body, by Content-Length or chunked; ValueError if malformed."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline(_LINE_LIMIT).split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(_LINE_LIMIT).strip():
                        pass  # trailers, ignored
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(_LINE_LIMIT)  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = _JSON,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        phrase = HTTPStatus(status).phrase
        lines = [
            f"HTTP/1.1 {status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {_DateHeader.now()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{name}: {value}" for name, value in headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)

    def _dispatch(self) -> None:
        started = time.perf_counter()
        split = urlsplit(self.path)
        path, query_string = split.path, split.query
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True  # the stream position is lost: no keep-alive
            self._send(400, error_body("BAD_REQUEST", "malformed request body framing"))
            return
        if path.startswith("/_sandbox/"):
            status, payload = self.server.hook(self.command, path, query_string, body)
            self._send(status, payload)
            return
        route = _ROUTE.match(path)
        account_id = route["aid"] if route else None
        method = "GET" if route and route["endpoint"] == "receipts/search" else "POST"
        if route is None or self.command != method or not _ACCOUNT.match(route["aid"]):
            missing = _error(404, "NOT_FOUND", f"no such route: {self.command} {path}")
            self._finish(missing, started, path, query_string, account_id)
            return
        endpoint = _ENDPOINTS[route["endpoint"]]
        decision = self.server.faults.decide(endpoint)
        if decision.delay_s > 0:
            self.server.stopping.wait(decision.delay_s)
        if decision.action in ("reset", "hang"):
            size = _batch_size(body) if endpoint == "receipts" else None
            self._record(0, started, path, query_string, account_id, size)
            self._drop(decision)
            return
        answer: Answer
        if decision.action == "answer":
            answer = (
                decision.status,
                error_body(decision.code, decision.message),
                _JSON,
                decision.headers,
                None,
            )
        else:
            try:
                answer = self._answer(endpoint, account_id or "", query_string, body)
            except Exception:  # noqa: BLE001 - thread boundary: a sandbox bug must answer 500
                self.server.errors.append(traceback.format_exc())
                answer = _error(500, "SERVER_ERROR", "sandbox bug; see Sandbox.errors")
        if endpoint == "receipts" and answer[4] is None:  # refused before parsing: count anyway
            answer = (*answer[:4], _batch_size(body))
        self._finish(answer, started, path, query_string, account_id)

    def _finish(
        self, answer: Answer, started: float, path: str, query: str, account_id: str | None
    ) -> None:
        status, payload, content_type, headers, receipts = answer
        # Record before answering: a client that saw the answer must find the record.
        self._record(status, started, path, query, account_id, receipts)
        self._send(status, payload, content_type, headers)

    def _record(
        self,
        status: int,
        started: float,
        path: str,
        query: str,
        account_id: str | None,
        receipts: int | None,
    ) -> None:
        headers = {
            name: ("<redacted>" if name.lower() == "authorization" else value)
            for name, value in self.headers.items()
        }
        self.server.state.record(
            RecordedRequest(
                method=self.command,
                path=path,
                query=query,
                status=status,
                receipts=receipts,
                at=datetime.now(UTC),
                duration_ms=(time.perf_counter() - started) * 1000.0,
                headers=headers,
                account_id=account_id,
            )
        )

    def _drop(self, decision: Decision) -> None:
        """Leave the request unanswered: hang first if asked, then close (RST on reset)."""
        self.close_connection = True
        if decision.action == "hang":
            self.server.stopping.wait(decision.hang_s)
            return
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()  # with linger 0: the peer sees a reset, not a clean FIN

    # -- endpoints -------------------------------------------------------------------

    def _answer(self, endpoint: str, account_id: str, query_string: str, body: bytes) -> Answer:
        faults = self.server.faults
        limit = faults.max_batch_bytes if endpoint in faults.endpoints else 0
        if limit and len(body) > limit:
            return _error(413, "PAYLOAD_TOO_LARGE", f"request body is over {limit} bytes")
        if endpoint == "token":
            return self._token(account_id, body)
        refused = self._check_bearer(account_id)
        if refused is not None:
            return refused
        query = dict(parse_qsl(query_string, keep_blank_values=True))
        if endpoint in ("receipts", "search"):
            needed = "write:receipts" if endpoint == "receipts" else "read:receipts"
            granted = set((faults.scopes or DEFAULT_SCOPES).split())
            if not granted & {needed, "admin:receipts"}:
                return _error(403, "FORBIDDEN", f"the API client lacks the {needed} scope")
        if endpoint == "receipts":
            return self.server.post_receipts(account_id, query, body)
        if endpoint == "search":
            return self._search(account_id, query)
        if endpoint == "reports":
            return self._generate_report(query, body)
        return self._test_report(account_id, body)

    def _search(self, account_id: str, query: dict[str, str]) -> Answer:
        """`GET /receipts/search?receipt_id=`: `{receipts: [...], starting_after}` (API-NOTES)."""
        receipt_id = query.get("receipt_id", "")
        if not receipt_id:
            return _error(400, "BAD_REQUEST", "receipt_id is required")
        found = self.server.state.search(account_id, receipt_id)
        lost = self.server.faults.lose_receipt_id
        if lost and re.search(lost, receipt_id):
            found = []
        answer = {"receipts": found, "starting_after": None}
        return 200, orjson.dumps(answer), _JSON, (), None

    def _token(self, account_id: str, body: bytes) -> Answer:
        expected = (self.server.client_id, self.server.client_secret)
        if _basic_credentials(self.headers.get("Authorization", "")) != expected:
            return _error(401, "UNAUTHORIZED", "invalid client credentials")
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "INVALID_JSON", "request body is not JSON")
        if not isinstance(request, dict):
            return _error(400, "BAD_REQUEST", "request body must be a JSON object")
        if request.get("grant_type") != "client_credentials":
            return _error(400, "BAD_REQUEST", "grant_type must be client_credentials")
        audience = AUDIENCE.format(account_id=account_id)
        if "audience" not in request:
            return _error(400, "BAD_REQUEST", "audience is required")
        if request["audience"] != audience:
            return _error(403, "FORBIDDEN", f"audience must be {audience} for this account")
        lifetime = self.server.faults.token_lifetime_s
        token = self.server.state.issue_token(
            account_id, self.server.client_id, lifetime, self.server.faults.scopes
        )
        answer = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}
        return 200, orjson.dumps(answer), _JSON, (), None

    def _check_bearer(self, account_id: str) -> Answer | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "UNAUTHORIZED", "Access forbidden, missing bearer token")
        problem = self.server.state.check_token(token.strip(), account_id)
        if problem is not None:
            return _error(401, "UNAUTHORIZED", f"Access forbidden, {problem}")
        return None

    def _generate_report(self, query: dict[str, str], body: bytes) -> Answer:
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            return _error(400, "INVALID_JSON", "request body is not JSON")
        problems = reports.check_generation(query, parsed)
        if problems:
            return _error(400, "BAD_REQUEST", "invalid report generation request", problems)
        assert isinstance(parsed, list)  # noqa: S101 - check_generation guarantees it
        self.server.state.count_report(test_report=False)
        if reports.is_save(query):
            saved = {"id": self.server.new_id(), "message": "Report generated and saved"}
            return 201, orjson.dumps(saved), _JSON, (), None
        document = reports.render(query, parsed)
        language = (("Content-Language", query["template_accept_language"]),)
        return 200, document, query["template_accept"], language, None

    def _test_report(self, account_id: str, body: bytes) -> Answer:
        if account_id.startswith("P"):
            return _error(403, "FORBIDDEN", "test settlement reports are only for test accounts")
        try:
            parsed = orjson.loads(body) if body.strip() else None
        except orjson.JSONDecodeError:
            return _error(400, "INVALID_JSON", "request body is not JSON")
        problems = reports.check_test_report(parsed)
        if problems:
            return _error(400, "BAD_REQUEST", "invalid TestReportOptions", problems)
        self.server.state.count_report(test_report=True)
        nothing = self.server.faults.test_report_nothing
        if nothing is None:
            nothing = self.server.state.receipt_count(account_id) == 0
        if nothing:
            message = {"message": "No transactions to generate report"}
            return 200, orjson.dumps(message), _JSON, (), None
        return 201, orjson.dumps({"message": "Settlement report created"}), _JSON, (), None


def _batch_size(body: bytes) -> int | None:
    """Return how many receipts a POST /receipts body holds, None if it is no JSON array."""
    try:
        batch = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return len(batch) if isinstance(batch, list) else None


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None
