"""`pipeline erase --user-id U | --status`: the right to erasure (docs/erasure.md)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from pipeline.commands.options import add_config_options, service_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `erase` to the `pipeline` CLI."""
    e = subparsers.add_parser(
        "erase", help="erase a user's records everywhere (store, parquet, indexes, feedback)",
        description="Remove a user's rows and texts from every place the platform keeps them "
        "(docs/erasure.md) and add sha256(user id) to data/erasures.txt so the next `dvc "
        "repro` does not bring them back. Waits up to erase.lock_timeout_seconds for a "
        "running dedup or index build, then exits 4 with nothing erased. `--status` lists "
        "unfinished erasures (exit 1 when there are any); the next writer completes them.",
    )  # fmt: skip
    add_config_options(e)
    what = e.add_mutually_exclusive_group(required=True)
    what.add_argument("--user-id", help="the user id to erase")
    what.add_argument("--status", action="store_true", help="list unfinished erasures")
    e.add_argument(
        "--wait", type=float, metavar="SECONDS",
        help="wait at most this long for the writer lock (default erase.lock_timeout_seconds)",
    )  # fmt: skip
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=_erase)


def erase_wait(cfg: Any, given: float | None) -> float:
    """How long a writer command waits for the writer lock: `given`, else the config's."""
    from omegaconf import OmegaConf

    if given is not None:
        return given
    return float(OmegaConf.select(cfg, "erase.lock_timeout_seconds", default=300.0))


def waiting(holder: str) -> None:
    """Say on stderr who holds the writer lock a command waits for."""
    print(f"waiting for the writer lock: {holder} holds it", file=sys.stderr, flush=True)


def _erase(args: argparse.Namespace) -> int:
    from pipeline.cli import emit
    from pipeline.commands.options import load_config
    from pipeline.service.erasure import erase_user, pending_erasures

    config = service_config(args)
    if args.status:
        rows = pending_erasures(config.paths)
        lines = [f"{r['user_hash']}  requested {r['requested_at']} by {r['requested_by']}  "
                 f"done: {', '.join(r['steps_done']) or '-'}" for r in rows]  # fmt: skip
        emit(rows, args.json, "\n".join(["unfinished erasures:", *lines]) if rows
             else "no unfinished erasures")  # fmt: skip
        return 1 if rows else 0
    wait = erase_wait(load_config(args), args.wait)

    def on_wait(holder: str) -> None:
        print(f"erase: waiting up to {wait:g} s for {holder} to release "
              f"{config.paths.writer_lock}; nothing is erased until then",
              file=sys.stderr, flush=True)  # fmt: skip

    row = erase_user(config.paths, args.user_id, f"cli:{getpass.getuser()}", wait, on_wait)
    emit(
        row,
        args.json,
        f"erased: {row['records']} records, {row['duplicates']} duplicates, "
        f"{row['rejected']} rejected rows, {row['feedback']} feedback, "
        f"{row['index_removed']} index entries "
        f"(user hash {row['user_hash'][:12]}... added to the erasure list)",
    )
    return 0
