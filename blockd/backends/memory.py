"""A backend holding objects in a dict: the codec's cost without I/O, and a store tests can damage.

For benchmarks and tests only; nothing survives the process.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

from blockd.backends.base import Backend, Bytes, ObjectInfo, ObjectNotFound


class MemoryBackend(Backend):
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.quarantined: dict[str, bytes] = {}
        self._modified: dict[str, int] = {}

    async def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectNotFound(key) from None

    async def put(self, key: str, data: Bytes) -> int:
        self.objects[key] = bytes(data)
        self._modified[key] = time.time_ns()
        return len(data)

    async def contains(self, keys: Sequence[str]) -> list[bool]:
        return [key in self.objects for key in keys]

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self._modified.pop(key, None)

    async def list_objects(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield ObjectInfo(key, len(self.objects[key]), self._modified.get(key, 0))

    async def quarantine(self, key: str) -> int:
        data = self.objects.pop(key, None)
        self._modified.pop(key, None)
        if data is None:
            return 0
        self.quarantined[f"{key}.{time.time_ns()}"] = data
        return len(data)
