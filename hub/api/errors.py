"""Errors the API and the dashboard answer with: JSON under /api, a Danish page elsewhere."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.config import ConfigError
from hub.domain.access import PolicyError
from hub.logging import get_logger
from hub.store.contract import StoreError

log = get_logger("glasplade.api")


class ApiError(Exception):
    """An answer other than success, with a clear message (English) and a Danish one."""

    def __init__(self, status: int, code: str, message: str, message_da: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.message_da = message_da or message


def not_authenticated() -> ApiError:
    return ApiError(401, "not-authenticated", "log in first", "Du skal logge ind.")


def forbidden(message: str, message_da: str) -> ApiError:
    return ApiError(403, "forbidden", message, message_da)


def not_found(what: str, what_da: str) -> ApiError:
    return ApiError(404, "not-found", f"{what} not found", f"{what_da} findes ikke.")


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _json(status: int, code: str, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "code": code, "message": message, **extra}},
                        status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if _is_api(request):
            return _json(exc.status, exc.code, exc.message)
        if exc.status == 401:
            return RedirectResponse("/login", status_code=303)
        return _page(request, exc.status, exc.message_da)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg")}
                    for e in exc.errors()]
        if _is_api(request):
            return _json(422, "invalid-request", "the request is not valid; see details",
                         details=problems)
        return _page(request, 422, "Forespørgslen er ugyldig: " + "; ".join(
            f"{p['where']}: {p['problem']}" for p in problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = {404: "no such path", 405: "method not allowed"}.get(exc.status_code,
                                                                        str(exc.detail))
        if _is_api(request) or request.url.path in ("/healthz", "/readyz", "/metrics"):
            return _json(exc.status_code, "http-error", message)
        return _page(request, exc.status_code,
                     "Siden findes ikke." if exc.status_code == 404 else message)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        log.error("store unavailable", error=type(exc).__name__)
        return _unavailable(request, "the event store is unavailable; try again shortly")

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> Response:
        return _unavailable(request, f"configuration error: {exc}")

    @app.exception_handler(PolicyError)
    async def _policy(request: Request, exc: PolicyError) -> Response:
        if _is_api(request):
            return _json(400, "bad-purpose", str(exc))
        return _page(request, 400, f"Ugyldigt formål: {exc}")


def _unavailable(request: Request, message: str) -> Response:
    if _is_api(request):
        return _json(503, "unavailable", message)
    return _page(request, 503, "Glasplade kan ikke svare lige nu. Prøv igen om lidt.")


def _page(request: Request, status: int, message: str) -> Response:
    templates = request.app.state.ctx.templates
    return templates.TemplateResponse(request, "error.html",
                                      {"status": status, "message": message},
                                      status_code=status)
