"""The user directory: who may log in, with which roles and units (TOML data).

```toml
[[users]]
id = "anne"
name = "Anne Andersen"
roles = ["caseworker"]
units = ["BUF-FAM"]
```
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hub.config import ConfigError
from hub.domain.access import ROLES, User


@dataclass(frozen=True)
class UserDirectory:
    users: tuple[User, ...]

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], where: str = "users") -> UserDirectory:
        users = []
        seen: set[str] = set()
        for i, u in enumerate(doc.get("users", [])):
            try:
                user = user_from_claims(u["id"], u.get("name", u["id"]), u.get("roles", []),
                                        u.get("units", []))
            except (KeyError, ValueError) as exc:
                raise ConfigError(f"{where}: users[{i}]: {exc}") from None
            if user.user_id in seen:
                raise ConfigError(f"{where}: users[{i}]: duplicate id {user.user_id!r}")
            seen.add(user.user_id)
            users.append(user)
        return cls(tuple(users))

    @classmethod
    def from_file(cls, path: Path) -> UserDirectory:
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"users file {path}: {exc}") from exc
        return cls.from_mapping(doc, str(path))

    @classmethod
    def demo(cls) -> UserDirectory:
        text = resources.files("hub.api").joinpath("demo_users.toml").read_text("utf-8")
        return cls.from_mapping(tomllib.loads(text), "demo_users.toml")

    def get(self, user_id: str) -> User | None:
        for u in self.users:
            if u.user_id == user_id:
                return u
        return None


def user_from_claims(user_id: str, name: str, roles: Iterable[str], units: Iterable[str]) -> User:
    roles = frozenset(str(r) for r in roles)
    unknown = roles - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)} (known: {', '.join(ROLES)})")
    if not str(user_id):
        raise ValueError("empty user id")
    return User(str(user_id), str(name), roles, frozenset(str(u) for u in units))


def user_to_session(user: User) -> dict[str, Any]:
    return {"id": user.user_id, "name": user.name, "roles": sorted(user.roles),
            "units": sorted(user.units)}


def user_from_session(data: Mapping[str, Any]) -> User:
    return user_from_claims(data["id"], data["name"], data["roles"], data["units"])
