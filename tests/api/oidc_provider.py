"""A tiny OpenID Connect provider for tests (authorization-code flow with PKCE, RS256 ID tokens,
discovery and JWKS), served by uvicorn on 127.0.0.1 at an ephemeral port.

It logs in ``login_as`` without asking (the test decides who); ``claims`` are added to the ID
token; ``tamper`` makes it sign with a key that is not in its JWKS.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import RedirectResponse
from jwt.algorithms import RSAAlgorithm


@dataclass
class Provider:
    client_id: str = "glasplade"
    client_secret: str = "s3cret"
    login_as: str = "anne"
    claims: dict[str, Any] = field(default_factory=dict)
    tamper: bool = False
    issuer: str = ""
    key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    other_key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    kid: str = "k1"
    """The id of its signing key (changed by a test to rotate keys)."""
    jwks_requests: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                    "end_session_endpoint": f"{self.issuer}/logout",
                    "response_types_supported": ["code"],
                    "id_token_signing_alg_values_supported": ["RS256"]}

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            self.jwks_requests += 1
            jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
            return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

        @app.get("/authorize")
        def authorize(response_type: str, client_id: str, redirect_uri: str, scope: str,
                      state: str, nonce: str, code_challenge: str,
                      code_challenge_method: str) -> RedirectResponse:
            if (response_type, client_id, code_challenge_method) != ("code", self.client_id,
                                                                     "S256"):
                raise HTTPException(400, "bad authorization request")
            if "openid" not in scope.split():
                raise HTTPException(400, "openid scope missing")
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": nonce, "challenge": code_challenge,
                                "redirect_uri": redirect_uri}
            return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}",
                                    status_code=302)

        @app.post("/token")
        def token(grant_type: str = Form(), code: str = Form(), redirect_uri: str = Form(),
                  client_id: str = Form(), client_secret: str = Form(),
                  code_verifier: str = Form()) -> dict[str, Any]:
            pending = self.codes.pop(code, None)
            if (pending is None or grant_type != "authorization_code"
                    or client_secret != self.client_secret or client_id != self.client_id
                    or redirect_uri != pending["redirect_uri"]):
                raise HTTPException(400, "invalid_grant")
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(code_verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge != pending["challenge"]:
                raise HTTPException(400, "invalid_grant: PKCE verifier")
            now = int(time.time())
            claims = {"iss": self.issuer, "aud": self.client_id, "sub": f"sub-{self.login_as}",
                      "preferred_username": self.login_as, "name": self.login_as.title(),
                      "iat": now, "exp": now + 300, "nonce": pending["nonce"], **self.claims}
            signer = self.other_key if self.tamper else self.key
            id_token = jwt.encode(claims, signer, algorithm="RS256", headers={"kid": self.kid})
            return {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                    "id_token": id_token, "expires_in": 300}

        return app

    def access_token(self, user: str, *, audience: str | None = None, expires_in: int = 300,
                     tamper: bool = False, kid: str | None = None, **claims: Any) -> str:
        """A JWT access token for ``user`` as the provider's client-credentials or token
        exchange grant would issue it for an API (audience: the client id unless given)."""
        now = int(time.time())
        body = {"iss": self.issuer, "aud": audience or self.client_id, "sub": f"sub-{user}",
                "preferred_username": user, "iat": now, "exp": now + expires_in, **claims}
        return jwt.encode(body, self.other_key if tamper else self.key, algorithm="RS256",
                          headers={"kid": kid or self.kid})


@contextmanager
def running(provider: Provider):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    provider.issuer = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(provider.app(), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
