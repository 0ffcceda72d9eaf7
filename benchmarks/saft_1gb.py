"""Benchmark: convert a ~1 GB SAF-T Cash Register export with flat memory.

Writes a synthetic SAF-T file of `--size-mb` MB (default 1024) into a temporary folder,
streaming it out transaction by transaction (the writer never holds the file), then converts
it in a child process exactly as the daemon would (saft.parse + mapping.finish_receipt,
results discarded), and prints the receipts, seconds, receipts/s and the child's peak RSS
(`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`). Target: peak RSS < 100 MB.

    .venv/bin/python benchmarks/saft_1gb.py --size-mb 1024

The temporary folder is removed afterwards unless `--keep` is given.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD = """<?xml version="1.0" encoding="UTF-8"?>\r
<auditfile xmlns="urn:StandardAuditFile-Taxation-CashRegister:NO">\r
<header><curCode>NOK</curCode><softwareDesc>bench</softwareDesc></header>\r
<company><companyIdent>999999999</companyIdent><companyName>Bench AS</companyName>\r
<taxRegIdent>999999999MVA</taxRegIdent>\r
<vatCodeDetails><vatCodeDetail><vatCode>3</vatCode><vatDesc>VAT 25 %</vatDesc></vatCodeDetail>\r
<vatCodeDetail><vatCode>2</vatCode><vatDesc>VAT 15 %</vatDesc></vatCodeDetail></vatCodeDetails>\r
<employees><employee><empID>1</empID><firstName>Kari</firstName><surName>Nordmann</surName>\r
</employee></employees>\r
<articles>{articles}</articles>\r
<basics>\r
<basic><basicType>04</basicType><basicID>100</basicID><basicDesc>Food</basicDesc></basic>\r
<basic><basicType>11</basicType><basicID>CASHSAL</basicID><predefinedBasicID>11001</predefinedBasicID>\r
<basicDesc>Cash sale</basicDesc></basic>\r
<basic><basicType>11</basicType><basicID>RETURNSAL</basicID><predefinedBasicID>11006</predefinedBasicID>\r
<basicDesc>Return</basicDesc></basic>\r
<basic><basicType>12</basicType><basicID>CASH</basicID><predefinedBasicID>12001</predefinedBasicID>\r
<basicDesc>Cash</basicDesc></basic>\r
<basic><basicType>12</basicType><basicID>CARD</basicID><predefinedBasicID>12002</predefinedBasicID>\r
<basicDesc>Card</basicDesc></basic>\r
</basics>\r
<location><name>Bench shop</name>\r
"""
LINE = """<ctLine><nr>{nr}</nr><lineID>{line}</lineID><lineType>SAL</lineType>\r
<artGroupID>100</artGroupID><artID>{art}</artID><qnt>{qnt}</qnt><lineAmntIn>{amount_in}</lineAmntIn><lineAmntEx>{amount_ex}</lineAmntEx>\r
<amntTp>C</amntTp><empID>1</empID><vat><vatCode>3</vatCode><vatPerc>25.00</vatPerc>\r
<vatAmnt>{vat}</vatAmnt><vatAmntTp>C</vatAmntTp><vatBasAmnt>{amount_ex}</vatBasAmnt></vat></ctLine>\r
"""
TRANSACTION = """<event><eventID>{nr}</eventID><eventType>SALREC</eventType>\r
<transID>{nr}</transID><eventDate>2026-03-{day:02d}</eventDate><eventTime>{clock}</eventTime></event>\r
<cashtransaction><nr>{nr}</nr><transID>{nr}</transID><transType>CASHSAL</transType>\r
<transAmntIn>{total}</transAmntIn><transAmntEx>{total_ex}</transAmntEx><amntTp>C</amntTp><empID>1</empID>\r
<periodNumber>1</periodNumber><transDate>2026-03-{day:02d}</transDate><transTime>{clock}</transTime>\r
{lines}<vat><vatCode>3</vatCode><vatPerc>25.00</vatPerc><vatAmnt>{vat}</vatAmnt><vatAmntTp>C</vatAmntTp>\r
<vatBasAmnt>{total_ex}</vatBasAmnt></vat><rounding><roundingAmnt>{rounding}</roundingAmnt></rounding>\r
<payment><paymentType>{kind}</paymentType><paidAmnt>{paid}</paidAmnt><curCode>NOK</curCode>\r
<exchRt>1.000000</exchRt><paymentRefID>BAX: 1-{nr}</paymentRefID></payment>\r
<signature>{signature}</signature><keyVersion>1</keyVersion><receiptNum>1</receiptNum>\r
<receiptCopyNum>0</receiptCopyNum><voidTransaction>false</voidTransaction><trainingID>false</trainingID>\r
</cashtransaction>\r
"""
SIGNATURE = "A" * 172  # the size of a real base64 RSA-1024 signature
PER_REGISTER = 50_000
HALF_KRONE = 50


def _money(ore: int) -> str:
    sign = "-" if ore < 0 else ""
    return f"{sign}{abs(ore) // 100}.{abs(ore) % 100:02d}"


def write_export(path: Path, size_bytes: int) -> int:
    """Write a SAF-T file of at least `size_bytes`; return the number of transactions."""
    articles = "".join(
        f"<article><artID>{art}</artID><artGroupID>100</artGroupID><artDesc>Vare {art}</artDesc>"
        "</article>\r\n"
        for art in range(1000, 1100)
    )
    count = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEAD.format(articles=articles))
        written = out.tell()
        while written < size_bytes:
            register = count // PER_REGISTER + 1
            out.write(f"<cashregister><registerID>K{register}</registerID>\r\n")
            for _ in range(PER_REGISTER // 1000):  # 1000 transactions per write: ~2 MB
                chunk = "".join(_transaction(count + i) for i in range(1, 1001))
                count += 1000
                out.write(chunk)
                written += len(chunk.encode())
                if written >= size_bytes:
                    break
            out.write("</cashregister>\r\n")
        out.write("</location></company></auditfile>\r\n")
    return count


def _transaction(nr: int) -> str:
    lines, total, total_ex = [], 0, 0
    for line in range(1, 2 + nr % 3):
        quantity = 1 + (nr + line) % 4
        amount_in = quantity * (1250 + (nr * 7 + line * 13) % 9000)
        amount_ex = amount_in * 4 // 5
        total += amount_in
        total_ex += amount_ex
        lines.append(
            LINE.format(
                nr=nr,
                line=line,
                art=1000 + (nr + line) % 100,
                qnt=quantity,
                amount_in=_money(amount_in),
                amount_ex=_money(amount_ex),
                vat=_money(amount_in - amount_ex),
            )
        )
    cash = nr % 2 == 0
    below = total % 100  # cash is rounded to whole kroner, half up
    rounding = (-below if below < HALF_KRONE else 100 - below) if cash else 0
    seconds = nr % 50_000
    return TRANSACTION.format(
        nr=nr,
        day=1 + nr // 50_000 % 28,
        clock=f"{8 + seconds // 3600 % 14:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",
        total=_money(total),
        total_ex=_money(total_ex),
        vat=_money(total - total_ex),
        lines="".join(lines),
        rounding=_money(rounding),
        kind="CASH" if cash else "CARD",
        paid=_money(total + rounding),
        signature=SIGNATURE,
    )


def convert(path: Path) -> None:
    """Child process: parse + finish every receipt, print counts and seconds as JSON."""
    from receipt_agent.config import SaftSource
    from receipt_agent.formats import InvalidRecord, RawReceipt
    from receipt_agent.formats.saft import parse
    from receipt_agent.mapping import ValidReceipt, finish_receipt

    source = SaftSource.model_validate(
        {"name": "bench", "path": str(path.parent), "format": "saft-cashregister",
         "store": {"id": "bench"}}
    )  # fmt: skip
    counts = {"receipts": 0, "invalid": 0, "skipped": 0}
    started = time.monotonic()
    with path.open("rb") as stream:
        for record in parse(stream, source):
            if isinstance(record, RawReceipt):
                finished = finish_receipt(record, source)
                key = "receipts" if isinstance(finished, ValidReceipt) else "invalid"
                if key == "invalid" and counts["invalid"] == 0:
                    print(finished, file=sys.stderr)
                counts[key] += 1
            elif isinstance(record, InvalidRecord):
                if counts["invalid"] == 0:
                    print(record, file=sys.stderr)
                counts["invalid"] += 1
            else:
                counts["skipped"] += 1
    seconds = time.monotonic() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({**counts, "seconds": seconds, "self_peak_kib": peak_kib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        convert(args.child)
        return
    folder = Path(tempfile.mkdtemp(prefix="saft-bench-"))
    path = folder / "SAF-T_Cash_Register_999999999_20260331230000_1_1.xml"
    started = time.monotonic()
    transactions = write_export(path, args.size_mb * 1024 * 1024)
    size_mb = path.stat().st_size / 1024 / 1024
    print(f"wrote {path} ({size_mb:.0f} MB, {transactions} transactions) "
          f"in {time.monotonic() - started:.1f} s")  # fmt: skip
    try:
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if not args.keep:
            path.unlink()
            folder.rmdir()
    result = json.loads(child.stdout)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    print(f"receipts:   {result['receipts']} (invalid {result['invalid']}, "
          f"skipped {result['skipped']})")  # fmt: skip
    print(f"seconds:    {result['seconds']:.1f}")
    print(f"receipts/s: {result['receipts'] / result['seconds']:.0f}")
    print(f"MB/s:       {size_mb / result['seconds']:.1f}")
    print(f"peak RSS:   {peak_mb:.1f} MB (target < 100 MB; getrusage RUSAGE_CHILDREN)")
    print(f"            {result['self_peak_kib'] / 1024:.1f} MB as the child measured itself")
    if child.stderr:
        print(child.stderr, file=sys.stderr)


if __name__ == "__main__":
    main()
