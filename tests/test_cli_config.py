"""Config files for the drive command: what a file says is done unless a flag or an
environment variable says otherwise, the drive's file beats yours, and a mistake in
a file is one line naming the file and the key.

Every command runs as a child process with HOME, XDG_CONFIG_HOME and XDG_DATA_HOME
inside tmp_path, so it reads only the files the test writes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from fusefs.credentials import TOKEN_ENV
from tests import signin
from tests.running import drive_cli, drive_up
from tests.waiting import eventually

S3_BUCKET_ENV = "DRIVEFS_S3_BUCKET"


def _person(tmp_path: Path) -> dict[str, str]:
    """The environment of someone whose home is in tmp_path: no token, no bucket."""
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, S3_BUCKET_ENV)}
    return {
        **env,
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "share"),
    }


def _yours(tmp_path: Path) -> Path:
    return tmp_path / "config" / "drivefs" / "config.toml"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def drive(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return drive_cli(*args, env=env)


def _show(env: dict[str, str], *args: str) -> dict:
    result = drive(env, "config", "show", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _three_free_ports() -> int:
    """P with P, P+1 and P+2 free: drive up --metrics P serves metad, blockd, the mount."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            for offset in (1, 2):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port
    pytest.fail("no three free ports in a row")


def _serves_metrics(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return b"drive_rpc_total" in answer.read()


def test_a_setting_in_your_file_is_honoured_and_a_flag_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = _person(tmp_path)
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        monkeypatch.setenv(name, person[name])  # drive_up's child inherits them
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(S3_BUCKET_ENV, raising=False)
    mnt, data, log = tmp_path / "mnt", tmp_path / "drive", tmp_path / "up.log"
    mnt.mkdir()
    port = _three_free_ports()
    _write(
        _yours(tmp_path),
        f'data = "{data}"\n[up]\nmetrics = "127.0.0.1:{port}"\ndevice = "from-the-file"\n',
    )
    up = drive_up(mnt, data, log, "--device", "from-the-flag")
    try:
        eventually(lambda: _serves_metrics(port) and _serves_metrics(port + 2), timeout=10)
        (mnt / "plan.txt").write_text("saved through a configured drive")
        assert drive(person, "sync", str(mnt)).returncode == 0
        # No --data: the commands find the drive where the file's `data` says.
        history = drive(person, "history", "plan.txt", "--json")
        assert history.returncode == 0, history.stderr
        assert json.loads(history.stdout.splitlines()[0])["device"] == "from-the-flag"
        # --data on the command line beats the file's.
        elsewhere = drive(person, "status", "--data", str(tmp_path / "elsewhere"))
        assert elsewhere.returncode == 1
        assert f"no drive running under {tmp_path / 'elsewhere'}" in elsewhere.stderr
    finally:
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, log.read_text()


def test_the_drives_file_beats_yours_and_the_environment_beats_both(tmp_path: Path) -> None:
    person = _person(tmp_path)
    data = tmp_path / "drive"
    yours = _write(
        _yours(tmp_path),
        f'data = "{data}"\ndevice = "yours"\ncache_size = "1G"\n'
        '[mount]\ndevice = "yours, for mount"\nmetad = "drive.example:7401"\n',
    )
    drives = _write(data / "config.toml", 'device = "the drive\'s"\n[up]\ns3-bucket = "b1"\n')

    shown = _show(person, "mount")
    assert shown["files"] == [
        {"path": str(drives), "read": True},
        {"path": str(yours), "read": True},
    ]
    settings = shown["settings"]
    # Files first, then tables: the drive's top-level key beats your [mount] table.
    assert settings["device"] == {"value": "the drive's", "source": str(drives)}
    assert settings["cache-size"] == {"value": 1 << 30, "source": str(yours)}
    assert settings["metad"] == {"value": "drive.example:7401", "source": str(yours)}
    assert settings["blockd"] == {"value": None, "source": "default"}

    assert _show(person, "up")["settings"]["s3-bucket"] == {"value": "b1", "source": str(drives)}
    from_env = _show({**person, S3_BUCKET_ENV: "b2"}, "up")["settings"]["s3-bucket"]
    assert from_env == {"value": "b2", "source": f"env {S3_BUCKET_ENV}"}

    # Another drive folder: its own file (none here), so yours speaks again.
    other = _show(person, "mount", "--data", str(tmp_path / "other"))
    assert other["files"][0] == {"path": str(tmp_path / "other" / "config.toml"), "read": False}
    assert other["settings"]["device"]["value"] == "yours, for mount"

    text = drive(person, "config", "show", "mount")
    assert text.returncode == 0, text.stderr
    rows = [line.split() for line in text.stdout.splitlines()]
    assert ["device", "the", "drive's", str(drives)] in rows


def test_a_required_option_can_come_from_the_file(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "mnt").mkdir()
    _write(_yours(tmp_path), f'[mount]\nmetad = "127.0.0.1:{port}"\n')
    person = {**_person(tmp_path), TOKEN_ENV: signin.token()}
    result = drive(person, "mount", str(tmp_path / "mnt"), "--cache", str(tmp_path / "cache"))
    assert result.returncode == 1
    assert result.stderr.startswith("drive: error: "), result.stderr
    assert f"127.0.0.1:{port}" in result.stderr  # tried the file's metad: not a usage error


YOURS, DRIVES = "yours", "the drive's"
MISTAKES = [
    (YOURS, 'cache-sise = "1G"', ["cache-sise: no option --cache-sise", "did you mean cache-size"]),
    (YOURS, '[up]\ncache-size = "lots"', ["up.cache-size: not a size: 'lots'"]),
    (YOURS, "[up]\ndevice = 3", ["up.device: expects a string"]),
    (YOURS, 'verbose = "yes"', ["verbose: expects true or false"]),
    (YOURS, '[scrub]\ncache = "/c"', ["scrub.cache: expects a list"]),
    (YOURS, "[up]\ncache-size = \n", ["line 2"]),
    (YOURS, '[mnt]\ndevice = "x"', ["mnt: no command drive mnt", "did you mean mount"]),
    (YOURS, 'token = "abc"', ["token: secrets stay out", TOKEN_ENV]),
    (YOURS, '[up]\ns3-secret-access-key = "abc"', ["AWS_SECRET_ACCESS_KEY"]),
    (YOURS, '[user.add]\npassword = "abc"', ["user.add.password", "--password-stdin"]),
    (DRIVES, 'data = "/elsewhere"', ["data: the drive's own file cannot move it"]),
    (DRIVES, '[share]\nrole = "owner"', ["share.role: 'owner' is not one of read, write"]),
]


@pytest.mark.parametrize(("whose", "text", "fragments"), MISTAKES)
def test_a_mistake_in_a_file_is_one_line_and_starts_nothing(
    tmp_path: Path, whose: str, text: str, fragments: list[str]
) -> None:
    person = _person(tmp_path)
    data = tmp_path / "share" / "drivefs"  # the default drive folder
    path = _write(_yours(tmp_path) if whose == YOURS else data / "config.toml", text + "\n")
    (tmp_path / "mnt").mkdir()
    result = drive(person, "up", str(tmp_path / "mnt"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"drive: error: {path}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not (data / "metad").exists(), "nothing is started"
    # Help still helps, so the file can be mended.
    assert drive(person, "up", "--help").returncode == 0
