"""The app factory: ``create_app(settings)`` opens the scene once and wires routers, errors, limits and audit."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager

import anyio
from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import cim
from api import errors, openapi
from api._features import FrameCache
from api.deps import new_rate_limiter, reject_unknown_query
from api.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class AuditMiddleware:
    """Record every write (who, what, when, outcome) in the scene's audit table, after the response is known."""

    def __init__(self, app: ASGIApp, scene: cim.Scene) -> None:
        self.app = app
        self.scene = scene

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WRITES:
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            state = scope.get("state") or {}
            await anyio.to_thread.run_sync(self._record, state.get("who", "unauthenticated"),
                                           f"{scope['method']} {scope['path']}", status["code"],
                                           state.get("audit_detail"))

    def _record(self, who: str, action: str, outcome: int, detail: str | None) -> None:
        from cim.security import record

        try:
            with self.scene.store.engine.begin() as conn:
                record(conn, who=who, action=action, outcome=outcome, detail=detail)
        except Exception:
            log.exception("could not write the audit entry for %s by %s", action, who)


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with a problem+json 413, whether announced by Content-Length or
    streamed (chunked); the body is read here, then replayed to the app."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WRITES:
            await self.app(scope, receive, send)
            return
        too_large = errors.problem(413, f"the request body is larger than this service accepts ({self.limit} bytes)"
                                   ": split it into smaller requests", scope.get("path"))
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await too_large(scope, receive, send)
            return
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await too_large(scope, receive, send)
                return
            body.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP service for one scene. ``settings`` default to the ``CIM_*`` environment variables."""
    import cim.security

    settings = settings or Settings()
    scene = cim.open_scene(settings.scene)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from api.mqtt import MQTTBridge

        bridge = MQTTBridge.start(settings, scene) if settings.mqtt_host else None
        app.state.mqtt = bridge
        # The ~150k objects of the imported libraries live as long as the app: keep the collector's full passes
        # from walking them (each took ~120 ms under load, a pause for every request in flight); given back at
        # shutdown, so that apps created and closed in one process (tests) leave nothing uncollectable
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            if bridge is not None:
                bridge.stop()
            app.state.jobs.shutdown()
            scene.close()

    app = FastAPI(title=f"{settings.title}: {scene.name}", version=cim.__version__, lifespan=lifespan,
                  description="OGC API - Features, Tiles and Processes, SensorThings API v1.1 and 3D Tiles over a CIM "
                              "Twin scene.",
                  dependencies=[Depends(reject_unknown_query)],
                  docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.scene = scene
    app.state.mqtt = None
    app.state.rate_limiter = new_rate_limiter(settings.rate_limit)
    app.state.frames = FrameCache()
    errors.install(app)

    from api import features, processes, sensorthings, tiles3d

    app.include_router(tiles3d.router, tags=["3D Tiles"])           # first: routes are matched in order
    app.include_router(features.router)
    app.include_router(sensorthings.router, prefix="/v1.1", tags=["SensorThings"])
    processes.install(app, scene, settings.max_concurrent_jobs)      # before /viewer/{path}: the viewer's config
    app.include_router(tiles3d.viewer, tags=["3D Tiles"])
    openapi.install(app, lambda: [layer.name for layer in features.F.vector_layers(scene)],
                    lambda: [features.F.CRS84, features.F.crs_uri(scene.crs)], lambda: list(processes.PROCESSES))

    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(AuditMiddleware, scene=scene)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "HEAD",
                           "POST", "DELETE", "OPTIONS"], allow_headers=["X-API-Key", "Authorization", "Content-Type",
                           "If-None-Match"], expose_headers=["ETag", "Content-Crs", "Location"], max_age=3600)
    return app
