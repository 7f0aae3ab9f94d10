"""gRPC plumbing shared by both daemons and their clients.

Owns: message size limits, the trailing-metadata keys that refine a status
code, channels (plain text, or TLS with a protos.tls.Trust; to one daemon or
spread over its replicas: see channel_target), which listen
addresses may serve plain text (loopback only, unless the operator insists),
and the daemon lifecycle (bind, health, reflection, ready file, graceful
stop on SIGTERM/SIGINT). Knows nothing of blocks or metadata; certificates
themselves are protos.tls's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import ipaddress
import json
import logging
import logging.handlers
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from protos import tls

log = logging.getLogger(__name__)

# Blocks are at most a few MiB; commits of files of tens of GB carry tens of
# thousands of block refs. Both fit well under this.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# Trailing metadata refining a status code (see the .proto files).
ERROR_REASON_KEY = "drive-error"
CURRENT_REVISION_KEY = "drive-current-revision"

GRPC_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

# Every client pings a connection quiet for KEEPALIVE_MS (gRPC's default ping timeout,
# a minute, then ends it): gentle enough for block streams over a slow link, where a
# ping may wait behind seconds of data already in the socket.
KEEPALIVE_MS = 30_000

# Seconds between pings on a channel carrying a live stream (LIVE_STREAM_OPTIONS), for
# tests that cannot wait for a dead path to be noticed; a daemon started with it accepts
# pings that often. Unset: LIVE_KEEPALIVE_MS.
KEEPALIVE_ENV = "DRIVEFS_KEEPALIVE_SECONDS"


def _live_keepalive_ms() -> int:
    try:
        seconds = float(os.environ.get(KEEPALIVE_ENV, ""))
    except ValueError:
        seconds = 0.0
    return max(int(seconds * 1000), 100) if seconds > 0 else 10_000


# A live stream (a mount's Subscribe, `drive watch`) has no deadline and may be quiet
# for hours: behind a dead network path (no RST) or a stopped daemon nothing else would
# ever end it. Its channel pings after LIVE_KEEPALIVE_MS without anything received and
# drops the connection when the ping is not answered within LIVE_PING_TIMEOUT_MS, so
# the stream fails within 15 s (10 + 5) and the mount turns offline and resumes it.
# 10 s: an idle mount sends one ping (17 bytes) every 10 s at most, nothing for a metad
# of thousands of mounts. 5 s: gRPC's own threads answer a ping within a round trip,
# even in a daemon whose Python is busy; metad's answers are small, so little waits in
# the socket ahead of the ack (block streams keep the gentler KEEPALIVE_MS channel).
LIVE_KEEPALIVE_MS = _live_keepalive_ms()
LIVE_PING_TIMEOUT_MS = LIVE_KEEPALIVE_MS // 2

# gRPC turns SO_REUSEPORT on by default: a second daemon on a taken port
# would start and share the traffic instead of failing. By default a server
# also takes a ping more often than every 5 minutes on a stream without data
# as abuse and closes the connection ("too_many_pings"): accept the clients'.
SERVER_OPTIONS: list[tuple[str, int]] = [
    *GRPC_OPTIONS,
    ("grpc.so_reuseport", 0),
    # (gRPC names GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS so.)
    ("grpc.http2.min_ping_interval_without_data_ms", min(KEEPALIVE_MS, LIVE_KEEPALIVE_MS) // 2),
    ("grpc.keepalive_permit_without_calls", 1),
]

# Clients probe a dead daemon quickly instead of waiting out the default
# reconnect backoff (up to two minutes).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

CLIENT_OPTIONS: list[tuple[str, int]] = [
    *GRPC_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", KEEPALIVE_MS),
]

# More channel options for a channel that carries a live stream (see LIVE_KEEPALIVE_MS).
LIVE_STREAM_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", LIVE_KEEPALIVE_MS),
    # gRPC 1.85 ends a connection whose ping is not acked by ping_timeout_ms (default a
    # minute); keepalive_timeout_ms alone, as documented, does not (tried: SIGSTOP).
    ("grpc.keepalive_timeout_ms", LIVE_PING_TIMEOUT_MS),
    ("grpc.http2.ping_timeout_ms", LIVE_PING_TIMEOUT_MS),
    # By default gRPC stops pinging after 2 pings without data sent: a quiet Subscribe
    # (the client sends nothing after its request) would be checked twice, then never.
    ("grpc.http2.max_pings_without_data", 0),
]


# A parent that starts a daemon (`drive up`, the tests) puts its pid here so the
# daemon stops when that parent dies, even by SIGKILL.
PARENT_PID_ENV = "DRIVEFS_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """Asks the kernel for SIGTERM when the parent named in PARENT_PID_ENV dies.

    Done here, after exec, rather than in a preexec_fn: Python code between
    fork and exec in a parent with gRPC threads can run gRPC's fork handlers,
    whose poller then loses its epoll fd to close_fds and kills the child.
    """
    expected = os.environ.pop(PARENT_PID_ENV, "")
    if not expected.isdigit():
        return
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(expected):
        os.kill(os.getpid(), signal.SIGTERM)  # the parent died before we asked


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A log file is rotated at this size, keeping this many old ones (name.log.1 …).
LOG_FILE_BYTES = 16 * 1024**2
LOG_FILES_KEPT = 4


def configure_logging(level: str | int, log_file: Path | None) -> None:
    """Logging of a drivefs process: to log_file, rotated, or to stderr."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILES_KEPT, encoding="utf-8"
        )
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=[handler])


