"""What every server interceptor of the project does the same way: find the one behavior
a gRPC handler carries and wrap it, whether it returns one response or yields a stream.

grpc.aio hands an interceptor a handler with four behavior slots, one of them
set; a wrapper must keep the slot and the shape (a coroutine, or an async
generator for server streaming), or grpc calls it wrongly. Written once here,
so guard (malformed requests), auth (tokens) and metrics (counts and times)
say only what they add around a call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")

Behavior = Callable[..., Any]
Around = Callable[[Any, grpc.aio.ServicerContext], AbstractAsyncContextManager[None]]


def rewrap(handler: Any, wrap: Callable[[str, Behavior], Behavior], **replace: Any) -> Any:
    """handler with its behavior replaced by wrap(kind, behavior) (and the other fields
    in replace); None and handlers without a behavior come back as they are."""
    if handler is None:
        return None
    for kind in KINDS:
        behavior = getattr(handler, kind)
        if behavior is not None:
            return handler._replace(**{kind: wrap(kind, behavior)}, **replace)
    return handler


def around(behavior: Behavior, enter: Around) -> Behavior:
    """behavior run inside `async with enter(request, context)`, in the same shape: an
    exception from the call (an abort too) reaches the context manager, and for a
    stream so does the end of the stream."""
    if inspect.isasyncgenfunction(behavior):

        async def streamed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with enter(request, context):
                async for item in behavior(request, context):
                    yield item

        return streamed

    async def answered(request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with enter(request, context):
            return await behavior(request, context)

    return answered
