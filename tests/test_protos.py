"""The public API as other tools see it: generated code up to date, reflection."""

from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

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


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_lists_and_describes_the_services(metad, version: str) -> None:
    """grpcurl and other tools find the API by reflection, v1 (asked first) or v1alpha."""
    channel = grpc.insecure_channel(metad.address)
    ask = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    try:
        listing, described = ask(
            iter(
                [
                    reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(
                        file_containing_symbol="drive.v1.Metadata"
                    ),
                ]
            ),
            timeout=10,
        )
    finally:
        channel.close()
    names = {s.name for s in listing.list_services_response.service}
    assert {"drive.v1.Metadata", "grpc.health.v1.Health"} <= names
    assert {f"grpc.reflection.{v}.ServerReflection" for v in ("v1", "v1alpha")} <= names
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    assert any(f.package == "drive.v1" and "Metadata" in {s.name for s in f.service} for f in files)
