"""ASGI middleware for the service: refuse request bodies it cannot parse, with a 415.

BentoML answers 500 when a POST to a JSON endpoint arrives with another declared
content type (a multipart parser fails on a JSON body). Every endpoint of this service
takes JSON, so any other declared type is the client's error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACCEPTED = ("application/json",)


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
                body = json.dumps(
                    {"error": f"Content-Type: expected application/json, got '{declared}'"}
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 415,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
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
