"""Serving helpers for the DUBU and Fasit simulators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response


class RequestGuard:
    """A plain ASGI middleware that may answer a request before the app does (auth, tenant).

    ``check(request)`` returns a response to send instead, or None to pass the request on.
    Cheaper than ``@app.middleware("http")`` (no task group and stream per request).
    """

    def __init__(self, app: Any, check: Callable[[Request], Response | None]):
        self.app = app
        self.check = check

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            response = self.check(Request(scope))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
