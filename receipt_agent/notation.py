"""How operators write a few values, and how a mistake in any of them reads.

One home for rules that config, mapping and metrics each used to write for themselves
(issue 11): `host:port` (metrics.listen), the placeholders of `receipt_id_format`, and
the rendering of pydantic's errors as `sources[0].settle: <sentence>`. Standard library
only, below config in the import layers so every layer can use it. Pure: no I/O.
"""

from __future__ import annotations

import string
from collections.abc import Collection, Mapping
from typing import Any


def parse_host_port(host_port: str) -> tuple[str, int]:
    """Given `127.0.0.1:9464` or `[::1]:9464`, return (host, port); the one host:port rule.

    Port 0 (any free port) parses; `metrics.listen` refuses it, tests bind with it. Raise
    ValueError naming the expected shape (not the refused text) otherwise.
    """
    host, separator, port = host_port.rpartition(":")
    if not separator or not host or not port.isdigit() or int(port) > 65535:  # noqa: PLR2004
        raise ValueError("not host:port with a port up to 65535; write e.g. 127.0.0.1:9464")
    return host.removeprefix("[").removesuffix("]"), int(port)


RECEIPT_ID_PLACEHOLDERS = ("store_id", "register_id", "number")


def receipt_id_placeholders(template: str) -> list[str]:
    """Given a `receipt_id_format`, return its placeholder names; the one rule for them.

    Raise ValueError (the sentence check-config shows) for broken braces, no placeholder,
    or a name other than RECEIPT_ID_PLACEHOLDERS.
    """
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError:
        raise ValueError("not a valid format; check its { } braces") from None
    if not names or set(names) - set(RECEIPT_ID_PLACEHOLDERS):
        raise ValueError(
            "use only {store_id}, {register_id} and {number}, e.g. "
            "'{store_id}-{register_id}-{number}'"
        )
    return names


def format_location(
    loc: tuple[int | str, ...],
    *,
    tags: Collection[str] = (),
    top: str = "(top level)",
) -> str:
    """Given a pydantic error location, return `sources[0].mapping.columns` style.

    The one renderer of pydantic locations (config problems, receipt fields in mapping):
    list indices in brackets, a discriminated union's tag (one of `tags`, right after an
    index) left out, `top` for the whole document.
    """
    out = ""
    previous_was_index = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            previous_was_index = True
            continue
        if previous_was_index and part in tags:
            previous_was_index = False  # the discriminated-union tag is not a key
            continue
        previous_was_index = False
        out += f".{part}" if out else str(part)
    return out or top


def pydantic_message(error: Mapping[str, Any], ours: Mapping[str, str]) -> str:
    """Given one pydantic error, return our sentence for its type, else pydantic's own
    without its `Value error, ` prefix: the one place pydantic's wording is adapted."""
    kind = str(error["type"])
    return ours.get(kind) or str(error["msg"]).removeprefix("Value error, ")
