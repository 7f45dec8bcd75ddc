"""`pipeline serve`, `keys create|revoke|list`, `feedback`, `stats usage|feedback`, `erase`.

Registration imports nothing heavy; each command imports its code when it runs.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from pipeline.commands.options import add_config_options, params_path


def _common(parser: argparse.ArgumentParser) -> None:
    add_config_options(parser)


def _config(args: argparse.Namespace) -> Any:
    from pipeline.serve.run import service_config

    return service_config(args.root, params_path(args), args.overrides)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the service commands to the `pipeline` CLI."""
    p = subparsers.add_parser(
        "serve", help="serve search over HTTP (API keys, roles, feedback)",
        description="Run the HTTP API (FastAPI + uvicorn). Host, port and workers come from "
        "conf/serve; the OpenAPI document is at /openapi.json and /docs.",
    )  # fmt: skip
    _common(p)
    p.add_argument("--host", help="bind address (default serve.host, loopback)")
    p.add_argument("--port", type=int, help="port (default serve.port)")
    p.add_argument("--workers", type=int, help="worker processes (default serve.workers)")
    p.set_defaults(func=_serve)

    keys = subparsers.add_parser("keys", help="create, revoke and list API keys")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    c = ksub.add_parser(
        "create", help="create a key and print it once",
        description="Create an API key. It is printed once; only its hash is stored.",
    )  # fmt: skip
    _common(c)
    c.add_argument("--role", required=True, choices=("reader", "writer", "admin"))
    c.add_argument("--name", help="a label for the key (default <role>-<key id>)")
    c.add_argument(
        "--scope", action="append", default=[], metavar="FIELD=V1,V2",
        help="restrict the key to records with these user_id or source values (repeatable; "
        "several fields must all match)",
    )  # fmt: skip
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=_keys_create)
    r = ksub.add_parser("revoke", help="revoke a key by its id")
    _common(r)
    r.add_argument("key_id", help="the key id shown by `keys list`")
    r.set_defaults(func=_keys_revoke)
    ls = ksub.add_parser("list", help="list keys (never the keys themselves)")
    _common(ls)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_keys_list)

    f = subparsers.add_parser(
        "feedback", help="score a record (1-5, up or down) as a writer key",
        description="Store feedback on a record with the identity of a writer (or admin) "
        "key, read from --key or the PIPELINE_API_KEY environment variable.",
    )  # fmt: skip
    _common(f)
    f.add_argument("record_id", help="the record's id (or rid)")
    signal = f.add_mutually_exclusive_group(required=True)
    signal.add_argument("--score", type=float, help="1 (bad) to 5 (good)")
    signal.add_argument("--up", action="store_true", help="thumbs up")
    signal.add_argument("--down", action="store_true", help="thumbs down")
    f.add_argument("--comment", help="a free-text comment")
    f.add_argument("--key", help="API key (default $PIPELINE_API_KEY)")
    f.add_argument("--json", action="store_true", help="print JSON")
    f.set_defaults(func=_feedback)

    s = subparsers.add_parser("stats", help="usage statistics of the search service")
    ssub = s.add_subparsers(dest="stats_command", metavar="REPORT", required=True)
    u = ssub.add_parser(
        "usage", help="queries per day, latency percentiles, zero-result queries, top records"
    )
    _common(u)
    u.add_argument("--top", type=_positive, default=10, help="rows in each top list (default 10)")
    u.add_argument("--json", action="store_true", help="print JSON")
    u.set_defaults(func=_usage)
    fb = ssub.add_parser(
        "feedback",
        help="snapshot feedback to data/feedback.parquet for the dedup stage",
        description="Write the mean feedback per record (paths.feedback) that the dedup "
        "stage's keep policy (feedback_desc) and quality fill read; `dvc repro` then re-runs "
        "dedup because the snapshot is one of its dependencies.",
    )
    _common(fb)
    fb.add_argument("--json", action="store_true", help="print JSON")
    fb.set_defaults(func=_feedback_snapshot)

    e = subparsers.add_parser(
        "erase", help="erase a user's records everywhere (store, parquet, indexes, feedback)",
        description="Remove a user's rows and texts from every place the platform keeps them "
        "(docs/erasure.md) and add sha256(user id) to data/erasures.txt so the next `dvc "
        "repro` does not bring them back. Waits up to erase.lock_timeout_seconds for a "
        "running dedup or index build, then exits 4 with nothing erased. `--status` lists "
        "unfinished erasures (exit 1 when there are any); the next writer completes them.",
    )  # fmt: skip
    _common(e)
    what = e.add_mutually_exclusive_group(required=True)
    what.add_argument("--user-id", help="the user id to erase")
    what.add_argument("--status", action="store_true", help="list unfinished erasures")
    e.add_argument(
        "--wait", type=float, metavar="SECONDS",
        help="wait at most this long for the writer lock (default erase.lock_timeout_seconds)",
    )  # fmt: skip
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=_erase)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return value


