"""Payment kinds: a till's tender/payment type name → Dintero `payments[].token_type`.

One vocabulary for every format, so Dintero sees the same `token_type` whether a card
payment came from POSLog (`Tender@TenderType="CreditDebit"` + `CreditDebit@CardType`), a CSV
column (`Kort`, `Bankkort`) or another export. Pure, stdlib only.

The vocabulary (upper case, as Dintero's own example `VIPPS`): CASH, CARD, DEBIT_CARD,
CREDIT_CARD, GIFT_CARD, VOUCHER, CREDIT_NOTE, CHECK, MOBILE, VIPPS, SWISH, MOBILEPAY,
PAYPAL, KLARNA, LOYALTY, CUSTOMER_ACCOUNT, BANK_ACCOUNT, INVOICE. A name that is not
recognised gives None: the payment keeps the till's own name in `type_id` and gets no
`token_type` (never a guess).
"""

from __future__ import annotations

import re

# Normalised name (lower case, letters and digits only) → token_type. ARTS POSLog TenderType
# values, common vendor spellings, and the Nordic words tills print (NO/SE/DK).
_KINDS: dict[str, str] = {
    # cash
    "cash": "CASH",
    "kontant": "CASH",
    "kontanter": "CASH",
    # cards
    "card": "CARD",
    "creditdebit": "CARD",
    "bankcard": "CARD",
    "paymentcard": "CARD",
    "kort": "CARD",
    "bankkort": "CARD",
    "betalkort": "CARD",
    "betalingskort": "CARD",
    "dankort": "DEBIT_CARD",
    "debit": "DEBIT_CARD",
    "debitcard": "DEBIT_CARD",
    "debetkort": "DEBIT_CARD",
    "credit": "CREDIT_CARD",
    "creditcard": "CREDIT_CARD",
    "kredittkort": "CREDIT_CARD",
    "kreditkort": "CREDIT_CARD",
    # gift cards and vouchers
    "giftcard": "GIFT_CARD",
    "giftcertificate": "GIFT_CARD",
    "storedvalue": "GIFT_CARD",
    "gavekort": "GIFT_CARD",
    "presentkort": "GIFT_CARD",
    "voucher": "VOUCHER",
    "coupon": "VOUCHER",
    "kupong": "VOUCHER",
    "creditnote": "CREDIT_NOTE",
    "tilgodelapp": "CREDIT_NOTE",
    "tilgodekvittering": "CREDIT_NOTE",
    "tillgodokvitto": "CREDIT_NOTE",
    "tilgodebevis": "CREDIT_NOTE",
    # cheques
    "check": "CHECK",
    "cheque": "CHECK",
    "travelerscheck": "CHECK",
    "sjekk": "CHECK",
    # mobile
    "mobile": "MOBILE",
    "mobilepayment": "MOBILE",
    "vipps": "VIPPS",
    "swish": "SWISH",
    "mobilepay": "MOBILEPAY",
    "paypal": "PAYPAL",
    "klarna": "KLARNA",
    "izettlecard": "CARD",
    "izettlecash": "CASH",
    # accounts
    "loyalty": "LOYALTY",
    "loyaltyredemption": "LOYALTY",
    "points": "LOYALTY",
    "customeraccount": "CUSTOMER_ACCOUNT",
    "account": "CUSTOMER_ACCOUNT",
    "kundekonto": "CUSTOMER_ACCOUNT",
    "bankaccount": "BANK_ACCOUNT",
    "invoice": "INVOICE",
    "faktura": "INVOICE",
}
_CARD_TYPES = {"debit": "DEBIT_CARD", "credit": "CREDIT_CARD"}
_NOT_NAME = re.compile(r"[^0-9a-zæøåäö]")


def normalised(name: str) -> str:
    """Given `VRExt:Credit Debit` or `Gave-kort`, return `creditdebit` / `gavekort`."""
    return _NOT_NAME.sub("", name.rpartition(":")[2].lower())


def token_type_for(name: str | None, card_type: str | None = None) -> str | None:
    """Given a tender/payment type name (and a card's debit/credit kind), return its token_type.

    `card_type` refines a plain card (`CreditDebit` + `Debit` → DEBIT_CARD). Return None when
    the name is not one of the known kinds.
    """
    kind = _KINDS.get(normalised(name)) if name else None
    if card_type and kind in (None, "CARD"):
        return _CARD_TYPES.get(normalised(card_type), kind)
    return kind
