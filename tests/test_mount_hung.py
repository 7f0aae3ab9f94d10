"""Servers that are up but do not answer: stopped, overloaded, behind a dead network path.

Real daemons SIGSTOPped under a real mount: their sockets accept, nothing
answers (no RST, as a dropped network path looks). The mount acts as offline
within seconds: changes are journaled and return, what is not held here
fails with EIO, and once the daemons run again (SIGCONT) everything made
meanwhile reaches another device, once.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import blake3

from fusefs import errors
from fusefs.clients import BlockClient, MetadataClient, patience
from tests import signin
from tests.offline import OFFLINE_LOGS, back_online

# Generous: the defect is a program waiting forever (a tar blocked 10 minutes in mkdir).
PROMPTLY = 15.0
# A stopped blockd stalls uploads until the synchronizer gives up on them.
HUNG_LOGS = [*OFFLINE_LOGS, r"not answering", r"will retry"]


@contextlib.contextmanager
def stopped(*daemons) -> Iterator[None]:
    """SIGSTOP: processes alive, sockets accepting, nothing answering; SIGCONT after."""
    for d in daemons:
        d.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for d in daemons:
            d.process.send_signal(signal.SIGCONT)


def promptly(action: Callable[[], object]) -> object:
    """action's result, or the OSError it raised; fails if it has not returned in time
    (the thread is left behind, blocked in the mount, until the daemons run again)."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(action())
        except OSError as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(PROMPTLY)
    assert out, f"still waiting after {PROMPTLY}s"
    return out[0]


def _eio(result: object) -> bool:
    return isinstance(result, OSError) and result.errno == errno.EIO


MADE_WHILE_HUNG = {
    "docs": None,
    "docs/renamed.txt": b"old",
    "new": None,
    "new/f.txt": b"made while hung",
    "new/link": "f.txt",
}


def _under(folder: str, contents: dict[str, object]) -> dict[str, object]:
    return {folder: None, **{f"{folder}/{k}": v for k, v in contents.items()}}


def _contents(root: Path, skip: str = "") -> dict[str, object]:
    seen: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if key == skip:
            continue
        if path.is_symlink():
            seen[key] = os.readlink(path)
        elif path.is_dir():
            seen[key] = None
        else:
            seen[key] = path.read_bytes()
    return seen


def _archive(path: Path) -> None:
    """Folders in folders, files with modes and times: what tar did when it hung."""
    with tarfile.open(path, "w") as tar:
        for i in range(3):
            folder = tarfile.TarInfo(f"pkg/mod{i}/sub")
            folder.type, folder.mode = tarfile.DIRTYPE, 0o750
            tar.addfile(folder)
            for j in range(4):
                data = f"module {i} file {j}\n".encode()
                info = tarfile.TarInfo(f"pkg/mod{i}/sub/f{j}.py")
                info.size, info.mode, info.mtime = len(data), 0o640, 1_400_000_000 + j
                tar.addfile(info, io.BytesIO(data))


