"""`cim serve SCENE` and `cim keys create/list/revoke SCENE` (registered through the "cim_twin.cli" entry point)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def _engine(scene_url: str):
    import cim
    import cim.security

    return cim.open_scene(scene_url)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``keys`` group to the `cim` command line."""

    @app.command("serve")
    def serve(
        scene: str = typer.Argument(..., help="Scene directory or postgresql+psycopg:// URL"),
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on"),
        port: int = typer.Option(8000, "--port", help="Port to listen on"),
        anonymous_read: bool = typer.Option(None, "--anonymous-read/--no-anonymous-read",
                                            help="Allow reads without a key (default: CIM_ANONYMOUS_READ or off)"),
        tiles_root: str = typer.Option(None, "--tiles-root", help="Directory of 3D Tiles tilesets"),
        workers: int = typer.Option(1, "--workers", min=1, max=64,
                                    help="Worker processes (each opens the scene, keeps its own tile caches and runs up to "
                                         "CIM_MAX_CONCURRENT_JOBS jobs)"),
        access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log every request"),
    ) -> None:
        """Serve the scene over HTTP: OGC API Features and Tiles, SensorThings v1.1, 3D Tiles and the viewer (see
        /docs). Other settings come from CIM_* environment variables (e.g. CIM_CORS_ORIGINS, CIM_MQTT_HOST)."""
        import logging
        import os
        import socket

        import uvicorn

        from api.app import create_app
        from api.settings import Settings

        overrides = {"scene": scene}
        if anonymous_read is not None:
            overrides["anonymous_read"] = anonymous_read
        if tiles_root:
            overrides["tiles_root"] = tiles_root
        settings = Settings(**overrides)            # checked here, before any worker starts
        if workers > 1 and settings.mqtt_host:
            raise typer.BadParameter("the MQTT bridge runs in one process: use --workers 1 with CIM_MQTT_HOST",
                                     param_hint="--workers")
        options = {"host": host, "port": port, "log_level": "info", "access_log": access_log,
                   "server_header": False}
        typer.echo(f"serving {scene} on http://{host}:{port}/ (API docs at /docs)")
        if workers == 1:
            uvicorn.run(create_app(settings), **options)
            return
        # several processes: each imports the factory and reads the same settings from CIM_* variables
        os.environ.update({"CIM_SCENE": scene, "CIM_ANONYMOUS_READ": str(settings.anonymous_read).lower()})
        if settings.tiles_root is not None:
            os.environ["CIM_TILES_ROOT"] = str(settings.tiles_root)
        if not hasattr(socket, "SO_REUSEPORT"):         # not on Windows: uvicorn's workers share one socket
            uvicorn.run("api.app:create_app", factory=True, workers=workers, **options)
            return
        from api.workers import serve_workers

        logging.getLogger("api.workers").setLevel(logging.INFO)       # the workers' pids, restarts
        try:
            code = serve_workers(workers, host, port, {k: v for k, v in options.items() if k not in ("host", "port")})
        except OSError as exc:
            raise typer.BadParameter(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                                     param_hint="--host/--port") from None
        raise typer.Exit(code)

    keys = typer.Typer(help="Manage API keys (stored hashed in the scene).", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("create")
    def keys_create(
        scene: str = typer.Argument(..., help="Scene directory or PostGIS URL"),
        name: str = typer.Option(..., "--name", help="What the key is for, e.g. gauge-uploader"),
        scope: list[str] = typer.Option(["read"], "--scope", help="read, ingest, run or admin (repeatable)"),
    ) -> None:
        """Create a key; its token is printed once and cannot be shown again."""
        from cim.security import create_key

        s = _engine(scene)
        with s.store.engine.begin() as conn:
            key, token = create_key(conn, name, scope)
        typer.echo(f"created key {key.key_id} ({key.name}; scopes {' '.join(sorted(key.scopes))})")
        typer.echo(token)

    @keys.command("list")
    def keys_list(scene: str = typer.Argument(..., help="Scene directory or PostGIS URL")) -> None:
        """List keys (ids, names, scopes, created, revoked); tokens are never shown."""
        from rich.console import Console
        from rich.table import Table

        from cim.security import list_keys

        s = _engine(scene)
        with s.store.engine.connect() as conn:
            rows = list_keys(conn)
        table = Table(title=f"{len(rows)} API keys")
        table.add_column("id", no_wrap=True, min_width=16)          # ids are copied from here: never cut them
        for col in ("name", "scopes", "created", "revoked"):
            table.add_column(col)
        for k in rows:
            table.add_row(k.key_id, k.name, " ".join(sorted(k.scopes)), k.created, k.revoked or "")
        Console().print(table)

    @keys.command("revoke")
    def keys_revoke(scene: str = typer.Argument(..., help="Scene directory or PostGIS URL"),
                    key_id: str = typer.Argument(..., help="The key's id (see `cim keys list`)")) -> None:
        """Revoke a key at once."""
        from cim.security import revoke_key

        s = _engine(scene)
        with s.store.engine.begin() as conn:
            key = revoke_key(conn, key_id)
        typer.echo(f"revoked key {key.key_id} ({key.name}) at {key.revoked}")
