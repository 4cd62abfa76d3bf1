"""What every request handler needs, built once per app by ``create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fastapi.templating import Jinja2Templates

from hub.api.config import ApiConfig
from hub.api.metrics import ApiMetrics
from hub.api.oidc import OidcClient
from hub.bootstrap import Hub
from hub.ingest.validate import LOCAL_TZ


def danish_today() -> date:
    """The date in Denmark (consent periods are Danish calendar days, whatever the server's
    time zone: the shipped image runs in UTC)."""
    return datetime.now(LOCAL_TZ).date()


@dataclass
class ApiContext:
    hub: Hub
    config: ApiConfig
    templates: Jinja2Templates
    metrics: ApiMetrics
    service: Any
    """hub.api.service.Glasplade: the application service both the API and the pages use."""
    oidc: OidcClient | None = None
    today: Callable[[], date] = danish_today
    nav: tuple[tuple[str, str, str | None], ...] = ()
    """(label, path, capability) of the dashboard's menu, contributed by page routers."""
