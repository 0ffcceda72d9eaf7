"""End to end: till files in a spool → the installed CLI → the sandbox over loopback."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import yaml
from support import ACCOUNT, SECRET, cli, drop, events, make_receipt, read_log

from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.e2e


def _log_file(config: Path) -> Path:
    return Path(yaml.safe_load(config.read_text())["log"]["file"])


def test_run_once_with_500_receipts_in_20_files_delivers_each_once_with_amounts(
    agent_config: Path, spool_dir: Path, state_dir: Path, sandbox: Sandbox
) -> None:
    """An operator sees all 500 receipts at Dintero once, with their amounts, and an empty spool.

    1. Drop 20 files of 25 receipts each, every receipt with its own amount.
    2. `receipt-agent run --once`.
    Result: exit 0, the sandbox holds exactly those 500 receipt ids with the same amounts,
    the spool is empty and the 20 files are in the archive.
    """
    expected = {}
    for file_number in range(20):
        batch = [
            make_receipt(file_number * 25 + i, amount=1000 + file_number * 25 + i)
            for i in range(25)
        ]
        expected.update({r["receipt_id"]: r["gross_amount"] for r in batch})
        drop(spool_dir, f"z-{file_number:03d}.json", batch)

    result = cli("run", "--once", "-c", str(agent_config))

    assert result.returncode == 0, result.stderr
    received = {r["receipt_id"]: r["gross_amount"] for r in sandbox.receipts(ACCOUNT)}
    assert received == expected
    assert len(sandbox.receipt_ids(ACCOUNT)) == 500
    assert list(spool_dir.iterdir()) == []
    assert len(list((state_dir / "archive" / "till-1").iterdir())) == 20
    accepted = events(_log_file(agent_config), "file.accepted")
    assert sum(line["receipts"] for line in accepted) == 500


def test_run_once_with_redropped_file_queues_nothing_new(
    agent_config: Path, spool_dir: Path, sandbox: Sandbox
) -> None:
    """Dropping the same export twice sends nothing the second time.

    1. Drop a file, run --once. 2. Drop the same bytes again, run --once.
    Result: the second run archives the file as already seen and makes no receipts POST.
    """
    receipts = [make_receipt(i) for i in range(10)]
    drop(spool_dir, "a.json", receipts)
    assert cli("run", "--once", "-c", str(agent_config)).returncode == 0
    posts_before = sandbox.receipt_posts

    drop(spool_dir, "a.json", receipts)
    assert cli("run", "--once", "-c", str(agent_config)).returncode == 0

    assert sandbox.receipt_posts == posts_before
    seen = [e for e in events(_log_file(agent_config), "file.accepted") if e.get("already_seen")]
    assert len(seen) == 1


def test_run_once_with_one_invalid_receipt_of_ten_sends_nine_and_rejects_one(
    agent_config: Path, spool_dir: Path, sandbox: Sandbox
) -> None:
    """One bad receipt does not hold back the nine good ones; its field error is shown.

    Result: 9 receipts at the sandbox; `queue list --state rejected --json` shows the bad
    one with an error naming `items[0].gross_amount`; a receipt.rejected log line.
    """
    receipts = [make_receipt(i) for i in range(10)]
    receipts[4]["items"][0]["gross_amount"] = "lots"
    drop(spool_dir, "mixed.json", receipts)

    result = cli("run", "--once", "-c", str(agent_config))

    assert result.returncode == 3, result.stderr  # delivered; a rejection needs a person
    assert len(sandbox.receipt_ids(ACCOUNT)) == 9
    listing = cli("queue", "list", "--state", "rejected", "--json", "-c", str(agent_config))
    rejected = orjson.loads(listing.stdout)
    assert [row["receipt_id"] for row in rejected] == ["R000004"]
    assert "items[0].gross_amount" in rejected[0]["last_error"]
    lines = events(_log_file(agent_config), "receipt.rejected")
    assert [line["receipt_id"] for line in lines] == ["R000004"]


def test_run_once_with_poisoned_receipt_in_batch_of_50_isolates_it_by_splitting(
    agent_config: Path, spool_dir: Path, sandbox: Sandbox
) -> None:
    """The API refusing one receipt of 50 rejects only that one, with the API's message.

    Result: 49 delivered; the poisoned one `rejected` with the sandbox's error text; the
    log shows split batches.
    """
    sandbox.set_faults(refuse_receipt_id="^R000017$")
    drop(spool_dir, "fifty.json", [make_receipt(i) for i in range(50)])

    result = cli("run", "--once", "-c", str(agent_config))

    assert result.returncode == 3, result.stderr  # delivered; a rejection needs a person
    ids = set(sandbox.receipt_ids(ACCOUNT))
    assert len(ids) == 49
    assert "R000017" not in ids
    rejected = orjson.loads(
        cli("queue", "list", "--state", "rejected", "--json", "-c", str(agent_config)).stdout
    )
    assert [row["receipt_id"] for row in rejected] == ["R000017"]
    assert "refused this receipt (400)" in rejected[0]["last_error"]
    splits = [
        e for e in events(_log_file(agent_config), "batch.failed") if e.get("action") == "split"
    ]
    assert splits


def test_run_once_with_api_down_exits_1_and_keeps_receipts_pending(
    agent_config: Path, spool_dir: Path, sandbox: Sandbox
) -> None:
    """With every POST failing, `run --once` exits 1 and `status --json` shows them pending."""
    sandbox.set_faults(error_rate=1.0)
    drop(spool_dir, "a.json", [make_receipt(i) for i in range(5)])

    result = cli("run", "--once", "-c", str(agent_config), timeout=120)

    assert result.returncode == 1
    status = cli("status", "--json", "-c", str(agent_config))
    report = orjson.loads(status.stdout)
    assert report["counts"]["pending"] == 5
    assert report["oldest_pending_age_s"] >= 0
    assert set(report["oldest_pending_age_s_by_source"]) == {"till-1"}
    assert status.returncode == 1  # degraded: the last send failed


def test_run_once_log_never_holds_secret_or_customer_contact(
    agent_config: Path, spool_dir: Path, sandbox: Sandbox
) -> None:
    """The JSON log holds every line as JSON, and never the secret or a customer's e-mail/phone."""
    receipt = make_receipt(1)
    receipt["customer"] = {"email": "kari.nordmann@example.no", "phone_number": "+4791234567"}
    bad = make_receipt(2, customer_id=" spaced ")
    drop(spool_dir, "a.json", [receipt, bad])

    assert cli("run", "--once", "-c", str(agent_config)).returncode == 3  # `bad` is rejected

    text = _log_file(agent_config).read_text()
    read_log(_log_file(agent_config))  # every line parses as JSON
    for canary in (SECRET, "kari.nordmann@example.no", "+4791234567", "91234567"):
        assert canary not in text


