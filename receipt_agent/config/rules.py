"""Security rules of the configuration (CONTRACT §2): transport, proxy, CA file, source folders.

Owns the checks that keep a config from leaking: a production account (`P…`) never
talks plain `http://` to anything but this machine, `dintero.proxy` is a proxy URL
httpx can use, `dintero.ca_file` is a readable PEM bundle, and no two sources share a
folder. Each check returns `(path.to.key, message)` pairs in `load.py`'s shape, so
that `check-config` prints them with the schema's problems. Reads the CA file (to check
it); writes nothing, never contacts anything.

The lowest module of the config package (its import-linter contract): the rules take
the config's values through small Protocols, not the models, so `schema.py` can use
`check_proxy_url` as a field validator without an import cycle.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PROXY_SCHEMES = ("http", "https")


class DinteroSettings(Protocol):
    """The `dintero:` values these rules read."""

    @property
    def base_url(self) -> str: ...

    @property
    def account_id(self) -> str: ...


class SourceFolder(Protocol):
    """The `sources[]` values these rules read."""

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> Path: ...


def is_loopback_host(host: str | None) -> bool:
    """Given a URL's host, return whether it names this machine (127.0.0.0/8, ::1, localhost)."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def transport_problems(dintero: DinteroSettings) -> list[tuple[str, str]]:
    """Given `dintero:`, return a problem when a production account would use plain HTTP.

    The token request carries the client secret and every POST carries customer data:
    over `http://` both travel in clear. A test account (`T…`) may use `http://`, and
    so may any account talking to a loopback address (the sandbox on this machine).
    """
    url = urlsplit(dintero.base_url)
    if not dintero.account_id.startswith("P") or url.scheme != "http":
        return []
    if is_loopback_host(url.hostname):
        return []
    return [
        (
            "dintero.base_url",
            "a production account (P…) must use https://; over http:// the client secret "
            "and the receipts would travel in clear. Write https://…, or use a test account "
            "(T…) for an http:// test server (http:// to 127.0.0.1 or localhost is allowed)",
        )
    ]


def check_proxy_url(value: str) -> str:
    """Given `dintero.proxy`, return it when httpx can use it. Raise ValueError otherwise.

    The message never repeats the value: a proxy URL may carry `user:password@`.
    """
    try:
        url = urlsplit(value)
        has_port = url.port is not None or url.scheme in _PROXY_SCHEMES
    except ValueError:
        raise ValueError("not a URL; write e.g. http://proxy.store.lan:3128") from None
    if url.scheme not in _PROXY_SCHEMES or not url.hostname or not has_port:
        raise ValueError(
            "not a proxy URL; write http://host:port (e.g. http://proxy.store.lan:3128), "
            "or https://host:port for a proxy that itself speaks TLS"
        )
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ValueError("a proxy URL has no path; write http://host:port")
    return value


def ca_file_problems(path: Path | None) -> list[tuple[str, str]]:
    """Given `dintero.ca_file`, return problems when it is not a readable PEM CA bundle.

    Loads it into a TLS context exactly as the API client will, so a DER file, a key or
    a truncated bundle is caught by `check-config` rather than at the first request.
    """
    if path is None:
        return []
    try:
        data = path.read_bytes()
    except OSError as error:
        return [("dintero.ca_file", f"cannot read {path} ({error.strerror})")]
    if _PEM_CERTIFICATE not in data:
        return [
            (
                "dintero.ca_file",
                f"{path} holds no PEM certificate (no '-----BEGIN CERTIFICATE-----' line); "
                "convert a DER file with: openssl x509 -inform der -in FILE -out FILE.pem",
            )
        ]
    try:
        ssl.create_default_context().load_verify_locations(cafile=os.fspath(path))
    except ssl.SSLError as error:
        return [
            (
                "dintero.ca_file",
                f"{path} cannot be loaded as CA certificates ({error.reason or error}); "
                "export the firewall's CA certificate as PEM",
            )
        ]
    return []


def overlap_problems(sources: Sequence[SourceFolder]) -> list[tuple[str, str]]:
    """Given `sources:`, return a problem for each pair of sources whose folders overlap.

    Paths are compared resolved: the same folder written two ways (`/a/b` and
    `/a/./b/`, a symlink to it) or one folder inside another. Two sources on one folder
    would both take every file in it, each stamping its own store id.
    """
    problems: list[tuple[str, str]] = []
    resolved = [Path(os.path.realpath(source.path)) for source in sources]
    for later, (source, real) in enumerate(zip(sources, resolved, strict=True)):
        for earlier in range(later):
            other, other_real = sources[earlier], resolved[earlier]
            theirs = f"source {other.name!r} (sources[{earlier}].path: {other.path})"
            if real == other_real:
                how = f"is the same folder as {theirs}; both resolve to {real}"
            elif real.is_relative_to(other_real):
                how = f"is inside the folder of {theirs}"
            elif other_real.is_relative_to(real):
                how = f"contains the folder of {theirs}"
            else:
                continue
            problems.append(
                (
                    f"sources[{later}].path",
                    f"{source.path} of source {source.name!r} {how}; give every source a "
                    "folder of its own (else both take the same files, each with its own store)",
                )
            )
    return problems
