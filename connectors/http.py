"""The one HTTP client every REST/JSON connector uses (Airbyte's shape: one client owns retries,
backoff, timeouts and auth; a stream only knows its path, how to parse a page and the next page).

Errors are translated at this edge: transport errors, timeouts, 5xx and 429 become
``SourceUnavailable`` after a few quick retries; 401/403 (and, for a client with
``redirect_means_login``, a redirect: how a SAML-protected system such as DUBU sends an expired
session to its identity provider) make the auth log in again once, and a second refusal becomes
``AuthenticationFailed``. Other 4xx raise ``RequestRejected``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from hub.ingest.connector import AuthenticationFailed, ConnectorError, SourceUnavailable
from hub.logging import get_logger

log = get_logger("glasplade.connectors.http")


class RequestRejected(ConnectorError):
    """The source refused the request itself (a 4xx other than 401/403/429): a bug or bad input,
    not worth retrying."""

    def __init__(self, message: str, status_code: int):
        super().__init__(message)
        self.status_code = status_code


class _Transient(Exception):
    """Internal: a failure worth retrying."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    initial: float = 0.2
    maximum: float = 5.0
    jitter: float = 0.2


class Auth:
    """Pluggable authentication. Subclasses implement ``login()``; the base caches the headers
    until they expire (minus ``margin``) or the server says they are no longer good."""

    margin: float = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._headers: dict[str, str] | None = None
        self._expires_at = 0.0
        self.logins = 0

    def login(self, http: httpx.Client) -> tuple[dict[str, str], float]:
        """Log in; return (headers to send, seconds they stay valid)."""
        raise NotImplementedError

    def headers(self, http: httpx.Client) -> dict[str, str]:
        with self._lock:
            if self._headers is None or time.monotonic() >= self._expires_at:
                headers, ttl = self.login(http)
                self.logins += 1
                self._headers = headers
                self._expires_at = time.monotonic() + max(ttl - self.margin, ttl / 2)
            return self._headers

    def invalidate(self) -> None:
        with self._lock:
            self._headers = None


class NoAuth(Auth):
    def login(self, http: httpx.Client) -> tuple[dict[str, str], float]:
        return {}, float("inf")


class PasswordGrant(Auth):
    """OAuth2 resource-owner password grant (Keycloak and friends): a Bearer token."""

    def __init__(self, token_url: str, username: str, password: str, client_id: str,
                 client_secret: str | None = None, scope: str | None = None):
        super().__init__()
        self.token_url = token_url
        self.form = {"grant_type": "password", "client_id": client_id, "username": username,
                     "password": password}
        if client_secret:
            self.form["client_secret"] = client_secret
        if scope:
            self.form["scope"] = scope

    def token(self, http: httpx.Client, url: str | None = None) -> tuple[str, float]:
        r = send_login(http, "POST", url or self.token_url, data=self.form)
        body = r.json()
        return body["access_token"], float(body.get("expires_in", 300))

    def login(self, http: httpx.Client) -> tuple[dict[str, str], float]:
        token, ttl = self.token(http)
        return {"Authorization": f"Bearer {token}"}, ttl


def send_login(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """A login call: transport problems are ``SourceUnavailable``, refusals are
    ``AuthenticationFailed``."""
    try:
        r = http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise SourceUnavailable(f"login at {_where(url)} failed: {type(exc).__name__}") from exc
    if r.status_code >= 500 or r.status_code == 429:
        raise SourceUnavailable(f"login at {_where(url)} answered {r.status_code}")
    if r.status_code >= 400:
        raise AuthenticationFailed(f"login at {_where(url)} refused ({r.status_code})")
    return r


def _where(url: str | httpx.URL) -> str:
    u = httpx.URL(str(url))
    return f"{u.host}:{u.port or ''}{u.path}"


@dataclass(frozen=True)
class PageRequest:
    """One page to fetch: method, path (relative to the base URL) or absolute URL, parameters."""

    method: str = "GET"
    path: str = ""
    params: Any = None
    json: Any = None


@dataclass
class HttpClient:
    """Base of every HTTP connector client. Subclass and add the system's calls."""

    base_url: str
    auth: Auth = field(default_factory=NoAuth)
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    verify: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    transport: httpx.BaseTransport | None = None
    requests: int = 0
    redirect_means_login: bool = False
    """A 3xx answer is the login page of an expired session (SAML service providers)."""

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url.rstrip("/") + "/", timeout=self.timeout,
                                 verify=self.verify, transport=self.transport,
                                 headers={"Accept": "application/json", **self.headers})

    def close(self) -> None:
        self.http.close()

    # --- the one request path -------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send with auth, retrying transient failures; raise the connector error types."""
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(max(1, self.retry.attempts)),
            wait=wait_exponential_jitter(multiplier=self.retry.initial,
                                         max=self.retry.maximum, jitter=self.retry.jitter),
            reraise=False)
        try:
            for attempt in retrying:
                with attempt:
                    return self._send_authenticated(method, path, **kwargs)
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise SourceUnavailable(str(cause)) from cause
        raise AssertionError("unreachable")

    def _send_authenticated(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        r = self._send(method, path, **kwargs)
        if self._session_refused(r):
            # The token or session expired or was revoked: log in again once, then give up.
            self.auth.invalidate()
            r = self._send(method, path, **kwargs)
            if self._session_refused(r):
                raise AuthenticationFailed(
                    f"{method} {_where(r.request.url)} refused ({r.status_code}) after a fresh "
                    "login")
        if r.status_code >= 500 or r.status_code == 429:
            raise _Transient(f"{method} {_where(r.request.url)} answered {r.status_code}")
        if r.status_code >= 400:
            raise RequestRejected(f"{method} {_where(r.request.url)} answered {r.status_code}: "
                                  f"{r.text[:200]}", r.status_code)
        return r

    def _session_refused(self, r: httpx.Response) -> bool:
        """401/403, or for a SAML-protected system a redirect to its login page."""
        return r.status_code in (401, 403) or (self.redirect_means_login and r.is_redirect)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            auth_headers = self.auth.headers(self.http)
        except SourceUnavailable as exc:  # the login server hiccuped: retried like the call
            raise _Transient(str(exc)) from exc
        headers = {**auth_headers, **kwargs.pop("headers", {})}
        self.requests += 1
        try:
            return self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise _Transient(f"{method} {path.split('?')[0]}: {type(exc).__name__}") from exc

    # --- conveniences ---------------------------------------------------------------------

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.parse_json(self.request("GET", path, **kwargs))

    def post_json(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.parse_json(self.request("POST", path, json=body, **kwargs))

    def put_json(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.parse_json(self.request("PUT", path, json=body, **kwargs))

    @staticmethod
    def parse_json(r: httpx.Response) -> Any:
        if not r.content:
            return None
        try:
            return r.json()
        except ValueError as exc:
            # A half-written page is the server's fault, and usually transient.
            raise SourceUnavailable(f"{_where(r.request.url)} answered invalid JSON") from exc

    def pages(self, first: PageRequest,
              next_page: Callable[[PageRequest, Any], PageRequest | None]) -> Iterator[Any]:
        """Parsed pages from ``first`` on; ``next_page(request, page)`` gives the next request
        (from a ``next`` link, or Skip += Limit) or None at the end."""
        req: PageRequest | None = first
        while req is not None:
            page = self.parse_json(self.request(req.method, req.path, params=req.params,
                                                json=req.json))
            yield page
            req = next_page(req, page)
