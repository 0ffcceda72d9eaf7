"""The exception tree, organised by what the caller does next (the httpx model).

    ReceiptAgentError                  base; never raised itself
    ├── ConfigError                    exit 2; carries [(path, message)] for every problem
    ├── UsageError                     exit 2; a command-line mistake: printed, never logged
    ├── InputFileError                 the file goes to quarantine with <file>.error.json
    │   ├── UnsafeFileError            symlink, non-regular, over max_file_size: never read
    │   └── ParseError                 cannot be parsed at all; carries a location
    ├── SendError                      the sender decides; nothing is lost
    │   ├── TransientSendError         back off and retry; carries retry_in (seconds)
    │   ├── RemoteRejectedError        the API refused the batch with a 4xx: split, or reject
    │   │                              a lone receipt with the API's message
    │   ├── PayloadTooLargeError       413: split the batch
    │   └── MisconfiguredError         401 after refresh, 403, 404: log at error, keep queued
    ├── StateStoreError                the state store cannot be written (disk full, locked)
    │   └── AgentLockedError           another agent holds the state directory
    └── ReportError                    a report or test settlement request failed

Every message reads `<where>: <what is wrong>; <what to do>`. No message ever holds a
secret, a token, a request header or a customer's personal data.
"""

from __future__ import annotations


class ReceiptAgentError(Exception):
    """Base of every expected failure; its str() is the operator's sentence."""


class ConfigError(ReceiptAgentError):
    """The configuration is unusable; `problems` lists every (path, message) found."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{path}: {message}" for path, message in problems))


class UsageError(ReceiptAgentError):
    """The command line is wrong (a missing argument, an input file that is not there).

    Exit 2 like argparse's own errors; printed on stderr and never logged: nothing about
    the configuration or the daemon is wrong.
    """


class InputFileError(ReceiptAgentError):
    """A spool file that must go to quarantine; `kind` names the error for .error.json."""

    kind = "input_error"

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        self.message = message
        self.detail = detail
        super().__init__(message)


class UnsafeFileError(InputFileError):
    """A symlink, a non-regular file or a file over max_file_size: never followed or read."""

    kind = "unsafe_file"


class ParseError(InputFileError):
    """The file cannot be parsed; `location` says where (line, row or element path)."""

    kind = "parse_error"

    def __init__(self, message: str, *, location: str | None = None, detail: str | None = None):
        self.location = location
        full = f"{location}: {message}" if location else message
        super().__init__(full, detail=detail)


class SendError(ReceiptAgentError):
    """Sending a batch did not succeed; subclasses say what to do next."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class TransientSendError(SendError):
    """408, 429, 5xx, timeouts and connection errors; `retry_after` is the server's hint."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status)


class RemoteRejectedError(SendError):
    """The API refused the batch (400/422); a lone receipt becomes `rejected`."""


class PayloadTooLargeError(SendError):
    """413: the batch is too large for the API; split it."""


class MisconfiguredError(SendError):
    """401 after a token refresh, 403 or 404: credentials, account or URL are wrong."""


class StateStoreError(ReceiptAgentError):
    """The state store could not be read or written (disk full, I/O error)."""


class AgentLockedError(StateStoreError):
    """Another receipt-agent holds the lock on this state directory."""


class ReportError(ReceiptAgentError):
    """A report generation or test settlement report request failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)
