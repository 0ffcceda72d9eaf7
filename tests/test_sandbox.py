"""The sandbox API over a real loopback socket: auth, receipts, reports, faults, process mode."""

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import httpx
import pytest
import time_machine

from receipt_agent.sandbox import Sandbox

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
        "net_amount": 10000,
        "items": [
            {
                "id": "175938",
                "line_id": 1,
                "description": "Stablestol",
                "quantity": 1,
                "gross_amount": 12500,
                "net_amount": 10000,
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
