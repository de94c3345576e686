"""Typed dependencies shared by the routers: the scene, the caller's key and scopes, query-parameter checks."""

from __future__ import annotations

import threading
import time
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

import cim
from api.errors import BadRequest, RateLimited
from api.settings import Settings
from cim.security import ApiKey, AuthenticationError, AuthorizationError, authenticate

__all__ = ["Caller", "SceneDep", "SettingsDep", "reject_unknown_query", "require"]

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: cim_<id>_<secret>")
_bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token")


async def get_scene(request: Request) -> cim.Scene:      # async: FastAPI runs plain functions in a thread
    return request.app.state.scene


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SceneDep = Annotated[cim.Scene, Depends(get_scene)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


class _RateLimiter:
    """A fixed one-minute window per caller; thread-safe."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}

    def hit(self, who: str) -> None:
        if not self.per_minute:
            return
        now = time.monotonic()
        with self._lock:
            start, n = self._windows.get(who, (now, 0))
            if now - start >= 60:
                start, n = now, 0
            if n >= self.per_minute:
                raise RateLimited(f"more than {self.per_minute} requests in a minute for this key: wait and retry",
                                  retry_after=max(1, int(60 - (now - start)) + 1))
            self._windows[who] = (start, n + 1)
            if len(self._windows) > 10_000:       # forget callers whose window has passed
                self._windows = {k: v for k, v in self._windows.items() if now - v[0] < 60}


class Caller:
    """Who is calling: an API key, or anonymous (``key`` None)."""

    def __init__(self, key: ApiKey | None) -> None:
        self.key = key

    @property
    def who(self) -> str:
        return self.key.key_id if self.key else "anonymous"


def _token(request: Request, api_key: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    if api_key:
        return api_key
    if bearer is not None and bearer.scheme.lower() == "bearer":
        return bearer.credentials
    return None


def require(scope: str):
    """A dependency that authenticates the caller and checks ``scope``; reads may be anonymous when
    ``CIM_ANONYMOUS_READ`` is on. A key is looked up in the store off the event loop; without one nothing
    blocks, so the request is not handed to a thread."""

    def check(request: Request, token: str) -> Caller:
        with request.app.state.scene.store.engine.connect() as conn:
            key = authenticate(conn, token)
        request.state.who = key.key_id
        if not key.allows(scope):
            raise AuthorizationError(f"this API key has scopes {', '.join(sorted(key.scopes))}; this needs {scope!r}")
        request.app.state.rate_limiter.hit(key.key_id)
        return Caller(key)

    async def dependency(request: Request, api_key: Annotated[str | None, Depends(_api_key)],
                         bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
        token = _token(request, api_key, bearer)
        if token is not None:
            return await anyio.to_thread.run_sync(check, request, token)
        if scope == "read" and request.app.state.settings.anonymous_read:
            request.app.state.rate_limiter.hit(f"anon:{request.client.host if request.client else '-'}")
            request.state.who = "anonymous"
            return Caller(None)
        raise AuthenticationError(f"this needs an API key with scope {scope!r}: send it in the X-API-Key "
                                  "header or as Authorization: Bearer <key>")

    dependency.__name__ = f"require_{scope}"
    return dependency


ReadCaller = Annotated[Caller, Depends(require("read"))]
IngestCaller = Annotated[Caller, Depends(require("ingest"))]

_ALLOWED_CACHE: dict[int, frozenset[str]] = {}


async def reject_unknown_query(request: Request) -> None:
    """Unknown query parameters are an error (400), as OGC API Features asks; a route whose endpoint sets
    ``open_query`` checks the rest itself (property filters). Async because it does no I/O: it runs on the
    event loop instead of costing every request a hop to the thread pool."""
    route = request.scope.get("route")
    if route is None or getattr(route.endpoint, "open_query", False):
        return
    allowed = _ALLOWED_CACHE.get(id(route))
    if allowed is None:
        allowed = _ALLOWED_CACHE[id(route)] = frozenset(_query_names(route.dependant))
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise BadRequest(f"unknown query parameter {unknown[0]!r}: this resource takes "
                         f"{', '.join(sorted(allowed)) or 'no query parameters'}")


def _query_names(dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def new_rate_limiter(per_minute: int) -> _RateLimiter:
    return _RateLimiter(per_minute)
