"""The sandbox API over a real loopback socket: auth, receipts, reports, faults, process mode."""

import base64
import copy
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine

from receipt_agent.sandbox import Faults, Sandbox
from receipt_agent.sandbox.reports import pdf
from receipt_agent.sandbox.schema import ReceiptValidator, load_schema

ACCOUNT = "T12345678"
PRODUCTION = "P12345678"
AUDIENCE = "https://api.dintero.com/v1/accounts/{}"


def _receipt(receipt_id: str, **changes: Any) -> dict[str, Any]:
    receipt: dict[str, Any] = {
        "store": {"id": "sc029", "name": "SC Oslo"},
        "receipt_id": receipt_id,
        "purchase_at": "2025-03-01T10:15:00+01:00",
        "currency": "NOK",
        "gross_amount": 12500,
        "net_amount": 12500,
        "items": [
            {
                "id": "175938",
                "line_id": 1,
                "description": "Stablestol",
                "quantity": 1,
                "gross_amount": 12500,
                "net_amount": 12500,
                "tax_percent": 25,
            }
        ],
        "payments": [{"line_id": 1, "amount": 12500, "type_id": "card"}],
        "tax_lines": [{"amount": 2500, "percentage": 25, "tax_basis": 10000}],
    }
    receipt.update(changes)
    return receipt


def _example_receipt() -> dict[str, Any]:
    text = files("receipt_agent.sandbox").joinpath("example-receipt.json").read_text("utf-8")
    receipt: dict[str, Any] = json.loads(text)
    return receipt


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A sandbox on 127.0.0.1:0 in a thread; a sandbox bug (500) fails the test."""
    with Sandbox(client_id="demo", client_secret="demo-secret", port=0) as running:
        yield running
        assert running.errors == []


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An httpx client on the sandbox's base URL with a short timeout."""
    with httpx.Client(base_url=sandbox.base_url, timeout=5.0) as http:
        yield http


def _token(client: httpx.Client, account: str = ACCOUNT) -> str:
    answer = client.post(
        f"/accounts/{account}/auth/token",
        auth=("demo", "demo-secret"),
        json={"grant_type": "client_credentials", "audience": AUDIENCE.format(account)},
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


@pytest.fixture
def authed(client: httpx.Client) -> httpx.Client:
    """The client with a valid bearer token for ACCOUNT."""
    client.headers["Authorization"] = f"Bearer {_token(client)}"
    return client


def _post(client: httpx.Client, receipts: list[dict[str, Any]], **params: Any) -> httpx.Response:
    return client.post(f"/accounts/{ACCOUNT}/receipts", json=receipts, params=params)


# -- token ---------------------------------------------------------------------------


def test_token_with_good_credentials_returns_bearer_token(client: httpx.Client) -> None:
    """A client with the configured id and secret gets a Bearer token and its lifetime."""
    answer = client.post(
        f"/accounts/{ACCOUNT}/auth/token",
        auth=("demo", "demo-secret"),
        json={"grant_type": "client_credentials", "audience": AUDIENCE.format(ACCOUNT)},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"]


def test_token_with_wrong_secret_returns_401_error_body(client: httpx.Client) -> None:
    """A wrong client secret is refused with 401 and Dintero's error body."""
    answer = client.post(
        f"/accounts/{ACCOUNT}/auth/token",
        auth=("demo", "wrong"),
        json={"grant_type": "client_credentials", "audience": AUDIENCE.format(ACCOUNT)},
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["message"]


def test_token_without_basic_auth_returns_401(client: httpx.Client) -> None:
    """A token request without HTTP Basic credentials is refused with 401."""
    answer = client.post(
        f"/accounts/{ACCOUNT}/auth/token",
        json={"grant_type": "client_credentials", "audience": AUDIENCE.format(ACCOUNT)},
    )
    assert answer.status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"grant_type": "client_credentials", "audience": AUDIENCE.format("T87654321")}, 403),
        ({"grant_type": "client_credentials"}, 400),
        ({"grant_type": "password", "audience": AUDIENCE.format(ACCOUNT)}, 400),
        (["not", "an", "object"], 400),
    ],
)
def test_token_with_bad_body_is_refused(client: httpx.Client, body: Any, status: int) -> None:
    """A wrong audience (403), a missing audience or a wrong grant type (400) is refused."""
    answer = client.post(f"/accounts/{ACCOUNT}/auth/token", auth=("demo", "demo-secret"), json=body)
    assert answer.status_code == status
    assert "error" in answer.json()


def test_token_of_another_account_returns_401_on_receipts(client: httpx.Client) -> None:
    """A token issued for one account does not open another account's receipts."""
    client.headers["Authorization"] = f"Bearer {_token(client, 'T87654321')}"
    assert _post(client, [_receipt("1")]).status_code == 401


