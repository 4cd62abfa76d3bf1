"""The app factory: ``create_app(hub)`` builds the HTTP API and the Danish dashboard.

Nothing is built at import time. Each area has its own router module with a ``router`` and,
for dashboard pages, an optional ``NAV`` list of (Danish label, path, capability) for the menu
(capability: None for everyone logged in, else ``person``, ``access_log``, ``operate``);
adding an area means adding one module and one line to ``ROUTER_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import jinja2
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from hub import __version__
from hub.api import errors
from hub.api.config import ApiConfig
from hub.api.context import ApiContext, danish_today
from hub.api.metrics import ApiMetrics, MetricsMiddleware
from hub.api.oidc import OidcClient, OidcConfig
from hub.bootstrap import Hub
from hub.logging import get_logger

#: One module per area; each has ``router`` (and optionally ``NAV``). Add a line per area.
ROUTER_MODULES: list[str] = [
    "hub.api.routers.health",
    "hub.api.routers.auth",
    "hub.api.routers.persons",
    "hub.api.routers.cases",
    "hub.api.routers.consent",
    "hub.api.routers.access_log",
    "hub.api.routers.operations",
    "hub.api.pages.citizen",
    "hub.api.pages.cases",
    "hub.api.pages.access_log",
    "hub.api.routers.targets",
]

HERE = Path(__file__).parent
log = get_logger("glasplade.api")


def create_app(hub: Hub, *, config: ApiConfig | None = None, demo_users: bool = False,
               oidc: OidcClient | None = None, today=danish_today,
               extra_template_dirs: tuple[Path, ...] = ()) -> FastAPI:
    """The API and dashboard over ``hub`` (from ``hub.bootstrap``)."""
    from hub.api.service import Glasplade  # late: the service pulls in the read models

    config = config or ApiConfig.from_settings(hub.settings, demo_users=demo_users)
    if config.auth == "oidc" and oidc is None:
        oidc = OidcClient(OidcConfig.from_settings(hub.settings))
    if config.generated_secret:
        log.warning("no API_SESSION_SECRET set: sessions are signed with a per-process key and "
                    "end when the server restarts (fine for the demo only)")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        # The hub belongs to the caller; only what the app built is closed here.
        ctx.service.close()
        if oidc is not None:
            oidc.close()

    app = FastAPI(
        lifespan=lifespan, title="Glasplade API", version=__version__,
        description="Citizen overview, case history, consent and access log over the "
                    "municipality's fagsystemer. Every view of a person is recorded.",
        docs_url="/api/docs", openapi_url="/api/v1/openapi.json", redoc_url=None)
    loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader([str(d) for d in extra_template_dirs]),
                                  jinja2.FileSystemLoader(str(HERE / "templates"))])
    templates = Jinja2Templates(env=jinja2.Environment(loader=loader, autoescape=True))
    metrics = ApiMetrics()
    ctx = ApiContext(hub=hub, config=config, templates=templates, metrics=metrics,
                     service=None, oidc=oidc, today=today)
    ctx.service = Glasplade(hub, config.policy, metrics=metrics, today=today)
    templates.env.globals.update(ctx=ctx, version=__version__)
    app.state.ctx = ctx

    nav: list[tuple[str, str, str | None]] = []
    for name in ROUTER_MODULES:
        module = importlib.import_module(name)
        app.include_router(module.router)
        nav.extend(getattr(module, "NAV", ()))
    ctx.nav = tuple(nav)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    errors.install(app)
    app.add_middleware(SessionMiddleware, secret_key=config.session_secret,
                       session_cookie="glasplade_session", max_age=config.session_max_age,
                       same_site="lax", https_only=config.cookie_secure)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    return app