_M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(arenas: int) -> None:
    """Bounds how many heaps glibc keeps for the process's threads.

    glibc gives a thread that allocates its own arena, up to 8 per core, and
    an arena keeps what it freed for reuse. Dozens of worker threads each
    handling megabyte blocks would hold that many heaps near their high-water
    mark: blockd's peak memory grew with the data it had seen (808 MiB after
    1 GiB written and read back, 869 after 2 GiB; 657 and 734 with 4 arenas).
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)


def quiet_garbage_collector(young_allocations: int) -> None:
    """Fewer and shorter runs of the cycle collector in a process that makes many
    short-lived containers (blockd's futures and tuples per block, the mount's nodes
    and rows per request).

    What was loaded until now (modules, what start-up read) is collected once and
    frozen out of the collector's walks, which otherwise took tens of ms each; the
    youngest objects are collected every young_allocations container allocations
    instead of Python's 700. Cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_allocations, *gc.get_threshold()[1:])


_M_TRIM_THRESHOLD = -1  # glibc mallopt parameters
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024**2  # glibc's ceiling on 64-bit (half a thread heap)


def reuse_freed_blocks(keep_bytes: int) -> None:
    """Lets glibc serve megabyte buffers from its heaps and keep keep_bytes freed at
    the top of each heap (bound the heaps with limit_malloc_arenas).

    By default a freed megabyte goes back to the kernel (munmap, or a trim of its
    heap) and the next one is faulted in again, page by page: a quarter of a
    million page faults per GiB a mount reads, each dear in a VM. Setting either
    value also stops glibc's own adjustment of both.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, keep_bytes)


# glibc's tunable (2.35 and later; older ones ignore it) for heaps in transparent huge pages.
_HUGE_PAGE_HEAP = "glibc.malloc.hugetlb=1"


def huge_page_heap(env: Mapping[str, str]) -> dict[str, str]:
    """env, with glibc asked to back the heap of the program started with it by
    transparent huge pages (madvise'd: the kernel here gives them only where asked).

    For the mount, whose megabyte blocks pass through its heap: each then spans a
    few page-table entries instead of 256, for the kernel pinning a read's reply
    for the FUSE device and a batch for its O_DIRECT write, and for the TLB while
    they are copied and hashed (and a GiB read cold takes ~400 page faults, not
    60-65k). A cold read cost the mount 12-18 % less CPU per
    GiB in bench/cold_read.py (alternating runs; peak RSS the same); in the whole
    bench/throughput.py no change showed beyond its noise. A tunable is read at
    start only, so whoever starts the program sets it; one already set is kept.
    """
    tunables = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb=" in tunables:
        return dict(env)
    return {**env, "GLIBC_TUNABLES": ":".join(filter(None, (tunables, _HUGE_PAGE_HEAP)))}


# The C API's bytearray constructor leaves the contents as they are when given no data.
_bytearray_from = ctypes.pythonapi.PyByteArray_FromStringAndSize
_bytearray_from.argtypes = (ctypes.c_char_p, ctypes.c_ssize_t)
_bytearray_from.restype = ctypes.py_object


def uninitialized_bytearray(size: int) -> bytearray:
    """A bytearray of size bytes left as malloc gave them, for a buffer the caller
    overwrites whole at once: bytearray(size) zero-fills it first, a few per cent of
    the CPU of a process moving megabyte blocks, for bytes overwritten anyway."""
    return _bytearray_from(None, size)


class BindError(Exception):
    """The listen address could not be bound (taken, or not an address)."""


def split_host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"not a HOST:PORT address: {address!r}")
    return host, int(port)


def parse_size(text: str) -> int:
    """A size given on a command line (1234, 64K, 10G, 1.5TiB), as an argparse `type`."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    digits = text.strip().upper().removesuffix("B").removesuffix("I")
    try:
        if digits and digits[-1] in units:
            return int(float(digits[:-1]) * units[digits[-1]])
        return int(digits)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None


# Calls spread over every replica that answers, and skip one that does not.
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
ChannelOptions = list[tuple[str, str | int]]


def split_addresses(address: str) -> list[tuple[str, int]]:
    """HOST:PORT, or several of them separated by commas: the replicas of one service."""
    parts = [part.strip() for part in address.split(",")]
    if not all(parts):
        raise ValueError(f"not a HOST:PORT[,HOST:PORT...] list: {address!r}")
    return [split_host_port(part) for part in parts]


def channel_target(address: str, trust: tls.Trust | None = None) -> tuple[str, ChannelOptions]:
    """What gRPC dials for address, and the channel options that go with it.

    One IP address: dialled as it is. One name: gRPC resolves it (again
    whenever a connection is lost) and spreads calls over all its addresses
    with round_robin, so one DNS name with several records serves a set of
    replicas. Several HOST:PORT: an `ipv4:`/`ipv6:` list with round_robin;
    names in it are resolved here, once (a set that changes wants one DNS
    name). Calls go to replicas that answer, so one that dies costs the
    calls in flight on it (UNAVAILABLE, retried by the clients), no more.

    TLS checks every replica's certificate against one name: the trust's
    (drivefs for a drivefs CA), else the one host the addresses share; a
    list of different hosts needs the trust to name it. Raises ValueError
    for a malformed list, one whose names do not resolve, or such a TLS name.
    """
    parts = split_addresses(address)
    options: ChannelOptions = [*tls.channel_options(trust)] if trust is not None else []
    if len(parts) == 1:
        if _ip_version(parts[0][0]) is None:
            options.append(("grpc.service_config", ROUND_ROBIN))
        return address, options
    if trust is not None and trust.target_name is None:
        hosts = {host.strip("[]") for host, _ in parts}
        if len(hosts) != 1:
            raise ValueError(
                f"{address}: over TLS, replicas at different hosts need the one name their "
                "certificates carry (a drivefs CA's, or the trust's target name)"
            )
        options.append(("grpc.ssl_target_name_override", hosts.pop()))
    options.append(("grpc.service_config", ROUND_ROBIN))
    return _address_list(address, parts), options


def _ip_version(host: str) -> int | None:
    try:
        return ipaddress.ip_address(host.strip("[]")).version
    except ValueError:
        return None


def _address_list(address: str, parts: list[tuple[str, int]]) -> str:
    """An ipv4: (or, with no IPv4 address at all, ipv6:) target of every address in parts.

    A name with addresses of both kinds counts with its IPv4 ones.
    """
    literal = {_ip_version(host) for host, _ in parts} - {None}
    if literal == {4, 6}:
        raise ValueError(f"{address}: gRPC takes IPv4 or IPv6 replicas in one list, not both")
    found: dict[int, list[str]] = {4: [], 6: []}
    for host, port in parts:
        if _ip_version(host) is not None:
            ips = [host.strip("[]")]
        else:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise ValueError(f"{address}: cannot resolve {host}: {exc.strerror}") from None
            ips = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for ip in ips:
            version = ipaddress.ip_address(ip).version
            found[version].append(f"{ip}:{port}" if version == 4 else f"[{ip}]:{port}")
    if found[4]:
        return "ipv4:" + ",".join(dict.fromkeys(found[4]))
    return "ipv6:" + ",".join(dict.fromkeys(found[6]))


def client_channel_options(
    address: str, trust: tls.Trust | None = None, extra: Sequence[tuple[str, Any]] = ()
) -> tuple[str, list[tuple[str, Any]]]:
    """channel_target's target, and every option of a client channel to it.

    The one merge of CLIENT_OPTIONS, the target's and extra's, for blocking and
    grpc.aio channels alike; extra overrides a default (no duplicate names).
    """
    target, options = channel_target(address, trust)
    given = {name for name, _ in extra}
    return target, [*(o for o in CLIENT_OPTIONS if o[0] not in given), *options, *extra]


def create_channel(
    address: str, trust: tls.Trust | None = None, extra: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A blocking channel with the project's limits: TLS when trust is given.

    address: HOST:PORT, or several (the replicas of one service; see channel_target).
    extra: more channel options, for a client that needs them (e.g. LIVE_STREAM_OPTIONS).
    """
    target, merged = client_channel_options(address, trust, extra)
    if trust is None:
        return grpc.insecure_channel(target, options=merged)
    return grpc.secure_channel(target, tls.channel_credentials(trust), options=merged)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not) and localhost: reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """--tls-cert, --tls-key and --insecure, the same for both daemons."""
    g = parser.add_argument_group(
        "TLS", "without a certificate a daemon serves plain text, and only on a loopback address"
    )
    g.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="serve TLS with this PEM certificate, then its chain (e.g. DATA/tls/server.pem)",
    )
    g.add_argument("--tls-key", type=Path, metavar="FILE", help="the certificate's PEM key")
    g.add_argument(
        "--insecure",
        action="store_true",
        help="serve plain text on a non-loopback address anyway (tokens cross it readable)",
    )


def check_tls_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_cert is not None and args.insecure:
        parser.error("--insecure is for plain text; it does not go with --tls-cert")


def listen_credentials(
    address: str, cert_file: Path | None, key_file: Path | None, insecure: bool = False
) -> grpc.ServerCredentials | None:
    """What a daemon serves address with: TLS from the files, or None for plain text.

    Plain text only on a loopback host, or anywhere when insecure (the
    operator's explicit --insecure): tokens and passwords cross the network
    readable. Raises BindError for plain text elsewhere, tls.TlsError for
    files that cannot serve.
    """
    if cert_file is not None and key_file is not None:
        return tls.server_credentials(cert_file, key_file)
    host, _ = split_host_port(address)
    if not insecure and not is_loopback(host):
        raise BindError(
            f"refusing to listen on {address} in plain text: tokens and passwords would cross "
            "the network readable; give --tls-cert and --tls-key (or --insecure to do it anyway)"
        )
    return None


# Server reflection v1 is v1alpha under a new package name, the same messages on the
# wire; grpcurl and most tools ask for v1 first, grpcio-reflection serves only v1alpha.
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def _add_reflection(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Reflection for service_names, as v1alpha and as v1 (one servicer)."""
    servicer = reflection.aio.ReflectionServicer(
        [*service_names, reflection.SERVICE_NAME, REFLECTION_V1]
    )
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    handlers = {"ServerReflectionInfo": v1}
    generic = grpc.method_handlers_generic_handler(REFLECTION_V1, handlers)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(REFLECTION_V1, handlers)


async def serve(
    name: str,
    address: str,
    add_services: Callable[[grpc.aio.Server], Sequence[str]],
    *,
    ready_file: Path | None = None,
    on_stopping: Callable[[], Awaitable[None]] | None = None,
    grace_seconds: float = 5.0,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> None:
    """Runs a grpc.aio server until SIGTERM or SIGINT, then stops it gracefully.

    add_services registers the servicers and returns their full service names
    (for health and reflection). Once listening, the bound address is written
    to ready_file (temp + rename) so a parent process that asked for port 0
    learns the real port. on_stopping runs after health turns NOT_SERVING and
    before the grace period is waited out: it ends long-lived streams (Subscribe)
    that would otherwise hold the shutdown for the whole grace. credentials:
    serve TLS with them (see listen_credentials); None: plain text.
    """
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=list(interceptors))
    service_names = list(add_services(server))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _add_reflection(server, [*service_names, health.SERVICE_NAME])
    host, _ = split_host_port(address)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise BindError(f"cannot listen on {address}: address in use or not available") from exc
    if port == 0:
        raise BindError(f"cannot listen on {address}: address in use or not available")
    bound = f"{host}:{port}"
    await server.start()
    for service in ["", *service_names]:
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("%s listening on %s (%s)", name, bound, "plain text" if credentials is None else "TLS")
    # The handlers go in before the ready file: whoever reads it may stop us at once.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready_file is not None:
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(bound + "\n")
        os.replace(tmp, ready_file)
    try:
        await stop.wait()
        log.info("%s stopping", name)
    finally:
        await health_servicer.enter_graceful_shutdown()
        if on_stopping is not None:
            await on_stopping()
        await server.stop(grace_seconds)
        if ready_file is not None:
            with contextlib.suppress(FileNotFoundError):
                ready_file.unlink()
