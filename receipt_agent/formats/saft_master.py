"""SAF-T Cash Register company master data: the lookups a transaction is joined with.

Owns reading `header/curCode`, the company's name and ids, `vatCodeDetails`, `employees`,
`articles` and `basics` into plain dicts while the file streams (they come before the
`location`s in the schema's sequence, formats.md §6.5), and the code lookups on them.
Pure: values in, values out; no I/O, no logging. Customer master data
(`customersSuppliers`) is never read: it is personal data and no Dintero field needs it.

Placeholders: the literal text `NONE` (Lendiron writes it for empty ids and names,
formats.md §2) counts as absent everywhere in SAF-T.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from receipt_agent.formats.xml_stream import Found, text

PLACEHOLDER = "NONE"

# Transaction types (basics type 11) that are receipts / are not (formats.md §1.2).
RECEIPT_TYPES = frozenset(
    {"11001", "11002", "11006", "11009", "11012", "11013", "11015", "11016", "11017"}
)
NON_SALE_TYPES = frozenset({"11003", "11004", "11005", "11007", "11008", "11010", "11011", "11014"})
RETURN_TYPES = frozenset({"11006", "11013"})  # every line is a return
SALE_TYPES = frozenset({"11001", "11002", "11015"})  # every line is a sale
_RETURN_WORDS = re.compile(r"(?i)\b(ret|return|returns|retur|retour|refund)\b")

# The master-data elements to keep while streaming (local names below `auditfile`).
MASTER_PATHS = frozenset(
    {
        ("auditfile", "header", "curCode"),
        ("auditfile", "company", "companyIdent"),
        ("auditfile", "company", "companyName"),
        ("auditfile", "company", "taxRegIdent"),
        ("auditfile", "company", "vatCodeDetails", "vatCodeDetail"),
        ("auditfile", "company", "employees", "employee"),
        ("auditfile", "company", "articles", "article"),
        ("auditfile", "company", "basics", "basic"),
    }
)


def value(element: Element | None, name: str | None = None) -> str | None:
    """The stripped text of `element` (or its child `name`); None when absent, blank or NONE."""
    found = text(element, name)
    return None if found == PLACEHOLDER else found


@dataclass(frozen=True, slots=True)
class Basic:
    """One `basic`: the vendor's code → the standard code and its description."""

    predefined: str | None
    description: str | None


@dataclass(frozen=True, slots=True)
class Article:
    description: str | None
    group_id: str | None


@dataclass(slots=True)
class MasterData:
    """Company-level lookups built while streaming; read by every transaction."""

    currency: str | None = None
    company_ident: str | None = None
    company_name: str | None = None
    tax_reg_ident: str | None = None
    vat_groups: dict[str, str | None] = field(default_factory=dict)  # vatCode → vatDesc
    employees: dict[str, str | None] = field(default_factory=dict)  # empID → name
    articles: dict[str, Article] = field(default_factory=dict)
    basics: dict[tuple[str, str], Basic] = field(default_factory=dict)  # (type, id) → Basic

    def absorb(self, found: Found) -> None:
        """Given a master-data element from MASTER_PATHS, add it to the lookups."""
        element, name = found.element, found.name
        if name == "curCode":
            self.currency = value(element)
        elif name == "companyIdent":
            self.company_ident = value(element)
        elif name == "companyName":
            self.company_name = value(element)
        elif name == "taxRegIdent":
            self.tax_reg_ident = value(element)
        elif name == "vatCodeDetail":
            code = value(element, "vatCode")
            if code is not None:
                self.vat_groups[code] = value(element, "vatDesc")
        elif name == "employee":
            emp_id = value(element, "empID")
            if emp_id is not None:
                parts = [value(element, "firstName"), value(element, "surName")]
                self.employees[emp_id] = " ".join(part for part in parts if part) or None
        elif name == "article":
            art_id = value(element, "artID")
            if art_id is not None:
                self.articles[art_id] = Article(
                    value(element, "artDesc"), value(element, "artGroupID")
                )
        elif name == "basic":
            basic_type, basic_id = value(element, "basicType"), value(element, "basicID")
            if basic_type is not None and basic_id is not None:
                self.basics[(basic_type.zfill(2), basic_id)] = Basic(
                    value(element, "predefinedBasicID"), value(element, "basicDesc")
                )

    def basic(self, basic_type: str, basic_id: str | None) -> Basic | None:
        """Given a basics type (`"11"`) and the vendor's code, return its basic, if declared."""
        if basic_id is None:
            return None
        return self.basics.get((basic_type, basic_id))

    def is_return_line_type(self, line_type: str | None) -> bool:
        """Whether a ticket-line code (basics 05, vendor-defined) names a return line.

        Type 05 has no standard codes, so this reads the vendor's id and description
        (`RET` / "Return line", "Retur", "Refund").
        """
        if line_type is None:
            return False
        basic = self.basic("05", line_type)
        words = [line_type, basic.description if basic and basic.description else ""]
        return any(_RETURN_WORDS.search(word) for word in words)
