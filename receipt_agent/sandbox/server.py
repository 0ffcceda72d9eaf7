"""The sandbox server: `Sandbox` (a thread, for tests and the demo) and `serve` (blocking).

Owns the listening socket, the handler threads and their shutdown, the receipts
endpoint's hot path (parse → validate → dedupe → store) and the `/_sandbox/*` test
hooks. `Sandbox.stop()` closes every open keep-alive connection and joins the threads
it started, so a test's thread-leak check stays green. Writes only the optional port
file (atomically); never logs per request.
"""

import contextlib
import functools
import gc
import re
import socket
import sys
import threading
import traceback
import uuid
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from receipt_agent.sandbox import hooks
from receipt_agent.sandbox.faults import Faults
from receipt_agent.sandbox.handler import Answer, SandboxHandler, error_body
from receipt_agent.sandbox.schema import ReceiptValidator
from receipt_agent.sandbox.state import RecordedRequest, SandboxState

_JSON = "application/json"


@functools.cache
def _validator() -> ReceiptValidator:
    # Compiled once per process: building it costs more than a thousand validations.
    return ReceiptValidator()


class _GarbageCollectorPause:
    """Pause the cyclic GC while a batch is parsed, checked and stored.

    orjson builds thousands of dicts per batch; each one counts towards a GC run that
    walks every young object, which made parsing 3-5x slower than the parse itself.
    Nothing in that window creates reference cycles, so collection can wait until the
    batch is done. Counted, so overlapping handler threads re-enable it only when the
    last one leaves, and only if it was enabled to begin with.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._inside += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._was_enabled:
                gc.enable()


_GC_PAUSE = _GarbageCollectorPause()


class SandboxHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that carries the sandbox's state, faults and validator."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        client_id: str,
        client_secret: str,
        faults: Faults,
        state: SandboxState,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.faults = faults
        self.state = state
        self.validator = _validator()
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self._open: dict[socket.socket, threading.Thread] = {}
        self._open_lock = threading.Lock()
        super().__init__(address, SandboxHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A peer that went away is normal for a fault-injecting server; other errors count."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError) or self.stopping.is_set():
            return  # reset, timeout or shutdown: the client sees it, nothing to report
        self.errors.append(traceback.format_exc())

    def track(self, connection: socket.socket, opened: bool) -> None:
        """Remember open connections (and their threads) so stop() can close them."""
        with self._open_lock:
            if opened:
                self._open[connection] = threading.current_thread()
            else:
                self._open.pop(connection, None)

    def close_connections(self, timeout_s: float = 5.0) -> None:
        """Shut every open connection down and join its handler thread."""
        with self._open_lock:
            open_now = list(self._open.items())
        for connection, _thread in open_now:
            with contextlib.suppress(OSError):  # already closed by the peer or a reset fault
                connection.shutdown(socket.SHUT_RDWR)
        for _connection, thread in open_now:
            if thread is not threading.current_thread():
                thread.join(timeout_s)

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        with self._open_lock:
            return len(self._open)

    def new_id(self) -> str:
        """Return a fresh entity id."""
        return str(uuid.uuid4())

    # -- the hot path --------------------------------------------------------------------

    def post_receipts(self, account_id: str, query: dict[str, str], body: bytes) -> Answer:
        """Answer POST /receipts: whole batch stored (new ones) or whole batch refused."""
        with _GC_PAUSE:
            return self._post_receipts(account_id, query, body)

    def _post_receipts(self, account_id: str, query: dict[str, str], body: bytes) -> Answer:
        days: int | None = None
        if "token_expire_days" in query:
            try:
                days = int(query["token_expire_days"])
            except ValueError:
                days = 0
            if days < 1:
                return _error(400, "BAD_REQUEST", "token_expire_days must be an integer >= 1")
        try:
            batch = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.state.count_post(0)
            return _error(400, "INVALID_JSON", "request body is not JSON")
        if not isinstance(batch, list):
            self.state.count_post(0)
            return _error(400, "BAD_REQUEST", "request body must be a JSON array of receipts")
        limit = self.faults.max_batch_receipts
        if limit and len(batch) > limit:
            self.state.count_post(len(batch))
            return _error(413, "PAYLOAD_TOO_LARGE", f"at most {limit} receipts per request", None)
        errors = self._receipt_errors(batch)
        if errors:
            self.state.count_post(len(batch))
            bad = len({e["receipt_index"] for e in errors})
            message = f"{bad} of {len(batch)} receipts are invalid; no receipt was stored"
            return 400, error_body("INVALID_RECEIPT", message, errors), _JSON, (), len(batch)
        created, duplicates = self.state.store_receipts(account_id, batch, days)
        payload = orjson.dumps({"receipts": created, "duplicates": duplicates})
        return 200, payload, _JSON, (), len(batch)

    def _receipt_errors(self, batch: list[Any]) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        for index, receipt, problems in self.validator.invalid(batch):
            receipt_id = receipt.get("receipt_id") if isinstance(receipt, dict) else None
            errors += [
                {"receipt_index": index, "receipt_id": receipt_id, "path": path, "message": text}
                for path, text in problems
            ]
        pattern = self.faults.refuse_receipt_id
        if pattern:
            search = re.compile(pattern).search
            errors += [
                {
                    "receipt_index": index,
                    "receipt_id": receipt["receipt_id"],
                    "path": "receipt_id",
                    "message": "refused by the sandbox (refuse_receipt_id fault)",
                }
                for index, receipt in enumerate(batch)
                if isinstance(receipt, dict)
                and isinstance(receipt.get("receipt_id"), str)
                and search(receipt["receipt_id"])
            ]
        return errors

    def hook(self, method: str, path: str, query_string: str, body: bytes) -> tuple[int, bytes]:
        """Answer a `/_sandbox/*` test hook (see `hooks`); not part of Dintero's API."""
        return hooks.answer(self.state, self.faults, method, path, query_string, body)


