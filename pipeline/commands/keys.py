"""`pipeline keys create|revoke|list`: API keys of the HTTP API (only hashes are stored)."""

from __future__ import annotations

import argparse
import getpass

from pipeline.commands.options import add_config_options, service_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `keys` to the `pipeline` CLI."""
    keys = subparsers.add_parser("keys", help="create, revoke and list API keys")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    c = ksub.add_parser(
        "create", help="create a key and print it once",
        description="Create an API key. It is printed once; only its hash is stored.",
    )  # fmt: skip
    add_config_options(c)
    c.add_argument("--role", required=True, choices=("reader", "writer", "admin"))
    c.add_argument("--name", help="a label for the key (default <role>-<key id>)")
    c.add_argument(
        "--scope", action="append", default=[], metavar="FIELD=V1,V2",
        help="restrict the key to records with these user_id or source values (repeatable; "
        "several fields must all match)",
    )  # fmt: skip
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=_create)
    r = ksub.add_parser("revoke", help="revoke a key by its id")
    add_config_options(r)
    r.add_argument("key_id", help="the key id shown by `keys list`")
    r.set_defaults(func=_revoke)
    ls = ksub.add_parser("list", help="list keys (never the keys themselves)")
    add_config_options(ls)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_list)


def _create(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.service.keys import create_key, parse_scopes

    config = service_config(args)
    key, row = create_key(
        config.paths.service_db, args.role, args.name, parse_scopes(args.scope),
        created_by=f"cli:{getpass.getuser()}",
    )  # fmt: skip
    scope = ", ".join(
        f"{field}={','.join(v)}"
        for field, v in (("user_id", row["scope_user_ids"]), ("source", row["scope_sources"]))
        if v
    )
    emit(
        {**row, "key": key},
        args.json,
        f"{key}\n(key id {row['key_id']}, role {row['role']}, name {row['name']}"
        f"{', scope ' + scope if scope else ''}; store it now: it is not shown again)",
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from pipeline.service.keys import revoke_key

    revoke_key(service_config(args).paths.service_db, args.key_id)
    print(f"revoked {args.key_id}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.service.keys import list_keys

    rows = list_keys(service_config(args).paths.service_db)
    lines = [
        f"{r['key_id']}  {r['role']:<6}  {'revoked' if r['revoked_at'] else 'active ':<7}  "
        f"{r['name']}  user_id={r['scope_user_ids'] or '*'} source={r['scope_sources'] or '*'}"
        for r in rows
    ]
    emit(rows, args.json, "\n".join(lines) or "no keys yet (`pipeline keys create --role ...`)")
    return 0
