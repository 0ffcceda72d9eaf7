"""How an error message speaks of a value it refused, without repeating it (CONTRACT §6).

A till export's cell or element may hold a customer's name, e-mail or phone number
where a time or an amount belongs (a CSV with shifted columns, a till that writes the
wrong field). Error messages go to the log, stderr, `queue list`, `status` and
`.error.json`, so they say which field and why, never what it held. `shape` gives the
operator what they need to spot a shifted column or a decimal comma instead: the
length and the kinds of characters, with punctuation named (punctuation alone
identifies no one; letters and digits are only counted as kinds).

The API's own error messages are not ours to word: a validator that answers
`'Kari' is not of type 'integer'` would carry customer data into `receipt.rejected`,
`batch.failed` and `queue list`. `scrub` blanks out, in such a message, every text the
refused request itself carried (it is the only place where those values are known).

Pure, stdlib only. Used by `formats`, `money`, `mapping` and `api`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

_MAX_NAMED_MARKS = 6
# A shorter text is blanked only where quoted: unquoted, it is too likely a word of the
# message itself ("NOK", "CARD").
_MIN_UNQUOTED = 8
_MAX_DEPTH = 16


def shape(value: object) -> str:
    """Given a refused value, return e.g. `28 characters: letters, spaces, '@', '.'`.

    Never contains a letter or a digit of the value itself.
    """
    text = value if isinstance(value, str) else str(value)
    if not text:
        return "no characters"
    kinds: list[str] = []
    marks: list[str] = []
    for char in text:
        if char.isalpha():
            kind = "letters"
        elif char.isdigit():
            kind = "digits"
        elif char.isspace():
            kind = "spaces"
        elif char.isprintable() and char.isascii():
            if char not in marks:
                marks.append(char)
            continue
        else:
            kind = "other characters"
        if kind not in kinds:
            kinds.append(kind)
    named = [repr(mark) for mark in marks[:_MAX_NAMED_MARKS]]
    if len(marks) > _MAX_NAMED_MARKS:
        named.append("more punctuation")
    count = len(text)
    return f"{count} character{'s' if count != 1 else ''}: {', '.join(kinds + named)}"


def refused(value: object) -> str:
    """Given a refused value, return `(the value has 28 characters: letters, …)` for a message."""
    return f"(the value has {shape(value)})"


def scrub(message: str, body: bytes) -> str:
    """Given an API error message and the JSON body that was refused, blank out its texts.

    Every string value of the body that the message quotes (`'…'` or `"…"`), or repeats
    unquoted when 8 characters or longer, is replaced by `…`. Keys, numbers and the
    message's own words stay. A body that is not JSON leaves the message as it is.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return message
    texts = sorted({text for text in _texts(data, 0) if text.strip()}, key=len, reverse=True)
    for text in texts:
        for quote in ("'", '"'):
            message = message.replace(f"{quote}{text}{quote}", f"{quote}…{quote}")
        if len(text) >= _MIN_UNQUOTED:
            message = message.replace(text, "…")
    return message


def _texts(value: object, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item, depth + 1)
