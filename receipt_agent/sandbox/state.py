"""What the sandbox remembers: issued tokens, stored receipts, and a record of every request.

Owns all mutable server state behind one lock, so request threads and the test thread
that asserts on it never see half an update. Receipts are kept per account and keyed
on `receipt_id` alone (API-NOTES §1.4: Dintero very likely deduplicates that way), so
nothing is stored twice. Headers are recorded without the Authorization value.
Holds everything in memory; never touches a file.
"""

import base64
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

_CREATED_BY = "c0ffee00-5a4d-4b0c-8000-000000000001"  # the sandbox's API client, as Dintero's
_JWT_HEADER = b'{"alg":"HS256","typ":"JWT"}'
DEFAULT_SCOPES = "admin:receipts write:receipts admin:reports admin:billing"


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the sandbox saw it.

    `status` is 0 when the request was never answered (reset or hang fault);
    `receipts` is the batch size of a POST /receipts whose body is a JSON array, whatever
    the answer (None for other requests); `headers` hold "<redacted>" for Authorization.
    """

    method: str
    path: str
    query: str
    status: int
    receipts: int | None
    at: datetime
    duration_ms: float
    headers: dict[str, str]
    account_id: str | None


@dataclass(frozen=True, slots=True)
class _Token:
    account_id: str
    client_id: str
    expires_at: float  # time.time(): wall clock, as a JWT's exp, so time-machine moves it


def _with_receipt_token(receipt: dict[str, Any], days: int) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    expires = datetime.fromtimestamp(time.time() + days * 86400, UTC).isoformat()
    extra = [
        {"key": "dintero.receipt.token.value", "value": token, "value_type": "string"},
        {"key": "dintero.receipt.token.expires_at", "value": expires, "value_type": "datetime"},
        {
            "key": "dintero.receipt.token.url",
            "value": f"http://127.0.0.1/v1/receipts/receipt-token?token={token}",
            "value_type": "string",
        },
    ]
    return {**receipt, "extra_info": [*receipt.get("extra_info", []), *extra]}


class SandboxState:
    """Thread-safe store of tokens, receipts and request records."""

    def __init__(self, max_records: int = 200_000, keep_receipts: bool = True) -> None:
        """`keep_receipts=False` keeps only receipt_ids (long benchmarks): `receipts()`
        then returns nothing while ids, duplicates and counters work as before.
        """
        self.keep_receipts = keep_receipts
        self._signing_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._tokens: dict[str, _Token] = {}
        # Stored as compact JSON bytes, not dicts: bytes are invisible to the cyclic GC,
        # so a million held receipts do not slow every later collection down.
        self._receipts: dict[str, dict[str, bytes]] = {}
        self._records: deque[RecordedRequest] = deque(maxlen=max_records)
        self._request_count = 0  # counted apart from the records, which have a cap
        self._by_status: dict[str, int] = {}
        self.token_issues = 0
        self.receipt_posts = 0
        self.receipts_received = 0
        self.duplicates = 0
        self.reports_generated = 0
        self.test_reports = 0

    # -- tokens ----------------------------------------------------------------------

    def issue_token(self, account_id: str, client_id: str, lifetime_s: int, scope: str = "") -> str:
        """Return a new HS256 JWT for the account, valid for `lifetime_s` seconds.

        The sandbox itself trusts its own table of issued tokens, not the signature;
        the claims (`sub`, `aud`, `iat`, `exp`, `scope`) are there for clients that look.
        """
        issued = int(time.time())
        claims = {
            "iss": "https://sandbox.receipt-agent.invalid",
            "sub": client_id,
            "aud": f"https://api.dintero.com/v1/accounts/{account_id}",
            "iat": issued,
            "exp": issued + lifetime_s,
            "scope": scope or DEFAULT_SCOPES,
            "jti": secrets.token_hex(8),
        }
        signed = _base64url(_JWT_HEADER) + "." + _base64url(orjson.dumps(claims))
        signature = hmac.new(self._signing_key, signed.encode("ascii"), hashlib.sha256).digest()
        token = signed + "." + _base64url(signature)
        with self._lock:
            self._tokens[token] = _Token(account_id, client_id, issued + lifetime_s)
            self.token_issues += 1
        return token

    def check_token(self, token: str, account_id: str) -> str | None:
        """Return why `token` may not act on `account_id`, or None when it may."""
        with self._lock:
            found = self._tokens.get(token)
        if found is None:
            return "unknown access token"
        if found.account_id != account_id:
            return "access token was issued for another account"
        if time.time() >= found.expires_at:
            return "access token has expired"
        return None

    def expire_tokens(self) -> None:
        """Make every issued token expired now (a test shortcut for waiting it out)."""
        with self._lock:
            for token, found in list(self._tokens.items()):
                self._tokens[token] = _Token(found.account_id, found.client_id, 0.0)

    # -- receipts --------------------------------------------------------------------

    def store_receipts(
        self, account_id: str, receipts: list[dict[str, Any]], token_expire_days: int | None = None
    ) -> tuple[list[dict[str, str]], int]:
        """Store the receipts not already held for the account; return (entities, duplicates).

        A receipt_id repeated inside one batch counts as a duplicate too. With
        `token_expire_days`, each stored receipt gets Dintero's three receipt-token
        `extra_info` entries (API-NOTES §1.2).
        """
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        created: list[dict[str, str]] = []
        with self._lock:
            held = self._receipts.setdefault(account_id, {})
            duplicates = 0
            for receipt in receipts:
                receipt_id = receipt["receipt_id"]
                if receipt_id in held:
                    duplicates += 1
                    continue
                entity = {
                    "id": str(uuid.uuid4()),
                    "created_at": now,
                    "created_by": _CREATED_BY,
                    "updated_at": now,
                }
                stored = receipt
                if token_expire_days is not None:
                    stored = _with_receipt_token(receipt, token_expire_days)
                held[receipt_id] = orjson.dumps({**stored, **entity}) if self.keep_receipts else b""
                created.append(entity)
            self.receipt_posts += 1
            self.receipts_received += len(receipts)
            self.duplicates += duplicates
            self._changed.notify_all()
        return created, duplicates

    def count_post(self, receipts: int) -> None:
        """Count a POST /receipts that was answered without storing anything."""
        with self._lock:
            self.receipt_posts += 1
            self.receipts_received += receipts

    def receipts(self, account_id: str) -> list[dict[str, Any]]:
        """Return copies of the stored receipts of the account, in acceptance order."""
        with self._lock:
            held = list(self._receipts.get(account_id, {}).values())
        return [orjson.loads(receipt) for receipt in held if receipt]

    def search(self, account_id: str, receipt_id: str) -> list[dict[str, Any]]:
        """Return the stored receipts of the account with this receipt_id (0 or 1)."""
        with self._lock:
            held = self._receipts.get(account_id, {}).get(receipt_id)
        if held is None:
            return []
        return [orjson.loads(held)] if held else [{"receipt_id": receipt_id}]

    def receipt_ids(self, account_id: str) -> list[str]:
        """Return the accepted receipt_ids of the account, in acceptance order."""
        with self._lock:
            return list(self._receipts.get(account_id, {}))

    def receipt_count(self, account_id: str | None = None) -> int:
        """Return how many receipts are stored for one account, or for all."""
        with self._lock:
            if account_id is not None:
                return len(self._receipts.get(account_id, {}))
            return sum(len(held) for held in self._receipts.values())

    def wait_for_receipts(self, account_id: str, count: int, timeout_s: float) -> bool:
        """Block until the account holds at least `count` receipts; False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: len(self._receipts.get(account_id, {})) >= count, timeout=timeout_s
            )

    # -- records ---------------------------------------------------------------------

    def record(self, request: RecordedRequest) -> None:
        """Keep one request record (the oldest drop off past `max_records`)."""
        with self._lock:
            self._records.append(request)
            self._request_count += 1
            key = str(request.status)
            self._by_status[key] = self._by_status.get(key, 0) + 1
            self._changed.notify_all()

    def requests(self) -> list[RecordedRequest]:
        """Return the recorded requests, oldest first."""
        with self._lock:
            return list(self._records)

    def wait_for_requests(self, count: int, timeout_s: float) -> bool:
        """Block until at least `count` requests are recorded; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._request_count >= count, timeout=timeout_s)

    def count_report(self, test_report: bool) -> None:
        """Count one answered report request."""
        with self._lock:
            if test_report:
                self.test_reports += 1
            else:
                self.reports_generated += 1

    def stats(self) -> dict[str, Any]:
        """Return counters for `GET /_sandbox/stats` and `Sandbox.stats()`."""
        with self._lock:
            return {
                "requests": self._request_count,
                "by_status": dict(self._by_status),
                "token_issues": self.token_issues,
                "receipt_posts": self.receipt_posts,
                "receipts_received": self.receipts_received,
                "unique_receipt_ids": sum(len(held) for held in self._receipts.values()),
                "accounts": {aid: len(held) for aid, held in self._receipts.items()},
                "duplicates": self.duplicates,
                "reports_generated": self.reports_generated,
                "test_reports": self.test_reports,
            }

    def reset(self) -> None:
        """Forget receipts, records, tokens and counters."""
        with self._lock:
            self._tokens.clear()
            self._receipts.clear()
            self._records.clear()
            self._request_count = 0
            self._by_status.clear()
            self.token_issues = self.receipt_posts = self.receipts_received = 0
            self.duplicates = self.reports_generated = self.test_reports = 0
