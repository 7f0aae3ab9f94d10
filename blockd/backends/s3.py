"""A backend in an S3 bucket (AWS or any S3-compatible service): boto3, and obstore.

Owns the layout under the bucket's key prefix and its version:

    PREFIX.format   JSON {"format": "drivefs-blockd-s3", "version": 1}; hidden from listings
    PREFIX<key>     one S3 object per object, its bytes as they are
    PREFIXquarantine/<key>.<ns>   a damaged object moved aside (kept for inspection)

and how the requests are made: GET, PUT, HEAD and DELETE of one object (the
data path) through s3objects.py (obstore, awaited on the event loop: a
fraction of botocore's CPU per request); the rest (the format marker,
listings, quarantine's copy) through one boto3 client (thread-safe) in this
backend's worker threads. At most `concurrency` requests at once, each
retried under the one policy of `retry` when `is_temp_failure` says the
error is transient (connection errors, timeouts, 5xx, throttling); neither
client retries on its own. A wrapper's decoding (get_then) and encoding
(put_made) run in this backend's worker threads, and no body is hashed on
the way that the layers above check anyway (see s3client.py).
Credentials come from boto3's standard chain (AWS_* variables, ~/.aws files,
instance roles); a custom endpoint is addressed path-style, as MinIO, Ceph
and moto expect.

`contains` of a few keys HEADs each; of many, it lists the bucket from each
unanswered key on (StartAfter), so one LIST answers every asked key up to
the last name it returns: a store of N objects answers any number of keys
in about N/1000 LISTs. A LIST that answers fewer than _MIN_KEYS_PER_LIST
keys means the keys are sparse among the objects, and the rest are HEADed.

Must not: interpret objects; let a botocore or obstore exception escape
(mapped here once, after the last attempt, onto the errors of `base`); call
boto3 on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import botocore.exceptions
import botocore.session
import botocore.utils
import urllib3.exceptions

from blockd.backends.base import (
    Backend,
    BackendFull,
    BackendSetupError,
    BackendUnavailable,
    Bytes,
    ObjectInfo,
    ObjectNotFound,
    check_key,
)
from blockd.backends.retry import RetryPolicy, retry
from blockd.backends.s3client import make_client, object_requests
from blockd.backends.s3objects import TEMP_CODES, ObjectRequests, RequestFailed

log = logging.getLogger(__name__)

FORMAT_NAME = "drivefs-blockd-s3"
FORMAT_VERSION = 1
_FORMAT_KEY = ".format"  # not a valid object key, so it never collides or lists
QUARANTINE_PREFIX = "quarantine/"  # damaged objects moved aside: never listed as objects

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_FULL_CODES = frozenset({"QuotaExceeded", "XMinioStorageFull", "EntityTooLarge"})
_TEMP_EXCEPTIONS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,  # includes endpoint unreachable, connect timeout
    botocore.exceptions.HTTPClientError,  # includes connection closed, read timeout
    botocore.exceptions.IncompleteReadError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)

_HEAD_MAX = 8  # up to this many keys, contains() HEADs each
_MIN_KEYS_PER_LIST = 4  # see the module docstring
_KEYS_PER_WALKER = 2000  # keys per concurrent listing walk, after the first page
_LIST_PAGE = 1000  # the most S3 returns per LIST
# At start, an endpoint that does not answer is more likely a wrong URL than
# an outage: give up sooner than in operation.
_OPEN_DEADLINE = 15.0
_REQUEST_TIMEOUT = 60.0  # seconds for one request on one object

T = TypeVar("T")


def is_temp_failure(exc: BaseException) -> bool:
    """Whether repeating the call may succeed: network trouble, 5xx, throttling."""
    if isinstance(exc, botocore.exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in TEMP_CODES or status >= 500 or status == 429
    if isinstance(exc, RequestFailed):
        return exc.transient
    return isinstance(exc, _TEMP_EXCEPTIONS)


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Backend(Backend):
    """Objects in an S3 bucket; obtain one with `await S3Backend.open(bucket=...)`."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None,
        concurrency: int,
        retry_policy: RetryPolicy,
        list_page: int = _LIST_PAGE,
    ) -> None:
        self._client = client
        self._objects: ObjectRequests | None = None  # set by open, once the bucket is checked
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.retry_policy = retry_policy
        self._concurrency = concurrency
        self._list_page_size = list_page
        self._limit = asyncio.Semaphore(concurrency)
        self._executor: ThreadPoolExecutor | None = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="blockd-s3"
        )

    @classmethod
    async def open(
        cls,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        concurrency: int = 32,
        retry_policy: RetryPolicy | None = None,
        list_page: int = _LIST_PAGE,
        request_timeout: float = _REQUEST_TIMEOUT,
    ) -> S3Backend:
        """Connects, checks the bucket and the format marker (writing it on first use).

        Raises BackendSetupError with a message for the user: no credentials,
        no such bucket, access denied, endpoint unreachable, newer format.
        list_page: keys per LIST (S3 returns at most 1000; fewer only in tests).
        request_timeout: seconds one request on one object may take.
        """
        policy = retry_policy or RetryPolicy()
        try:
            client = await asyncio.to_thread(
                make_client, endpoint_url=endpoint_url, region=region, concurrency=concurrency
            )
        except (botocore.exceptions.BotoCoreError, ValueError) as exc:
            raise BackendSetupError(f"cannot set up the S3 client: {exc}") from None
        opening = RetryPolicy(
            min(policy.deadline, _OPEN_DEADLINE), policy.first_delay, policy.max_delay
        )
        backend = cls(
            client,
            bucket,
            prefix,
            endpoint_url=endpoint_url,
            concurrency=concurrency,
            retry_policy=opening,
            list_page=list_page,
        )
        try:
            await backend._check_format()
            try:
                backend._objects = await asyncio.to_thread(
                    object_requests, client, bucket, endpoint_url, concurrency, request_timeout
                )
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise BackendSetupError(f"cannot use {backend.location}: {exc}") from None
        except BaseException:
            await backend.close()
            raise
        backend.retry_policy = policy
        return backend

    @property
    def location(self) -> str:
        """Where the objects are, for log lines: s3://bucket/prefix (endpoint)."""
        where = f"s3://{self.bucket}/{self.prefix}"
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def is_temp_failure(self, exc: BaseException) -> bool:
        return is_temp_failure(exc)

    @property
    def _live(self) -> ObjectRequests:
        if self._objects is None:
            raise BackendUnavailable("the S3 backend is closed")
        return self._objects

    @retry
    async def _request(self, op: Callable[..., Awaitable[T]], /, *args: Any) -> T:
        """One request on one object (an ObjectRequests method), awaited on the loop."""
        async with self._limit:
            return await op(*args)

    async def _in_thread(self, fn: Callable[..., T], /, *args: Any) -> T:
        """fn(*args) in one of this backend's worker threads (a wrapper's codec work)."""
        if self._executor is None:
            raise BackendUnavailable("the S3 backend is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @retry
    async def _call(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """One boto3 call (or a few steps of one, such as reading a body) in a worker thread."""
        if self._executor is None:
            raise BackendUnavailable("the S3 backend is closed")
        async with self._limit:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, partial(fn, *args, **kwargs)
            )

    async def close(self) -> None:
        self._objects = None
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown)
            self._client.close()

    # --- the interface ---------------------------------------------------------------------

    async def get(self, key: str) -> bytes:
        return bytes(await self._get(key))

    async def _get(self, key: str) -> memoryview:
        check_key(key)
        with self._errors(key):
            return await self._request(self._live.get, self.prefix + key)

    async def get_then(self, key: str, then: Callable[[Bytes], T]) -> T:
        """then(the body) in a worker thread: the one hand-off of the call."""
        return await self._in_thread(then, await self._get(key))

    async def put(self, key: str, data: Bytes) -> int:
        check_key(key)
        with self._errors(key):
            await self._request(self._live.put, self.prefix + key, data)
        return len(data)

    async def put_made(self, key: str, make: Callable[[], Bytes]) -> int:
        """make() in a worker thread, then the PUT: made once, whatever the retries."""
        check_key(key)
        return await self.put(key, await self._in_thread(make))

    async def contains(self, keys: Sequence[str]) -> list[bool]:
        for key in keys:
            check_key(key)
        wanted = sorted(set(keys))
        found: set[str] = set()
        with self._errors(None):
            if len(wanted) <= _HEAD_MAX:
                await self._head(wanted, found)
            else:
                rest = await self._walk(wanted, found, max_lists=1)  # a small store: done
                n = min(self._concurrency, -(-len(rest) // _KEYS_PER_WALKER))
                chunks = [rest[len(rest) * i // n : len(rest) * (i + 1) // n] for i in range(n)]
                await _all(self._walk(chunk, found) for chunk in chunks)
        return [key in found for key in keys]

    async def delete(self, key: str) -> None:
        check_key(key)
        with self._errors(key):
            await self._request(self._live.delete, self.prefix + key)

    async def quarantine(self, key: str) -> int:
        """Copies the object under quarantine/ (never listed as an object), then deletes it."""
        check_key(key)
        with self._errors(None):
            return await self._call(self._move_aside, key)

    def _move_aside(self, key: str) -> int:
        source = self.prefix + key
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=source)
        except botocore.exceptions.ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                return 0
            raise
        self._client.copy_object(
            Bucket=self.bucket,
            Key=f"{self.prefix}{QUARANTINE_PREFIX}{key}.{time.time_ns()}",
            CopySource={"Bucket": self.bucket, "Key": source},
        )
        self._client.delete_object(Bucket=self.bucket, Key=source)
        return int(head["ContentLength"])

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        token: str | None = None
        while True:
            with self._errors(None):
                page = await self._call(self._list_page, prefix=prefix, token=token)
            for key, size, modified_ns in page.objects:
                if _is_object_key(key):
                    yield ObjectInfo(key, size, modified_ns)
            if page.next_token is None:
                return
            token = page.next_token

    # --- helpers -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, key: str | None) -> Iterator[None]:
        """botocore exception → backend error, once, after the retries; key=None: many."""
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            code = _error_code(exc)
            if key is not None and code in _NOT_FOUND_CODES:
                raise ObjectNotFound(key) from None
            if code in _FULL_CODES:
                raise BackendFull(f"{self.location}: {exc}") from exc
            if code == "NoSuchBucket":
                raise BackendUnavailable(f"bucket {self.bucket} does not exist") from exc
            raise BackendUnavailable(f"{self.location}: {exc}") from exc
        except RequestFailed as exc:
            if key is not None and exc.not_found:
                raise ObjectNotFound(key) from None
            if exc.code in _FULL_CODES:
                raise BackendFull(f"{self.location}: {exc}") from exc
            raise BackendUnavailable(f"{self.location}: {exc}") from exc
        except (botocore.exceptions.BotoCoreError, *_TEMP_EXCEPTIONS) as exc:
            raise BackendUnavailable(f"{self.location}: {exc}") from exc

    def _list_page(
        self, *, prefix: str = "", token: str | None = None, start_after: str | None = None
    ) -> _Page:
        """Thread-side: one LIST of up to 1000 keys, the backend prefix stripped."""
        kwargs: dict[str, object] = {
            "Bucket": self.bucket,
            "Prefix": self.prefix + prefix,
            "MaxKeys": self._list_page_size,
        }
        if token is not None:
            kwargs["ContinuationToken"] = token
        if start_after:
            kwargs["StartAfter"] = self.prefix + start_after
        reply = self._client.list_objects_v2(**kwargs)
        cut = len(self.prefix)
        objects = [
            (obj["Key"][cut:], int(obj["Size"]), int(obj["LastModified"].timestamp() * 1e9))
            for obj in reply.get("Contents", ())
        ]
        more = bool(reply.get("IsTruncated")) and bool(objects)
        return _Page(objects, reply.get("NextContinuationToken") if more else None)

    async def _head(self, keys: Sequence[str], found: set[str]) -> None:
        """Adds to found each of keys that exists: HEADs, up to the concurrency at once."""
        todo = iter(keys)

        async def worker() -> None:
            for key in todo:  # shared: each key goes to one worker
                if await self._request(self._live.exists, self.prefix + key):
                    found.add(key)

        await _all(worker() for _ in range(min(self._concurrency, len(keys))))

    async def _walk(
        self, wanted: list[str], found: set[str], *, max_lists: int | None = None
    ) -> list[str]:
        """Answers sorted keys by listing from each unanswered one on (see the docstring).

        Adds the keys that exist to found; returns the keys left unanswered
        once max_lists LISTs are done.
        """
        i = lists = 0
        seen_up_to = ""  # every key <= this one has been listed
        while i < len(wanted):
            if max_lists is not None and lists == max_lists:
                return wanted[i:]
            # From just before wanted[i]: its parent name sorts before it and
            # before almost nothing else.
            page = await self._call(
                self._list_page, start_after=max(wanted[i][:-1], seen_up_to) or None
            )
            lists += 1
            found.update(key for key, _, _ in page.objects)
            answered = i
            if page.next_token is None:
                i = len(wanted)  # nothing beyond this page
            else:
                seen_up_to = page.objects[-1][0]
                while i < len(wanted) and wanted[i] <= seen_up_to:
                    i += 1
                if i - answered < _MIN_KEYS_PER_LIST:
                    await self._head(wanted[i:], found)
                    return []
        return []

    async def _check_format(self) -> None:
        try:
            with self._errors(_FORMAT_KEY):
                raw = await self._call(
                    _get_body, self._client, self.bucket, self.prefix + _FORMAT_KEY
                )
        except ObjectNotFound:
            body = json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION}) + "\n"
            raw = None
        except BackendUnavailable as exc:
            raise BackendSetupError(f"cannot use {self.location}: {_reason(exc)}") from None
        if raw is None:
            try:
                with self._errors(_FORMAT_KEY):
                    await self._call(
                        self._client.put_object,
                        Bucket=self.bucket,
                        Key=self.prefix + _FORMAT_KEY,
                        Body=body.encode(),
                    )
            except (BackendUnavailable, BackendFull) as exc:
                raise BackendSetupError(f"cannot use {self.location}: {_reason(exc)}") from None
            log.info("initialized %s", self.location)
            return
        try:
            fmt = json.loads(raw)
            name, version = fmt["format"], fmt["version"]
        except (ValueError, TypeError, KeyError):
            raise BackendSetupError(
                f"{self.location}: {self.prefix}{_FORMAT_KEY} is not a blockd format marker"
            ) from None
        if name != FORMAT_NAME or not isinstance(version, int):
            raise BackendSetupError(f"{self.location}: not a blockd S3 store ({name!r})")
        if version > FORMAT_VERSION:
            raise BackendSetupError(
                f"{self.location} holds a store of format version {version}; this blockd "
                f"knows only up to {FORMAT_VERSION} (upgrade blockd)"
            )


class _Page:
    __slots__ = ("next_token", "objects")

    def __init__(self, objects: list[tuple[str, int, int]], next_token: str | None) -> None:
        self.objects = objects  # (key without the backend prefix, size), in key order
        self.next_token = next_token  # None: the listing ends here


def _get_body(client: Any, bucket: str, key: str) -> bytes:
    reply = client.get_object(Bucket=bucket, Key=key)
    with contextlib.closing(reply["Body"]) as body:
        return body.read()


def _is_object_key(key: str) -> bool:
    """Whether a listed name is one of ours (not the format marker, nor a stranger's)."""
    try:
        check_key(key)
    except ValueError:
        return False
    return True


def _reason(exc: BaseException) -> str:
    """The user-facing cause of a failure at start."""
    cause = exc.__cause__
    if isinstance(cause, botocore.exceptions.NoCredentialsError):
        return "no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    if isinstance(cause, botocore.exceptions.ClientError):
        code = _error_code(cause)
        if code == "NoSuchBucket":
            return "the bucket does not exist"
        if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            return f"access denied ({code}); check the credentials"
    return str(cause or exc)


async def _all(coros: Iterator[Awaitable[None]]) -> None:
    """Runs coroutines concurrently; the first error cancels the rest and is raised as is."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)  # type: ignore[arg-type]
    except ExceptionGroup as errors:
        raise errors.exceptions[0] from None