def _serve(args: argparse.Namespace) -> int:
    from pipeline.serve.run import serve

    serve(
        _config(args), args.root, params_path(args), args.overrides,
        args.host, args.port, args.workers,
    )  # fmt: skip
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.service.keys import create_key, parse_scopes

    config = _config(args)
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


def _keys_revoke(args: argparse.Namespace) -> int:
    from pipeline.service.keys import revoke_key

    revoke_key(_config(args).paths.service_db, args.key_id)
    print(f"revoked {args.key_id}")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.service.keys import list_keys

    rows = list_keys(_config(args).paths.service_db)
    lines = [
        f"{r['key_id']}  {r['role']:<6}  {'revoked' if r['revoked_at'] else 'active ':<7}  "
        f"{r['name']}  user_id={r['scope_user_ids'] or '*'} source={r['scope_sources'] or '*'}"
        for r in rows
    ]
    emit(rows, args.json, "\n".join(lines) or "no keys yet (`pipeline keys create --role ...`)")
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.errors import AuthError, NotFoundError
    from pipeline.service.feedback import add_feedback
    from pipeline.service.keys import KeyCache
    from pipeline.store.lookup import StoreReader, get_record

    config = _config(args)
    principal = KeyCache(config.paths.service_db).authenticate(
        args.key or os.environ.get("PIPELINE_API_KEY")
    )
    if not principal.allows("writer"):
        raise AuthError(f"a {principal.role} key cannot send feedback; it needs writer")
    reader = StoreReader(config.paths.store)
    try:
        with reader.cursor() as cur:
            record = get_record(cur, args.record_id)
    finally:
        reader.close()
    if record is None:
        raise NotFoundError(f"record {args.record_id!r} not found in {config.paths.store}")
    if not principal.sees(record):
        raise AuthError(f"record {args.record_id!r} is outside the scope of this key")
    kind = "up" if args.up else "down" if args.down else "score"
    row = add_feedback(config.paths.service_db, principal, record, kind, args.score, args.comment)
    emit(row, args.json, f"feedback {row['feedback_id']} on {row['record_id']}: {kind}")
    return 0


def _usage(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.service.querylog import format_usage, usage_report

    report = usage_report(_config(args).paths.service_db, args.top)
    emit(report, args.json, format_usage(report))
    return 0


def _feedback_snapshot(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.commands.options import load_config
    from pipeline.service.feedback import write_feedback_scores
    from pipeline.service.writer import writer

    cfg = load_config(args)
    config = _config(args)
    # The snapshot is published data an erasure rewrites: one writer at a time.
    with writer(config.paths, "pipeline stats feedback", _erase_wait(cfg, None), _waiting):
        rated = write_feedback_scores(config.paths.service_db, config.paths.feedback)
    row = {"records_rated": rated, "path": str(config.paths.feedback)}
    emit(row, args.json, f"{rated} rated records -> {config.paths.feedback} (run `dvc repro`)")
    return 0


def _erase_wait(cfg: Any, given: float | None) -> float:
    from omegaconf import OmegaConf

    if given is not None:
        return given
    return float(OmegaConf.select(cfg, "erase.lock_timeout_seconds", default=300.0))


def _waiting(holder: str) -> None:
    print(f"waiting for the writer lock: {holder} holds it", file=sys.stderr, flush=True)


def _erase(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.commands.options import load_config
    from pipeline.service.erasure import erase_user, pending_erasures

    cfg = load_config(args)
    config = _config(args)
    if args.status:
        rows = pending_erasures(config.paths)
        lines = [f"{r['user_hash']}  requested {r['requested_at']} by {r['requested_by']}  "
                 f"done: {', '.join(r['steps_done']) or '-'}" for r in rows]  # fmt: skip
        emit(rows, args.json, "\n".join(["unfinished erasures:", *lines]) if rows
             else "no unfinished erasures")  # fmt: skip
        return 1 if rows else 0
    wait = _erase_wait(cfg, args.wait)

    def waiting(holder: str) -> None:
        print(f"erase: waiting up to {wait:g} s for {holder} to release "
              f"{config.paths.writer_lock}; nothing is erased until then",
              file=sys.stderr, flush=True)  # fmt: skip

    row = erase_user(config.paths, args.user_id, f"cli:{getpass.getuser()}", wait, waiting)
    emit(
        row,
        args.json,
        f"erased: {row['records']} records, {row['duplicates']} duplicates, "
        f"{row['rejected']} rejected rows, {row['feedback']} feedback, "
        f"{row['index_removed']} index entries "
        f"(user hash {row['user_hash'][:12]}... added to the erasure list)",
    )
    return 0
