"""The S3 server's own ceiling: raw boto3 PUTs and GETs of 1 MiB objects, no blockd.

What drivefs on S3 can reach at best on this machine: several threads of one
boto3 client PUT then GET `--objects` objects of 1 MiB against moto's server
or SeaweedFS on loopback (started as the tests start them), with botocore's
defaults and with less hashing (see VARIANTS); then as many requests at once
through blockd's own data path (obstore, blockd/backends/s3objects.py).
Prints MB/s and the client's CPU seconds per GiB next to each other.

    .venv/bin/python bench/s3_ceiling.py [--server s3|seaweedfs] [--objects 256] [--threads 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blockd.backends.s3objects import ObjectRequests
from tests.s3server import CREDENTIALS, REGION, start_s3_server, start_seaweed_server

MiB = 1024 * 1024


# How the client is set up: botocore's defaults; checksums only when required; and
# those plus no SHA-256 of the body in the signature (UNSIGNED-PAYLOAD), as blockd's
# S3 backend sets it up on loopback and over TLS.
VARIANTS = ("default", "checksums when required", "and unsigned payload")


def client(endpoint: str, threads: int, variant: str) -> object:
    extra = (
        {
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required",
        }
        if variant != VARIANTS[0]
        else {}
    )
    config = Config(
        s3={"addressing_style": "path", "payload_signing_enabled": variant != VARIANTS[2]},
        max_pool_connections=threads,
        retries={"total_max_attempts": 1},
        **extra,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name=REGION, config=config
    )


def run(endpoint: str, bucket: str, args: argparse.Namespace, variant: str) -> tuple[float, ...]:
    s3 = client(endpoint, args.threads, variant)
    body = os.urandom(MiB)
    keys = [f"obj-{VARIANTS.index(variant)}-{i:06d}" for i in range(args.objects)]
    size = args.objects * MiB

    def put(key: str) -> None:
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    def get(key: str) -> None:
        assert len(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) == MiB

    figures: list[float] = []
    with ThreadPoolExecutor(args.threads) as pool:
        for fn in (put, get):
            cpu, start = time.process_time(), time.monotonic()
            list(pool.map(fn, keys))
            wall, cpu = time.monotonic() - start, time.process_time() - cpu
            figures += [size / wall / 1e6, cpu / (size / 1024**3)]
    return tuple(figures)


def run_obstore(endpoint: str, bucket: str, args: argparse.Namespace) -> tuple[float, ...]:
    """The same PUTs and GETs through blockd's data path, args.threads at once."""
    requests = ObjectRequests(
        boto3.session.Session(),
        bucket=bucket,
        endpoint_url=endpoint,
        region=REGION,
        sign_payload=False,
        concurrency=args.threads,
        timeout=60,
    )
    body = os.urandom(MiB)
    keys = [f"obj-obstore-{i:06d}" for i in range(args.objects)]
    size = args.objects * MiB

    async def all_of(op: str) -> None:
        limit = asyncio.Semaphore(args.threads)

        async def one(key: str) -> None:
            async with limit:
                if op == "put":
                    await requests.put(key, body)
                else:
                    assert len(await requests.get(key)) == MiB

        await asyncio.gather(*(one(key) for key in keys))

    figures: list[float] = []
    for op in ("put", "get"):
        cpu, start = time.process_time(), time.monotonic()
        asyncio.run(all_of(op))
        wall, cpu = time.monotonic() - start, time.process_time() - cpu
        figures += [size / wall / 1e6, cpu / (size / 1024**3)]
    return tuple(figures)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=("s3", "seaweedfs"), default="s3")
    ap.add_argument("--objects", type=int, default=256)
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args()
    os.environ.update(CREDENTIALS)
    with tempfile.TemporaryDirectory(prefix="s3-ceiling-") as work:
        if args.server == "seaweedfs":
            server = start_seaweed_server(Path(work))
        else:
            server = start_s3_server(Path(work) / "moto.log")
        try:
            bucket = server.create_bucket()
            for variant in (*VARIANTS, "obstore (blockd's data path)"):
                if variant in VARIANTS:
                    figures = run(server.endpoint, bucket, args, variant)
                else:
                    figures = run_obstore(server.endpoint, bucket, args)
                put, put_cpu, get, get_cpu = figures
                print(
                    f"{server.name}, {args.threads} threads, {variant}: "
                    f"PUT {put:.0f} MB/s ({put_cpu:.2f} client CPU s/GiB), "
                    f"GET {get:.0f} MB/s ({get_cpu:.2f} client CPU s/GiB)"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
