"""The API's settings, read once from ``hub.settings`` (component ``api``, ``oidc``, ``access``).

| setting (env / ``[components.X]`` key) | meaning |
|---|---|
| ``API_AUTH`` / api.auth | ``dev`` (pick a user from the users file) or ``oidc`` |
| ``API_USERS_FILE`` / api.users_file | TOML user directory (roles, units); default: none |
| ``API_SESSION_SECRET`` (or ``_FILE``) | signs the session cookie; dev: random per process |
| ``API_COOKIE_SECURE`` / api.cookie_secure | ``true`` behind HTTPS (default false) |
| ``API_SESSION_MAX_AGE`` / api.session_max_age | seconds a login lasts (default 28800) |
| ``API_MAX_LAG`` / api.max_lag | /readyz fails when a projection is more events behind |
| ``ACCESS_POLICY_FILE`` / access.policy_file | the access policy (default: packaged) |
| ``OIDC_*`` | see ``hub.api.oidc.OidcConfig`` and docs/api.md |
"""

from __future__ import annotations

import secrets
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from hub.api.users import UserDirectory
from hub.config import ConfigError, Settings
from hub.domain.access import AccessPolicy, PolicyError


@dataclass(frozen=True)
class ApiConfig:
    auth: str
    users: UserDirectory
    policy: AccessPolicy
    session_secret: str
    cookie_secure: bool = False
    session_max_age: int = 8 * 3600
    max_lag: int = 10_000
    generated_secret: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, *, demo_users: bool = False) -> ApiConfig:
        auth = str(settings.component("api", "auth", "dev")).lower()
        if auth not in ("dev", "oidc"):
            raise ConfigError(f"API_AUTH must be 'dev' or 'oidc', got {auth!r}")
        users_file = settings.component("api", "users_file")
        if demo_users:
            users = UserDirectory.demo()
        elif users_file:
            users = UserDirectory.from_file(Path(users_file))
        else:
            users = UserDirectory(())
        if auth == "dev" and not users.users:
            raise ConfigError("the development login needs users: set API_USERS_FILE or use "
                              "--demo-users")
        secret = settings.component("api", "session_secret")
        generated = secret is None
        if generated and auth == "oidc":
            raise ConfigError("API_SESSION_SECRET (or API_SESSION_SECRET_FILE) must be set "
                              "with OIDC login")
        return cls(
            auth=auth, users=users, policy=load_policy(settings.component("access",
                                                                          "policy_file")),
            session_secret=str(secret) if secret else secrets.token_urlsafe(32),
            cookie_secure=_bool(settings.component("api", "cookie_secure", False)),
            session_max_age=int(settings.component("api", "session_max_age", 8 * 3600)),
            max_lag=int(settings.component("api", "max_lag", 10_000)),
            generated_secret=generated)


def load_policy(path: str | Path | None = None) -> AccessPolicy:
    try:
        if path:
            text = Path(path).read_text(encoding="utf-8")
        else:
            text = resources.files("hub.api").joinpath("access_policy.toml").read_text("utf-8")
        return AccessPolicy.from_mapping(tomllib.loads(text))
    except (OSError, tomllib.TOMLDecodeError, PolicyError, KeyError, TypeError) as exc:
        raise ConfigError(f"access policy {path or '(packaged)'}: {exc}") from exc


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")
