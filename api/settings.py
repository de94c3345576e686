"""Service settings, from arguments or ``CIM_*`` environment variables (pydantic-settings).

>>> Settings(scene="delft.cim", anonymous_read=True).anonymous_read
True
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything a deployment may change. Each field is also read from ``CIM_<NAME>`` (e.g. ``CIM_SCENE``)."""

    model_config = SettingsConfigDict(env_prefix="CIM_", extra="forbid")

    scene: str = Field(description="Scene directory or postgresql+psycopg:// URL")
    anonymous_read: bool = Field(False, description="Allow reads without an API key")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS ('*' for any)")
    tiles_root: Path | None = Field(None, description="Directory of 3D Tiles tilesets (default: <scene>/tiles)")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest request body accepted")
    max_items: int = Field(10_000, ge=1, le=100_000, description="Largest `limit` / `$top`")
    max_batch: int = Field(10_000, ge=1, description="Most observations in one POST")
    cache_max_age: int = Field(3600, ge=0, description="Cache-Control max-age of tile content, seconds")
    rate_limit: int = Field(0, ge=0, description="Requests per minute per key (0: no limit), counted by each "
                            "server process: with cim serve --workers N a key may make up to N times this")
    mqtt_host: str | None = Field(None, description="MQTT broker for the SensorThings MQTT extension")
    mqtt_port: int = Field(1883, ge=1, le=65535)
    mqtt_client_id: str = Field("cim-twin-api", description="Client id of the service's MQTT subscriber")
    mqtt_username: str | None = Field(None, description="User name of the service at the MQTT broker (give the "
                                      "broker an ACL: who may publish observations is who may write them)")
    mqtt_password: SecretStr | None = Field(None, description="Password of that MQTT user")
    mqtt_tls: bool = Field(False, description="Connect to the MQTT broker over TLS (system CA certificates)")
    max_concurrent_jobs: int = Field(1, ge=1, le=64, description="Processing jobs run at once by each server process "
                                     "(cim serve --workers N runs up to N times this); the rest wait")
    title: str = Field("CIM Twin", description="Title on the landing page")
