"""Power cuts: what survives is what was synced, and that must be enough (CONTRACT §3).

`kill -9` keeps the page cache, so every write survives it, synced or not. A power cut
does not. Built the way Jepsen's LazyFS and SQLite's crash tests do, with what a Linux
machine has: the state folder and the spool live on an ext4 image mounted through a loop
device with a long journal commit interval (`commit=60`: nothing reaches the image unless
someone syncs). The daemon is killed at a random moment (seeded; the seed is printed)
mid-intake or mid-send, and the image file is copied as it stands at that instant: it
holds exactly what reached the loop device, i.e. what was synced. The copy is mounted
again (the journal is replayed) and `run --once` starts on it. The till's files are
synced by the test (its duty). Then every receipt the till exported must have reached
the API (duplicates allowed), `PRAGMA integrity_check` must pass, no file may stay in
the spool or be quarantined, and every archived file must be whole.

Needs root and loop devices; skipped with the reason where the kernel refuses them.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from faultkit import AgentProcess, db_check, record_result, wait_for_event
from support import ACCOUNT, BIN, SECRET, base_config, make_receipt

from receipt_agent.files import fsync_dir
from receipt_agent.sandbox import Sandbox

pytestmark = pytest.mark.crash

IMAGE_MB = 48
PER_FILE = 5
FIRST_FILES = 30
SEED = int(os.environ.get("POWER_CUT_SEED", "17"))


def _run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def _mounted(image: Path, mountpoint: Path) -> Iterator[None]:
    """Mount an ext4 image through a loop device with a 60 s journal commit interval."""
    device = _run("losetup", "--find", "--show", str(image))
    try:
        _run("mount", "-t", "ext4", "-o", "commit=60", device, str(mountpoint))
        try:
            yield
        finally:
            _run("umount", str(mountpoint))
    finally:
        _run("losetup", "-d", device)


@pytest.fixture(scope="module")
def loop_mounts(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Skip the module unless this machine lets us make and mount an ext4 loop image."""
    if os.geteuid() != 0:
        pytest.skip("power-cut tests need root (losetup, mount)")
    if not (shutil.which("losetup") and shutil.which("mkfs.ext4")):
        pytest.skip("power-cut tests need losetup and mkfs.ext4")
    work = tmp_path_factory.mktemp("loop-probe")
    image, mountpoint = work / "probe.img", work / "mnt"
    mountpoint.mkdir()
    try:
        _make_image(image)
        with _mounted(image, mountpoint):
            pass
    except (subprocess.CalledProcessError, OSError) as error:
        pytest.skip(f"loop mounts refused here: {error}")


def _make_image(image: Path) -> None:
    with image.open("wb") as handle:
        handle.truncate(IMAGE_MB << 20)
    # No lazy init: ext4lazyinit would write to the image in the background after mount,
    # and after the cut nothing but the replay may change what was on "disk".
    _run(
        "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
        str(image),
    )  # fmt: skip


class _Till:
    """Writes files of PER_FILE receipts into the spool, each synced before it counts."""

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self.exported: dict[str, bytes] = {}  # file name → content, once synced
        self.receipt_ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="till")
        self._number = 0

    def write_one(self) -> None:
        first = self._number * PER_FILE
        receipts = [make_receipt(first + n) for n in range(PER_FILE)]
        body = orjson.dumps(receipts)
        name = f"z-{self._number:05d}.json"
        temporary = self.spool / f".{name}.tmp"
        with temporary.open("wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.rename(self.spool / name)
        fsync_dir(self.spool)
        self.exported[name] = body
        self.receipt_ids += [r["receipt_id"] for r in receipts]
        self._number += 1

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.write_one()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _config(work: Path, mountpoint: Path, sandbox: Sandbox) -> Path:
    secret = work / "client_secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    settings = base_config(
        base_url=sandbox.base_url, spool_dir=mountpoint / "spool",
        state_dir=mountpoint / "state", secret_file=secret, log_file=work / "agent.log",
    )  # fmt: skip
    settings["batch"] = {"max_receipts": 20, "flush_interval": "0.2s"}
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(settings))
    return config


