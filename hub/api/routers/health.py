"""/healthz (the process answers), /readyz (store reachable, projections caught up), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from hub.api.deps import get_ctx
from hub.logging import get_logger
from hub.store.contract import StoreError

router = APIRouter(tags=["operations"])
log = get_logger("glasplade.api.health")


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Readiness: the event store answers, every projection is built and none is more than
    ``API_MAX_LAG`` events behind it. 503 with the reasons otherwise."""
    ctx = get_ctx(request)
    problems: list[str] = []
    lags: dict[str, int] = {}
    try:
        last = ctx.hub.store.max_position()
        ctx.metrics.store_position.set(last)
    except StoreError as exc:
        log.error("readiness: store unreachable", error=type(exc).__name__)
        return JSONResponse({"status": "unavailable",
                             "problems": ["event store unreachable"]}, status_code=503)
    try:
        lags = ctx.service.projection_lags(last)
    except Exception as exc:  # the read-model database is down or not created
        log.error("readiness: read models unreachable", error=type(exc).__name__)
        problems.append(f"read models unreachable ({type(exc).__name__})")
    for name, lag in lags.items():
        ctx.metrics.projection_lag.labels(name).set(last if lag is None else lag)
        if lag is None:
            problems.append(f"projection {name} is not built yet")
        elif lag > ctx.config.max_lag:
            problems.append(f"projection {name} is {lag} events behind (max {ctx.config.max_lag})")
    body = {"status": "unavailable" if problems else "ready", "store_position": last,
            "projection_lag": lags, "problems": problems}
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus text format (no personal data in any label)."""
    ctx = get_ctx(request)
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
