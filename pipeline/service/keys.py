"""API keys: creation, revocation, listing and authentication; only hashes are stored.

A key reads `pk_<key_id>_<secret>`: the key id is public (listings, logs); the secret is 256
random bits, so a plain sha256 is enough (a slow hash protects guessable passwords, not
random keys). Hashes are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import AuthError, BusyError, ForbiddenError, NotFoundError, UserInputError
from pipeline.service import limits
from pipeline.store import service as db
from pipeline.store.scope import SCOPE_FIELDS, Scope

# Each role can do what the roles before it can.
ROLES: tuple[str, ...] = ("reader", "writer", "admin")
KEY_PREFIX = "pk_"

log = logging.getLogger("pipeline.serve")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's identity, role and row-level scope (the store applies it)."""

    key_id: str
    name: str
    role: str
    scope: Scope  # Scope.all() for an unscoped key

    def allows(self, role: str) -> bool:
        """True when this key's role includes `role`."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def require(self, role: str) -> None:
        """ForbiddenError (exit 5, HTTP 403) unless this key's role includes `role`."""
        if not self.allows(role):
            raise ForbiddenError(f"a {self.role} key cannot do this; it needs {role}")


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
    _check_limits(name, scope)
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


def _check_limits(name: str | None, scope: Mapping[str, Sequence[str]]) -> None:
    """The caps of pipeline/service/limits.py, for the CLI as for the HTTP API."""
    if name is not None and len(name) > limits.NAME_MAX:
        raise UserInputError(f"key name: {len(name)} characters, at most {limits.NAME_MAX}")
    for field_name, values in scope.items():
        if len(values) > limits.SCOPE_VALUES_MAX:
            raise UserInputError(
                f"scope {field_name}: {len(values)} values, at most {limits.SCOPE_VALUES_MAX}"
            )
        if any(len(v) > limits.SCOPE_VALUE_MAX for v in values):
            raise UserInputError(
                f"scope {field_name}: a value is longer than {limits.SCOPE_VALUE_MAX} characters"
            )


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
    scope = Scope.of({"user_id": row["scope_user_ids"], "source": row["scope_sources"]})
    return Principal(row["key_id"], row["name"], row["role"], scope)


def _key_id_of(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    key_id, sep, _ = key[len(KEY_PREFIX) :].partition("_")
    return key_id if sep else None


class UnknownKeyError(AuthError):
    """A well-formed key whose id is not among the active keys last read."""


class KeyCache:
    """The active keys of the service DB, held in memory and compared in constant time.

    A command (`pipeline feedback`) just calls `authenticate`, which reads the file when its
    copy is older than `ttl` or the key id is unknown. A server calls `start()`: a thread
    then reads the file every `ttl / 2` and `authenticate` never opens it, so no request
    waits for another process holding data/service.duckdb. A read that cannot get the file
    keeps the last good set and is retried at the next tick: a revoked key stops working at
    the first successful read after its revocation (within `ttl` while the file can be read).
    """

    def __init__(
        self,
        service_db: str | Path,
        ttl: float = 2.0,
        miss_reload: float = 0.5,
        lock_timeout: float = 10.0,
    ) -> None:
        self.service_db = Path(service_db)
        self.ttl = ttl
        self.miss_reload = miss_reload  # a flood of unknown key ids reads at most this often
        self.lock_timeout = lock_timeout
        self._rows: dict[str, tuple[str, Principal]] = {}
        self._loaded = float("-inf")  # when the last successful read ended
        self._read_from = float("-inf")  # and when it began: a waiter needs one begun later
        self._last_miss = float("-inf")
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reload(self, lock_timeout: float | None = None) -> None:
        """Read the active keys now (waits up to `lock_timeout` for the file)."""
        timeout = self.lock_timeout if lock_timeout is None else lock_timeout
        began = time.monotonic()
        with db.open_service_db(self.service_db, read_only=True, lock_timeout=timeout) as con:
            rows = db.active_key_rows(con)
        with self._cond:
            if began >= self._read_from:  # reads from other threads may end out of order
                self._rows = {r["key_id"]: (r["key_hash"], _principal(r)) for r in rows}
                self._loaded, self._read_from = time.monotonic(), began
            self._cond.notify_all()

    def age(self) -> float:
        """Seconds since the keys were last read."""
        return time.monotonic() - self._loaded

    def authenticate(self, key: str | None) -> Principal:
        """The principal of a valid key, or AuthError (UnknownKeyError for an unknown id)."""
        if not key:
            raise AuthError("missing API key (send `Authorization: Bearer <key>`)")
        key_id = _key_id_of(key)
        if key_id is None:
            raise AuthError("invalid API key")
        if self._thread is None:  # no refresher: read the file when stale or the id is new
            age = self.age()
            if age > self.ttl or (key_id not in self._rows and age > self.miss_reload):
                self.reload()
        entry = self._rows.get(key_id)
        if entry is None:
            raise UnknownKeyError("invalid or revoked API key")
        if not hmac.compare_digest(entry[0], hash_key(key)):
            raise AuthError("invalid or revoked API key")
        return entry[1]

    def read_for_unknown_key(self, timeout: float) -> bool:
        """Have the refresher read now, so a key created a moment ago works at once; waits up
        to `timeout` for the read. At most once per `miss_reload`: False when skipped, or
        when the read did not complete in time."""
        with self._cond:
            now = time.monotonic()
            if self._thread is None or now - self._last_miss < self.miss_reload:
                return False
            self._last_miss = now
            self._wake.set()
            # A read already under way may have missed the key: wait for one begun after now.
            return self._cond.wait_for(lambda: self._read_from >= now, timeout)

    # --- the refresher (servers) ------------------------------------------------------

    def start(self) -> None:
        """Read the keys, then keep them fresh from a background thread."""
        try:
            self.reload()  # starting up may wait for the file, like any command
        except BusyError as exc:
            log.warning("API keys not read yet (%s); retrying in the background", exc)
        self._stop.clear()
        self._thread = threading.Thread(target=self._refresh, name="key-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.lock_timeout + 1)
        self._thread = None

    def _refresh(self) -> None:
        interval = self.ttl / 2
        failing = False
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                # Short: a busy file is retried at the next tick, with the keys we have.
                self.reload(lock_timeout=min(self.lock_timeout, interval))
            except Exception as exc:  # the thread must outlive any one failure
                if not failing:
                    log.warning(
                        "API keys not refreshed (%s); serving the set read %.1f s ago until "
                        "the file can be read", exc, self.age(),
                    )  # fmt: skip
                failing = True
                continue
            if failing:
                log.info("API keys refreshed again")
                failing = False
