"""OpenID Connect login (authorization-code flow with PKCE) against a standard provider.

Only the standard endpoints are used: discovery (``/.well-known/openid-configuration``), the
authorization endpoint, the token endpoint (client_secret_post) and the JWKS. The ID token is
verified with PyJWT: signature against the provider's keys, issuer, audience, expiry and nonce.

The user's roles and units come from token claims (``OIDC_ROLES_CLAIM``/``OIDC_UNITS_CLAIM``) or,
when those are not set, from the user directory looked up by ``OIDC_USER_CLAIM``.

Programs (the integration team's scripts) call the API with ``Authorization: Bearer <token>``:
a JWT access token from the same provider (e.g. a client-credentials grant), verified the same
way (signature against the JWKS, issuer, expiry) with the audience ``OIDC_API_AUDIENCE``
(default: the client id). Its user comes from the claims as above; every read is recorded
under that user like any other.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from hub.api.users import UserDirectory, user_from_claims
from hub.config import ConfigError, Settings
from hub.domain.access import User

#: After a fetch of the provider's keys that did not find a token's key id, unknown key ids are
#: refused for this long without fetching again.
JWKS_RETRY_SECONDS = 60.0


class OidcError(RuntimeError):
    """The provider could not be reached or answered something we cannot accept."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scopes: str = "openid profile email"
    user_claim: str = "preferred_username"
    name_claim: str = "name"
    roles_claim: str | None = None
    units_claim: str | None = None
    api_audience: str | None = None
    post_logout_redirect_uri: str | None = None
    timeout: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig:
        def need(key: str) -> str:
            value = settings.component("oidc", key)
            if not value:
                raise ConfigError(f"OIDC_{key.upper()} must be set for API_AUTH=oidc")
            return str(value)

        return cls(
            issuer=need("issuer").rstrip("/"), client_id=need("client_id"),
            client_secret=need("client_secret"), redirect_uri=need("redirect_uri"),
            scopes=str(settings.component("oidc", "scopes", cls.scopes)),
            user_claim=str(settings.component("oidc", "user_claim", cls.user_claim)),
            name_claim=str(settings.component("oidc", "name_claim", cls.name_claim)),
            roles_claim=settings.component("oidc", "roles_claim"),
            units_claim=settings.component("oidc", "units_claim"),
            api_audience=settings.component("oidc", "api_audience"),
            post_logout_redirect_uri=settings.component("oidc", "post_logout_redirect_uri"),
            timeout=float(settings.component("oidc", "timeout", cls.timeout)))


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) as in RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OidcClient:
    def __init__(self, config: OidcConfig, http: httpx.Client | None = None):
        self.config = config
        self.http = http or httpx.Client(timeout=config.timeout)
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str | None, jwt.PyJWK] | None = None
        self._fruitless_refresh = -JWKS_RETRY_SECONDS
        """When a refresh of the keys last failed to find a token's key id (monotonic)."""
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            r = self.http.get(url)
            r.raise_for_status()
            return r.json()
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise OidcError(f"OIDC provider: GET {url} failed: {exc}") from exc

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                doc = self._get_json(f"{self.config.issuer}/.well-known/openid-configuration")
                if doc.get("issuer", "").rstrip("/") != self.config.issuer:
                    raise OidcError(f"OIDC discovery: issuer {doc.get('issuer')!r} does not "
                                    f"match the configured {self.config.issuer!r}")
                for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if key not in doc:
                        raise OidcError(f"OIDC discovery document lacks {key}")
                self._metadata = doc
            return self._metadata

    def authorization_url(self, state: str, nonce: str, code_challenge: str) -> str:
        query = urlencode({
            "response_type": "code", "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri, "scope": self.config.scopes,
            "state": state, "nonce": nonce, "code_challenge": code_challenge,
            "code_challenge_method": "S256"})
        return f"{self.metadata()['authorization_endpoint']}?{query}"

    def end_session_url(self, id_token: str) -> str | None:
        """Where to send the browser so the provider ends its session too (RP-initiated logout),
        or None when the provider announces no ``end_session_endpoint``. It returns the browser
        to ``OIDC_POST_LOGOUT_REDIRECT_URI`` (default: ``/login`` next to the redirect URI)."""
        endpoint = self.metadata().get("end_session_endpoint")
        if not endpoint:
            return None
        back = self.config.post_logout_redirect_uri or (
            self.config.redirect_uri.split("/auth/callback")[0].rstrip("/") + "/login")
        query = urlencode({"id_token_hint": id_token, "client_id": self.config.client_id,
                           "post_logout_redirect_uri": back})
        return f"{endpoint}?{query}"

    def exchange(self, code: str, code_verifier: str) -> dict[str, Any]:
        try:
            r = self.http.post(self.metadata()["token_endpoint"], data={
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": self.config.redirect_uri, "client_id": self.config.client_id,
                "client_secret": self.config.client_secret, "code_verifier": code_verifier})
        except httpx.HTTPError as exc:
            raise OidcError(f"OIDC token endpoint unreachable: {exc}") from exc
        if r.status_code != 200:
            raise OidcError(f"OIDC token endpoint answered {r.status_code}: {r.text[:200]}")
        tokens = r.json()
        if "id_token" not in tokens:
            raise OidcError("OIDC token response has no id_token")
        return tokens

    def _key_for(self, token: str) -> jwt.PyJWK:
        """The provider's key for the token's key id. The keys are fetched and parsed once; a
        key id they lack fetches them again (the provider may have rotated its keys), but after
        a fetch that did not find one, unknown key ids are refused without fetching for
        ``JWKS_RETRY_SECONDS``: a bearer token is anyone's to send, and each unknown key id
        would otherwise cost a request to the provider."""
        kid = jwt.get_unverified_header(token).get("kid")
        key = self._find(self._keys if self._keys is not None else self._load_keys(), kid)
        if key is None:
            with self._lock:
                retry = time.monotonic() - self._fruitless_refresh >= JWKS_RETRY_SECONDS
            if retry:
                key = self._find(self._load_keys(), kid)
                if key is None:
                    with self._lock:
                        self._fruitless_refresh = time.monotonic()
        if key is None:
            raise OidcError(f"OIDC: no key {kid!r} in the provider's JWKS")
        return key

    @staticmethod
    def _find(keys: dict[str | None, jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
        return next(iter(keys.values()), None) if kid is None else keys.get(kid)

    def _load_keys(self) -> dict[str | None, jwt.PyJWK]:
        """Fetch and parse the provider's keys (outside the lock: a slow provider does not
        hold up token checks that find their key in the keys already loaded)."""
        keys = {}
        for k in self._get_json(self.metadata()["jwks_uri"]).get("keys", []):
            try:
                keys[k.get("kid")] = jwt.PyJWK(k)
            except jwt.PyJWTError:  # a key of a type or algorithm this hub does not use
                continue
        with self._lock:
            self._keys = keys
        return keys

    def _decode(self, token: str, audience: str, require: list[str], what: str
                ) -> dict[str, Any]:
        """A JWT signed with one of the provider's keys, from its issuer, for ``audience``."""
        try:
            return jwt.decode(token, key=self._key_for(token),
                              algorithms=["RS256", "ES256", "PS256"], audience=audience,
                              issuer=self.config.issuer, options={"require": require})
        except jwt.PyJWTError as exc:
            raise OidcError(f"OIDC: {what} rejected: {exc}") from exc

    def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        claims = self._decode(id_token, self.config.client_id,
                              ["exp", "iat", "iss", "aud", "sub"], "ID token")
        if claims.get("nonce") != nonce:
            raise OidcError("OIDC: ID token nonce does not match the login request")
        return claims

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """The claims of a bearer token the API may accept: as an ID token, for the API's
        audience, not expired."""
        return self._decode(token, self.config.api_audience or self.config.client_id,
                            ["exp", "iss", "aud", "sub"], "bearer token")

    def user_from_claims(self, claims: dict[str, Any], directory: UserDirectory) -> User:
        c = self.config
        user_id = claims.get(c.user_claim) or claims["sub"]
        if c.roles_claim:
            try:
                return user_from_claims(user_id, claims.get(c.name_claim, user_id),
                                        _as_list(claims.get(c.roles_claim)),
                                        _as_list(claims.get(c.units_claim)) if c.units_claim
                                        else [])
            except ValueError as exc:
                raise OidcError(f"OIDC: {exc}") from exc
        user = directory.get(str(user_id))
        if user is None:
            raise OidcError("OIDC: the user is not in Glasplade's user directory")
        return user


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return [str(v) for v in value]
