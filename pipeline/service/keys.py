"""API keys: creation, revocation, listing and authentication; only hashes are stored.

A key reads `pk_<key_id>_<secret>`: the key id is public (listings, logs); the secret is 256
random bits, so a plain sha256 is enough (a slow hash protects guessable passwords, not
random keys). Hashes are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import AuthError, NotFoundError, UserInputError
from pipeline.store import service as db
from pipeline.store.lookup import SCOPE_FIELDS

# Each role can do what the roles before it can.
ROLES: tuple[str, ...] = ("reader", "writer", "admin")
KEY_PREFIX = "pk_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's identity, role and row-level scope."""

    key_id: str
    name: str
    role: str
    scope: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def allows(self, role: str) -> bool:
        """True when this key's role includes `role`."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def sees(self, record: Mapping[str, Any]) -> bool:
        """True when the record is inside this key's scope."""
        return all(record.get(f) in values for f, values in self.scope.items())


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`["user_id=u1,u2", "source=s"]` -> {"user_id": ("u1", "u2"), "source": ("s",)}."""
    scope: dict[str, set[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or name not in SCOPE_FIELDS:
            raise UserInputError(
                f"--scope {item!r}: expected FIELD=v1,v2 with FIELD one of "
                f"{', '.join(SCOPE_FIELDS)}"
            )
        parts = {v.strip() for v in values.split(",") if v.strip()}
        if not parts:
            raise UserInputError(f"--scope {item!r}: no values after '='")
        scope.setdefault(name, set()).update(parts)
    return {k: tuple(sorted(v)) for k, v in sorted(scope.items())}


def create_key(
    service_db: str | Path,
    role: str,
    name: str | None = None,
    scope: Mapping[str, Sequence[str]] | None = None,
    created_by: str = "cli",
) -> tuple[str, dict[str, Any]]:
    """Create a key; returns (the key, shown only now, and its listing row)."""
    if role not in ROLES:
        raise UserInputError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    scope = {k: tuple(v) for k, v in (scope or {}).items() if v}
    if role == "admin" and scope:
        # Admins manage keys and erase any user: a scope would be a false promise.
        raise UserInputError("an admin key cannot be scoped; use a reader or writer key")
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = {
        "key_id": key_id,
        "name": name or f"{role}-{key_id}",
        "role": role,
        "key_hash": hash_key(key),
        "scope_user_ids": list(scope["user_id"]) if "user_id" in scope else None,
        "scope_sources": list(scope["source"]) if "source" in scope else None,
        "created_by": created_by,
    }
    with db.open_service_db(service_db) as con:
        row["created_at"] = db.insert_key(con, row)
    listed = {k: v for k, v in row.items() if k != "key_hash"}
    return key, listed


def revoke_key(service_db: str | Path, key_id: str) -> None:
    """Revoke a key by its id; it stops working within the server's key refresh interval."""
    with db.open_service_db(service_db) as con:
        if not db.revoke_key(con, key_id):
            raise NotFoundError(f"key {key_id!r}: no active key with this id (see `keys list`)")


def list_keys(service_db: str | Path) -> list[dict[str, Any]]:
    """Every key (never its hash), oldest first."""
    with db.open_service_db(service_db) as con:
        return db.list_keys(con)


def _principal(row: Mapping[str, Any]) -> Principal:
    scope = {}
    if row["scope_user_ids"] is not None:
        scope["user_id"] = tuple(row["scope_user_ids"])
    if row["scope_sources"] is not None:
        scope["source"] = tuple(row["scope_sources"])
    return Principal(row["key_id"], row["name"], row["role"], scope)


def _key_id_of(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, _ = key[len(KEY_PREFIX) :].partition("_")
    return key_id if sep else None


class KeyCache:
    """The active keys, reloaded from the service DB at most every `ttl` seconds.

    Requests never open the database: a revoked key stops working within `ttl`, and an
    unknown key id triggers at most one reload per `miss_reload` seconds (a new key works
    at once; a flood of bad keys cannot hammer the file).
    """

    def __init__(self, service_db: str | Path, ttl: float = 2.0, miss_reload: float = 0.5):
        self.service_db = Path(service_db)
        self.ttl = ttl
        self.miss_reload = miss_reload
        self._rows: dict[str, tuple[str, Principal]] = {}
        self._loaded = float("-inf")
        self._lock = threading.Lock()

    def reload(self) -> None:
        """Read the active keys now."""
        with db.open_service_db(self.service_db, read_only=True) as con:
            rows = db.active_key_rows(con)
        with self._lock:
            self._rows = {r["key_id"]: (r["key_hash"], _principal(r)) for r in rows}
            self._loaded = time.monotonic()

    def age(self) -> float:
        """Seconds since the keys were last read."""
        return time.monotonic() - self._loaded

    def authenticate(self, key: str | None) -> Principal:
        """The principal of a valid key, or AuthError."""
        if not key:
            raise AuthError("missing API key (send `Authorization: Bearer <key>`)")
        key_id = _key_id_of(key)
        if key_id is None:
            raise AuthError("invalid API key")
        age = time.monotonic() - self._loaded
        if age > self.ttl or (key_id not in self._rows and age > self.miss_reload):
            self.reload()
        entry = self._rows.get(key_id)
        if entry is None or not hmac.compare_digest(entry[0], hash_key(key)):
            raise AuthError("invalid or revoked API key")
        return entry[1]
