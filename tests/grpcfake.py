"""A gRPC server on loopback that answers as a test tells it: the lying peer a client
must refuse (a blockd sending malformed blocks, a metad naming a drive that is not one)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures

import grpc


@contextlib.contextmanager
def serving(service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> Iterator[str]:
    """service's methods answered by handlers until the block ends; yields the address."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)
