"""API keys: stored hashed, roles, scopes, revocation, and the `pipeline keys` commands."""

from __future__ import annotations

import json

import duckdb
import pytest
from helpers.serve import build_store, write_params

from pipeline.cli import main
from pipeline.errors import AuthError, NotFoundError, UserInputError
from pipeline.service.keys import (
    KeyCache,
    create_key,
    hash_key,
    list_keys,
    parse_scopes,
    revoke_key,
)


def test_key_is_stored_only_as_its_hash(tmp_path):
    db = tmp_path / "service.duckdb"
    key, row = create_key(db, "reader", "app")
    assert key.startswith(f"pk_{row['key_id']}_") and len(key) > 40
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("SELECT * EXCLUDE (created_at, revoked_at) FROM api_keys").fetchall()
    con.close()
    assert key not in repr(stored)
    assert hash_key(key) in repr(stored)
    assert "key_hash" not in list_keys(db)[0]


def test_authenticate_valid_wrong_and_revoked(tmp_path):
    db = tmp_path / "service.duckdb"
    key, row = create_key(db, "writer", scope={"user_id": ["u1"]})
    cache = KeyCache(db, ttl=0.0, miss_reload=0.0)
    principal = cache.authenticate(key)
    assert (principal.role, dict(principal.scope)) == ("writer", {"user_id": ("u1",)})
    assert principal.allows("reader") and principal.allows("writer")
    assert not principal.allows("admin")
    for bad in (None, "", "nope", key[:-1] + ("A" if key[-1] != "A" else "B"), "pk_zz_x"):
        with pytest.raises(AuthError):
            cache.authenticate(bad)
    revoke_key(db, row["key_id"])
    with pytest.raises(AuthError, match="revoked"):
        cache.authenticate(key)
    with pytest.raises(NotFoundError):
        revoke_key(db, row["key_id"])


def test_roles_and_scopes_are_validated(tmp_path):
    db = tmp_path / "service.duckdb"
    with pytest.raises(UserInputError, match="role"):
        create_key(db, "root")
    with pytest.raises(UserInputError, match="admin key cannot be scoped"):
        create_key(db, "admin", scope={"source": ["s"]})
    assert parse_scopes(["user_id=b,a", "source=s", "user_id=c"]) == {
        "source": ("s",),
        "user_id": ("a", "b", "c"),
    }
    for bad in ("label=x", "user_id", "user_id=", "source= , "):
        with pytest.raises(UserInputError, match="--scope"):
            parse_scopes([bad])


def test_keys_cli_create_list_revoke(tmp_path, capsys):
    params = write_params(build_store(tmp_path), tmp_path)
    common = ["--params", str(params)]
    assert main(["keys", "create", "--role", "reader", "--name", "bot", *common,
                 "--scope", "user_id=alice", "--json"]) == 0  # fmt: skip
    created = json.loads(capsys.readouterr().out)
    assert created["key"].startswith("pk_") and created["scope_user_ids"] == ["alice"]
    assert main(["keys", "list", "--json", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["name"] for k in listed] == ["bot"] and "key" not in listed[0]
    assert created["key"] not in json.dumps(listed)
    assert main(["keys", "revoke", created["key_id"], *common]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--json", *common]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked_at"] is not None
    assert main(["keys", "revoke", "nothere", *common]) == 3
    assert "no active key" in capsys.readouterr().err
    assert main(["keys", "create", "--role", "admin", "--scope", "source=x", *common]) == 2