def test_with_both_daemons_stopped_changes_return_and_arrive_after(
    mounts, metad, blockd, allowed_log_patterns, tmp_path
):
    allowed_log_patterns += HUNG_LOGS
    _archive(tmp_path / "pkg.tar")
    a = mounts.mount(metad, blockd, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    (a.path / "docs").mkdir()
    (a.path / "docs" / "old.txt").write_bytes(b"old")
    (b.path / "from-b.txt").write_bytes(b"never read on a")
    b.sync()
    a.sync()
    os.listdir(a.path)
    with stopped(metad, blockd):
        new = a.path / "new"
        assert promptly(new.mkdir) is None
        assert promptly(lambda: (new / "f.txt").write_bytes(b"made while hung")) == 15
        assert promptly(lambda: os.symlink("f.txt", new / "link")) is None
        assert (
            promptly(lambda: os.rename(a.path / "docs/old.txt", a.path / "docs/renamed.txt"))
            is None
        )
        assert promptly(lambda: os.chmod(new / "f.txt", 0o600)) is None
        assert promptly(lambda: os.setxattr(new / "f.txt", "user.tag", b"hung")) is None
        assert promptly(lambda: (new / "gone.txt").write_bytes(b"x")) == 1
        assert promptly(lambda: os.unlink(new / "gone.txt")) is None
        assert promptly(lambda: os.statvfs(a.path)) is not None
        # Content this device never held: not here, and the drive does not answer.
        assert _eio(promptly((a.path / "from-b.txt").read_bytes))
        untar = ["tar", "-xf", str(tmp_path / "pkg.tar"), "-C", str(a.path)]
        assert subprocess.run(untar, timeout=PROMPTLY * 4).returncode == 0
        untarred = _contents(a.path / "pkg")
        assert len(untarred) == 3 * 6
        assert _contents(a.path, skip="from-b.txt") == {
            **MADE_WHILE_HUNG,
            **_under("pkg", untarred),
        }
    a.sync()
    expected = {**MADE_WHILE_HUNG, **_under("pkg", untarred), "from-b.txt": b"never read on a"}
    assert _contents(a.path) == expected
    c = mounts.mount(metad, blockd, "dev-c")
    assert _contents(c.path) == expected
    assert os.stat(c.path / "new" / "f.txt").st_mode & 0o777 == 0o600
    assert os.getxattr(c.path / "new" / "f.txt", "user.tag") == b"hung"


def test_with_blockd_stopped_a_cold_read_fails_and_writes_return(
    mounts, metad, blockd, allowed_log_patterns
):
    allowed_log_patterns += HUNG_LOGS
    a = mounts.mount(metad, blockd, "dev-a")
    b = mounts.mount(metad, blockd, "dev-b")
    (b.path / "cold.bin").write_bytes(os.urandom(300_000))
    b.sync()
    with stopped(blockd):
        assert _eio(promptly((a.path / "cold.bin").read_bytes))
        assert promptly(lambda: (a.path / "hot.txt").write_bytes(b"written while hung")) == 18
        assert promptly(lambda: os.rename(a.path / "hot.txt", a.path / "moved.txt")) is None
    a.sync()
    assert (a.path / "cold.bin").read_bytes() == (b.path / "cold.bin").read_bytes()
    c = mounts.mount(metad, blockd, "dev-c")
    assert (c.path / "moved.txt").read_bytes() == b"written while hung"


# --- the clients alone: what the mount's deadlines stand on ----------------------


def test_a_call_made_with_patience_gives_up_on_a_stopped_metad(metad):
    meta = MetadataClient(metad.address, "test", signin.token)
    try:
        root = meta.root()
        with stopped(metad):
            failed = promptly(lambda: _patiently(lambda: meta.stat(root.id)))
            assert isinstance(failed, errors.Unavailable)
        assert meta.stat(root.id).id == root.id  # the same channel answers again
    finally:
        meta.close()


def test_a_stream_that_moves_nothing_is_given_up(blockd):
    blocks = BlockClient(blockd.address, signin.token)
    data = os.urandom(1000)
    digest = blake3.blake3(data).digest()
    try:
        blocks.check()
        with stopped(blockd):
            upload = promptly(lambda: _patiently(lambda: blocks.upload(lambda: [(digest, data)])))
            download = promptly(lambda: _patiently(lambda: blocks.download([digest])))
        assert isinstance(upload, errors.Unavailable)
        assert isinstance(download, errors.Unavailable)
        blocks.upload(lambda: [(digest, data)])  # and nothing stays stuck after SIGCONT
    finally:
        blocks.close()


def _patiently(action: Callable[[], object]) -> object:
    """action's result, or the DriveError it raised, under patience (in the calling
    thread: a thread starts with a context of its own)."""
    try:
        with patience(0.5):
            return action()
    except errors.DriveError as exc:
        return exc


def test_a_mount_started_while_metad_is_stopped_starts_offline_and_goes_online(
    mounts, metad, blockd, allowed_log_patterns
):
    allowed_log_patterns += HUNG_LOGS
    a = mounts.mount(metad, blockd, "dev-a")
    (a.path / "kept.txt").write_bytes(b"kept here")
    a.sync()
    a.unmount()
    with stopped(metad):
        again = mounts.mount(metad, blockd, "dev-a")  # (within the fixture's 20 s)
        assert promptly((again.path / "kept.txt").read_bytes) == b"kept here"
        assert promptly(lambda: (again.path / "new.txt").write_bytes(b"new")) == 3
    back_online(again)
    again.sync()
    b = mounts.mount(metad, blockd, "dev-b")
    assert (b.path / "new.txt").read_bytes() == b"new"
