"""The request timeout: a 504 when a response is late, and no timer left behind."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bentos.middleware import RequestTimeout, use_for_bentoml_timeout


def pending_timers(loop: asyncio.AbstractEventLoop) -> int:
    """Timers still armed on the loop (asyncio keeps cancelled ones until they pop)."""
    return sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]


async def call(middleware: Any) -> tuple[list[dict[str, Any]], int]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    await middleware({"type": "http", "method": "GET", "path": "/"}, receive, send)
    return sent, pending_timers(asyncio.get_running_loop())


def app_answering_after(seconds: float) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(seconds)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_a_fast_request_leaves_no_timer_armed() -> None:
    sent, armed = asyncio.run(call(RequestTimeout(app_answering_after(0), timeout=60)))
    assert [m.get("status") for m in sent] == [200, None]
    assert armed == 0


def test_a_late_response_gets_a_504_naming_the_timeout() -> None:
    sent, _ = asyncio.run(call(RequestTimeout(app_answering_after(5), timeout=0.05)))
    assert sent[0]["status"] == 504
    assert json.loads(sent[1]["body"]) == {
        "error": "the request did not start its response within 0.05 s"
    }


def test_bentomls_timeout_middleware_no_longer_leaves_a_timer_per_request() -> None:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    assert use_for_bentoml_timeout() is True
    sent, armed = asyncio.run(call(TimeoutMiddleware(app_answering_after(0), timeout=60)))
    assert [m.get("status") for m in sent] == [200, None]
    assert armed == 0


def test_bentomls_own_middleware_left_its_timer_armed() -> None:
    # The cause, kept visible: BentoML's __call__ as shipped arms a timer it never cancels.
    import importlib

    import bentoml._internal.server.http.traffic as traffic

    original = importlib.reload(traffic).TimeoutMiddleware
    try:
        _, armed = asyncio.run(call(original(app_answering_after(0), timeout=60)))
        assert armed == 1
    finally:
        use_for_bentoml_timeout()
