"""SAF-T Cash Register exports written by the tests: one register's sales and Z reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REGISTER = "K1"
DAY = "2026-03-02"


def sale(nr: int, *, day: str = DAY, amount: str = "125.00", training: bool = False) -> str:
    """One sale at 25 % VAT paid by card (`amount` must be 1.25 × a whole number of øre)."""
    gross = int(amount.replace(".", ""))
    net, vat = gross * 4 // 5, gross // 5
    ex, tax = f"{net // 100}.{net % 100:02d}", f"{vat // 100}.{vat % 100:02d}"
    flag = "<trainingID>true</trainingID>" if training else ""
    return (
        f"<cashtransaction><nr>{nr}</nr><transID>{nr}</transID><transType>CASHSAL</transType>"
        f"<transAmntIn>{amount}</transAmntIn><transAmntEx>{ex}</transAmntEx><amntTp>C</amntTp>"
        f"<transDate>{day}</transDate><transTime>12:00:00</transTime>"
        "<ctLine><nr>1</nr><lineID>1</lineID><lineType>SAL</lineType><artID>1001</artID>"
        f"<qnt>1</qnt><lineAmntIn>{amount}</lineAmntIn><lineAmntEx>{ex}</lineAmntEx>"
        "<amntTp>C</amntTp><vat><vatCode>3</vatCode><vatPerc>25.00</vatPerc>"
        f"<vatAmnt>{tax}</vatAmnt><vatAmntTp>C</vatAmntTp><vatBasAmnt>{ex}</vatBasAmnt></vat>"
        "</ctLine><vat><vatCode>3</vatCode><vatPerc>25.00</vatPerc>"
        f"<vatAmnt>{tax}</vatAmnt><vatAmntTp>C</vatAmntTp><vatBasAmnt>{ex}</vatBasAmnt></vat>"
        f"<payment><paymentType>CARD</paymentType><paidAmnt>{amount}</paidAmnt></payment>"
        f"<signature>NA</signature><keyVersion>1</keyVersion>{flag}</cashtransaction>"
    )


def z_report(day: str, sales_ore: int) -> str:
    """A Z report whose totals are `sales_ore` of card sales at 25 % VAT, no returns."""

    def major(ore: int) -> str:
        return f"{ore // 100}.{ore % 100:02d}"

    return (
        "<event><eventID>9000</eventID><eventType>ZREP</eventType>"
        f"<eventDate>{day}</eventDate><eventTime>23:55:00</eventTime><eventReport>"
        f"<reportID>{day}</reportID><reportType>Z report</reportType>"
        f"<reportDate>{day}</reportDate><reportTime>23:55:00</reportTime>"
        f"<registerID>{REGISTER}</registerID>"
        f"<reportTotalCashSales><totalCashSaleAmnt>{major(sales_ore)}</totalCashSaleAmnt>"
        "</reportTotalCashSales><reportPayments><reportPayment><paymentType>CARD</paymentType>"
        f"<paymentNum>1</paymentNum><paymentAmnt>{major(sales_ore)}</paymentAmnt>"
        "</reportPayment></reportPayments><reportCashSalesVat><reportCashSaleVat>"
        f"<vatCode>3</vatCode><vatPerc>25.00</vatPerc><cashSaleAmnt>{major(sales_ore * 4 // 5)}"
        f"</cashSaleAmnt><vatAmnt>{major(sales_ore // 5)}</vatAmnt><vatAmntTp>C</vatAmntTp>"
        "</reportCashSaleVat></reportCashSalesVat><reportReturnNum>0</reportReturnNum>"
        "<reportReturnAmnt>0.00</reportReturnAmnt>"
        f"<reportGrandTotalSales>{major(sales_ore)}</reportGrandTotalSales>"
        "<reportGrandTotalReturn>0.00</reportGrandTotalReturn></eventReport></event>"
    )


def saft(transactions: list[str], z_reports: tuple[str, ...] | list[str] = ()) -> bytes:
    """A SAF-T Cash Register export of one register: Z reports first, as tills write them."""
    basics = (
        "<basic><basicType>11</basicType><basicID>CASHSAL</basicID>"
        "<predefinedBasicID>11001</predefinedBasicID><basicDesc>Cash sale</basicDesc></basic>"
        "<basic><basicType>05</basicType><basicID>SAL</basicID><basicDesc>Sale</basicDesc></basic>"
        "<basic><basicType>12</basicType><basicID>CARD</basicID>"
        "<predefinedBasicID>12002</predefinedBasicID><basicDesc>Card</basicDesc></basic>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<auditfile xmlns="urn:StandardAuditFile-Taxation-CashRegister:NO">'
        "<header><curCode>NOK</curCode></header><company><companyIdent>999999999</companyIdent>"
        f"<companyName>Butikk AS</companyName><basics>{basics}</basics>"
        f"<location><name>Butikk</name><cashregister><registerID>{REGISTER}</registerID>"
        + "".join(z_reports)
        + "".join(transactions)
        + "</cashregister></location></company></auditfile>"
    ).encode()


def saft_source(spool_dir: Path, **overrides: Any) -> dict[str, Any]:
    """A `sources[]` entry: saft-cashregister source `till` (store sc029) on `spool_dir`."""
    source: dict[str, Any] = {
        "name": "till",
        "path": str(spool_dir),
        "format": "saft-cashregister",
        "pattern": "*.xml",
        "settle": "0s",
        "store": {"id": "sc029"},
        "timezone": "Europe/Oslo",
    }
    source.update(overrides)
    return source
