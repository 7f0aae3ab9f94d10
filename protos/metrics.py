"""Prometheus metrics of a drivefs process: what it serves, on /metrics.

prometheus-client keeps the counters and serves them over HTTP from a thread
of its own. Every daemon counts its RPCs by method and status code with their
latency (RpcMetrics, a server interceptor: one place, every method); what
only one process knows (blocks stored, cache hits, journal backlog) it adds
as a collector reading its own counters at scrape time, so the hot paths do
not pay for metrics they already keep.

Must not: decide what a process measures beyond RPCs (its own module does),
or listen beyond the address it is given (off unless --metrics is given).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
import prometheus_client
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from protos import interceptors
from protos.runtime import split_host_port

RPCS = prometheus_client.Counter(
    "drive_rpc", "RPCs served, by method and status code", ["method", "code"]
)
RPC_SECONDS = prometheus_client.Histogram(
    "drive_rpc_seconds",
    "time to serve an RPC (a stream: until it ends), by method",
    ["method"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300),
)


def serve_metrics(address: str) -> str:
    """Serves /metrics on HOST:PORT (port 0: any free one) from a thread; the bound address."""
    host, port = split_host_port(address)
    server, _ = prometheus_client.start_http_server(port, addr=host.strip("[]"))
    return f"{host}:{server.server_port}"


def counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=value)


def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


class ReadAtScrape(Collector):
    """Metrics a process already counts, read when /metrics is asked for."""

    def __init__(self, read: Callable[[], Iterable[Any]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Any]:
        return list(self._read())


def register(read: Callable[[], Iterable[Any]]) -> None:
    prometheus_client.REGISTRY.register(ReadAtScrape(read))


class RpcMetrics(grpc.aio.ServerInterceptor):
    """Counts every RPC by method and final status code, and times it."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        method = details.method
        timing = functools.partial(_timing, method)
        return interceptors.rewrap(
            await continuation(details), lambda _kind, b: interceptors.around(b, timing)
        )


@contextlib.asynccontextmanager
async def _timing(method: str, _request: Any, context: grpc.aio.ServicerContext) -> Any:
    start = time.perf_counter()
    code = "UNKNOWN"
    try:
        yield
        code = _code(context, "OK")
    except BaseException:
        code = _code(context, "CANCELLED" if _cancelled(context) else "UNKNOWN")
        raise
    finally:
        _count(method, code, start)


def _code(context: grpc.aio.ServicerContext, otherwise: str) -> str:
    """The status the handler set (abort sets it), else otherwise."""
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else otherwise


def _cancelled(context: grpc.aio.ServicerContext) -> bool:
    try:
        return context.cancelled()
    except Exception:  # not every context can say
        return False


def _count(method: str, code: str, start: float) -> None:
    RPCS.labels(method, code).inc()
    RPC_SECONDS.labels(method).observe(time.perf_counter() - start)
