"""A local workaround for ``connectors.simulation.ServerThread`` (owned by the framework).

``ServerThread`` binds ``socket.socket(AF_INET, SOCK_STREAM)``, whose ``proto`` is 0, so asyncio
does not set TCP_NODELAY on accepted connections and every response waits ~40 ms for a delayed
ACK. Setting TCP_NODELAY on the listening socket (Linux passes it on to accepted sockets) brings
a request to ~2 ms. Remove this once ``ServerThread`` creates its socket with ``IPPROTO_TCP``.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from connectors.simulation import HttpSimulator


class NoDelaySimulator(HttpSimulator):
    def _nodelay(self) -> None:
        server = getattr(self.server, "_server", None)
        for srv in getattr(server, "servers", []) or []:
            for sock in srv.sockets:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def start(self, port: int = 0) -> str:
        url = super().start(port)
        self._nodelay()
        return url

    def restart(self) -> str:
        url = super().restart()
        self._nodelay()
        return url


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
