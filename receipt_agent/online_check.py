"""`check-config --online`: prove the API can be reached and read with this config.

Fetches a token, then makes one read-only call that needs a receipts scope,
`GET {base_url}/accounts/{aid}/receipts/search?receipt_id=<an id that cannot exist>`
(CONTRACT §1), and names the layer that failed, each as `dintero.<key>: <layer>: …`:

    DNS           the API's (or the proxy's) host name does not resolve
    connection    refused, or no answer (a firewall that drops)
    TLS           the certificate is not trusted (→ dintero.ca_file), or the handshake fails
    proxy         the proxy cannot be reached or refuses the tunnel (→ dintero.proxy)
    base URL      404: nothing of Dintero's at that URL
    credentials   401 from the token endpoint: client id or secret
    account       403 from the token endpoint: the client is not for this account
    scope         403 or 401 from the search: the client may not read receipts

A client that may write receipts but not read them (its token's `scope` claim says so)
passes with a warning: only a real send proves `write:receipts`. Never sends a receipt,
never prints the secret or the token; the API client is the daemon's own
(`api.DinteroClient`), so proxy and CA settings are exactly the ones `run` uses.
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import ssl
import urllib.request
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from receipt_agent.api import DinteroClient, error_message
from receipt_agent.config import DinteroConfig
from receipt_agent.errors import ConfigError, MisconfiguredError, TransientSendError

_READ_SCOPES = {"read:receipts", "admin:receipts"}
_WRITE_SCOPES = {"write:receipts", "admin:receipts"}


def check_online(dintero: DinteroConfig, secret: SecretStr) -> tuple[list[str], list[str]]:
    """Given `dintero:` and the secret, return (what passed, warnings).

    Raise ConfigError with one `(dintero.<key>, "<layer>: <what to fix>")` problem when a
    layer fails.
    """
    client = DinteroClient(dintero, secret)
    try:
        try:
            token = client.token(force=True)
        except TransientSendError as error:
            raise _unreachable(dintero, error) from None
        except MisconfiguredError as error:
            raise _token_refused(dintero, error) from None
        passed = [f"token: client {dintero.client_id!r} on account {dintero.account_id}"]
        probe = f"receipt-agent-check-{uuid.uuid4().hex}"
        try:
            response = client.request("GET", "/receipts/search", params={"receipt_id": probe})
        except TransientSendError as error:
            raise _unreachable(dintero, error) from None
        except MisconfiguredError:
            raise _problem(
                "dintero.client_id", "scope",
                "GET receipts/search answered 401 with a fresh token; the API client may not "
                "use the receipts API (give it write:receipts and read:receipts)",
            ) from None  # fmt: skip
        return _search_answer(dintero, response, token, passed)
    finally:
        client.close()


def _search_answer(
    dintero: DinteroConfig, response: httpx.Response, token: str, passed: list[str]
) -> tuple[list[str], list[str]]:
    status = response.status_code
    if status == 200:  # noqa: PLR2004
        passed.append("receipts: GET receipts/search answered 200 (the client may read receipts)")
        return passed, []
    if status == 403:  # noqa: PLR2004
        scopes = token_scopes(token)
        if scopes & _WRITE_SCOPES and not scopes & _READ_SCOPES:
            warning = (
                "dintero.client_id: the API client may write receipts but not read them "
                "(no read:receipts), so this check could not prove it; only a real send "
                "proves write:receipts (run `receipt-agent run --once` with one test file)"
            )
            return passed, [warning]
        raise _problem(
            "dintero.account_id", "account or scope",
            f"GET receipts/search answered 403 ({error_message(response)}); the API client "
            f"may not use receipts on account {dintero.account_id}: check dintero.account_id "
            "and give the client write:receipts and read:receipts in Dintero's back office",
        )  # fmt: skip
    if status == 404:  # noqa: PLR2004
        raise _base_url_problem(dintero, "GET receipts/search")
    raise _api_trouble(
        dintero, f"GET receipts/search answered {status} ({error_message(response)})"
    )


def _token_refused(dintero: DinteroConfig, error: MisconfiguredError) -> ConfigError:
    if error.status == 404:  # noqa: PLR2004
        return _base_url_problem(dintero, "the token request")
    if error.status == 403:  # noqa: PLR2004
        return _problem(
            "dintero.account_id", "account",
            f"the token endpoint refused client {dintero.client_id!r} for account "
            f"{dintero.account_id} (403); check dintero.account_id: the client belongs to "
            "another account, or test (T…) and production (P…) are mixed up",
        )  # fmt: skip
    return _problem(
        "dintero.client_id", "credentials",
        f"the token endpoint refused client {dintero.client_id!r} ({error.status}); check "
        "dintero.client_id and the client secret (a new secret is shown only once in "
        "Dintero's back office)",
    )  # fmt: skip


def _base_url_problem(dintero: DinteroConfig, what: str) -> ConfigError:
    """A 404 from the token or the search endpoint: base_url points at something else."""
    return _problem(
        "dintero.base_url", "base URL",
        f"{what} answered 404 at {dintero.base_url}; nothing of Dintero's API is there: "
        "Dintero's is https://api.dintero.com/v1 (the sandbox's http://127.0.0.1:PORT/v1)",
    )  # fmt: skip


def _api_trouble(dintero: DinteroConfig, answer: str) -> ConfigError:
    """An answer that names no config mistake (408, 429, 5xx, or none the check knows)."""
    return _problem(
        "dintero.base_url", "API",
        f"{answer}; the API may be down, or {dintero.base_url} is not Dintero's API: try "
        "again later",
    )  # fmt: skip


def _unreachable(dintero: DinteroConfig, error: TransientSendError) -> ConfigError:
    """Name the network layer that failed, from the exceptions under the client's error."""
    if error.status is not None:  # an answer, just not a usable one (408, 429, 5xx)
        return _api_trouble(dintero, str(error))
    url = urlsplit(dintero.base_url)
    host = url.hostname or "?"
    port = url.port or (443 if url.scheme == "https" else 80)
    proxy = _proxy_for(dintero)
    causes = list(_chain(error))
    if any(isinstance(cause, httpx.ProxyError) for cause in causes):
        return _problem(
            "dintero.proxy", "proxy",
            f"the proxy {_without_credentials(proxy)} refused to open a tunnel to {host}:{port}; "
            "check dintero.proxy (or HTTPS_PROXY) and that the proxy allows this host",
        )  # fmt: skip
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _problem(
                "dintero.ca_file", "TLS",
                f"the certificate of {host} is not trusted ({cause.verify_message}); if a "
                "store firewall inspects TLS, set dintero.ca_file to its CA bundle (PEM)",
            )  # fmt: skip
        if isinstance(cause, ssl.SSLError):
            return _problem(
                "dintero.base_url", "TLS",
                f"the TLS handshake with {host}:{port} failed ({cause.reason or cause}); "
                "is dintero.base_url https:// to a TLS port?",
            )  # fmt: skip
    where = f"the proxy {_without_credentials(proxy)}" if proxy else f"{host}:{port}"
    key = "dintero.proxy" if proxy else "dintero.base_url"
    layer = "proxy" if proxy else None
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            target = _without_credentials(proxy) if proxy else host
            return _problem(
                key, layer or "DNS",
                f"the name in {target} does not resolve ({cause.strerror}); check the "
                "spelling and this machine's DNS",
            )  # fmt: skip
        if isinstance(cause, ConnectionRefusedError):
            return _problem(
                key, layer or "connection",
                f"{where} refused the connection: nothing listens there or a firewall "
                f"rejects it; check {key}",
            )  # fmt: skip
        if isinstance(cause, httpx.TimeoutException | TimeoutError):
            return _problem(
                key, layer or "connection",
                f"no answer from {where} within {dintero.timeout:g}s; a firewall may drop "
                "the traffic (a store behind a proxy needs dintero.proxy)",
            )  # fmt: skip
    return _problem(key, layer or "connection", f"cannot reach {where} ({error})")


def _problem(key: str, layer: str, message: str) -> ConfigError:
    return ConfigError([(key, f"{layer}: {message}")])


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The exception and every cause or context under it (the client raises `from None`,
    which hides the httpx error from tracebacks but keeps it as __context__)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _proxy_for(dintero: DinteroConfig) -> str | None:
    """The proxy httpx uses for the base URL: dintero.proxy, else HTTPS_PROXY and friends."""
    if dintero.proxy:
        return dintero.proxy
    url = urlsplit(dintero.base_url)
    if url.hostname and urllib.request.proxy_bypass(url.hostname):
        return None
    environment = urllib.request.getproxies()
    return environment.get(url.scheme) or environment.get("all")


def _without_credentials(url: str | None) -> str:
    """A proxy URL fit to print: user and password dropped."""
    if not url:
        return "?"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def token_scopes(token: str) -> set[str]:
    """Given an access token, return the scopes its JWT claims name (empty when opaque)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return set()
    if not isinstance(claims, dict):
        return set()
    scope = claims.get("scope", claims.get("scopes", ""))
    items = scope.split() if isinstance(scope, str) else scope
    return {str(item) for item in items} if isinstance(items, list) else set()
