"""A local workaround for ``connectors.simulation.ServerThread`` (owned by the framework).

``ServerThread`` binds ``socket.socket(AF_INET, SOCK_STREAM)``, whose ``proto`` is 0, so asyncio
does not set TCP_NODELAY on accepted connections and every response waits ~40 ms for a delayed
ACK. Setting TCP_NODELAY on the listening socket (Linux passes it on to accepted sockets) brings
a request to ~2 ms. Remove this once ``ServerThread`` creates its socket with ``IPPROTO_TCP``.
"""

from __future__ import annotations

import contextlib
import socket

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
