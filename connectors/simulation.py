"""Shared pieces of the fagsystem simulators: serving an app on 127.0.0.1, and injecting faults.

Every simulator is a real server over a real socket (tests and ``glasplade simulate`` exercise the
same path a production connector takes). ``ServerThread`` runs any ASGI app with uvicorn in a
background thread on an ephemeral port (or a given one, to come back after a simulated outage).
``Faults`` is the one place fault injection is decided, deterministic for a seed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

import uvicorn


@dataclass(frozen=True)
class FaultConfig:
    """What a simulator does wrong, and how often. All rates are 0..1 per request or record.

    Parse from the command line with ``FaultConfig.parse("latency=0.05,error_rate=0.1")``.
    """

    seed: int = 0
    latency: float = 0.0
    """Seconds added to every response."""
    error_rate: float = 0.0
    """Share of requests answered 503."""
    timeout_rate: float = 0.0
    """Share of requests that hang for ``timeout_seconds`` before answering 504."""
    timeout_seconds: float = 5.0
    token_ttl: float = 3600.0
    """Seconds an issued token is valid (small values force refreshes)."""
    malformed_rate: float = 0.0
    """Share of records served malformed (the same records every time, for a seed)."""
    soap_fault_rate: float = 0.0
    """Share of SOAP calls answered with a SOAP fault (SOAP simulators only)."""
    read_after_create_delay: float = 0.0
    """Seconds after a write before the new record can be read (DUBU's eventual consistency)."""
    down: bool = False
    """Answer every request 503 (a whole-system outage)."""

    @classmethod
    def parse(cls, spec: str | None) -> FaultConfig:
        """``key=value`` pairs separated by commas; keys are the field names."""
        if not spec:
            return cls()
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for part in spec.split(","):
            if not part.strip():
                continue
            key, sep, raw = part.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in known:
                raise ValueError(f"unknown fault setting {part.strip()!r}; known: "
                                 f"{', '.join(sorted(known))}")
            default = getattr(cls(), key)
            if isinstance(default, bool):
                values[key] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                values[key] = int(raw)
            else:
                values[key] = float(raw)
        return cls(**values)


class Faults:
    """A simulator's live fault state: a ``FaultConfig`` that tests may change while serving.

    Per-request decisions come from a seeded RNG (deterministic for a seed and request order);
    per-record decisions (``malformed``) hash the record id, so the same records are bad on every
    read, as with real bad data.
    """

    def __init__(self, config: FaultConfig | None = None):
        self._lock = threading.Lock()
        self.config = config or FaultConfig()
        self._rng = random.Random(self.config.seed)
        self.token_generation = 0
        """Bumped by ``expire_tokens()``; simulators reject tokens issued in older generations."""
        self.requests = 0
        self.tokens_rejected = 0
        self.received: Counter[tuple[str, str]] = Counter()
        """Requests received per (method, path), faulted ones included (``fault_middleware``
        records them): what a test counts to see that a client sends a request only once."""

    def set(self, **changes: Any) -> None:
        with self._lock:
            self.config = replace(self.config, **changes)

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (the server answers 401 to them)."""
        with self._lock:
            self.token_generation += 1

    def next_request(self, method: str | None = None, path: str | None = None) -> str | None:
        """Decide this request's fate: None (serve it), "down", "error" or "timeout"."""
        with self._lock:
            self.requests += 1
            if method is not None and path is not None:
                self.received[(method, path)] += 1
            c = self.config
            if c.down:
                return "down"
            roll = self._rng.random()
            if roll < c.error_rate:
                return "error"
            if roll < c.error_rate + c.timeout_rate:
                return "timeout"
            return None

    def soap_fault(self) -> bool:
        with self._lock:
            return self._rng.random() < self.config.soap_fault_rate

    def malformed(self, record_id: str) -> bool:
        rate = self.config.malformed_rate
        if rate <= 0:
            return False
        digest = hashlib.sha256(f"{self.config.seed}:{record_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < rate


class Tokens:
    """Bearer tokens a simulator issues: valid for ``token_ttl`` seconds and until
    ``Faults.expire_tokens()``; every refusal is counted in ``Faults.tokens_rejected``."""

    def __init__(self, faults: Faults, prefix: str = "tok"):
        self.faults = faults
        self.prefix = prefix
        self._issued: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._n = 0

    def issue(self) -> tuple[str, int]:
        """A new token and its lifetime in whole seconds."""
        with self._lock:
            self._n += 1
            token = f"{self.prefix}-{self.faults.config.seed}-{self._n}-{random.getrandbits(48):x}"
            ttl = self.faults.config.token_ttl
            self._issued[token] = (self.faults.token_generation, time.monotonic() + ttl)
            return token, max(1, int(ttl))

    def valid(self, token: str | None) -> bool:
        with self._lock:
            entry = self._issued.get(token or "")
            ok = (entry is not None and entry[0] == self.faults.token_generation
                  and time.monotonic() < entry[1])
        if not ok:
            with self.faults._lock:
                self.faults.tokens_rejected += 1
        return ok


def bearer(header: str | None) -> str | None:
    """The token in an ``Authorization: Bearer <token>`` header."""
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def fault_middleware(app: Any, faults: Faults) -> None:
    """Install latency, 503s, timeouts and outages on a FastAPI/Starlette app."""
    from starlette.responses import JSONResponse

    @app.middleware("http")
    async def _faults(request: Any, call_next: Callable[..., Any]) -> Any:
        fate = faults.next_request(request.method, request.url.path)
        c = faults.config
        if c.latency:
            await asyncio.sleep(c.latency)
        if fate in ("down", "error"):
            return JSONResponse({"error": "simulated outage" if fate == "down"
                                 else "simulated server error"}, status_code=503)
        if fate == "timeout":
            await asyncio.sleep(c.timeout_seconds)
            return JSONResponse({"error": "simulated gateway timeout"}, status_code=504)
        return await call_next(request)


class ServerThread:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a daemon thread.

    ``start()`` binds port 0 (ephemeral) unless a port is given and returns once the server
    accepts connections; ``stop()`` shuts it down and waits. ``start(port=old.port)`` after
    ``stop()`` brings a "system" back on the same address after an outage.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", *, date_header: bool = True):
        self.app = app
        self.host = host
        self.date_header = date_header
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    def start(self, port: int = 0, timeout: float = 10.0) -> str:
        if self._thread is not None:
            raise RuntimeError("server already running")
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when
        # the listening socket says so; without it every response waits ~40 ms (Nagle + delayed
        # ACK on loopback).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off",
                                access_log=False, timeout_graceful_shutdown=1,
                                date_header=self.date_header)
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                  name=f"simulator:{self.port}", daemon=True)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Simulator(Protocol):
    """What ``glasplade simulate`` and the tests need from any simulator (HTTP, SOAP, Kafka)."""

    name: str
    faults: Faults

    def start(self, port: int = 0) -> str:
        """Start serving; return the base URL (or bootstrap address)."""

    def stop(self) -> None: ...

    def env(self) -> dict[str, str]:
        """Environment variables that point this system's connector at the simulator."""


class HttpSimulator:
    """A simulator that is one ASGI app: ``ServerThread`` + ``Faults`` + its connector's env."""

    def __init__(self, name: str, app: Any, faults: Faults,
                 env: Callable[[str], dict[str, str]], *, date_header: bool = True):
        self.name = name
        self.app = app
        self.faults = faults
        self._env = env
        self.server = ServerThread(app, date_header=date_header)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, port: int = 0) -> str:
        return self.server.start(port)

    def stop(self) -> None:
        self.server.stop()

    def restart(self) -> str:
        """Come back on the same port (after ``stop()``), as a real system does after an outage."""
        port = self.server.port or 0
        return self.server.start(port)

    def env(self) -> dict[str, str]:
        return self._env(self.url)

    def __enter__(self) -> HttpSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
