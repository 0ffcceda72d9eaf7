"""Log hygiene audit: canary secrets and personal data never reach logs, status or sidecars.

The whole pipeline runs as real processes (the daemon and `run --once`) with canaries in
the receipts (valid, invalid and unparseable), in the config, and in the environment; the
real log file, `status`/`queue list` output and every `.error.json` are then searched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import (
    ACCOUNT,
    CLIENT_ID,
    base_config,
    cli,
    drop,
    make_receipt,
    start_agent,
    stop_agent,
    wait_until,
)

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.e2e

CANARY_SECRET = "zz-canary-client-secret-77"
CANARY_TOKEN = "zz-canary-customer-token-55"
PERSONAL = {
    "first_name": "Canaryfirst",
    "last_name": "Canarylast",
    "email": "canary.person@example.no",
    "phone_number": "+4799887766",
    "date_of_birth": "1961-02-03",
    "address_line": "Canaryveien 12",
    "card_number": "4111111111111111",
    "masked_card": "411111******1111",
}


def _customer_receipt(number: int, **overrides: Any) -> dict[str, Any]:
    receipt = make_receipt(number)
    receipt["customer"] = {
        "first_name": PERSONAL["first_name"],
        "last_name": PERSONAL["last_name"],
        "email": PERSONAL["email"],
        "phone_number": PERSONAL["phone_number"],
        "date_of_birth": PERSONAL["date_of_birth"],
        "addresses": [
            {"address_line": PERSONAL["address_line"], "postal_place": "Oslo", "country": "NO"}
        ],
        "token": {"token_id": CANARY_TOKEN, "value": CANARY_TOKEN, "type": "loyalty"},
    }
    receipt["customer_id"] = CANARY_TOKEN
    receipt["payments"][0]["card_info"] = {"card_number": PERSONAL["masked_card"]}
    receipt["payments"][0]["token_id"] = CANARY_TOKEN
    receipt.update(overrides)
    return receipt


def test_pipeline_with_canaries_never_writes_them_to_logs_status_or_sidecars(
    tmp_path: Path,
    spool_dir: Path,
    state_dir: Path,
    write_config: Callable[..., Path],
) -> None:
    """An auditor grepping every operator-facing output finds no secret and no personal data.

    1. Secret in a file and in the environment; receipts full of customer data, one with
       an invalid phone (rejected), one refused by the API, a broken file holding PII,
       a token that lives 2 s.
    2. Run the daemon until delivered, then `run --once`, `status`, `queue list`.
    Result: none of the canaries appear in agent.log, CLI output or any .error.json.
    """
    secret_file = tmp_path / "client_secret"
    secret_file.write_text(CANARY_SECRET)
    secret_file.chmod(0o600)
    with Sandbox(client_id=CLIENT_ID, client_secret=CANARY_SECRET, port=0) as sandbox:
        sandbox.set_faults(token_lifetime_s=2, refuse_receipt_id="^R000003$")
        outputs = _run_pipeline(tmp_path, sandbox, spool_dir, state_dir, secret_file, write_config)
        assert len(sandbox.receipt_ids(ACCOUNT)) == 2
    assert any("file.quarantined" in text for text in outputs)
    assert any("receipt.rejected" in text for text in outputs)

    everything = "\n".join(outputs)
    for canary in (CANARY_SECRET, CANARY_TOKEN, *PERSONAL.values()):
        assert canary not in everything, canary
    assert ACCOUNT in everything  # the audit did read real output


def _run_pipeline(
    tmp_path: Path, sandbox: Sandbox, spool_dir: Path, state_dir: Path, secret_file: Path,
    write_config: Callable[..., Path],
) -> list[str]:  # fmt: skip
    config = base_config(
        base_url=sandbox.base_url, spool_dir=spool_dir, state_dir=state_dir,
        secret_file=secret_file, log_file=tmp_path / "agent.log",
    )  # fmt: skip
    config["log"]["level"] = "debug"
    path = write_config(config)
    env_secret = {"RECEIPT_AGENT_CLIENT_SECRET": CANARY_SECRET}

    drop(spool_dir, "good.json", [_customer_receipt(1), _customer_receipt(2)])
    bad_phone = _customer_receipt(4)
    bad_phone["customer"]["phone_number"] = "call " + PERSONAL["phone_number"]
    drop(spool_dir, "mixed.json", [_customer_receipt(3), bad_phone])
    drop(spool_dir, "broken.json", orjson.dumps([_customer_receipt(5)])[:-40])

    process = start_agent(path)
    try:
        wait_until(
            lambda: (tmp_path / "agent.log").exists() and (state_dir / "quarantine").exists(),
            timeout=15,
        )
        wait_until(lambda: len(list(spool_dir.iterdir())) == 0, timeout=15)
        wait_until(lambda: len(sandbox.receipt_ids(ACCOUNT)) == 2, timeout=15)
    finally:
        code, stderr = stop_agent(process)
    assert code == 0, stderr
    outputs = [stderr, (tmp_path / "agent.log").read_text()]
    for args in (("status", "--json"), ("status",), ("queue", "list", "--json"), ("queue", "list")):
        result = cli(*args, "-c", str(path), env={"PATH": "/usr/bin", **env_secret})
        outputs.append(result.stdout + result.stderr)
    outputs.extend(p.read_text() for p in state_dir.rglob("*.error.json"))
    return outputs


# --- customer data in the wrong field (issue 14) ---------------------------------------------

MISPLACED = {
    "name": "Kari Kanarifugl",
    "email": "kari.kanari@example.no",
    "phone": "+47 912 34 567",
}
_CSV_HEADER = "Nr;Tid;Belop;MVA;Valuta\n"
_CSV_MAPPING = {
    "delimiter": ";",
    "decimal_separator": ",",
    "columns": {
        "receipt_number": "Nr",
        "purchase_at": "Tid",
        "item_gross_amount": "Belop",
        "item_tax_percent": "MVA",
        "currency": "Valuta",
    },
}


def _traces(text: str) -> list[str]:
    """The pieces of the misplaced customer data found in `text` (each word, digits alone)."""
    pieces = [*MISPLACED["name"].split(), MISPLACED["email"], "kari.kanari", "912 34", "91234"]
    return [piece for piece in pieces if piece in text]


def test_customer_data_in_wrong_fields_leaves_no_trace_in_any_output(
    tmp_path: Path, sandbox: Sandbox, secret_file: Path, write_config: Callable[..., Path]
) -> None:
    """Names, e-mail and phone where times and amounts belong are refused without a trace.

    1. A CSV whose columns are shifted (name in the time column, e-mail in the amount,
       phone in the VAT rate, name in the currency) next to a good row; a CSV without its
       header row (first row is customer data); a dintero-json receipt with a name, an
       e-mail and a phone number in amount fields.
    2. `run --once`, `convert` of the shifted CSV, `status` and `queue list` (text and
       JSON), as real processes.
    Result: the bad receipts are rejected and the header-less file quarantined, and no
    piece of the name, e-mail or phone is in the log, stdout, stderr or any .error.json.
    """
    folders = {name: tmp_path / name for name in ("csv", "csv-noheader", "json")}
    for folder in folders.values():
        folder.mkdir()
    config = base_config(
        base_url=sandbox.base_url, spool_dir=folders["json"], state_dir=tmp_path / "state",
        secret_file=secret_file, log_file=tmp_path / "agent.log",
    )  # fmt: skip
    for name in ("csv", "csv-noheader"):
        config["sources"].append(
            {"name": name, "path": str(folders[name]), "format": "csv", "settle": "0.1s",
             "store": {"id": "sc029"}, "mapping": _CSV_MAPPING}
        )  # fmt: skip
    path = write_config(config)
    name, email, phone = MISPLACED["name"], MISPLACED["email"], MISPLACED["phone"]
    shifted = (
        _CSV_HEADER
        + f"1001;{name};{email};{phone};{name}\n"
        + f"1002;2026-01-31T10:00:00;{email} {phone};25;NOK\n"
        + "1003;2026-01-31T10:05:00;12,50;25;NOK\n"
    )
    (folders["csv"] / "shifted.csv").write_text(shifted)
    (folders["csv-noheader"] / "noheader.csv").write_text(
        f"1004;2026-01-31T10:00:00;{name};{email};{phone}\n"
    )
    receipt = make_receipt(7)
    receipt["gross_amount"] = name
    receipt["net_amount"] = email
    receipt["items"][0]["gross_amount"] = phone
    drop(folders["json"], "till.json", [receipt, make_receipt(8)])

    once = cli("run", "--once", "-c", str(path))
    assert once.returncode in (0, 3), once.stderr  # 3 (needs a person) once run --once says so
    outputs = {"run --once": once.stdout + once.stderr}
    convert = cli("convert", "--source", "csv", str(tmp_path / "state/archive/csv/shifted.csv"),
                  "-c", str(path))  # fmt: skip
    outputs["convert"] = convert.stdout + convert.stderr
    for args in (("status", "--json"), ("status",), ("queue", "list", "--json"), ("queue", "list")):
        result = cli(*args, "-c", str(path))
        outputs[" ".join(args)] = result.stdout + result.stderr
    outputs["agent.log"] = (tmp_path / "agent.log").read_text()
    sidecars = list((tmp_path / "state").rglob("*.error.json"))
    assert [p.name for p in sidecars] == ["noheader.csv.error.json"]
    outputs["noheader.csv.error.json"] = sidecars[0].read_text()

    assert sorted(sandbox.receipt_ids(ACCOUNT)) == ["R000008", "sc029-1003"]
    rejected = orjson.loads(cli("queue", "list", "--state", "rejected", "--json",
                                "-c", str(path)).stdout)  # fmt: skip
    assert sorted(r["receipt_id"] for r in rejected) == ["R000007", "sc029-1001", "sc029-1002"]
    assert "column 'Tid': not a time" in outputs["queue list --json"]
    assert "gross_amount: " in outputs["queue list --json"]
    assert "header" in outputs["noheader.csv.error.json"]
    leaks = {where: found for where, text in outputs.items() if (found := _traces(text))}
    assert leaks == {}
