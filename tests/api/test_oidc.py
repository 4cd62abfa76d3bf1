"""OIDC login against a real (tiny) OpenID provider on 127.0.0.1: discovery, authorization code
with PKCE, token exchange, ID-token verification (signature, issuer, audience, nonce)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.api.oidc import OidcClient, OidcConfig, OidcError, pkce_pair
from tests.api.conftest import api_config
from tests.api.oidc_provider import Provider, running


def make_client(hub, provider: Provider, **oidc) -> TestClient:
    config = OidcConfig(issuer=provider.issuer, client_id=provider.client_id,
                        client_secret=provider.client_secret,
                        redirect_uri="http://testserver/auth/callback", **oidc)
    app = create_app(hub, config=api_config(auth="oidc"), oidc=OidcClient(config))
    return TestClient(app)


def flow(client: TestClient) -> httpx.Response:
    r = client.get("/login", follow_redirects=False)
    assert r.status_code == 303, r.text
    at_provider = httpx.get(r.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["location"])
    assert back.path == "/auth/callback"
    return client.get(f"/auth/callback?{back.query}", follow_redirects=False)


def test_login_with_directory_roles(hub, world):
    with running(Provider(login_as="anne")) as provider, make_client(hub, provider) as client:
        r = flow(client)
        assert r.status_code == 303 and r.headers["location"] == "/"
        me = client.get("/api/v1/session").json()
        assert me["user_id"] == "anne" and me["units"] == ["BUF-MYN-N"]
        assert client.get(f"/api/v1/persons/{world.child}/overview").status_code == 200


def test_login_with_roles_from_claims(hub, world):
    provider = Provider(login_as="outsider", claims={"groups": ["auditor"], "units": "X Y"})
    with running(provider), make_client(hub, provider, roles_claim="groups",
                                        units_claim="units") as client:
        assert flow(client).status_code == 303
        me = client.get("/api/v1/session").json()
        assert me["roles"] == ["auditor"] and me["units"] == ["X", "Y"]


def test_unknown_user_is_refused(hub, world):
    with running(Provider(login_as="mallory")) as provider, make_client(hub, provider) as c:
        r = flow(c)
        assert r.status_code == 403 and "ikke adgang" in r.text
        assert c.get("/api/v1/session").status_code == 401


def test_token_signed_by_another_key_is_refused(hub, world):
    with running(Provider(tamper=True)) as provider, make_client(hub, provider) as c:
        assert flow(c).status_code == 403
        assert c.get("/api/v1/session").status_code == 401


def test_wrong_state_is_refused(hub, world):
    with running(Provider()) as provider, make_client(hub, provider) as c:
        r = c.get("/login", follow_redirects=False)
        at_provider = httpx.get(r.headers["location"], follow_redirects=False)
        code = parse_qs(urlsplit(at_provider.headers["location"]).query)["code"][0]
        r = c.get(f"/auth/callback?code={code}&state=forged", follow_redirects=False)
        assert r.status_code == 400


def test_wrong_nonce_is_refused(hub, world):
    with running(Provider()) as provider:
        oidc = OidcClient(OidcConfig(provider.issuer, provider.client_id, provider.client_secret,
                                     "http://testserver/auth/callback"))
        verifier, challenge = pkce_pair()
        url = oidc.authorization_url("st", "right-nonce", challenge)
        code = parse_qs(urlsplit(httpx.get(url).headers["location"]).query)["code"][0]
        tokens = oidc.exchange(code, verifier)
        with pytest.raises(OidcError, match="nonce"):
            oidc.verify_id_token(tokens["id_token"], "other-nonce")
        assert oidc.verify_id_token(tokens["id_token"], "right-nonce")["sub"] == "sub-anne"
        with pytest.raises(OidcError, match="token endpoint answered 400"):
            oidc.exchange(code, verifier)  # a code is used once
        oidc.close()


def test_provider_down_is_a_clear_503(hub, world):
    provider = Provider()
    with running(provider):
        pass  # the port is closed again: nobody answers there now
    with make_client(hub, provider) as c:
        r = c.get("/login", follow_redirects=False)
        assert r.status_code == 503 and "Login-tjenesten svarer ikke" in r.text


def test_a_program_calls_the_api_with_a_bearer_token(hub, world):
    """The integration team's scripts: an access token from the provider, no browser login.
    Each read is recorded under the token's user like any other."""
    with running(Provider()) as provider, make_client(hub, provider) as client:
        url = f"/api/v1/persons/{world.child}/overview"
        assert client.get(url).status_code == 401
        token = provider.access_token("anne")
        r = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        last = hub.store.read(after=hub.store.max_position() - 1)[0]
        assert last.event_type == "PersonRecordAccessed" and last.payload.user_id == "anne"
        for bad, why in ((provider.access_token("anne", tamper=True), "signature"),
                         (provider.access_token("anne", expires_in=-10), "expired"),
                         (provider.access_token("anne", audience="another-api"), "audience"),
                         (provider.access_token("mallory"), "directory"),
                         ("not-a-jwt", "")):
            r = client.get(url, headers={"Authorization": f"Bearer {bad}"})
            assert r.status_code == 401, (why, r.text)
            assert r.json()["error"]["code"] == "bad-token"