def _one_cut(work: Path, sandbox: Sandbox, rng: random.Random, cut: int) -> dict[str, Any]:
    """Run, cut the power at a random moment, restart on what was synced; return figures."""
    image, copy, mountpoint = work / "disk.img", work / "after-cut.img", work / "mnt"
    mountpoint.mkdir(exist_ok=True)
    _make_image(image)
    config = _config(work, mountpoint, sandbox)
    delay_s = rng.uniform(0.0, 1.5)
    with _mounted(image, mountpoint):
        spool = mountpoint / "spool"
        spool.mkdir()
        (mountpoint / "state").mkdir()
        os.sync()  # the folders exist on "disk" before the till starts
        till = _Till(spool)
        for _ in range(FIRST_FILES):
            till.write_one()
        agent = AgentProcess(config)
        till.start()
        try:
            # The random moment of the cut, counted from the first file taken in (the
            # agent's start-up time varies with the machine's load).
            wait_for_event(work / "agent.log", "file.accepted", timeout=30)
            time.sleep(delay_s)  # the cut's moment, not a wait for a result
        finally:
            agent.kill9()  # reaped: every sync it had started has returned
            till.stop()
        shutil.copyfile(image, copy)  # the "disk" at the instant of the cut
    image.unlink()
    posted_before = sandbox.stats()["receipts_received"]
    with _mounted(copy, mountpoint):
        once = subprocess.run(
            [str(BIN / "receipt-agent"), "run", "--once", "-c", str(config)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        state = mountpoint / "state"
        checked = db_check(state / "state.db")
        left = sorted(p.name for p in spool.iterdir() if p.name.endswith(".json"))
        quarantined = sorted(p.name for p in (state / "quarantine").rglob("*") if p.is_file())
        archive = state / "archive" / "till-1"
        torn = sorted(
            p.name
            for p in (archive.iterdir() if archive.exists() else [])
            if p.name in till.exported and p.read_bytes() != till.exported[p.name]
        )
    copy.unlink()
    delivered = set(sandbox.receipt_ids(ACCOUNT))
    lost = [r for r in till.receipt_ids if r not in delivered]
    figures = {
        "cut": cut, "delay_s": round(delay_s, 3), "exported": len(till.receipt_ids),
        "delivered": len(set(till.receipt_ids) & delivered), "lost": len(lost),
        "resent": sandbox.stats()["duplicates"], "posted_after_restart":
        sandbox.stats()["receipts_received"] - posted_before, "once_exit": once.returncode,
        "integrity": checked["integrity"], "left_in_spool": len(left),
        "quarantined": len(quarantined), "torn_in_archive": len(torn),
    }  # fmt: skip
    print(f"power cut {cut} (seed {SEED}): {figures}")
    assert once.returncode == 0, once.stdout + once.stderr
    assert checked["integrity"] == "ok"
    assert not lost, f"lost {len(lost)} receipts, e.g. {lost[:3]}"
    assert left == []
    assert quarantined == []
    assert torn == []
    return figures


def _cuts(tmp_path: Path, sandbox: Sandbox, count: int) -> None:
    rng = random.Random(SEED)
    print(f"power-cut seed {SEED} (POWER_CUT_SEED={SEED} repeats this run)")
    totals = dict.fromkeys(("exported", "delivered", "lost", "resent"), 0)
    for cut in range(count):
        work = tmp_path / f"cut-{cut}"
        work.mkdir()
        sandbox.reset()
        sandbox.set_faults(delay_s=0.05)  # a POST is in flight a while: cuts land mid-send
        figures = _one_cut(work, sandbox, rng, cut)
        for key in totals:
            totals[key] += figures[key]
        shutil.rmtree(work)
    record_result("power_cut", seed=SEED, cuts=count, **totals)


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("loop_mounts")
def test_power_cut_at_random_moments_loses_nothing_ci_size(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Two power cuts mid-intake or mid-send: every exported receipt arrives, the store is whole."""
    _cuts(tmp_path, sandbox, 2)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.usefixtures("loop_mounts")
def test_power_cut_at_random_moments_loses_nothing_full_size(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Fifty power cuts: every exported receipt arrives, the store is whole, no file stranded."""
    _cuts(tmp_path, sandbox, 50)
