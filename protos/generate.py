"""Regenerates the Python code of the gRPC API from protos/drive/v1/*.proto.

Run `python -m protos.generate` from the repository root after editing a
.proto file; tests/test_protos.py fails while the checked-in code is stale.
The .proto files sit at paths that match the Python package (protos.drive.v1)
so the generated `_pb2_grpc.py` modules import their `_pb2` siblings by the
package path.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "protos" / "drive" / "v1"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


def generate(out_dir: Path) -> None:
    """Writes *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every .proto under out_dir."""
    from grpc_tools import protoc

    args = [
        "grpc_tools.protoc",
        f"-I{REPO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(REPO_ROOT)) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    generate(REPO_ROOT)
    sys.exit(0)
