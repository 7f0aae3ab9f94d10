"""The checked-in generated gRPC code matches the .proto files."""

from pathlib import Path

from protos.generate import PROTO_DIR, REPO_ROOT, generate


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = sorted((tmp_path / "protos" / "drive" / "v1").glob("*_pb2*"))
    assert fresh, "protoc produced nothing"
    for path in fresh:
        checked_in = PROTO_DIR / path.name
        assert checked_in.exists(), f"{path.name} is not checked in: run python -m protos.generate"
        assert checked_in.read_bytes() == path.read_bytes(), (
            f"{checked_in.relative_to(REPO_ROOT)} is stale: run python -m protos.generate"
        )
