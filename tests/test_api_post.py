"""POST /receipts sent straight to the client's transport: the same request as httpx's own path."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr
from support import SECRET

from receipt_agent.api import DinteroClient
from receipt_agent.config import AgentConfig

TOKEN = {"access_token": "t-1", "token_type": "Bearer", "expires_in": 3600}
BODY = b'[{"receipt_id":"R-1"},{"receipt_id":"R-\xc3\xb8"}]'


def _api(
    seen: list[httpx.Request], *, cookie: str | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    """A stand-in API that records every receipts POST and accepts it."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/auth/token"):
            return httpx.Response(200, json=TOKEN)
        seen.append(request)
        headers = {"Set-Cookie": cookie} if cookie else {}
        return httpx.Response(200, json={"receipts": [{}, {}], "duplicates": 0}, headers=headers)

    return answer


def _wire(request: httpx.Request) -> tuple[object, ...]:
    """What goes on the wire for a request: method, URL, headers in order, body, timeout."""
    return (
        request.method,
        str(request.url),
        request.headers.raw,
        request.read(),
        request.extensions["timeout"],
    )


@pytest.mark.parametrize("expire_days", [None, 7])
def test_post_receipts_sends_what_the_httpx_client_would_send(
    make_config: Callable[..., AgentConfig], expire_days: int | None
) -> None:
    """The POST's method, URL (query included), headers in order, body and timeout are those
    of `httpx.Client.post` with the same arguments, and its answer is read as before."""
    seen: list[httpx.Request] = []
    config = make_config().dintero.model_copy(update={"receipt_token_expire_days": expire_days})
    client = DinteroClient(config, SecretStr(SECRET), transport=httpx.MockTransport(_api(seen)))
    try:
        result = client.post_receipts(BODY)
        token = client.token()
        client._http.post(
            client._receipts_url,
            content=BODY,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    finally:
        client.close()
    assert (result.status, result.created, result.duplicates) == (200, 2, 0)
    ours, httpx_own = seen
    assert _wire(ours) == _wire(httpx_own)


def test_post_receipts_keeps_and_sends_a_cookie_the_api_set(
    make_config: Callable[..., AgentConfig],
) -> None:
    """A cookie the API sets (a load balancer's) is kept and sent back, as httpx's client does."""
    seen: list[httpx.Request] = []
    api = _api(seen, cookie="lb=node-2; Path=/")
    client = DinteroClient(
        make_config().dintero, SecretStr(SECRET), transport=httpx.MockTransport(api)
    )
    try:
        client.post_receipts(BODY)
        client.post_receipts(BODY)
    finally:
        client.close()
    first, second = seen
    assert "cookie" not in first.headers
    assert second.headers["cookie"] == "lb=node-2"


def test_post_receipts_on_a_closed_client_fails_as_httpx_does(
    make_config: Callable[..., AgentConfig],
) -> None:
    """A POST after close() raises httpx's own RuntimeError, and nothing is sent."""
    seen: list[httpx.Request] = []
    client = DinteroClient(
        make_config().dintero, SecretStr(SECRET), transport=httpx.MockTransport(_api(seen))
    )
    client.token()
    client.close()
    with pytest.raises(RuntimeError, match="client has been closed"):
        client.post_receipts(BODY)
    assert seen == []
