"""Configuration: environment variables over a TOML file over defaults.

Hub settings are ``GLASPLADE_<KEY>`` (e.g. ``GLASPLADE_STORE_URL``) or ``<key>`` at the top of
the TOML file (``GLASPLADE_CONFIG``, default ``./glasplade.toml``). A component's settings are
``<COMPONENT>_<KEY>`` in the environment (``SBSYS_BASE_URL``) or ``[components.<component>]`` in
the file; a secret may instead be read from the file named by ``<COMPONENT>_<KEY>_FILE``.
See docs/configuration.md.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ConfigError(RuntimeError):
    """Configuration is missing or wrong; the message says which setting and where."""


def config_file() -> Path:
    return Path(os.environ.get("GLASPLADE_CONFIG", "glasplade.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GLASPLADE_", extra="ignore")

    store_url: str = "sqlite:///glasplade.db"
    """Event store: sqlite:///path.db (embedded default) or postgresql://user@host:port/db."""
    readmodel_url: str | None = None
    """Read models (projections); defaults to the store's database."""
    data_key: SecretStr | None = None
    """Base64 of 32 bytes: AES-256-GCM key for payloads at rest."""
    data_key_file: Path | None = None
    pseudonym_key: SecretStr | None = None
    """Base64 of at least 32 bytes: HMAC key for person pseudonyms and dedupe keys."""
    pseudonym_key_file: Path | None = None
    dev_key_file: Path = Path("glasplade.key")
    """With an SQLite store and no keys configured, development keys are kept (0600) here."""
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    ingest_batch_size: int = 2000
    components: dict[str, dict[str, Any]] = {}

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings,
                TomlConfigSettingsSource(settings_cls, toml_file=config_file()))

    @property
    def effective_readmodel_url(self) -> str:
        return self.readmodel_url or self.store_url

    def component(self, component: str, key: str, default: Any = None) -> Any:
        """``<COMPONENT>_<KEY>`` env, then ``<COMPONENT>_<KEY>_FILE``, then the TOML table."""
        env = f"{component}_{key}".upper().replace("-", "_")
        if env in os.environ:
            return os.environ[env]
        if f"{env}_FILE" in os.environ:
            return Path(os.environ[f"{env}_FILE"]).read_text(encoding="utf-8").strip()
        return self.components.get(component, {}).get(key, default)

    def keys(self) -> tuple[bytes, bytes]:
        """(data key, pseudonym key) from settings, key files, or the development key file."""
        data = _key(self.data_key, self.data_key_file, "data_key")
        pseudo = _key(self.pseudonym_key, self.pseudonym_key_file, "pseudonym_key")
        if data and pseudo:
            return data, pseudo
        if not self.store_url.startswith("sqlite:"):
            raise ConfigError(
                "GLASPLADE_DATA_KEY and GLASPLADE_PSEUDONYM_KEY (or their _FILE variants) must be "
                "set for a PostgreSQL store; development keys are only made for SQLite")
        dev = _dev_keys(self.dev_key_file)
        return data or dev[0], pseudo or dev[1]


def _key(value: SecretStr | None, file: Path | None, name: str) -> bytes | None:
    raw = None
    if value is not None:
        raw = value.get_secret_value()
    elif file is not None:
        try:
            raw = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_file {file}: {exc}") from exc
    if raw is None:
        return None
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError:
        raise ConfigError(f"{name} is not valid base64") from None
    if len(key) < 32:
        raise ConfigError(f"{name} must decode to at least 32 bytes, got {len(key)}")
    return key[:32] if name == "data_key" else key


def _dev_keys(path: Path) -> tuple[bytes, bytes]:
    if not path.exists():
        doc = {"data_key": base64.b64encode(secrets.token_bytes(32)).decode(),
               "pseudonym_key": base64.b64encode(secrets.token_bytes(32)).decode(),
               "note": "Development keys made by Glasplade for SQLite. Not for production."}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
    doc = json.loads(path.read_text())
    return base64.b64decode(doc["data_key"]), base64.b64decode(doc["pseudonym_key"])


def load_settings(**overrides: Any) -> Settings:
    path = config_file()
    if path.exists():
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    return Settings(**overrides)
