"""The safe XML streaming layer: local names, and hostile XML refused as ParseError.

Flat memory is measured by benchmarks/xml_stream_memory.py, not asserted here.
"""

from __future__ import annotations

import copy
import io
import sys
from pathlib import Path
from typing import Any

import pytest

from receipt_agent.errors import ParseError
from receipt_agent.formats.xml_stream import Found, stream_elements, text


def _collect(data: bytes, *names: str) -> list[Found]:
    """Every wanted element, deep-copied (the stream empties them once it moves on)."""
    return [
        Found(f.name, copy.deepcopy(f.element), f.path, f.where)
        for f in stream_elements(io.BytesIO(data), lambda path: path[-1] in names)
    ]


def _texts(data: bytes, name: str, field: str) -> list[str | None]:
    return [
        text(found.element, field)
        for found in stream_elements(io.BytesIO(data), lambda path: path[-1] == name)
    ]


def test_stream_default_namespace_yields_local_names() -> None:
    """Elements in a default namespace are matched and returned by their local names."""
    data = b'<a xmlns="urn:x"><b><c>1</c></b><b><c>2</c></b></a>'
    found = _collect(data, "b")
    assert [f.name for f in found] == ["b", "b"]
    assert [f.path for f in found] == [("a", "b"), ("a", "b")]
    assert [f.where for f in found] == ["/a/b[1]", "/a/b[2]"]
    assert _texts(data, "b", "c") == ["1", "2"]


def test_stream_prefix_bom_and_crlf_are_tolerated() -> None:
    """A UTF-8 BOM, CRLF line ends and an `n1:` prefix parse like a plain file."""
    data = (
        b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\r\n'
        b'<n1:a xmlns:n1="urn:y">\r\n <n1:b n1:k="v">'
        b"<n1:c> \xc3\xa6\xc3\xb8 </n1:c></n1:b>\r\n</n1:a>\r\n"
    )
    (found,) = _collect(data, "b")
    assert found.element.attrib == {"k": "v"}
    assert text(found.element, "c") == "æø"


def test_stream_skipped_subtrees_are_not_offered_and_change_nothing() -> None:
    """`skip` drops whole subtrees unread; `wanted` is called once per other element start."""
    data = b"<a><ev><b><c>in event</c></b></ev><b><c>1</c></b><ev/><b><c>2</c></b></a>"
    seen: list[tuple[str, ...]] = []

    def wanted(path: tuple[str, ...]) -> bool:
        seen.append(path)
        return path == ("a", "b")

    found = [
        text(f.element, "c")
        for f in stream_elements(io.BytesIO(data), wanted, skip=lambda p: p[-1] == "ev")
    ]
    assert found == ["1", "2"]
    assert seen == [("a",), ("a", "ev"), ("a", "b"), ("a", "ev"), ("a", "b")]


def test_stream_yielded_element_is_emptied_after_the_next_one() -> None:
    """A consumer cannot rely on an old element: it is cleared as the stream moves on."""
    data = b"<a>" + b"<b><c>x</c></b>" * 3 + b"</a>"
    iterator = stream_elements(io.BytesIO(data), lambda path: path[-1] == "b")
    first = next(iterator)
    assert text(first.element, "c") == "x"
    next(iterator)
    assert len(first.element) == 0


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<auditfile><header><curCode>&lol9;</curCode></header></auditfile>
"""


def test_stream_billion_laughs_is_refused() -> None:
    """An entity bomb is refused with a sentence naming the DTD, never expanded."""
    with pytest.raises(ParseError) as caught:
        _collect(BILLION_LAUGHS, "curCode")
    assert "DTD or entities" in str(caught.value)
    assert "export without a DOCTYPE" in str(caught.value)
    assert caught.value.location is not None
    assert caught.value.location.startswith("line 2")


def test_stream_external_entity_is_never_resolved(tmp_path: Path) -> None:
    """A file:// entity pointing at a local file is refused and the file is never opened."""
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-7f3a", encoding="utf-8")
    data = (
        f'<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY xxe SYSTEM "file://{canary}">]>\n'
        f"<a><b>&xxe;</b></a>"
    ).encode()
    opened: list[str] = []

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event in {"open", "urllib.Request"} and "canary" in str(args[0] if args else ""):
            opened.append(str(args[0]))

    sys.addaudithook(hook)  # audit hooks cannot be removed; this one only records
    with pytest.raises(ParseError) as caught:
        _collect(data, "b")
    assert opened == []
    assert "CANARY" not in str(caught.value)
    assert "refuses" in str(caught.value)


def test_stream_external_dtd_is_refused() -> None:
    """A DOCTYPE with an external DTD (SYSTEM URL) is refused before anything is fetched."""
    data = b'<?xml version="1.0"?>\n<!DOCTYPE a SYSTEM "http://127.0.0.1:9/evil.dtd">\n<a/>'
    with pytest.raises(ParseError, match="DTD"):
        _collect(data, "a")


def test_stream_undeclared_entity_reference_is_a_parse_error() -> None:
    """A reference to an entity that was never declared is malformed XML, not a crash."""
    with pytest.raises(ParseError, match="not well-formed"):
        _collect(b"<a><b>&xxe;</b></a>", "b")


def test_stream_deep_nesting_is_refused() -> None:
    """10,000 nested elements raise ParseError naming the depth limit, not a crash."""
    data = b"<a>" * 10_000 + b"</a>" * 10_000
    with pytest.raises(ParseError, match="levels deep") as caught:
        _collect(data, "zzz")
    assert caught.value.location is not None
    assert caught.value.location.startswith("/a/a[1]/a[1]")


def test_stream_malformed_xml_names_the_line() -> None:
    """A mismatched tag is reported with its line and column and the open element."""
    data = b"<a>\r\n<b>\r\n<c>1</b>\r\n</a>"
    with pytest.raises(ParseError, match="mismatched tag") as caught:
        _collect(data, "b")
    assert caught.value.location is not None
    assert caught.value.location.startswith("line 3, column ")
    assert caught.value.location.endswith("(in /a/b[1])")


def test_stream_truncated_file_says_it_was_cut_off() -> None:
    """A file cut off mid-way is reported as incomplete, with the element it stopped in."""
    data = b"<auditfile><company><location><cashregister><cashtransaction><nr>1</nr>"
    with pytest.raises(ParseError, match="ends before the XML is complete") as caught:
        _collect(data, "cashtransaction")
    assert "cashtransaction[1]" in str(caught.value)


def test_stream_file_cut_inside_a_tag_is_a_parse_error() -> None:
    """A file cut inside a tag is a ParseError that says so."""
    with pytest.raises(ParseError, match="export it again"):
        _collect(b"<a><b>1</b><b", "b")


def test_stream_empty_file_is_a_parse_error() -> None:
    """An empty file is reported as empty."""
    with pytest.raises(ParseError, match="empty"):
        _collect(b"", "a")


def test_stream_text_helper_treats_blank_as_absent() -> None:
    """`text` returns None for missing and blank elements and strips whitespace."""
    (found,) = _collect(b"<a><b><c>  </c><d> 1 </d></b></a>", "b")
    assert text(found.element, "c") is None
    assert text(found.element, "missing") is None
    assert text(found.element, "d") == "1"
