"""ASGI middleware for the service: a 415 for bodies it cannot parse, the variant header, a timeout.

BentoML answers 500 when a POST to a JSON endpoint arrives with another declared
content type (a multipart parser fails on a JSON body). Every endpoint of this service
takes JSON, so any other declared type is the client's error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACCEPTED = ("application/json",)


async def send_error(send: Send, status: int, error: str) -> None:
    """Answer ``status`` with ``{"error": error}`` as JSON."""
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class JsonOnly:
    """Answer 415 to a POST whose Content-Type is set and is not JSON.

    Args:
        app: The wrapped ASGI application.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 415 without reading the body."""
        if scope["type"] == "http" and scope.get("method") == "POST":
            headers = dict(scope.get("headers") or [])
            declared = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip()
            if declared and declared.lower() not in ACCEPTED:
                error = f"Content-Type: expected application/json, got '{declared}'"
                await send_error(send, 415, error)
                return
        await self.app(scope, receive, send)


class VariantHeader:
    """Add ``X-Model-Variant`` to every response: which variant answered.

    The router's failover may send a request elsewhere than its assignment.

    Args:
        app: The wrapped ASGI application.
        variant: The variant name (``GITOPS_ML_VARIANT``).
    """

    def __init__(self, app: ASGIApp, variant: str) -> None:
        self.app = app
        self.header = (b"x-model-variant", variant.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; stamp the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, stamped)


class RequestTimeout:
    """Answer 504 when the response has not started within ``timeout`` seconds.

    BentoML's own (``traffic.timeout``, ``bentoml._internal.server.http.traffic``)
    schedules one timer per request and never cancels it: each keeps its request's context
    (an OpenTelemetry span, ~15 objects) alive on the event loop for the whole timeout. At
    1,800 requests a second that is ~10^5 live objects for every full garbage collection
    to walk: 150-300 ms pauses every 2 s, the service's p99 (docs/benchmarks.md). This one
    cancels its timer as soon as the response starts; :func:`use_for_bentoml_timeout`
    puts it in place of BentoML's (whose timeout cannot be switched off: it must be > 0).

    Args:
        app: The wrapped ASGI application.
        timeout: Seconds a request may take to start its response.
    """

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request under a timer that is cancelled when the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = asyncio.get_running_loop().create_future()

        async def starting(message: Message) -> None:
            if not started.done():
                started.set_result(None)
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, starting))
        try:
            # wait_for cancels its timer on return; shield keeps `started` for the task.
            await asyncio.wait_for(asyncio.shield(started), self.timeout)
        except TimeoutError:
            if task.cancel():
                error = f"the request did not start its response within {self.timeout:g} s"
                await send_error(send, 504, error)
                return
        await task


def use_for_bentoml_timeout() -> bool:
    """Make BentoML's timeout middleware behave as :class:`RequestTimeout`.

    Patches its ``__call__`` (the class is private to BentoML; its constructor takes the
    same ``app`` and ``timeout``). Returns False, changing nothing, when BentoML no longer
    has it: tests/unit/bentos/test_middleware.py then fails and says so.
    """
    try:
        from bentoml._internal.server.http import traffic
    except ImportError:
        return False
    middleware = getattr(traffic, "TimeoutMiddleware", None)
    if middleware is None:
        return False
    middleware.__call__ = RequestTimeout.__call__
    return True