def test_token_after_expire_tokens_returns_401(sandbox: Sandbox, authed: httpx.Client) -> None:
    """Once the sandbox expires its tokens, the old token gets 401 and a new one works."""
    assert _post(authed, [_receipt("1")]).status_code == 200
    sandbox.expire_tokens()
    refused = _post(authed, [_receipt("2")])
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]["message"]
    authed.headers["Authorization"] = f"Bearer {_token(authed)}"
    assert _post(authed, [_receipt("2")]).status_code == 200


def test_token_past_its_lifetime_returns_401(sandbox: Sandbox, client: httpx.Client) -> None:
    """A token really expires after token_lifetime_s (the clock is moved with time-machine)."""
    sandbox.faults.token_lifetime_s = 60
    client.headers["Authorization"] = f"Bearer {_token(client)}"
    assert _post(client, [_receipt("1")]).status_code == 200
    with time_machine.travel(datetime.now(UTC) + timedelta(seconds=61)):
        assert _post(client, [_receipt("2")]).status_code == 401


def test_token_lifetime_fault_sets_expires_in(sandbox: Sandbox, client: httpx.Client) -> None:
    """token_lifetime_s is what the token endpoint reports as expires_in."""
    sandbox.set_faults(token_lifetime_s=120)
    answer = client.post(
        f"/accounts/{ACCOUNT}/auth/token",
        auth=("demo", "demo-secret"),
        json={"grant_type": "client_credentials", "audience": AUDIENCE.format(ACCOUNT)},
    )
    assert answer.json()["expires_in"] == 120


# -- receipts ------------------------------------------------------------------------


def test_receipts_without_token_returns_401(client: httpx.Client) -> None:
    """POST /receipts without a bearer token is refused with 401 and an error body."""
    answer = _post(client, [_receipt("1")])
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "UNAUTHORIZED"


def test_receipts_with_unknown_token_returns_401(client: httpx.Client) -> None:
    """A made-up bearer token is refused with 401."""
    client.headers["Authorization"] = "Bearer not-a-token"
    assert _post(client, [_receipt("1")]).status_code == 401


def test_receipts_valid_batch_returns_one_entity_per_receipt(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """A valid batch is stored and answered with one entity (uuid, created_at) per receipt."""
    answer = _post(authed, [_receipt(str(n)) for n in range(3)])
    assert answer.status_code == 200
    body = answer.json()
    assert body["duplicates"] == 0
    assert len(body["receipts"]) == 3
    for entity in body["receipts"]:
        uuid.UUID(entity["id"])
        assert entity["created_at"].endswith("Z")
        assert entity["created_by"]
    assert sandbox.receipt_ids(ACCOUNT) == ["0", "1", "2"]
    assert sandbox.receipts(ACCOUNT)[0]["store"]["id"] == "sc029"


def test_receipts_resent_are_counted_as_duplicates_and_not_stored_twice(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """Receipts already held (or repeated within a batch) count as duplicates, stored once."""
    assert _post(authed, [_receipt("1"), _receipt("2")]).status_code == 200
    answer = _post(authed, [_receipt("2"), _receipt("3"), _receipt("3")])
    assert answer.status_code == 200
    assert answer.json()["duplicates"] == 2
    assert len(answer.json()["receipts"]) == 1
    assert sandbox.receipt_ids(ACCOUNT) == ["1", "2", "3"]
    assert sandbox.stats()["duplicates"] == 2


def test_receipts_full_documented_example_is_accepted(authed: httpx.Client) -> None:
    """The docs' full example receipt (every documented field) passes validation."""
    answer = _post(authed, [_example_receipt()])
    assert answer.status_code == 200, answer.text


def test_receipts_invalid_item_amount_refuses_whole_batch_with_path(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """A float item amount refuses the whole batch with 400 naming receipt and field path."""
    bad = _receipt("bad")
    bad["items"][0]["gross_amount"] = 125.5
    answer = _post(authed, [_receipt("good"), bad])
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "INVALID_RECEIPT"
    assert error["errors"] == [
        {
            "receipt_index": 1,
            "receipt_id": "bad",
            "path": "items.0.gross_amount",
            "message": "125.5 is not of type 'integer'",
        }
    ]
    assert sandbox.receipt_ids(ACCOUNT) == []


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"receipt_id": ""}, "receipt_id"),
        ({"purchase_at": "2025-03-01T10:15:00"}, "purchase_at"),
        ({"purchase_at": "01.03.2025 10:15"}, "purchase_at"),
        ({"customer_id": " C1"}, "customer_id"),
        ({"customer_id": "C" * 256}, "customer_id"),
        ({"currency": "kr"}, "currency"),
        ({"entry_status": "Done"}, "entry_status"),
        ({"gross_amount": "12500"}, "gross_amount"),
        ({"store": {"name": "no id"}}, "store.id"),
        ({"delivery": {"phone_number": "98765432x"}}, "delivery.phone_number"),
        ({"stor": {"id": "typo"}}, ""),
        ({"tax_lines": [{"amount": 2500.0}]}, "tax_lines.0.amount"),
    ],
)
def test_receipts_schema_violation_returns_400_with_path(
    authed: httpx.Client, changes: dict[str, Any], path: str
) -> None:
    """Each documented constraint is enforced and the error names the offending path."""
    receipt = _receipt("r1")
    receipt.update(changes)
    answer = _post(authed, [receipt])
    assert answer.status_code == 400
    assert path in [error["path"] for error in answer.json()["error"]["errors"]]


