"""blockd's command line and the settings it yields.

Owns: the options and their defaults, including the DRIVEFS_S3_* environment
variables that stand in for the --s3-* options, and the `rotate-key`
command's own options. Must not: open files, bind sockets, talk to S3 or
configure logging.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blockd.keys import DEFAULT_NAME as DEFAULT_KEY_FILE_NAME
from protos.runtime import (
    LOG_LEVELS,
    add_tls_options,
    check_tls_options,
    split_addresses,
    split_host_port,
)

BACKENDS = ("local", "s3")
MiB = 1024 * 1024
DEFAULT_MEMORY_CACHE_MIB = 256


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str | None = None  # None: AWS itself
    region: str | None = None  # None: from the AWS configuration
    prefix: str = ""  # prepended to every object key, e.g. "drivefs/"


@dataclass(frozen=True)
class Config:
    data_dir: Path  # the local store (FORMAT, LOCK, blocks/), the key file, the log
    listen: str  # HOST:PORT; port 0 picks a free port (see ready_file)
    ready_file: Path | None  # gets the bound HOST:PORT once serving
    log_level: str = "INFO"
    log_file: Path | None = None  # None: stderr
    metrics: str | None = None  # HOST:PORT of /metrics; None: not served
    s3: S3Settings | None = None  # None: blocks in data_dir/blocks
    encryption: bool = True  # the codec (zstd + AES-256-GCM) around the backend
    key_file: Path | None = None  # None: data_dir/keys.json, created on first start
    memory_cache_bytes: int = DEFAULT_MEMORY_CACHE_MIB * MiB  # hot blocks; 0: none
    metad: str | None = None  # metad's HOST:PORT[,HOST:PORT...], for garbage collection, scrub
    auth_key: Path | None = None  # metad's auth key file; needed to serve
    tls_cert: Path | None = None  # with tls_key: serve TLS; None: plain text (loopback only)
    tls_key: Path | None = None
    insecure: bool = False  # plain text on a non-loopback address too
    metad_ca: Path | None = None  # reach metad over TLS, trusting this PEM; None: plain text
    metad_name: str | None = None  # the name metad's certificate must carry (see --metad-name)

    @property
    def key_path(self) -> Path:
        return self.key_file or self.data_dir / DEFAULT_KEY_FILE_NAME


@dataclass(frozen=True)
class RotateConfig:
    key_path: Path
    new: bool = False  # create the key file instead of adding to it


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="blockd",
        description="The drivefs block daemon: content-addressed block storage. "
        "`blockd rotate-key --help`: make a new master key current.",
    )
    parser.add_argument("--data", type=Path, required=True, help="data directory")
    parser.add_argument("--listen", default="127.0.0.1:7420", help="HOST:PORT to serve on")
    parser.add_argument(
        "--ready-file", type=Path, help="write the bound HOST:PORT here once serving"
    )
    parser.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS)
    parser.add_argument(
        "--log-file", type=Path, metavar="FILE", help="log there, rotated (default: stderr)"
    )
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="where blocks go: DATA/blocks (default) or an S3 bucket",
    )
    env = os.environ.get
    s3 = parser.add_argument_group(
        "S3 backend", "credentials come from the standard AWS variables and files"
    )
    s3.add_argument(
        "--s3-endpoint",
        default=env("DRIVEFS_S3_ENDPOINT"),
        metavar="URL",
        help="an S3-compatible service (default: AWS) [DRIVEFS_S3_ENDPOINT]",
    )
    s3.add_argument("--s3-bucket", default=env("DRIVEFS_S3_BUCKET"), help="[DRIVEFS_S3_BUCKET]")
    s3.add_argument("--s3-region", default=env("DRIVEFS_S3_REGION"), help="[DRIVEFS_S3_REGION]")
    s3.add_argument(
        "--s3-prefix",
        default=env("DRIVEFS_S3_PREFIX", ""),
        help="key prefix of every object, e.g. drivefs/ [DRIVEFS_S3_PREFIX]",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        help=f"master keys (default DATA/{DEFAULT_KEY_FILE_NAME}, created on first start); "
        "mode 0600; back it up: without it the blocks cannot be read",
    )
    parser.add_argument(
        "--no-encryption",
        dest="encryption",
        action="store_false",
        help="store blocks as they are: no compression, no encryption",
    )
    parser.add_argument(
        "--memory-cache",
        type=int,
        default=DEFAULT_MEMORY_CACHE_MIB,
        metavar="MIB",
        help=f"memory for recently read and written blocks (default {DEFAULT_MEMORY_CACHE_MIB}; "
        "0: none)",
    )
    parser.add_argument(
        "--auth-key",
        type=Path,
        required=True,
        metavar="FILE",
        help="metad's auth key file (its DATA/auth.key): tokens and grants are checked with it",
    )
    parser.add_argument(
        "--metad",
        metavar="HOST:PORT",
        help="metad's address (or its replicas': HOST:PORT,HOST:PORT): garbage collection "
        "and scrub ask it which blocks are in use",
    )
    parser.add_argument(
        "--metad-ca",
        type=Path,
        metavar="FILE",
        help="reach metad over TLS, trusting the CA certificate(s) in this PEM file "
        "(a drivefs CA, DATA/tls/ca.pem, vouches for the name drivefs at any address)",
    )
    parser.add_argument(
        "--metad-name",
        metavar="NAME",
        help="the name metad's certificate must carry (default: drivefs for a drivefs CA, "
        "else the host of --metad)",
    )
    add_tls_options(parser)
    args = parser.parse_args(argv)
    check_tls_options(parser, args)
    if (args.metad_ca or args.metad_name) and not args.metad:
        parser.error("--metad-ca and --metad-name need --metad")
    if args.metad_name and not args.metad_ca:
        parser.error("--metad-name needs --metad-ca")
    try:
        split_host_port(args.listen)
        if args.metad:
            split_addresses(args.metad)
    except ValueError as exc:
        parser.error(str(exc))
    if args.memory_cache < 0:
        parser.error("--memory-cache must be 0 or more")
    s3_settings = None
    if args.backend == "s3":
        if not args.s3_bucket:
            parser.error("--backend s3 needs --s3-bucket (or DRIVEFS_S3_BUCKET)")
        s3_settings = S3Settings(
            bucket=args.s3_bucket,
            endpoint_url=args.s3_endpoint or None,
            region=args.s3_region or None,
            prefix=args.s3_prefix,
        )
    if args.key_file is not None and not args.encryption:
        parser.error("--key-file and --no-encryption exclude each other")
    return Config(
        data_dir=args.data,
        listen=args.listen,
        ready_file=args.ready_file,
        log_level=args.log_level,
        log_file=args.log_file,
        metrics=args.metrics,
        s3=s3_settings,
        encryption=args.encryption,
        key_file=args.key_file,
        memory_cache_bytes=args.memory_cache * MiB,
        metad=args.metad,
        auth_key=args.auth_key,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        insecure=args.insecure,
        metad_ca=args.metad_ca,
        metad_name=args.metad_name,
    )


def parse_rotate_args(argv: Sequence[str]) -> RotateConfig:
    parser = argparse.ArgumentParser(
        prog="blockd rotate-key",
        description="Add a new master key to the key file and make it current. Blocks "
        "written before stay readable with their old key; restart blockd to write "
        "with the new one.",
    )
    parser.add_argument("--data", type=Path, help="data directory (key file DATA/keys.json)")
    parser.add_argument("--key-file", type=Path, help="the key file, if not in DATA")
    parser.add_argument(
        "--new",
        action="store_true",
        help="create the key file with a first key (for blockd --key-file); never overwrites",
    )
    args = parser.parse_args(argv)
    if args.key_file is None and args.data is None:
        parser.error("give --data or --key-file")
    return RotateConfig(args.key_file or args.data / DEFAULT_KEY_FILE_NAME, new=args.new)
