"""API keys and the audit trail, kept in the scene store.

A key is shown once, when created: ``cim_<key id>_<secret>``. The store keeps only its SHA-256 (the secret is
32 random bytes, so a fast hash is enough; nothing can be guessed from it), the key's name, its scopes, when it
was made, last used and revoked. Scopes are ``read``, ``ingest``, ``run`` and ``admin``; ``ingest`` and ``run``
include ``read``, and ``admin`` includes everything.

Every write through the service, and every key created or revoked, is recorded in the audit table: who (a key id,
``anonymous`` or ``cli``), what (method and path, or the action), when (UTC), and the outcome (a status code).

Tables are SQLAlchemy Core on `cim.schema.metadata`; functions take a Connection (the caller owns the transaction).

>>> implied_scopes(["ingest"]) == frozenset({"read", "ingest"})
True
>>> parse_token("cim_0123456789abcdef_" + "x" * 43)[0]
'0123456789abcdef'
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from cim.errors import CIMError, ValidationError
from cim.schema import metadata

__all__ = [
    "SCOPES",
    "ApiKey",
    "AuditEntry",
    "AuthenticationError",
    "AuthorizationError",
    "KeyNotFoundError",
    "api_keys",
    "audit",
    "audit_log",
    "authenticate",
    "create_key",
    "implied_scopes",
    "list_keys",
    "parse_token",
    "record",
    "revoke_key",
]

SCOPES: tuple[str, ...] = ("read", "ingest", "run", "admin")
_IMPLIES = {"read": {"read"}, "ingest": {"read", "ingest"}, "run": {"read", "run"}, "admin": set(SCOPES)}
_PREFIX = "cim_"


class AuthenticationError(CIMError, PermissionError):
    """No key, an unknown or malformed key, or a revoked key."""


class AuthorizationError(CIMError, PermissionError):
    """A valid key without the scope an action needs."""


class KeyNotFoundError(CIMError, KeyError):
    """No API key with that id."""


api_keys = sa.Table(
    "cim_api_keys", metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),         # sha256 hex of the whole token
    sa.Column("scopes", sa.String(255), nullable=False),      # space separated
    sa.Column("created", sa.String(40), nullable=False),      # ISO 8601 UTC
    sa.Column("revoked", sa.String(40), nullable=True),
)

audit = sa.Table(
    "cim_audit", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(40), nullable=False, index=True),   # ISO 8601 UTC, sortable
    sa.Column("who", sa.String(64), nullable=False),              # key id, "anonymous", "cli"
    sa.Column("action", sa.String(255), nullable=False),          # "POST /v1.1/Observations", "keys.create"
    sa.Column("target", sa.Text, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),          # HTTP status or "ok" / "error"
    sa.Column("detail", sa.Text, nullable=True),
)


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its secret)."""

    key_id: str
    name: str
    scopes: frozenset[str]
    created: str
    revoked: str | None = None

    @property
    def granted(self) -> frozenset[str]:
        """The scopes this key has, with those implied by its own."""
        return implied_scopes(self.scopes)

    def allows(self, scope: str) -> bool:
        return scope in self.granted


@dataclass(frozen=True)
class AuditEntry:
    at: str
    who: str
    action: str
    target: str | None
    outcome: str
    detail: str | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def implied_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes granted by ``scopes`` (``admin`` -> all; ``ingest``/``run`` -> also ``read``)."""
    out: set[str] = set()
    for s in scopes:
        if s not in _IMPLIES:
            raise ValidationError(f"unknown scope {s!r}: use one or more of {', '.join(SCOPES)}")
        out |= _IMPLIES[s]
    return frozenset(out)


def parse_token(token: str) -> tuple[str, str]:
    """(key id, secret) of a token ``cim_<16 hex>_<secret>``; AuthenticationError when malformed."""
    if not isinstance(token, str) or not token.startswith(_PREFIX):
        raise AuthenticationError("malformed API key: keys look like cim_<id>_<secret>")
    parts = token[len(_PREFIX):].split("_", 1)
    if len(parts) != 2 or len(parts[0]) != 16 or not all(c in "0123456789abcdef" for c in parts[0]) \
            or not 20 <= len(parts[1]) <= 100:
        raise AuthenticationError("malformed API key: keys look like cim_<id>_<secret>")
    return parts[0], parts[1]


def create_key(conn: sa.Connection, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
    """Store a new key; return it and its token (shown once: only its hash is kept)."""
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise ValidationError("an API key needs a name (1-255 characters), e.g. 'gauge-uploader'")
    scopes = sorted(set(scopes))
    if not scopes:
        raise ValidationError(f"an API key needs at least one scope: {', '.join(SCOPES)}")
    implied_scopes(scopes)
    key_id = secrets.token_hex(8)
    token = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    created = _now()
    conn.execute(api_keys.insert().values(key_id=key_id, name=name, hash=_hash(token), scopes=" ".join(scopes),
                                          created=created, revoked=None))
    record(conn, who="cli", action="keys.create", target=key_id, outcome="ok", detail=f"{name}: {' '.join(scopes)}")
    return ApiKey(key_id, name, frozenset(scopes), created), token


def _from_row(r) -> ApiKey:
    return ApiKey(r.key_id, r.name, frozenset(r.scopes.split()), r.created, r.revoked)


def list_keys(conn: sa.Connection) -> list[ApiKey]:
    """All keys, oldest first, revoked ones included."""
    return [_from_row(r) for r in conn.execute(sa.select(api_keys).order_by(api_keys.c.created, api_keys.c.key_id))]


def revoke_key(conn: sa.Connection, key_id: str) -> ApiKey:
    """Revoke a key at once (it stays listed, marked revoked). Revoking twice keeps the first time."""
    row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None:
        raise KeyNotFoundError(f"no API key {key_id!r}: see `cim keys list SCENE` for the ids")
    if row.revoked is None:
        conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(revoked=_now()))
    record(conn, who="cli", action="keys.revoke", target=key_id, outcome="ok")
    return _from_row(conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).one())


def authenticate(conn: sa.Connection, token: str) -> ApiKey:
    """The key a token belongs to; AuthenticationError when unknown, wrong or revoked (the same message for
    unknown and wrong, so that key ids cannot be probed)."""
    key_id, _ = parse_token(token)
    row = conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id)).first()
    if row is None or not hmac.compare_digest(row.hash, _hash(token)):
        raise AuthenticationError("unknown API key")
    if row.revoked is not None:
        raise AuthenticationError("this API key has been revoked")
    return _from_row(row)


def record(conn: sa.Connection, *, who: str, action: str, outcome: str | int, target: str | None = None,
           detail: str | None = None) -> None:
    """Append one entry to the audit table."""
    conn.execute(audit.insert().values(at=_now(), who=str(who)[:64], action=str(action)[:255], target=target,
                                       outcome=str(outcome)[:32], detail=detail))


def audit_log(conn: sa.Connection, *, limit: int = 1000, who: str | None = None) -> list[AuditEntry]:
    """The most recent audit entries, oldest first."""
    q = sa.select(audit).order_by(audit.c.id.desc()).limit(int(limit))
    if who is not None:
        q = q.where(audit.c.who == who)
    rows = conn.execute(q).all()[::-1]
    return [AuditEntry(r.at, r.who, r.action, r.target, r.outcome, r.detail) for r in rows]
