"""Dintero API client on httpx (CONTRACT §5): the one owner of every external call.

Owns the access token (fetched with client credentials, cached, renewed at half its
life, refreshed once on a 401), explicit timeouts, keep-alive connections and the
`User-Agent: receipt-agent/<version>` header, and turns HTTP answers into typed outcomes
or the errors of `errors.py`:

    2xx                → PostResult
    400, 422, other 4xx → RemoteRejectedError (the API's message)
    413                → PayloadTooLargeError
    401 after refresh  → MisconfiguredError (logs auth.failed)
    403, 404           → MisconfiguredError
    408, 429, 5xx, timeouts, connection errors → TransientSendError (retry_after when given)

Emits `auth.token_refreshed` and `auth.failed`. Never logs or raises with the secret, a
token, a header or a request body. Knows nothing of the state store.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
import tenacity
from pydantic import SecretStr

from receipt_agent import __version__, lean_import, refused
from receipt_agent.config import DinteroConfig, RetryConfig
from receipt_agent.config.environment import resolve_client_secret
from receipt_agent.config.rules import ca_file_problems
from receipt_agent.errors import (
    ConfigError,
    MisconfiguredError,
    PayloadTooLargeError,
    RemoteRejectedError,
    TransientSendError,
)

# httpx imports its command-line client (httpx._main: click, pygments, and rich's console,
# progress, syntax and table) whenever those are installed, and falls back to a stub
# `httpx.main` on ImportError: ~40 % of the imports of every start-up (~120 ms of
# `run --once`) for an `httpx` command receipt-agent never runs. Hiding `click` makes that
# import fail at its first line; nothing else of httpx uses it.
lean_import.import_hiding("httpx", "click")

import httpx  # noqa: E402 - after the import above, on purpose

AUDIENCE = "https://api.dintero.com/v1/accounts/{account_id}"
USER_AGENT = f"receipt-agent/{__version__}"
_MAX_MESSAGE = 500
# A report run and a reconcile search give up on a transient failure after this many tries.
TRANSIENT_ATTEMPTS = 5
# The longest Retry-After believed, for the sender and the report runner alike: a longer
# one (a server's wrong clock in an HTTP date, a typo) would stop delivery, or hold a
# scheduler thread, for hours. The pause is capped here, not ignored.
MAX_RETRY_AFTER_S = 900.0


@dataclass(frozen=True, slots=True)
class PostResult:
    """The API accepted a batch: how many were new, how many it already had."""

    status: int
    created: int
    duplicates: int
    ms: float


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Given a Retry-After header (seconds or an HTTP date), return seconds to wait.

    Never more than MAX_RETRY_AFTER_S; None when there is no usable header.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.now(UTC).timestamp() if now is None else now
        seconds = when.timestamp() - current
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def is_transient(status: int) -> bool:
    """Given an HTTP status, return whether the same request may succeed later (408, 429, 5xx)."""
    return status in (408, 429) or status >= 500  # noqa: PLR2004


def raise_if_transient(response: httpx.Response, what: str) -> None:
    """Raise TransientSendError, with the Retry-After hint, when `response` is worth retrying."""
    if is_transient(response.status_code):
        raise TransientSendError(
            f"{what} answered {response.status_code}: {error_message(response)}",
            status=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )


def backoff(retry: RetryConfig, *, jitter: bool = True) -> tenacity.wait.wait_base:
    """Given `retry:`, return the wait before each new try (a tenacity wait strategy).

    `initial`, 2×, 4×, … capped at `max`; with `jitter`, plus up to `initial` more, so
    agents that failed together do not retry together.
    """
    wait: tenacity.wait.wait_base = tenacity.wait_exponential(
        multiplier=retry.initial, max=retry.max
    )
    return wait + tenacity.wait_random(0, retry.initial) if jitter else wait


def retry_transient(
    retry: RetryConfig,
    sleep: Callable[[float], None],
    *,
    attempts: int = TRANSIENT_ATTEMPTS,
    jitter: bool = True,
) -> tenacity.Retrying:
    """Given `retry:` and a sleep (one a shutdown can cut short), return the retry policy.

    Retries TransientSendError up to `attempts` tries in all, waiting the backoff or the
    server's Retry-After when that is longer (capped by parse_retry_after); re-raises the
    last error. Any other error ends the tries at once.
    """
    wait = backoff(retry, jitter=jitter)

    def wait_for_server(state: tenacity.RetryCallState) -> float:
        waited = float(wait(state))
        error = state.outcome.exception() if state.outcome is not None else None
        hint = error.retry_after if isinstance(error, TransientSendError) else None
        return max(waited, hint or 0.0)

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=wait_for_server,
        retry=tenacity.retry_if_exception_type(TransientSendError),
        sleep=sleep,
        reraise=True,
    )


def error_message(response: httpx.Response) -> str:
    """Given an error response, return Dintero's `error.message` (+ field errors), short."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = f"HTTP {response.status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = str(error.get("message") or message)
        details = error.get("errors")
        if isinstance(details, list) and details:
            parts = []
            for detail in details[:5]:
                if isinstance(detail, dict):
                    where = detail.get("path") or detail.get("field") or ""
                    what = detail.get("message") or ""
                    parts.append(f"{where}: {what}" if where else str(what))
            if parts:
                message += " (" + "; ".join(parts) + ")"
    return message[:_MAX_MESSAGE]


