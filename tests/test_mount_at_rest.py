"""What a person writes through the mount is not readable on the server's disk."""

from __future__ import annotations

from pathlib import Path

MARKER = b"drivefs-secret-marker-7f3a9c"


def test_no_plaintext_at_rest_and_text_is_stored_smaller(mount, blockd, tmp_path: Path) -> None:
    text = b"".join(b"line %d of a plain text file %s\n" % (i, MARKER) for i in range(60_000))
    (mount.path / "notes.txt").write_bytes(text)
    assert (mount.path / "notes.txt").read_bytes() == text
    objects = [p for p in (tmp_path / "blockd").rglob("*") if p.is_file()]
    assert objects
    for path in objects:
        assert MARKER not in path.read_bytes(), f"plaintext in {path}"
    blocks = (tmp_path / "blockd" / "blocks").rglob("*")
    stored = sum(p.stat().st_size for p in blocks if p.is_file())
    assert stored < len(text) / 2, (stored, len(text))
