"""Private modes whatever the umask (CONTRACT §3): folders 0750, files 0640, links untouched."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from receipt_agent.files import move_away, move_into
from receipt_agent.permissions import close_to_others, create_file, make_dirs


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """The loosest umask there is, so only our modes can keep others out."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.usefixtures("umask_zero")
def test_make_dirs_and_create_file_under_umask_0_are_0750_and_0640(tmp_path: Path) -> None:
    """Every missing level is 0750 and a new file 0640 even when the umask removes nothing."""
    make_dirs(tmp_path / "a" / "b" / "c")
    create_file(tmp_path / "a" / "b" / "c" / "state.db")
    assert [_mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o750] * 3
    assert _mode(tmp_path / "a/b/c/state.db") == 0o640


def test_create_file_leaves_an_existing_file_and_its_content(tmp_path: Path) -> None:
    """An existing database is never truncated or re-moded by create_file."""
    path = tmp_path / "state.db"
    path.write_bytes(b"SQLite format 3\x00")
    path.chmod(0o600)
    create_file(path)
    assert path.read_bytes() == b"SQLite format 3\x00"
    assert _mode(path) == 0o600


def test_close_to_others_never_follows_a_quarantined_symlink(tmp_path: Path) -> None:
    """A symlink moved into quarantine does not lead the chmod to the file it points at."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("not ours")
    target.chmod(0o644)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    close_to_others(link)
    assert _mode(target) == 0o644
    regular = tmp_path / "moved.json"
    regular.write_text("{}")
    regular.chmod(0o666)
    close_to_others(regular)
    assert _mode(regular) == 0o660


@pytest.mark.usefixtures("umask_zero")
def test_move_into_a_missing_folder_creates_it_0750_and_closes_the_file(tmp_path: Path) -> None:
    """The first file archived creates the archive levels 0750; the file loses others' bits."""
    spool = tmp_path / "spool"
    spool.mkdir()
    till_file = spool / "a.json"
    till_file.write_text("{}")
    till_file.chmod(0o666)
    moved = move_into(till_file, tmp_path / "archive" / "till-1", durable=False)
    assert moved == tmp_path / "archive" / "till-1" / "a.json"
    assert [_mode(tmp_path / p) for p in ("archive", "archive/till-1")] == [0o750] * 2
    assert _mode(moved) == 0o660
    assert moved.read_text() == "{}"
    assert not till_file.exists()
    second = spool / "a.json"
    second.write_text("[]")
    assert move_into(second, tmp_path / "archive" / "till-1").name == "a.json.1"


@pytest.mark.usefixtures("umask_zero")
def test_move_away_archives_like_move_into_never_overwriting(tmp_path: Path) -> None:
    """Intake's archive move (no Path returned) makes the folder 0750, keeps every earlier
    file under a numbered name, and closes the moved file to others."""
    spool, archive = tmp_path / "spool", tmp_path / "archive" / "till-1"
    spool.mkdir()
    for text in ("{}", "[]", "[1]"):
        (spool / "a.json").write_text(text)
        (spool / "a.json").chmod(0o666)
        move_away(spool / "a.json", archive, durable=False)
    assert sorted(p.name for p in archive.iterdir()) == ["a.json", "a.json.1", "a.json.2"]
    assert [(archive / n).read_text() for n in ("a.json", "a.json.1", "a.json.2")] == [
        "{}",
        "[]",
        "[1]",
    ]
    assert _mode(archive) == 0o750
    assert {_mode(p) for p in archive.iterdir()} == {0o660}
    assert not (spool / "a.json").exists()


def test_move_away_never_replaces_a_link_or_a_dangling_link_of_the_same_name(
    tmp_path: Path,
) -> None:
    """A name taken in the archive by a symlink, even one to nowhere, gets the next free
    name; the link and its target are left as they were."""
    spool, archive = tmp_path / "spool", tmp_path / "archive"
    spool.mkdir()
    archive.mkdir()
    (tmp_path / "target.json").write_text("theirs")
    (archive / "a.json").symlink_to(tmp_path / "target.json")
    (archive / "a.json.1").symlink_to(tmp_path / "nowhere.json")
    (spool / "a.json").write_text("ours")
    move_away(spool / "a.json", archive, durable=False)
    assert (archive / "a.json.2").read_text() == "ours"
    assert (archive / "a.json").readlink() == tmp_path / "target.json"
    assert (archive / "a.json.1").readlink() == tmp_path / "nowhere.json"
    assert (tmp_path / "target.json").read_text() == "theirs"


def test_move_away_with_a_known_mode_closes_the_file_to_others_through_its_descriptor(
    tmp_path: Path,
) -> None:
    """Intake's archive move, given the file's mode from its check before the move, removes
    others' bits through the open descriptor (no stat of it again) and keeps the rest."""
    spool, archive = tmp_path / "spool", tmp_path / "archive"
    spool.mkdir()
    (spool / "a.json").write_text("{}")
    (spool / "a.json").chmod(0o604)
    fd = os.open(spool / "a.json", os.O_RDONLY)
    try:
        info = os.lstat(spool / "a.json")
        move_away(spool / "a.json", archive, durable=False, opened=fd, mode=info.st_mode)
    finally:
        os.close(fd)
    assert _mode(archive / "a.json") == 0o600