def test_run_once_archives_a_settled_file_at_once_without_the_daemons_hold(
    tmp_path: Path, agent_config: Path, spool_dir: Path, state_dir: Path, sandbox: Sandbox
) -> None:
    """`run --once` is one pass: a settled file is taken in AND archived in that pass.

    1. A source with settle 2s; drop a file and let it settle (2.1 s), not 3 × settle.
    2. `receipt-agent run --once`.
    Result: exit 0, its receipts at the sandbox, the spool empty, the file in the archive
    (the daemon's hold for writers that keep a file open has no later visit in --once).
    """
    settings = yaml.safe_load(agent_config.read_text())
    settings["sources"][0]["settle"] = "2s"
    agent_config.write_text(yaml.safe_dump(settings))
    drop(spool_dir, "z-001.json", [make_receipt(i) for i in range(3)])
    deadline = (spool_dir / "z-001.json").stat().st_mtime + 2.1
    while (now := time.time()) < deadline:
        time.sleep(deadline - now)

    result = cli("run", "--once", "-c", str(agent_config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert len(sandbox.receipt_ids(ACCOUNT)) == 3
    assert list(spool_dir.iterdir()) == []
    assert [p.name for p in (state_dir / "archive" / "till-1").iterdir()] == ["z-001.json"]