def network_settings(config: DinteroConfig) -> dict[str, Any]:
    """Given `dintero:`, return the httpx proxy and TLS arguments (CONTRACT §2).

    Unset, httpx's own environment handling stays (`trust_env`): HTTPS_PROXY, NO_PROXY,
    SSL_CERT_FILE and SSL_CERT_DIR work as for any httpx program. `dintero.proxy` sends
    every request through that proxy (HTTPS is tunnelled with CONNECT, so TLS still ends
    at Dintero). `dintero.ca_file` is trusted in addition to the usual bundle. Raise
    ConfigError (`dintero.ca_file: …`) when the CA file cannot be loaded.
    """
    settings: dict[str, Any] = {}
    if config.proxy is not None:
        settings["proxy"] = config.proxy
    if config.ca_file is not None:
        if problems := ca_file_problems(config.ca_file):
            raise ConfigError(problems)
        context = httpx.create_ssl_context()
        context.load_verify_locations(cafile=str(config.ca_file))
        settings["verify"] = context
    return settings


class DinteroClient:
    """A thread-safe Dintero client for one account; close() it when done."""

    def __init__(
        self,
        config: DinteroConfig,
        client_secret: SecretStr,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self._secret = client_secret
        timeout = httpx.Timeout(config.timeout, connect=min(10.0, config.timeout))
        self._timeout = timeout.as_dict()  # a request's timeout extension, as the client sets it
        self._http = httpx.Client(
            timeout=timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=30),
            transport=transport,
            **network_settings(config),
        )
        self._token: str | None = None
        self._renew_at = 0.0
        self._token_lock = threading.Lock()
        # POST /receipts is the hot path (one per batch): its URL (query included) is
        # parsed once and its headers built once per token, not on every request. With
        # orjson for the answer: 2.74 → 2.18 M instructions a 100-receipt POST (callgrind).
        params = None
        if config.receipt_token_expire_days is not None:
            params = {"token_expire_days": config.receipt_token_expire_days}
        self._receipts_url = httpx.URL(self.account_url("/receipts"), params=params)
        self._receipts_headers: tuple[str, httpx.Headers] | None = None  # (token, headers)
        self.token_refreshes = 0
        self._log = structlog.get_logger("receipt_agent")

    def close(self) -> None:
        self._http.close()

    def account_url(self, path: str) -> str:
        return f"{self.config.base_url}/accounts/{self.config.account_id}{path}"

    # --- token ---------------------------------------------------------------------------

    def token(self, *, force: bool = False) -> str:
        """Return a valid access token, fetching one when missing, half-expired or forced.

        Raise MisconfiguredError when the credentials are refused, TransientSendError when
        the token endpoint cannot be reached or is overloaded.
        """
        with self._token_lock:
            if not force and self._token is not None and time.monotonic() < self._renew_at:
                return self._token
            audience = AUDIENCE.format(account_id=self.config.account_id)
            try:
                response = self._http.post(
                    self.account_url("/auth/token"),
                    auth=(self.config.client_id, self._secret.get_secret_value()),
                    json={"grant_type": "client_credentials", "audience": audience},
                )
            except httpx.HTTPError as error:
                raise TransientSendError(
                    f"token request failed: {type(error).__name__}; the API is unreachable"
                ) from None
            raise_if_transient(response, "token request")
            if response.status_code != 200:  # noqa: PLR2004
                message = (
                    f"the token endpoint refused client {self.config.client_id!r} for account "
                    f"{self.config.account_id} ({response.status_code}: "
                    f"{error_message(response)}); check dintero.client_id and the secret"
                )
                self._log.error(
                    "auth.failed", status=response.status_code, error=message, stage="token"
                )
                raise MisconfiguredError(message, status=response.status_code)
            body = response.json()
            expires_in = float(body.get("expires_in") or 3600)
            self._token = str(body["access_token"])
            # Renew at half the token's life at the latest (CONTRACT §5).
            self._renew_at = time.monotonic() + expires_in / 2
            self.token_refreshes += 1
            self._log.info("auth.token_refreshed", expires_in=int(expires_in))
            return self._token

    # --- requests ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send an authorised request to `/accounts/{aid}{path}`; refresh once on 401.

        Return the response whatever its status except a 401 that survives a refresh
        (MisconfiguredError). Raise TransientSendError on timeouts and connection errors.
        """
        all_headers = dict(headers or {})
        if json is not None:
            content = orjson.dumps(json)
            all_headers.setdefault("Content-Type", "application/json")
        url = self.account_url(path)

        def send(token: str) -> httpx.Response:
            all_headers["Authorization"] = f"Bearer {token}"
            return self._http.request(
                method, url, params=params, content=content, headers=all_headers
            )

        return self._authorised(method, path, send)

    def _authorised(
        self, method: str, path: str, send: Callable[[str], httpx.Response]
    ) -> httpx.Response:
        """`send(token)` with a valid token, and once more with a fresh one after a 401."""
        for attempt in (1, 2):
            try:
                response = send(self.token(force=attempt == 2))  # noqa: PLR2004
            except httpx.TimeoutException:
                raise TransientSendError(
                    f"{method} {path} timed out after {self.config.timeout:g}s"
                ) from None
            except httpx.HTTPError as error:
                raise TransientSendError(
                    f"{method} {path} failed: {type(error).__name__}; the API is unreachable"
                ) from None
            if response.status_code != 401:  # noqa: PLR2004
                return response
        message = (
            f"{method} {path} answered 401 with a fresh token ({error_message(response)}); "
            "the API client lacks the scope for this call or was revoked"
        )
        self._log.error("auth.failed", status=401, error=message, stage="request")
        raise MisconfiguredError(message, status=401)

    def post_receipts(self, body: bytes) -> PostResult:
        """Given a JSON array of receipts as bytes, POST it and return the outcome.

        Raise RemoteRejectedError (400/422/4xx), PayloadTooLargeError (413),
        MisconfiguredError (401 after refresh, 403, 404) or TransientSendError.
        """
        started = time.monotonic()
        response = self._authorised("POST", "/receipts", lambda token: self._post(body, token))
        ms = (time.monotonic() - started) * 1000
        status = response.status_code
        if 200 <= status < 300:  # noqa: PLR2004
            try:
                # orjson: half the instructions of response.json() on the ~16 KB answer
                # to 100 receipts (one entity each). Dintero answers in UTF-8.
                answer = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                answer = {}
            created = len(answer.get("receipts") or []) if isinstance(answer, dict) else 0
            duplicates = int(answer.get("duplicates") or 0) if isinstance(answer, dict) else 0
            return PostResult(status=status, created=created, duplicates=duplicates, ms=ms)
        # The API may quote what it refused; those values may be personal data (CONTRACT §6).
        message = refused.scrub(error_message(response), body)
        if status == 413:  # noqa: PLR2004
            raise PayloadTooLargeError(
                f"the API refused the batch as too large: {message}", status=413
            )
        if status in (403, 404):
            raise MisconfiguredError(
                f"POST receipts answered {status} ({message}); check dintero.base_url, "
                "dintero.account_id and the API client's scopes (write:receipts)",
                status=status,
            )
        raise_if_transient(response, "POST receipts")
        raise RemoteRejectedError(message, status=status)

    def _headers_for_receipts(self, token: str) -> httpx.Headers:
        """POST /receipts' headers for `token` merged onto the client's own, as
        `httpx.Client.build_request` merges them; built once per token (threads share them)."""
        cached = self._receipts_headers
        if cached is None or cached[0] != token:
            headers = httpx.Headers(self._http.headers)
            headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            cached = self._receipts_headers = (token, headers)
        return cached[1]

    def _post(self, body: bytes, token: str) -> httpx.Response:
        """POST /receipts: the request `self._http.post` would send, byte for byte, handed
        straight to the transport the client picks for the URL (its proxy, or its pool).

        `Client.send`'s own work per request is for what this POST never uses: auth flows,
        redirects, event hooks, cookie jars (looked up only when the API set a cookie; the
        client's own path once one is held), and an INFO line our logging drops (httpx is
        held at WARNING). Skipping it: 1.83 → ~1.3 M instructions a 100-receipt POST
        (callgrind).
        """
        http = self._http
        if http.is_closed or http.cookies:
            # The client's own path: its "client has been closed" error, its cookies sent.
            return http.post(
                self._receipts_url, content=body, headers=self._headers_for_receipts(token)
            )
        request = httpx.Request(
            "POST",
            self._receipts_url,
            headers=self._headers_for_receipts(token),
            content=body,
            extensions={"timeout": self._timeout},
        )
        # The client's choice of transport for the URL: its proxy mount, or its pool.
        response = http._transport_for_url(request.url).handle_request(request)
        response.request = request
        try:
            response.read()
        finally:
            response.close()
        if "set-cookie" in response.headers:
            http.cookies.extract_cookies(response)
        return response


def open_client(config: DinteroConfig) -> DinteroClient:
    """Given `dintero:`, return a client holding the secret found in the contract's order.

    For the one-shot commands (the daemon keeps its secret for reloads). Raise ConfigError
    when no secret can be read; close() the client when done.
    """
    secret, _warnings = resolve_client_secret(config)
    return DinteroClient(config, secret)


def search_receipt(client: DinteroClient, receipt_id: str) -> bool:
    """Given a receipt_id, return whether Dintero holds it (`GET /receipts/search`, §7).

    Raise MisconfiguredError (401 after refresh, 403, 404: the client lacks read:receipts)
    or TransientSendError (408, 429, 5xx, timeouts; Retry-After kept).
    """
    response = client.request("GET", "/receipts/search", params={"receipt_id": receipt_id})
    status = response.status_code
    if status == 200:  # noqa: PLR2004
        try:
            body = response.json()
        except ValueError:
            body = {}
        found = body.get("receipts") if isinstance(body, dict) else body
        return isinstance(found, list) and any(
            isinstance(item, dict) and item.get("receipt_id") == receipt_id for item in found
        )
    raise_if_transient(response, "GET receipts/search")
    message = error_message(response)
    raise MisconfiguredError(
        f"GET receipts/search answered {status} ({message}); the API client needs the "
        "read:receipts scope for reconcile --remote",
        status=status,
    )