def test_receipts_missing_receipt_id_is_reported_at_its_own_path(authed: httpx.Client) -> None:
    """A missing required field is reported at its own path, with receipt_id null."""
    receipt = _receipt("x")
    del receipt["receipt_id"]
    errors = _post(authed, [receipt]).json()["error"]["errors"]
    assert errors[0]["path"] == "receipt_id"
    assert errors[0]["receipt_id"] is None


@pytest.mark.parametrize("body", [b'{"receipt_id": "1"}', b"not json", b"[1, 2]"])
def test_receipts_body_not_an_array_of_receipts_returns_400(
    authed: httpx.Client, body: bytes
) -> None:
    """A body that is not a JSON array of receipt objects is refused with 400."""
    answer = authed.post(
        f"/accounts/{ACCOUNT}/receipts",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert "error" in answer.json()


def test_receipts_token_expire_days_adds_receipt_token_extra_info(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """With token_expire_days the stored receipt carries Dintero's receipt-token extra_info."""
    assert _post(authed, [_receipt("1")], token_expire_days=30).status_code == 200
    keys = [entry["key"] for entry in sandbox.receipts(ACCOUNT)[0]["extra_info"]]
    assert keys == [
        "dintero.receipt.token.value",
        "dintero.receipt.token.expires_at",
        "dintero.receipt.token.url",
    ]


@pytest.mark.parametrize("days", ["0", "-1", "soon"])
def test_receipts_token_expire_days_below_one_returns_400(authed: httpx.Client, days: str) -> None:
    """token_expire_days must be an integer of at least 1."""
    assert _post(authed, [_receipt("1")], token_expire_days=days).status_code == 400


def test_receipts_empty_array_returns_200_with_nothing_created(authed: httpx.Client) -> None:
    """An empty array is accepted and creates nothing."""
    answer = _post(authed, [])
    assert answer.status_code == 200
    assert answer.json() == {"receipts": [], "duplicates": 0}


def test_receipts_concurrent_posts_store_each_receipt_once(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    """Eight threads posting overlapping batches leave each receipt_id stored exactly once."""
    token = _token(client)
    statuses: list[int] = []

    def send(worker: int) -> None:
        with httpx.Client(base_url=sandbox.base_url, timeout=5.0) as own:
            for start in range(0, 200, 50):
                ids = [str(n) for n in range(start, start + 50)]
                answer = own.post(
                    f"/accounts/{ACCOUNT}/receipts",
                    json=[_receipt(i) for i in ids],
                    headers={"Authorization": f"Bearer {token}"},
                )
                statuses.append(answer.status_code)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) == {200}
    assert sorted(sandbox.receipt_ids(ACCOUNT), key=int) == [str(n) for n in range(200)]
    assert sandbox.stats()["duplicates"] == 7 * 200


# -- records -------------------------------------------------------------------------


def test_records_keep_headers_without_the_authorization_value(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """Recorded requests carry method, path, status, batch size and headers, never the token."""
    token = authed.headers["Authorization"]
    _post(authed, [_receipt("1"), _receipt("2")])
    records = sandbox.requests
    assert [(r.method, r.path, r.status) for r in records] == [
        ("POST", f"/v1/accounts/{ACCOUNT}/auth/token", 200),
        ("POST", f"/v1/accounts/{ACCOUNT}/receipts", 200),
    ]
    last = records[-1]
    assert last.receipts == 2
    assert last.account_id == ACCOUNT
    assert last.headers["Authorization"] == "<redacted>"
    assert token.split()[1] not in repr(records)
    assert records[0].headers["Authorization"] == "<redacted>"
    assert sandbox.token_issues == 1
    assert sandbox.receipt_posts == 1


def test_unknown_route_returns_404_error_body(client: httpx.Client) -> None:
    """Unknown paths, wrong methods and malformed account ids get 404 with an error body."""
    for method, path in [
        ("GET", "/nothing"),
        ("GET", f"/accounts/{ACCOUNT}/receipts"),
        ("POST", "/accounts/X1/receipts"),
        ("POST", f"/accounts/{ACCOUNT}/receipts/extra"),
    ]:
        answer = client.request(method, path)
        assert answer.status_code == 404, path
        assert answer.json()["error"]["code"] == "NOT_FOUND"


# -- faults --------------------------------------------------------------------------


def test_fault_error_every_answers_5xx_to_every_nth_request(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """error_every=2 with error_status=502 fails the 2nd and 4th POST, not the others."""
    sandbox.set_faults(error_every=2, error_status=502)
    statuses = [_post(authed, [_receipt(str(n))]).status_code for n in range(4)]
    assert statuses == [200, 502, 200, 502]
    assert [r.receipts for r in sandbox.requests[1:]] == [1, 1, 1, 1]
    assert sandbox.receipt_ids(ACCOUNT) == ["0", "2"]


def test_fault_error_rate_one_answers_every_request_with_5xx(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """error_rate=1.0 fails every request with the error body and stores nothing."""
    sandbox.faults.error_rate = 1.0
    answer = _post(authed, [_receipt("1")])
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "SERVER_ERROR"
    assert sandbox.receipt_ids(ACCOUNT) == []


def test_fault_seed_makes_random_faults_reproducible() -> None:
    """Two switchboards with the same seed take the same random decisions."""
    first = Faults(seed=7, error_rate=0.5, reset_rate=0.2)
    second = Faults(seed=7, error_rate=0.5, reset_rate=0.2)
    decisions = [first.decide("receipts").action for _ in range(50)]
    assert decisions == [second.decide("receipts").action for _ in range(50)]
    assert {"answer", "reset", "pass"} <= set(decisions)


def test_fault_fail_next_fails_n_times_then_succeeds(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """fail_next=2 answers 503 twice, then the same batch is accepted."""
    sandbox.set_faults(fail_next=2)
    statuses = [_post(authed, [_receipt("1")]).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert sandbox.faults.fail_next == 0


def test_fault_rate_limit_every_sends_retry_after_seconds(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """rate_limit_every=1 answers 429 with Retry-After in seconds."""
    sandbox.set_faults(rate_limit_every=1, retry_after_s=7)
    answer = _post(authed, [_receipt("1")])
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"


def test_fault_rate_limit_can_send_retry_after_as_http_date(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """With retry_after_http_date the Retry-After header is an HTTP-date about N s ahead."""
    sandbox.set_faults(rate_limit_every=1, retry_after_s=120, retry_after_http_date=True)
    answer = _post(authed, [_receipt("1")])
    assert answer.status_code == 429
    when = parsedate_to_datetime(answer.headers["Retry-After"])
    assert timedelta(seconds=100) < when - datetime.now(UTC) <= timedelta(seconds=121)


def test_fault_delay_slows_each_answer(sandbox: Sandbox, authed: httpx.Client) -> None:
    """delay_s makes the answer arrive no sooner than the delay."""
    sandbox.faults.delay_s = 0.2
    started = time.monotonic()
    assert _post(authed, [_receipt("1")]).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert sandbox.requests[-1].duration_ms >= 200


def test_fault_hang_outlasts_the_client_timeout(sandbox: Sandbox, authed: httpx.Client) -> None:
    """hang_rate=1 leaves the request unanswered until the client's read timeout fires."""
    sandbox.set_faults(hang_rate=1.0, hang_s=30)
    with pytest.raises(httpx.ReadTimeout):
        authed.post(f"/accounts/{ACCOUNT}/receipts", json=[_receipt("1")], timeout=0.3)
    assert sandbox.receipt_ids(ACCOUNT) == []


def test_fault_reset_closes_the_connection_without_answer(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """reset_rate=1 drops the connection; the client sees a network error, not a status."""
    sandbox.faults.reset_rate = 1.0
    with pytest.raises((httpx.NetworkError, httpx.RemoteProtocolError)):
        _post(authed, [_receipt("1")])
    assert (sandbox.requests[-1].status, sandbox.requests[-1].receipts) == (0, 1)
    sandbox.faults.reset_rate = 0.0
    assert _post(authed, [_receipt("1")]).status_code == 200


def test_fault_unauthorized_next_answers_401_n_times(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """unauthorized_next=1 refuses one request with 401 even with a valid token."""
    sandbox.set_faults(unauthorized_next=1)
    assert _post(authed, [_receipt("1")]).status_code == 401
    assert _post(authed, [_receipt("1")]).status_code == 200


@pytest.mark.parametrize(("fault", "status"), [("forbidden", 403), ("not_found", 404)])
def test_fault_forced_status_answers_every_request(
    sandbox: Sandbox, authed: httpx.Client, fault: str, status: int
) -> None:
    """forbidden and not_found answer every receipts request with 403 / 404."""
    sandbox.set_faults(**{fault: True})
    answer = _post(authed, [_receipt("1")])
    assert answer.status_code == status
    assert "error" in answer.json()


def test_fault_max_batch_receipts_answers_413(sandbox: Sandbox, authed: httpx.Client) -> None:
    """A batch over max_batch_receipts is refused with 413; one at the limit passes."""
    sandbox.set_faults(max_batch_receipts=2)
    assert _post(authed, [_receipt(str(n)) for n in range(3)]).status_code == 413
    assert _post(authed, [_receipt(str(n)) for n in range(2)]).status_code == 200
    assert [(r.status, r.receipts) for r in sandbox.requests[1:]] == [(413, 3), (200, 2)]


def test_fault_max_batch_bytes_answers_413(sandbox: Sandbox, authed: httpx.Client) -> None:
    """A body over max_batch_bytes is refused with 413."""
    sandbox.set_faults(max_batch_bytes=1000)
    assert _post(authed, [_receipt(str(n)) for n in range(5)]).status_code == 413
    assert (
        _post(
            authed,
            [{"store": {"id": "s"}, "receipt_id": "1", "purchase_at": "2025-01-01T00:00:00Z"}],
        ).status_code
        == 200
    )


def test_fault_refuse_receipt_id_answers_400_for_matching_receipts(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """Receipts whose receipt_id matches refuse_receipt_id fail the batch with 400."""
    sandbox.set_faults(refuse_receipt_id=r"^bad-")
    answer = _post(authed, [_receipt("ok-1"), _receipt("bad-2")])
    assert answer.status_code == 400
    errors = answer.json()["error"]["errors"]
    assert [(e["receipt_index"], e["receipt_id"], e["path"]) for e in errors] == [
        (1, "bad-2", "receipt_id")
    ]
    assert _post(authed, [_receipt("ok-1")]).status_code == 200


def test_fault_on_token_endpoint_only_when_listed(sandbox: Sandbox, client: httpx.Client) -> None:
    """Faults skip the token endpoint unless "token" is in endpoints."""
    sandbox.set_faults(error_rate=1.0)
    _token(client)
    sandbox.set_faults(endpoints="token")
    answer = client.post(
        f"/accounts/{ACCOUNT}/auth/token",
        auth=("demo", "demo-secret"),
        json={"grant_type": "client_credentials", "audience": AUDIENCE.format(ACCOUNT)},
    )
    assert answer.status_code == 503


def test_faults_update_with_bad_value_raises_and_keeps_old_value() -> None:
    """An unknown fault or an out-of-range value raises ValueError and changes nothing."""
    faults = Faults()
    with pytest.raises(ValueError, match="unknown fault"):
        faults.update(eror_rate=0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        faults.error_rate = 1.5
    with pytest.raises(ValueError, match="must not be negative"):
        faults.update(delay_s=-1)
    assert faults.error_rate == 0.0
    faults.update(error_rate="0.25", forbidden="true")
    assert (faults.error_rate, faults.forbidden) == (0.25, True)
    faults.clear()
    assert faults == Faults()


# -- report generation -----------------------------------------------------------------

_REPORT_QUERY = {
    "template_id": "checkout_transaction_order",
    "template_data_path": "/checkout/v1/transactions/{transaction.id}",
    "template_accept": "application/pdf",
    "template_accept_language": "no",
}
_REPORT_BODY = [{"key": "transaction", "path": "/checkout/v1/transactions/T1", "data": {}}]


def _report(client: httpx.Client, body: Any = None, **query: Any) -> httpx.Response:
    params = {k: v for k, v in {**_REPORT_QUERY, **query}.items() if v is not None}
    return client.post(
        f"/accounts/{ACCOUNT}/reports/generation",
        params=params,
        json=_REPORT_BODY if body is None else body,
    )


def test_report_without_required_query_returns_400_naming_each(authed: httpx.Client) -> None:
    """Every missing required query parameter is listed in the 400 error body."""
    answer = authed.post(f"/accounts/{ACCOUNT}/reports/generation", json=_REPORT_BODY)
    assert answer.status_code == 400
    paths = [error["path"] for error in answer.json()["error"]["errors"]]
    assert paths == [f"query.{name}" for name in _REPORT_QUERY]


@pytest.mark.parametrize(
    ("query", "body", "path"),
    [
        ({"schedule": "yearly"}, None, "query.schedule"),
        ({"save": "maybe"}, None, "query.save"),
        ({"data_from": "2025-01-01T00:00:00"}, None, "query.data_from"),
        ({"data_to": "yesterday"}, None, "query.data_to"),
        ({"template_accept_timezone": "Mars/Olympus"}, None, "query.template_accept_timezone"),
        ({"template_accept": "image/png"}, None, "query.template_accept"),
        ({}, [{"key": "k", "path": "/p"}], "body.0.data"),
        ({}, [{"key": 1, "path": "/p", "data": {}}], "body.0.key"),
        ({}, [{"path": "/p", "data": []}], "body.0.key"),
        ({}, {"key": "k"}, "body"),
    ],
)
def test_report_with_invalid_request_returns_400_with_path(
    authed: httpx.Client, query: dict[str, str], body: Any, path: str
) -> None:
    """Each documented rule of report generation is enforced and named in the error."""
    answer = _report(authed, body, **query)
    assert answer.status_code == 400
    assert path in [error["path"] for error in answer.json()["error"]["errors"]]


@pytest.mark.parametrize("accept", ["application/pdf", "text/csv", "application/json", "text/html"])
def test_report_returns_document_of_requested_type(authed: httpx.Client, accept: str) -> None:
    """A valid request returns 200 with a document in the requested content type."""
    answer = _report(
        authed,
        template_accept=accept,
        template_accept_timezone="Europe/Oslo",
        data_from="2025-02-01T00:00:00+01:00",
        data_to="2025-03-01T00:00:00+01:00",
        schedule="monthly",
        save="false",
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == accept
    assert answer.headers["Content-Language"] == "no"
    if accept == "application/pdf":
        assert answer.content.startswith(b"%PDF-1.4")
        assert answer.content.endswith(b"%%EOF\n")
    elif accept == "application/json":
        assert answer.json()["entries"] == [
            {"key": "transaction", "path": "/checkout/v1/transactions/T1"}
        ]
    elif accept == "text/csv":
        assert answer.text.splitlines()[0] == "key,path"
    else:
        assert answer.text.startswith("<!DOCTYPE html>")


def test_report_pdf_xref_offsets_point_at_objects() -> None:
    """The generated PDF's cross-reference table points at each object, so readers open it."""
    document = pdf(["Line (with parentheses)", "æøå"])
    start = int(document.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    table = document[start:].split(b"\n")
    assert table[0] == b"xref"
    offsets = [int(row.split()[0]) for row in table[3:8]]
    for number, offset in enumerate(offsets, start=1):
        assert document[offset:].startswith(b"%d 0 obj" % number)


def test_report_with_save_returns_201_with_id(authed: httpx.Client) -> None:
    """save=true answers 201 with the stored report's id and a message (our documented choice)."""
    answer = _report(authed, save="true")
    assert answer.status_code == 201
    body = answer.json()
    uuid.UUID(body["id"])
    assert body["message"]


def test_report_fail_next_answers_503_then_200(sandbox: Sandbox, authed: httpx.Client) -> None:
    """fail_next on the reports endpoint answers 503 once, then generates the report."""
    sandbox.set_faults(fail_next=1)
    assert _report(authed).status_code == 503
    assert _report(authed).status_code == 200


def test_report_without_token_returns_401(client: httpx.Client) -> None:
    """Report generation needs a bearer token."""
    assert _report(client).status_code == 401


# -- test settlement report ------------------------------------------------------------


def _test_report(client: httpx.Client, body: Any = None, account: str = ACCOUNT) -> httpx.Response:
    path = f"/accounts/{account}/settlements/reports/generate-test-report"
    if body is None:
        return client.post(path)
    return client.post(path, json=body)


def test_test_report_without_receipts_answers_200_nothing_to_report(
    authed: httpx.Client,
) -> None:
    """With no receipts for the account yet, the test report answers 200 with a message."""
    answer = _test_report(authed)
    assert answer.status_code == 200
    assert "No transactions" in answer.json()["message"]


def test_test_report_with_receipts_answers_201_created(authed: httpx.Client) -> None:
    """Once the account holds receipts, the test report answers 201 "created"."""
    _post(authed, [_receipt("1")])
    answer = _test_report(authed, {"number_of_transactions": 10})
    assert answer.status_code == 201
    assert answer.json() == {"message": "Settlement report created"}


@pytest.mark.parametrize(("nothing", "status"), [(True, 200), (False, 201)])
def test_test_report_nothing_switch_forces_status(
    sandbox: Sandbox, authed: httpx.Client, nothing: bool, status: int
) -> None:
    """test_report_nothing forces 200 ("nothing") or 201 whatever the account holds."""
    sandbox.set_faults(test_report_nothing=nothing)
    assert _test_report(authed, {}).status_code == status


@pytest.mark.parametrize(
    "body",
    [
        {"transaction_ids": [f"T12345678.{n}" for n in range(1001)]},
        {"transaction_ids": "T12345678.1"},
        {"number_of_transactions": 0},
        {"number_of_transactions": 10001},
        {"number_of_transactions": "5"},
        {"number_of_transactions": 2.5},
        {"transaction_ids": ["a"], "number_of_transactions": 1},
        {
            "transaction_ids": ["a"],
            "date_range": {"start_date": "2025-12-01", "end_date": "2025-12-07"},
        },
        {"date_range": {"start_date": "2025-12-07", "end_date": "2025-12-07"}},
        {"date_range": {"start_date": "2025-12-08", "end_date": "2025-12-07"}},
        {"date_range": {"start_date": "2025-12-1", "end_date": "2025-12-07"}},
        {"date_range": {"start_date": "2025-12-01"}},
        {"date_range": "2025-12"},
        [1, 2],
    ],
)
def test_test_report_with_invalid_options_returns_400(authed: httpx.Client, body: Any) -> None:
    """Each TestReportOptions rule of the billing spec is enforced with a 400 error body."""
    answer = _test_report(authed, body)
    assert answer.status_code == 400
    assert answer.json()["error"]["errors"]


@pytest.mark.parametrize(
    "body",
    [
        {"transaction_ids": [f"T12345678.{n}" for n in range(1000)]},
        {"transaction_ids": [], "number_of_transactions": 5},
        {
            "number_of_transactions": 10000,
            "date_range": {"start_date": "2025-12-01", "end_date": "2025-12-07"},
        },
        {"number_of_transactions": 1},
    ],
)
def test_test_report_with_valid_options_is_accepted(authed: httpx.Client, body: Any) -> None:
    """Valid option sets (ids at the limit, empty ids ignored, count with range) are accepted."""
    assert _test_report(authed, body).status_code in (200, 201)


def test_test_report_on_production_account_returns_403(client: httpx.Client) -> None:
    """A production (P…) account cannot generate test settlement reports."""
    client.headers["Authorization"] = f"Bearer {_token(client, PRODUCTION)}"
    answer = _test_report(client, account=PRODUCTION)
    assert answer.status_code == 403
    assert "error" in answer.json()


# -- schema ----------------------------------------------------------------------------


def _mutations() -> list[Any]:
    base = _example_receipt()
    variants: list[Any] = [base, _receipt("1"), [], "text", None]
    for path, value in [
        (("items", 0, "gross_amount"), 1.5),
        (("items", 0, "gross_amount"), True),
        (("items", 0, "quantity"), 0.5),
        (("items", 0, "unknown"), 1),
        (("payments", 0, "card_info", "issuer_id"), 1.5),
        (("customer", "date_of_birth"), "1990-02-30"),
        (("customer", "phone_number"), "+0047"),
        (("customer", "type"), "robot"),
        (("customer", "company"), {"organization_number": "1"}),
        (("store", "mcc"), "58140"),
        (("store", "address"), {"address_line": "a", "postal_place": "b"}),
        (("discounts", 0, "reward", "type"), "free"),
        (("discounts", 0, "whatever"), {"any": "thing"}),
        (("purchase_at",), "2025-13-01T00:00:00Z"),
        (("purchase_at",), "2025-01-01T00:00:00.123+01:00"),
        (("entry_status",), "Reprinted"),
        (("extra_info", 0, "value_type"), "date"),
        (("receipt_id",), 714118),
    ]:
        variant = copy.deepcopy(base)
        target = variant
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        variants.append(variant)
    return variants


def test_schema_fast_and_jsonschema_engines_agree() -> None:
    """The compiled validator accepts exactly what jsonschema accepts, valid or broken."""
    validator = ReceiptValidator()
    verdicts = []
    for receipt in _mutations():
        explained = validator.explain(receipt)
        assert validator.is_valid(receipt) == (explained == []), (receipt, explained)
        verdicts.append(explained == [])
    # Valid: the two bases; fractional quantity and issuer_id (numbers); any key inside a
    # discount rule; milliseconds with an offset; Reprinted.
    expected = [True, True, False, False, False]  # example, small, [], "text", None
    expected += [False, False, True, False, True, False, False, False, False, False, False]
    expected += [False, True, False, True, True, False, False]
    assert verdicts == expected


def test_schema_compiler_refuses_unsupported_keywords() -> None:
    """A schema keyword the fast engine does not implement is an error, not silently skipped."""
    schema = load_schema()
    schema["properties"]["receipt_id"]["const"] = "x"
    with pytest.raises(ValueError, match="const"):
        ReceiptValidator(schema)


# -- lifecycle and process mode --------------------------------------------------------


def test_sandbox_stop_closes_keep_alive_connections_and_joins_threads() -> None:
    """Stopping the sandbox while a client holds a keep-alive connection leaves no thread."""
    before = set(threading.enumerate())
    with Sandbox() as running, httpx.Client(base_url=running.base_url) as http:
        assert http.post(f"/accounts/{ACCOUNT}/receipts").status_code == 401
        running.stop()
    assert set(threading.enumerate()) - before == set()


def test_sandbox_wait_for_receipts_returns_once_stored(
    sandbox: Sandbox, authed: httpx.Client
) -> None:
    """wait_for_receipts returns True once the account holds enough, False on timeout."""
    assert not sandbox.wait_for_receipts(ACCOUNT, 1, timeout_s=0.05)
    _post(authed, [_receipt("1")])
    assert sandbox.wait_for_receipts(ACCOUNT, 1, timeout_s=1.0)


def test_hooks_report_stats_ids_and_change_faults(sandbox: Sandbox, authed: httpx.Client) -> None:
    """The /_sandbox test hooks report counters and ids and switch faults at runtime."""
    _post(authed, [_receipt("a"), _receipt("b")])
    _post(authed, [_receipt("b")])
    with httpx.Client(base_url=sandbox.url) as hooks:
        stats = hooks.get("/_sandbox/stats").json()
        assert stats["receipt_posts"] == 2
        assert stats["unique_receipt_ids"] == 2
        assert stats["duplicates"] == 1
        assert stats["token_issues"] == 1
        assert stats["requests"] == 3
        assert stats["by_status"] == {"200": 3}
        ids = hooks.get("/_sandbox/receipt-ids", params={"account": ACCOUNT}).json()
        assert ids["receipt_ids"] == ["a", "b"]
        stored = hooks.get("/_sandbox/receipts", params={"account": ACCOUNT}).json()
        assert [r["receipt_id"] for r in stored["receipts"]] == ["a", "b"]
        changed = hooks.post("/_sandbox/faults", json={"error_every": 1})
        assert changed.json()["error_every"] == 1
        assert _post(authed, [_receipt("c")]).status_code == 503
        assert hooks.post("/_sandbox/faults", json={"error_evry": 1}).status_code == 400
        assert hooks.post("/_sandbox/faults", json=[1]).status_code == 400
        hooks.post("/_sandbox/faults", json={"clear": True})
        assert sandbox.faults.error_every == 0
        assert hooks.post("/_sandbox/reset").status_code == 200
        assert hooks.get("/_sandbox/nothing").status_code == 404
    assert sandbox.receipt_ids(ACCOUNT) == []


def _wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text().strip()
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written within {timeout_s} s")


def test_process_mode_writes_port_file_and_serves_with_flags(tmp_path: Path) -> None:
    """1. `python -m receipt_agent.sandbox --port 0 --port-file F` with credentials and a fault.
    2. The port file names a port that answers tokens and receipts; --error-every 2 applies.
    3. The faults can be cleared at runtime through the hook; SIGTERM ends the process.
    Result: a separate-process sandbox is usable by crash tests and benchmarks.
    """
    port_file = tmp_path / "sandbox.port"
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "receipt_agent.sandbox", "--port", "0"),
            *("--port-file", str(port_file), "--client-id", "till", "--client-secret", "s3cret"),
            *("--error-every", "2"),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        port = int(_wait_for_file(port_file, process))
        root = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=root + "/v1", timeout=5.0) as http:
            token = http.post(
                f"/accounts/{ACCOUNT}/auth/token",
                auth=("till", "s3cret"),
                json={"grant_type": "client_credentials", "audience": AUDIENCE.format(ACCOUNT)},
            ).json()["access_token"]
            http.headers["Authorization"] = f"Bearer {token}"
            assert [_post(http, [_receipt(str(n))]).status_code for n in range(2)] == [200, 503]
            http.post(root + "/_sandbox/faults", json={"clear": True})
            assert _post(http, [_receipt("9")]).status_code == 200
            stats = http.get(root + "/_sandbox/stats").json()
            assert stats["unique_receipt_ids"] == 2
            ids = http.get(root + "/_sandbox/receipt-ids", params={"account": ACCOUNT}).json()
            assert ids["receipt_ids"] == ["0", "9"]
    finally:
        process.terminate()
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()


def test_process_mode_with_bad_fault_value_exits_2(tmp_path: Path) -> None:
    """An out-of-range fault flag is a usage error: exit 2 and no port file."""
    port_file = tmp_path / "sandbox.port"
    finished = subprocess.run(
        [
            *(sys.executable, "-m", "receipt_agent.sandbox", "--port", "0"),
            *("--port-file", str(port_file), "--error-rate", "2"),
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert finished.returncode == 2
    assert b"error_rate must be between 0 and 1" in finished.stderr
    assert not port_file.exists()


def test_sandbox_keep_receipts_false_keeps_ids_and_duplicates_only() -> None:
    """With keep_receipts=False ids and duplicates still count, but no receipt body is kept."""
    with Sandbox(keep_receipts=False) as running, httpx.Client(base_url=running.base_url) as http:
        http.headers["Authorization"] = f"Bearer {_token(http)}"
        assert _post(http, [_receipt("1"), _receipt("1")]).json()["duplicates"] == 1
        assert running.receipt_ids(ACCOUNT) == ["1"]
        assert running.receipts(ACCOUNT) == []


def test_token_is_a_jwt_whose_claims_match_the_account_and_lifetime(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    """The access token is a three-part JWT naming the account's audience and its expiry."""
    sandbox.faults.token_lifetime_s = 90
    header, payload, signature = _token(client).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == AUDIENCE.format(ACCOUNT)
    assert claims["sub"] == "demo"
    assert claims["exp"] - claims["iat"] == 90
    assert header
    assert signature


def test_receipts_chunked_body_is_read_and_connection_stays_usable(authed: httpx.Client) -> None:
    """A chunked request body is accepted, and the next request on the connection works."""
    body = json.dumps([_receipt("1"), _receipt("2")]).encode()
    answer = authed.post(
        f"/accounts/{ACCOUNT}/receipts",
        content=iter([body[:10], body[10:]]),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["receipts"]) == 2
    assert _post(authed, [_receipt("3")]).status_code == 200


def test_fault_idle_timeout_closes_idle_connections_and_clients_reconnect(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    """With idle_timeout_s the sandbox closes an idle keep-alive connection; the next POST works."""
    sandbox.faults.idle_timeout_s = 0.2
    client.headers["Authorization"] = f"Bearer {_token(client)}"
    assert _post(client, [_receipt("1")]).status_code == 200
    deadline = time.monotonic() + 5
    while sandbox.open_connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sandbox.open_connections == 0
    assert _post(client, [_receipt("2")]).status_code == 200
