"""Safe, streaming XML for the till-export parsers (SAF-T, POSLog): defusedxml `iterparse`.

Owns the one way receipt-agent reads XML. Pure: reads the binary stream it is given, nothing
else; no filesystem, network, database or logging. It never resolves a DTD, an entity or an
external reference, and never holds more of a file in memory than the subtree a parser asked
for (CONTRACT §3.1: memory stays flat whatever the file's size; formats.md §1.6, §6.8).

API
---

``stream_elements(stream, wanted, *, skip=None, max_depth=DEFAULT_MAX_DEPTH) -> Iterator[Found]``
    Parse ``stream`` (bytes; UTF-8 with or without BOM, CRLF or LF, any encoding expat knows
    from the XML declaration) and yield a ``Found`` for every element whose path ``wanted``
    accepts, in document order, when that element's end tag has been read (so the subtree is
    complete). ``wanted`` gets the path as a tuple of **local names** from the root, e.g.
    ``("auditfile", "company", "location", "cashregister", "cashtransaction")``; it is called
    exactly once per element start, in document order, for every element that is not inside
    a wanted or skipped subtree, so a caller may also count or track elements there (SAF-T
    tracks `location` and `cashregister` starts this way). Elements inside a wanted element
    are part of its subtree and are not offered to ``wanted`` (no nesting of wanted elements).
    ``skip`` (optional, same argument) names subtrees to drop unread, e.g. SAF-T ``event``s:
    a speed-up only, the result is the same without it.
    Namespaces are ignored everywhere: a default namespace, ``n1:``/``d1:`` prefixes and vendor
    extension namespaces all become local names, in the yielded subtree's tags and attribute
    names too, so parsers look up children by plain names (``child(el, "nr")``).

    Memory: after the consumer resumes, a yielded element is cleared and detached from its
    parent; elements that are neither wanted nor inside a wanted element are cleared and
    detached at their end tag. Only the open ancestors (the path) and the wanted subtree in hand
    are ever alive, so a 2 GB export parses in a few MB. Do not keep a yielded element after
    asking for the next one: it is emptied. Copy out what you need (``text``, ``children``).

``Found``: ``name`` (local name), ``element`` (the subtree, local-name tags), ``path`` (the
    tuple above) and ``where`` (an XPath-like location with 1-based sibling positions,
    ``/auditfile/company/location[1]/cashregister[2]/cashtransaction[17]``), for error messages.

Helpers for the yielded subtrees (local names, never namespaces): ``child``, ``children``,
``text`` (stripped; None when absent or empty), and ``local_name``.

Errors: every failure becomes ``errors.ParseError`` with a location (``line N, column M`` from
expat, plus the element path when known) and an operator sentence:

- a DOCTYPE/DTD, an entity declaration (billion laughs, quadratic blow-up) or an external
  reference (XXE): refused for safety, never expanded or fetched;
- nesting deeper than ``max_depth`` (default 256; SAF-T needs 8, POSLog about 15): refused
  before Python's recursion or memory can suffer;
- malformed XML (mismatched tags, bad bytes) and a truncated file (the end tag is missing);
- an empty file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO
from xml.etree.ElementTree import Element, TreeBuilder
from xml.etree.ElementTree import ParseError as ExpatParseError

from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import DefusedXMLParser
from defusedxml.ElementTree import iterparse as defused_iterparse

from receipt_agent.errors import ParseError

DEFAULT_MAX_DEPTH = 256

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Found:
    """A complete wanted element: its local name, subtree, path and printable location."""

    name: str
    element: Element
    path: Path
    where: str


def local_name(tag: str) -> str:
    """Given `{urn:…}nr` or `nr`, return `nr`."""
    return tag.rpartition("}")[2] if tag[:1] == "{" else tag


def child(element: Element, name: str) -> Element | None:
    """Return the first child with local name `name` (tags are local after streaming)."""
    return element.find(name)


def children(element: Element, name: str) -> list[Element]:
    """Return every child with local name `name`, in document order."""
    return element.findall(name)


def text(element: Element | None, name: str | None = None) -> str | None:
    """Return the stripped text of `element` (or of its child `name`); None when absent/empty."""
    if element is None:
        return None
    node = element if name is None else element.find(name)
    if node is None or node.text is None:
        return None
    value = node.text.strip()
    return value or None


class _Frame:
    """One open element outside a wanted subtree: node, local name, location, child counts."""

    __slots__ = ("counts", "name", "node", "where")

    def __init__(self, node: Element, name: str, where: str) -> None:
        self.node = node
        self.name = name
        self.where = where
        self.counts: dict[str, int] = {}


def stream_elements(
    stream: IO[bytes],
    wanted: Callable[[Path], bool],
    *,
    skip: Callable[[Path], bool] | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Iterator[Found]:
    """Given a binary XML stream, yield every element `wanted` accepts (see module docstring).

    Raise ParseError (with a location) for DTDs, entities, external references, too deep
    nesting, malformed or truncated XML.
    """
    parser = DefusedXMLParser(
        target=TreeBuilder(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    stack: list[_Frame] = []  # the open elements outside wanted/skipped subtrees
    path: list[str] = []
    names: dict[str, str] = {}  # tag → local name, so each distinct tag is split once
    # Depth inside the open wanted (or skipped) subtree; 0 when none is open. Its elements are
    # not offered to `wanted` and get no frame: the fast path for the bulk of a file.
    inside = 0
    inside_kept = False  # the open subtree is wanted (kept), not skipped (dropped)
    try:
        events = defused_iterparse(
            stream,
            events=("start", "end"),
            parser=parser,
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        for event, node in events:
            tag = node.tag
            name = names.get(tag)
            if name is None:
                name = names[tag] = local_name(tag)
            if event == "start":
                if inside:
                    inside += 1
                    if len(stack) + inside > max_depth:
                        raise _too_deep(stack, name, max_depth)
                    continue
                if len(stack) >= max_depth:
                    raise _too_deep(stack, name, max_depth)
                parent = stack[-1] if stack else None
                if parent is not None:
                    position = parent.counts.get(name, 0) + 1
                    parent.counts[name] = position
                    where = f"{parent.where}/{name}[{position}]"
                else:
                    where = f"/{name}"
                path.append(name)
                current = tuple(path)
                is_wanted = wanted(current)
                stack.append(_Frame(node, name, where))
                if is_wanted or (skip is not None and skip(current)):
                    inside, inside_kept = 1, is_wanted
                continue
            if inside > 1:  # the end of an element inside a wanted or skipped subtree
                inside -= 1
                if inside_kept:
                    node.tag = name
                    if node.attrib and any(key[:1] == "{" for key in node.attrib):
                        node.attrib = _local_attributes(node.attrib)
                continue
            frame = stack.pop()
            current = tuple(path)
            path.pop()
            if inside:
                inside = 0
                if inside_kept:
                    node.tag = name
                    if node.attrib and any(key[:1] == "{" for key in node.attrib):
                        node.attrib = _local_attributes(node.attrib)
                    yield Found(name=name, element=node, path=current, where=frame.where)
            node.clear()
            if stack:
                # Only the last child can be here: earlier siblings were detached already.
                stack[-1].node.remove(node)
    except ExpatParseError as error:
        raise _syntax_error(error, stack) from None
    except DTDForbidden:
        raise ParseError(
            "the file declares a DTD or entities (<!DOCTYPE …>), which receipt-agent refuses "
            "for safety; export without a DOCTYPE",
            location=_expat_where(parser, stack),
        ) from None
    except EntitiesForbidden:
        raise ParseError(
            "the file declares XML entities, which receipt-agent refuses for safety (they can "
            "expand to gigabytes); export without a DOCTYPE or entity declarations",
            location=_expat_where(parser, stack),
        ) from None
    except ExternalReferenceForbidden:
        raise ParseError(
            "the file refers to an external entity or file, which receipt-agent never reads "
            "for safety; export without a DOCTYPE or external references",
            location=_expat_where(parser, stack),
        ) from None
    except DefusedXmlException as error:
        raise ParseError(
            "the file uses an XML feature receipt-agent refuses for safety "
            f"({type(error).__name__}); export plain XML without a DOCTYPE",
            location=_expat_where(parser, stack),
        ) from None
    except RecursionError:
        raise ParseError(
            "the XML nests too deeply to be read safely; this is not a till export",
            location=_expat_where(parser, stack),
        ) from None


def _local_attributes(attrib: dict[str, str]) -> dict[str, str]:
    return {local_name(key): value for key, value in attrib.items()}


def _too_deep(stack: list[_Frame], name: str, max_depth: int) -> ParseError:
    return ParseError(
        f"the XML nests elements more than {max_depth} levels deep, which no till export "
        "needs; receipt-agent refuses it for safety",
        location=_where(stack, name),
    )


def _where(stack: list[_Frame], name: str | None = None) -> str:
    """The open element's location: the last positioned ancestor plus plain names below it."""
    if not stack:
        return f"/{name}" if name else "(start of file)"
    below: list[str] = [name] if name else []
    for frame in reversed(stack):
        if frame.where:
            return "/".join([frame.where, *reversed(below)])
        below.append(frame.name)
    return "/" + "/".join(reversed(below))


def _expat_where(parser: DefusedXMLParser, stack: list[_Frame]) -> str:
    expat = parser.parser
    line = f"line {expat.CurrentLineNumber}, column {expat.CurrentColumnNumber + 1}"
    return f"{line} ({_where(stack)})" if stack else line


def _syntax_error(error: ExpatParseError, stack: list[_Frame]) -> ParseError:
    line, column = getattr(error, "position", (0, 0))
    where = f"line {line}, column {column + 1}"
    if stack:
        where = f"{where} (in {_where(stack)})"
    reason = str(error).split(":", 1)[0]
    if reason == "no element found":
        if line <= 1 and column == 0 and not stack:
            return ParseError("the file is empty; it is not an XML export", location=where)
        return ParseError(
            "the file ends before the XML is complete (cut off or still being written); "
            "export it again, and write it to a temporary name before moving it into the folder",
            location=where,
        )
    if reason == "unclosed token" or (reason == "syntax error" and stack):
        return ParseError(
            f"the file ends or breaks in the middle of the XML ({reason}); export it again",
            location=where,
        )
    return ParseError(
        f"the file is not well-formed XML ({reason}); ask the till vendor for a valid export",
        location=where,
    )
