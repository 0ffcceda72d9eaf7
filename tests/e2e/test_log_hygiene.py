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
