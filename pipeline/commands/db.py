"""`pipeline db encrypt PATH`: encrypt an existing DuckDB file with PIPELINE_DB_KEY
(docs/encryption.md)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `db` to the `pipeline` CLI."""
    db = subparsers.add_parser("db", help="encrypt the DuckDB files at rest")
    dsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    e = dsub.add_parser(
        "encrypt", help="encrypt a plain DuckDB file in place with PIPELINE_DB_KEY",
        description="Encrypt a plain DuckDB file (the store or the service database) in "
        "place with the key in PIPELINE_DB_KEY; every command then needs that key.",
    )  # fmt: skip
    e.add_argument("path", help="the file, e.g. data/service.duckdb")
    e.set_defaults(func=_encrypt)


def _encrypt(args: argparse.Namespace) -> int:
    from pipeline.store.encrypt_file import encrypt_file

    encrypt_file(args.path)
    print(f"{args.path}: encrypted")
    return 0
