"""How an error message speaks of a value it refused, without repeating it (CONTRACT §6).

A till export's cell or element may hold a customer's name, e-mail or phone number
where a time or an amount belongs (a CSV with shifted columns, a till that writes the
wrong field). Error messages go to the log, stderr, `queue list`, `status` and
`.error.json`, so they say which field and why, never what it held. `shape` gives the
operator what they need to spot a shifted column or a decimal comma instead: the
length and the kinds of characters, with punctuation named (punctuation alone
identifies no one; letters and digits are only counted as kinds).

Pure, stdlib only. Used by `formats`, `money` and `mapping`.
"""

from __future__ import annotations

_MAX_NAMED_MARKS = 6


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
