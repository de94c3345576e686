"""Errors as ``application/problem+json`` (RFC 9457): one table maps exceptions to status codes.

Domain errors (`cim.CIMError`) carry a message written for the user (what, where, the fix): it is shown for 4xx
statuses. Anything else — and every 5xx — is logged with its traceback and answered with a generic message and an
id to find it in the log: no paths, SQL or tracebacks leave the server.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cim import errors as E
from cim.security import AuthenticationError, AuthorizationError, KeyNotFoundError

__all__ = ["PROBLEM", "STATUS", "BadRequest", "NotFound", "PayloadTooLarge", "RateLimited",
           "UnsupportedMediaType", "install", "problem", "status_of"]

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class BadRequest(E.ValidationError):
    """A request parameter is invalid (unknown, malformed or out of range)."""


class NotFound(E.CIMError, LookupError):
    """No such collection, feature, entity or file."""


class PayloadTooLarge(E.ValidationError):
    """The request body or batch is bigger than the service accepts."""


class UnsupportedMediaType(E.ValidationError):
    """The request body is of a media type this resource does not take."""


class RateLimited(E.CIMError):
    """Too many requests for this key; ``retry_after`` seconds to wait."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: Most specific first: the first class an exception is an instance of gives its status.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AuthenticationError, 401),
    (AuthorizationError, 403),
    (RateLimited, 429),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (NotFound, 404),
    (KeyNotFoundError, 404),
    (E.LayerNotFoundError, 404),
    (E.RegionNotFoundError, 404),
    (E.LayerExistsError, 409),
    (E.ValidationError, 400),            # BadRequest, CRSError
    (E.DataError, 400),
    (E.MissingDependencyError, 501),
    (E.StoreConnectionError, 503),
    (E.StoreError, 500),
    (E.CIMError, 500),
)

_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           406: "Not Acceptable", 409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type",
           429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable"}


def status_of(exc: BaseException) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problem(status: int, detail: str, instance: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"type": "about:blank", "title": _TITLES.get(status, "Error"), "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _internal(request: Request, exc: BaseException, status: int = 500) -> JSONResponse:
    ref = uuid.uuid4().hex[:12]
    log.error("error %s on %s %s", ref, request.method, request.url.path, exc_info=exc)
    return problem(status, f"the server could not complete the request (reference {ref} in the server log)",
                   request.url.path)


async def _cim_error(request: Request, exc: E.CIMError) -> JSONResponse:
    status = status_of(exc)
    if status >= 500:
        return _internal(request, exc, status)
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="cim-twin", ApiKey header="X-API-Key"'
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    return problem(status, str(exc), request.url.path, headers)


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    parts = []
    for err in exc.errors()[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "header", "body")]
        where = err.get("loc", ("",))[0]
        parts.append(f"{where} parameter {'.'.join(loc) or '(body)'}: {err.get('msg', 'invalid')}")
    return problem(400, "; ".join(parts) or "invalid request", request.url.path)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code < 500 else _TITLES.get(exc.status_code)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:           # every method of the resource, not only those of the first route matched
        from api.openapi import allowed_methods

        methods = allowed_methods(request.app, request.url.path)
        if methods:
            headers["Allow"] = ", ".join(methods)
    return problem(exc.status_code, detail or "error", request.url.path, headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return _internal(request, exc)


def install(app: FastAPI) -> None:
    """Register the handlers on an app."""
    app.add_exception_handler(E.CIMError, _cim_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