def _error(status: int, code: str, message: str, receipts: int | None = None) -> Answer:
    return status, error_body(code, message), _JSON, (), receipts


class Sandbox:
    """A running sandbox on 127.0.0.1 in a background thread; use as a context manager.

    `client_id`/`client_secret` are the only credentials the token endpoint accepts;
    `port=0` binds a free port (read it from `port`/`base_url`); `faults` is live:
    change it between (or during) requests; `keep_receipts=False` keeps only ids.
    Records and stored receipts are read through the accessors below, which copy
    under a lock. Any account id matching ^[PT]\\d{8}$ exists.
    """

    def __init__(
        self,
        client_id: str = "demo",
        client_secret: str = "demo-secret",  # noqa: S107 - the sandbox's well-known default
        port: int = 0,
        host: str = "127.0.0.1",
        faults: Faults | None = None,
        keep_receipts: bool = True,
    ) -> None:
        self.faults = faults if faults is not None else Faults()
        self.state = SandboxState(keep_receipts=keep_receipts)
        self.client_id = client_id
        self.client_secret = client_secret
        self._address = (host, port)
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> "Sandbox":
        """Bind and start serving in a thread; return self."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._server = SandboxHTTPServer(
            self._address, self.client_id, self.client_secret, self.faults, self.state
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close open connections, join every thread; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self._stopped_errors = server.errors

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with port=0)."""
        if self._server is None:
            raise RuntimeError("sandbox is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the server root (test hooks live under it)."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, what goes into `dintero.base_url`."""
        return self.url + "/v1"

    # -- faults ----------------------------------------------------------------------

    def set_faults(self, **changes: Any) -> None:
        """Change several fault fields atomically (see Faults); ValueError on a bad one."""
        self.faults.update(**changes)

    def clear_faults(self) -> None:
        """Back to a healthy Dintero."""
        self.faults.clear()

    def expire_tokens(self) -> None:
        """Make every token issued so far expired (the next use gets 401)."""
        self.state.expire_tokens()

    # -- records ---------------------------------------------------------------------

    def receipts(self, account_id: str) -> list[dict[str, Any]]:
        """Return the stored receipts of the account (with id/created_at), oldest first."""
        return self.state.receipts(account_id)

    def receipt_ids(self, account_id: str) -> list[str]:
        """Return the accepted receipt_ids of the account, in acceptance order."""
        return self.state.receipt_ids(account_id)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request to /v1 (and unknown routes), oldest first; no Authorization value."""
        return self.state.requests()

    def stats(self) -> dict[str, Any]:
        """The counters of `GET /_sandbox/stats`."""
        return self.state.stats()

    @property
    def token_issues(self) -> int:
        """How many tokens were issued."""
        return self.state.token_issues

    @property
    def receipt_posts(self) -> int:
        """How many POST /receipts reached the receipts endpoint (faulted ones excluded)."""
        return self.state.receipt_posts

    @property
    def errors(self) -> list[str]:
        """Tracebacks of sandbox bugs (answered 500); a healthy run keeps this empty."""
        server = self._server
        return list(server.errors) if server else list(getattr(self, "_stopped_errors", []))

    @property
    def open_connections(self) -> int:
        """How many client connections the sandbox holds open right now."""
        return self._server.open_connections if self._server is not None else 0

    def wait_for_receipts(self, account_id: str, count: int, timeout_s: float = 5.0) -> bool:
        """Block until the account holds at least `count` receipts; False on timeout."""
        return self.state.wait_for_receipts(account_id, count, timeout_s)

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> bool:
        """Block until at least `count` requests were recorded; False on timeout."""
        return self.state.wait_for_requests(count, timeout_s)

    def reset(self) -> None:
        """Forget receipts, records, tokens and counters (faults stay as they are)."""
        self.state.reset()


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    client_id: str = "demo",
    client_secret: str = "demo-secret",  # noqa: S107 - the sandbox's well-known default
    faults: Faults | None = None,
    port_file: Path | None = None,
    ready: Callable[[str], None] | None = None,
    keep_receipts: bool = True,
) -> None:
    """Serve until KeyboardInterrupt. Once listening, write the port to `port_file`
    (atomically) and call `ready(url)` if given. `keep_receipts=False` keeps only ids.
    """
    server = SandboxHTTPServer(
        (host, port),
        client_id,
        client_secret,
        faults or Faults(),
        SandboxState(keep_receipts=keep_receipts),
    )
    bound = int(server.server_address[1])
    if port_file is not None:
        temporary = port_file.with_name(port_file.name + ".tmp")
        temporary.write_text(f"{bound}\n", encoding="utf-8")
        temporary.replace(port_file)
    if ready is not None:
        ready(f"http://{host}:{bound}/v1")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.close_connections(timeout_s=1.0)
        server.server_close()