def test_bearer_tokens_for_a_separate_api_audience(hub, world):
    with running(Provider()) as provider, make_client(
            hub, provider, api_audience="glasplade-api") as client:
        url = f"/api/v1/persons/{world.child}/overview"
        ok = provider.access_token("anne", audience="glasplade-api")
        assert client.get(url, headers={"Authorization": f"Bearer {ok}"}).status_code == 200
        id_token_audience = provider.access_token("anne")  # meant for the login client
        assert client.get(url, headers={
            "Authorization": f"Bearer {id_token_audience}"}).status_code == 401


def test_bearer_tokens_are_refused_without_oidc(client, world):
    r = client.get(f"/api/v1/persons/{world.child}/overview",
                   headers={"Authorization": "Bearer x.y.z"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "bearer-not-accepted"


def test_logout_ends_the_session_at_the_provider_too(hub, world):
    import re
    from urllib.parse import parse_qs

    with running(Provider()) as provider, make_client(hub, provider) as client:
        assert flow(client).status_code == 303
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)
        r = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        where = urlsplit(r.headers["location"])
        assert f"{where.scheme}://{where.netloc}{where.path}" == f"{provider.issuer}/logout"
        query = parse_qs(where.query)
        assert query["post_logout_redirect_uri"] == ["http://testserver/login"]
        hint = query["id_token_hint"][0]
        assert OidcClient(OidcConfig(provider.issuer, provider.client_id, "x", "y")
                          ).verify_access_token(hint)["preferred_username"] == "anne"
        assert client.get("/api/v1/session").status_code == 401


def test_unknown_key_ids_cost_the_provider_one_fetch_rotation_still_works(hub, world):
    """A bearer token is anyone's to send: tokens naming key ids the provider does not have
    are refused, and after one fetch that did not find such an id no further fetches are made
    (else each request would cost one); a key the provider rotated to is found by a fetch."""
    with running(Provider()) as provider, make_client(hub, provider) as client:
        url = f"/api/v1/persons/{world.child}/overview"
        assert client.get(url, headers={
            "Authorization": f"Bearer {provider.access_token('anne')}"}).status_code == 200
        assert provider.jwks_requests == 1
        provider.kid = "k2"  # the provider rotates its keys
        r = client.get(url, headers={"Authorization": f"Bearer {provider.access_token('anne')}"})
        assert r.status_code == 200, r.text
        assert provider.jwks_requests == 2
        for n in range(5):
            forged = provider.access_token("anne", kid=f"made-up-{n}")
            r = client.get(url, headers={"Authorization": f"Bearer {forged}"})
            assert r.status_code == 401 and r.json()["error"]["code"] == "bad-token"
        assert provider.jwks_requests == 3  # one fruitless fetch, then none
