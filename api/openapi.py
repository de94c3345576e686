"""The OpenAPI document: problem+json error responses, 400 instead of FastAPI's 422, and the scene's collection ids
and the process ids as enumerations (so clients and schemathesis see the real ones)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["ERRORS", "allowed_methods", "install"]

_PROBLEM_SCHEMA = {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                                    "status": {"type": "integer"}, "detail": {"type": "string"},
                                                    "instance": {"type": "string"}},
                   "required": ["title", "status"]}


def _err(description: str) -> dict:
    return {"description": description, "content": {"application/problem+json": {"schema": _PROBLEM_SCHEMA}}}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _err("Invalid or unknown parameter"),
    401: _err("No API key, or an unknown or revoked one"),
    403: _err("The API key lacks the scope this needs"),
    404: _err("No such resource"),
    405: _err("Method not allowed"),
    413: _err("Request body too large"),
    415: _err("Unsupported media type of the request body"),
    429: _err("Too many requests; see Retry-After"),
    500: _err("Internal error (details in the server log)"),
    503: _err("The store is unavailable"),
}


def install(app: FastAPI, collection_ids, crs_uris, process_ids=list) -> None:
    """Replace ``app.openapi`` with a generator that post-processes FastAPI's document."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
        ids = sorted(collection_ids())
        processes = sorted(process_ids())
        for template, path in doc.get("paths", {}).items():
            if "/tiles" in template:             # map tile sets are not only vector layers: keep the pattern
                continue
            for op in path.values():
                if not isinstance(op, dict):
                    continue
                op.get("responses", {}).pop("422", None)
                for p in op.get("parameters", []):
                    if p.get("name") == "collectionId" and p.get("in") == "path" and ids:
                        p["schema"] = {"type": "string", "enum": ids}
                    if p.get("name") == "processId" and p.get("in") == "path" and processes:
                        p["schema"] = {"type": "string", "enum": processes}
                    if p.get("name") == "crs" and p.get("in") == "query":
                        p["schema"] = {"type": "string", "enum": list(crs_uris())}
        doc.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
        doc.get("components", {}).get("schemas", {}).pop("ValidationError", None)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document lists for the resource at ``path`` (for the Allow header of a 405)."""
    import re

    table = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for template, ops in app.openapi().get("paths", {}).items():
            regex = "".join(".+" if part == "{path}" else "[^/]+" if part.startswith("{") else re.escape(part)
                            for part in re.split(r"(\{[^}]+\})", template))
            table.append((re.compile(f"^{regex}$"), [m.upper() for m in ops]))
        app.state.allow_table = table
    methods = sorted({m for regex, ms in table if regex.match(path) for m in ms})
    return methods
